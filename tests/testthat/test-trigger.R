# Triggers check their own argument, so a bad one is an error from the
# constructor the user called, not later from stream_write_*().

test_that("stream_trigger_interval() wants a non-negative number of milliseconds", {
  expect_snapshot(stream_trigger_interval(-5), error = TRUE)
  expect_snapshot(stream_trigger_interval("soon"), error = TRUE)
  expect_error(stream_trigger_interval(NA), "non-negative number", class = "streamlyr_error_config")
  expect_error(stream_trigger_interval(c(100, 200)), "a double vector of length 2", class = "streamlyr_error_config")
  expect_error(stream_trigger_interval(Inf), "not the number Inf", class = "streamlyr_error_config")
  expect_error(stream_trigger_interval(NULL), "not NULL", class = "streamlyr_error_config")
})

test_that("stream_trigger_interval(0) runs micro-batches back to back, as Spark's ProcessingTime(0)", {
  expect_identical(unclass(stream_trigger_interval(0)), list(interval = 0))
  expect_identical(unclass(stream_trigger_interval(250L)), list(interval = 250L))
  expect_identical(streamlyr:::trigger_spec(stream_trigger_interval(0)), list(kind = "interval", interval_ms = 0))
})

test_that("stream_trigger_continuous() wants a positive number of milliseconds", {
  expect_snapshot(stream_trigger_continuous(0), error = TRUE)
  expect_error(stream_trigger_continuous(-1), "positive number", class = "streamlyr_error_config")
  expect_error(stream_trigger_continuous("5s"), "not the string \"5s\"", class = "streamlyr_error_config")
  expect_identical(unclass(stream_trigger_continuous(1)), list(interval = 1))
})

test_that("a trigger edited after it was made is checked when the stream is written", {
  opts <- list(kafka.bootstrap.servers = "h:1", topic = "t")
  bad <- stream_trigger_continuous()
  bad$interval <- 0
  expect_snapshot(stream_write_kafka(data.frame(value = "a"), trigger = bad, options = opts), error = TRUE)
  bad <- stream_trigger_interval()
  bad$interval <- "soon"
  expect_error(
    stream_write_kafka(data.frame(value = "a"), trigger = bad, options = opts),
    "`trigger`'s interval must be a single non-negative number", class = "streamlyr_error_config"
  )
  expect_snapshot(stream_write_kafka(data.frame(value = "a"), trigger = "soon", options = opts), error = TRUE)
})

test_that("triggers print what they do", {
  expect_output(print(stream_trigger_interval(250)), "every 250 ms")
  expect_output(print(stream_trigger_continuous()), "checkpoint every 5000 ms")
  expect_output(print(stream_trigger_once()), "then stop")
})
