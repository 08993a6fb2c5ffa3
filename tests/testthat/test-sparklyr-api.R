# The API is sparklyr's: same names, same arguments, same defaults. These
# are sparklyr's signatures, written out so a change on our side fails here.
sparklyr_formals <- list(
  spark_connect = function(master = "local", version = NULL, packages = NULL, ...) NULL,
  spark_disconnect = function(sc, ...) NULL,
  stream_read_kafka = function(sc, name = NULL, options = list(), ...) NULL,
  stream_write_kafka = function(x,
                                mode = c("append", "complete", "update"),
                                trigger = stream_trigger_interval(),
                                checkpoint = file.path("checkpoints", random_string("")),
                                options = list(),
                                partition_by = NULL,
                                ...) NULL,
  stream_write_memory = function(x,
                                 name = random_string("sparklyr_tmp_"),
                                 mode = c("append", "complete", "update"),
                                 trigger = stream_trigger_interval(),
                                 checkpoint = file.path("checkpoints", name, random_string("")),
                                 options = list(),
                                 partition_by = NULL,
                                 ...) NULL,
  stream_write_console = function(x,
                                  mode = c("append", "complete", "update"),
                                  options = list(),
                                  trigger = stream_trigger_interval(),
                                  partition_by = NULL,
                                  ...) NULL,
  stream_trigger_interval = function(interval = 1000) NULL,
  stream_trigger_continuous = function(checkpoint = 5000) NULL,
  stream_stop = function(stream) NULL,
  stream_id = function(stream) NULL,
  stream_name = function(stream) NULL,
  stream_find = function(sc, id) NULL,
  stream_stats = function(stream, stats = list()) NULL,
  stream_watermark = function(x, column = "timestamp", threshold = "10 minutes") NULL,
  random_string = function(prefix = "table") NULL,
  stream_read_csv = function(sc, path, name = NULL, header = TRUE, columns = NULL, delimiter = ",",
                             quote = "\"", escape = "\\", charset = "UTF-8", null_value = NULL,
                             options = list(), ...) NULL,
  stream_read_text = function(sc, path, name = NULL, options = list(), ...) NULL,
  stream_read_json = function(sc, path, name = NULL, columns = NULL, options = list(), ...) NULL,
  stream_read_parquet = function(sc, path, name = NULL, columns = NULL, options = list(), ...) NULL,
  stream_write_csv = function(x, path, mode = c("append", "complete", "update"),
                              trigger = stream_trigger_interval(),
                              checkpoint = file.path(path, "checkpoint"), header = TRUE,
                              delimiter = ",", quote = "\"", escape = "\\", charset = "UTF-8",
                              null_value = NULL, options = list(), partition_by = NULL, ...) NULL,
  stream_write_text = function(x, path, mode = c("append", "complete", "update"),
                               trigger = stream_trigger_interval(),
                               checkpoint = file.path(path, "checkpoints", random_string("")),
                               options = list(), partition_by = NULL, ...) NULL,
  stream_write_json = function(x, path, mode = c("append", "complete", "update"),
                               trigger = stream_trigger_interval(),
                               checkpoint = file.path(path, "checkpoints", random_string("")),
                               options = list(), partition_by = NULL, ...) NULL,
  stream_write_parquet = function(x, path, mode = c("append", "complete", "update"),
                                  trigger = stream_trigger_interval(),
                                  checkpoint = file.path(path, "checkpoints", random_string("")),
                                  options = list(), partition_by = NULL, ...) NULL,
  stream_write_orc = function(x, path, mode = c("append", "complete", "update"),
                              trigger = stream_trigger_interval(),
                              checkpoint = file.path(path, "checkpoints", random_string("")),
                              options = list(), partition_by = NULL, ...) NULL,
  stream_read_orc = function(sc, path, name = NULL, columns = NULL, options = list(), ...) NULL,
  stream_read_delta = function(sc, path, name = NULL, options = list(), ...) NULL,
  stream_write_delta = function(x, path, mode = c("append", "complete", "update"),
                                checkpoint = file.path("checkpoints", random_string("")),
                                options = list(), partition_by = NULL, ...) NULL,
  stream_lag = function(x, cols, thresholds = NULL) NULL,
  stream_read_socket = function(sc, name = NULL, columns = NULL, options = list(), ...) NULL,
  stream_view = function(stream, ...) NULL,
  stream_render = function(stream = NULL, collect = 10, stats = NULL, ...) NULL,
  reactiveSpark = function(x, intervalMillis = 1000, session = NULL) NULL,
  sdf_from_avro = function(x, cols) NULL,
  sdf_to_avro = function(x, cols = colnames(x)) NULL,
  stream_generate_test = function(df = rep(1:1000), path = "source",
                                  distribution = floor(10 + 1e5 * stats::dbinom(1:20, 20, 0.5)),
                                  iterations = 50, interval = 1) NULL
)

test_that("copy_to() on a connection has sparklyr's formals", {
  sparklyrs <- function(dest, df, name = spark_table_name(substitute(df)), overwrite = FALSE,
                        memory = TRUE, repartition = 0L, ...) NULL
  expect_identical(formals(streamlyr:::copy_to.streamlyr_connection), formals(sparklyrs))
})

test_that("every sparklyr verb has sparklyr's formals", {
  for (name in names(sparklyr_formals)) {
    ours <- get(name, envir = asNamespace("streamlyr"))
    expect_true(name %in% getNamespaceExports("streamlyr"), label = name)
    expect_identical(formals(ours), formals(sparklyr_formals[[name]]), label = name)
  }
})

test_that("triggers have sparklyr's classes and fields", {
  expect_identical(unclass(stream_trigger_interval()), list(interval = 1000))
  expect_s3_class(stream_trigger_interval(250), "stream_trigger_interval")
  expect_identical(unclass(stream_trigger_continuous()), list(interval = 5000))
  expect_s3_class(stream_trigger_continuous(), "stream_trigger_continuous")
  expect_s3_class(stream_trigger_once(), "stream_trigger_once")
})

test_that("random_string() follows sparklyr, so the default checkpoint is checkpoints/_<uuid>", {
  expect_match(random_string("stream"), "^stream_[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}$")
  default <- eval(formals(stream_write_kafka)$checkpoint)
  expect_match(default, "^checkpoints/_[0-9a-f_]{36}$")
})

test_that("options are handed over as strings, whole numbers without a decimal point", {
  strings <- streamlyr:::options_as_strings(list(
    maxOffsetsPerTrigger = 1000, big = 1e6, ratio = 0.25, flag = TRUE, n = 5L, s = "x"
  ))
  expect_identical(strings, list(
    maxOffsetsPerTrigger = "1000", big = "1000000", ratio = "0.25", flag = "true", n = "5", s = "x"
  ))
})
