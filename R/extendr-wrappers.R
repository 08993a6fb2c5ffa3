# Thin wrappers over the Rust functions (src/rust/src/r/mod.rs). Each returns
# what Rust returned; `engine_result()` turns `list(error = ...)` into an R
# error. Nothing else happens here.

engine_new <- function() .Call(wrap__engine_new)
engine_close <- function(engine) .Call(wrap__engine_close, engine)
engine_is_closed <- function(engine) .Call(wrap__engine_is_closed, engine)
engine_queries <- function(engine) .Call(wrap__engine_queries, engine)
engine_find <- function(engine, id) .Call(wrap__engine_find, engine, id)
query_start <- function(engine, spec_json, data) .Call(wrap__query_start, engine, spec_json, data)
query_wait <- function(query, timeout_ms, until_started) .Call(wrap__query_wait, query, timeout_ms, until_started)
query_stop <- function(query, abort) .Call(wrap__query_stop, query, abort)
query_status <- function(query) .Call(wrap__query_status, query)
query_progress <- function(query) .Call(wrap__query_progress, query)
engine_query_memory <- function(engine, sql) .Call(wrap__engine_query_memory, engine, sql)
engine_drop_memory <- function(engine, table) .Call(wrap__engine_drop_memory, engine, table)
engine_copy_to <- function(engine, name, df, overwrite) .Call(wrap__engine_copy_to, engine, name, df, overwrite)
query_console_take <- function(query) .Call(wrap__query_console_take, query)
rust_panic_for_test <- function() .Call(wrap__rust_panic_for_test)
kafka_source_check <- function(options_json) .Call(wrap__kafka_source_check, options_json)
socket_source_check <- function(options_json) .Call(wrap__socket_source_check, options_json)
delta_source_check <- function(path, options_json) .Call(wrap__delta_source_check, path, options_json)
file_source_check <- function(format, path, options_json, columns_json) {
  .Call(wrap__file_source_check, format, path, options_json, columns_json)
}
duration_ms <- function(text, arg) .Call(wrap__duration_ms, text, arg)

avro_schema_check <- function(schema, column) .Call(wrap__avro_schema_check, schema, column)

mock_cluster_new <- function(brokers) .Call(wrap__mock_cluster_new, brokers)
mock_cluster_close <- function(ptr) .Call(wrap__mock_cluster_close, ptr)
mock_cluster_broker <- function(ptr, broker, up) .Call(wrap__mock_cluster_broker, ptr, broker, up)
mock_cluster_create_topic <- function(ptr, topic, partitions, replication) {
  .Call(wrap__mock_cluster_create_topic, ptr, topic, partitions, replication)
}
