#' Read and write columns of Avro bodies
#'
#' sparklyr's `sdf_from_avro()` and `sdf_to_avro()`, on streams: Spark's
#' `from_avro()` and `to_avro()` run on each micro-batch, in the engine.
#' They read and write the bare binary body of one Avro value, as Spark does
#' (no schema id): for Kafka values written with Confluent's schema registry,
#' read with `value.format = "avro-confluent"` in [stream_read_kafka()]
#' instead. A record schema gives a struct column; collected into R, a
#' struct column `value` becomes one column per field (`value_id`,
#' `value_name`, ...).
#'
#' `sdf_from_avro()` fails the stream on a value that is not exactly one
#' value of the schema (Spark's default `FAILFAST` mode). `sdf_to_avro()`
#' writes each column with the schema Spark derives from its type: a record
#' named `topLevelRecord` for a struct (such as `named_struct('id', id,
#' 'name', name)`), and for other columns that may hold `NA`, the union
#' `[type, "null"]`. An `NA` stays `NA` (Spark's `to_avro()` is null-safe):
#' as a Kafka value, a tombstone; as a key, no key. Spark derives the
#' schema from each column's nullability, which the engine sometimes sees
#' differently (it calls every struct and every `named_struct()` field
#' nullable, and a Kafka stream's `topic`, `partition` and `offset` not
#' nullable), so a byte may differ from Spark's: to pin the schema, call
#' `to_avro(column, '<schema JSON>')` in a `mutate()` (Spark's two-argument
#' form), or write with `value.format = "avro"` and `value.schema`.
#'
#' @param x A stream, or a dplyr pipeline over one.
#' @param cols For `sdf_from_avro()`, a named character vector (or list):
#'   each binary column to read, named, with its Avro schema, e.g.
#'   `c(value = '{"type": "record", "name": "order", "fields": [...]}')` or
#'   `c(key = "string")`. For `sdf_to_avro()`, the names of the columns to
#'   write as Avro.
#' @return `x` with the columns replaced in place.
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' schema <- '{"type": "record", "name": "order", "fields": [
#'   {"name": "id", "type": "int"}, {"name": "amount", "type": "double"}]}'
#' stream_read_kafka(sc, options = list(
#'   kafka.bootstrap.servers = "localhost:9092", subscribe = "orders"
#' )) %>%
#'   sdf_from_avro(c(value = schema)) %>%
#'   stream_write_memory("orders")
#' }
sdf_from_avro <- function(x, cols) {
  check_avro_stream(x)
  if (!(is.character(cols) || is.list(cols)) || length(cols) == 0 || is.null(names(cols)) || any(!nzchar(names(cols)))) {
    abort_streamlyr(
      "expected a named list of columns and their Avro schemas",
      arg = "cols", hint = "for example `cols = c(value = '{\"type\": \"record\", ...}')`"
    )
  }
  check_avro_columns(x, names(cols))
  calls <- list()
  for (column in names(cols)) {
    schema <- cols[[column]]
    if (!is.character(schema) || length(schema) != 1 || is.na(schema)) {
      abort_streamlyr(paste0("the schema of `", column, "` must be one string of Avro schema JSON."), arg = "cols")
    }
    engine_result(avro_schema_check(schema, column))
    calls[[column]] <- dbplyr::sql(paste0("from_avro(", quote_identifier(NULL, column), ", ", quote_string(NULL, schema), ")"))
  }
  dplyr::mutate(as_avro_input(x), !!!calls)
}

#' @rdname sdf_from_avro
#' @export
sdf_to_avro <- function(x, cols = colnames(x)) {
  check_avro_stream(x)
  if (!is.character(cols) || length(cols) == 0 || anyNA(cols)) {
    abort_streamlyr("expected the names of the columns to write as Avro", arg = "cols")
  }
  check_avro_columns(x, cols)
  calls <- list()
  for (column in unique(cols)) {
    calls[[column]] <- dbplyr::sql(paste0("to_avro(", quote_identifier(NULL, column), ")"))
  }
  dplyr::mutate(as_avro_input(x), !!!calls)
}

check_avro_stream <- function(x, call = rlang::caller_env()) {
  if (!is_stream(x)) {
    abort_streamlyr("expected a streaming dataframe as input", arg = "x", call = call)
  }
}

check_avro_columns <- function(x, columns, call = rlang::caller_env()) {
  unknown <- setdiff(columns, colnames(x))
  if (length(unknown) > 0) {
    abort_streamlyr(
      paste0("`", unknown[[1]], "` is not a column of `x` (", paste(colnames(x), collapse = ", "), ")."),
      arg = "cols", call = call
    )
  }
}

as_avro_input <- function(x) if (inherits(x, "tbl_stream")) as_lazy_stream(x) else x
