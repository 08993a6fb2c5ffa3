# Bad input: a clear error naming the argument and what was expected, raised
# before any stream starts (or, for an unreachable broker, in bounded time).

local_stream_table <- function(sc, servers = "127.0.0.1:9") {
  stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = "in"))
}

test_that("options without kafka.bootstrap.servers", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  expect_snapshot(stream_read_kafka(sc, options = list(subscribe = "in")), error = TRUE)
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), options = list(topic = "out")),
    error = TRUE
  )
})

test_that("neither a topic option nor a topic column", {
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), checkpoint = tempfile(), options = list(kafka.bootstrap.servers = "127.0.0.1:9")),
    error = TRUE
  )
})

test_that("a mode that is not one of sparklyr's", {
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), mode = "bogus", options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    error = TRUE
  )
  expect_error(
    stream_write_kafka(data.frame(value = "a"), mode = "complete", checkpoint = tempfile(), options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    "needs an aggregation", class = "streamlyr_error_config"
  )
})

test_that("a trigger that is not a trigger", {
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), trigger = 1000, options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    error = TRUE
  )
  expect_error(
    stream_write_kafka(data.frame(value = "a"), trigger = stream_trigger_interval(-5), options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    "non-negative number of milliseconds", class = "streamlyr_error_config"
  )
})

test_that("options that are not a named list", {
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), options = "kafka.bootstrap.servers=h:1"),
    error = TRUE
  )
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), options = list("h:1", topic = "t")),
    error = TRUE
  )
  expect_error(
    stream_write_kafka(data.frame(value = "a"), options = list(kafka.bootstrap.servers = c("a:1", "b:2"), topic = "t")),
    "must be a single value", class = "streamlyr_error_config"
  )
})

test_that("x of the wrong class", {
  expect_snapshot(stream_write_kafka(list(value = "a"), options = list(kafka.bootstrap.servers = "h:1", topic = "t")), error = TRUE)
  expect_snapshot(stream_write_kafka(42, options = list(kafka.bootstrap.servers = "h:1", topic = "t")), error = TRUE)
})

test_that("columns Kafka can't carry are errors at start", {
  bad <- data.frame(id = 1:2)
  bad$value <- list(1:3, 4:6)
  expect_snapshot(
    stream_write_kafka(bad, checkpoint = tempfile(), options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    error = TRUE
  )
  expect_error(
    stream_write_kafka(data.frame(value = 1.5), checkpoint = tempfile(), options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    "`value` must be character or raw", class = "streamlyr_error_config"
  )
  expect_error(
    stream_write_kafka(data.frame(value = "a"), partition_by = "nope", options = list(kafka.bootstrap.servers = "h:1", topic = "t")),
    "`partition_by` names `nope`, which is not a column of `x`", class = "streamlyr_error_config"
  )
})

test_that("source options Spark forbids, or that make no sense, are errors when the stream is read", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  read <- function(...) stream_read_kafka(sc, options = list(kafka.bootstrap.servers = "h:1", ...))
  expect_snapshot(read(subscribe = "a", kafka.auto.offset.reset = "earliest"), error = TRUE)
  expect_snapshot(read(), error = TRUE)
  expect_error(read(subscribe = "a", assign = '{"a":[0]}'), "only one of", class = "streamlyr_error_config")
  expect_error(read(subscribe = "a", startingOffsets = "yesterday"), "startingOffsets", class = "streamlyr_error_config")
  expect_error(read(subscribe = "a", maxOffsetsPerTrigger = 0), "positive whole number", class = "streamlyr_error_config")
  expect_error(read(subscribePattern = "(", kafka.client.id = "x"), "regular expression", class = "streamlyr_error_config")
  expect_error(read(subscribe = "a", subscrbe = "b"), "unknown Kafka source option `subscrbe`", class = "streamlyr_error_config")
  expect_warning(read(subscribe = "a", minPartitions = 4), class = "streamlyr_warning_ignored_option")
})

test_that("settings streamlyr manages, and its own options, are checked and named", {
  options <- list(kafka.bootstrap.servers = "h:1", topic = "t", guarantee = "exactly-once", kafka.acks = "1")
  expect_snapshot(stream_write_kafka(data.frame(value = "a"), checkpoint = tempfile(), options = options), error = TRUE)
  cnd <- rlang::catch_cnd(stream_write_kafka(data.frame(value = "a"), checkpoint = tempfile(), options = options))
  expect_identical(cnd$option, "kafka.acks")
  expect_identical(cnd$arg, "options")
  expect_snapshot(
    stream_write_kafka(data.frame(value = "a"), checkpoint = tempfile(),
                       options = list(kafka.bootstrap.servers = "h:1", topic = "t", retryTimeoutMs = "soon")),
    error = TRUE
  )
})

test_that("an unreachable broker is a clear error in bounded time", {
  started <- Sys.time()
  expect_error(
    stream_write_kafka(data.frame(value = "a"), checkpoint = tempfile(),
                       options = list(kafka.bootstrap.servers = "127.0.0.1:9", topic = "t")),
    "can't reach Kafka at `127.0.0.1:9`", class = "streamlyr_error_kafka"
  )
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  expect_error(
    local_stream_table(sc) %>%
      stream_write_kafka(checkpoint = tempfile(), options = list(kafka.bootstrap.servers = "127.0.0.1:9", topic = "t")),
    "can't reach Kafka", class = "streamlyr_error_kafka"
  )
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 40)
})

test_that("a stream, a connection or an id of the wrong kind is named in the error", {
  expect_snapshot(stream_stop("not a stream"), error = TRUE)
  expect_error(stream_find(list(), "id"), "must be a connection", class = "streamlyr_error_config")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  expect_error(stream_find(sc, "no-such-id"), "no stream with id", class = "streamlyr_error_config")
})
