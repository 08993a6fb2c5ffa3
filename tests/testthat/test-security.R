# SASL reaches librdkafka, and no secret is ever shown or stored.

sasl_bootstrap <- function() {
  servers <- Sys.getenv("STREAMLYR_TEST_SASL_BOOTSTRAP")
  if (!nzchar(servers)) skip("no SASL listener: run the tests through tools/test.sh")
  servers
}

sasl_options <- function(password, ...) {
  list(
    kafka.bootstrap.servers = sasl_bootstrap(),
    kafka.security.protocol = "SASL_PLAINTEXT",
    kafka.sasl.mechanism = "PLAIN",
    kafka.sasl.username = "streamlyr",
    kafka.sasl.password = password,
    # Not used on this listener; set to check that it is never shown either.
    kafka.ssl.key.password = "key-password-never-shown",
    ...
  )
}

test_that("SASL/PLAIN with the right password works end to end", {
  input <- new_topic("sasl-in")
  output <- new_topic("sasl-out")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = c(sasl_options("streamlyr-secret", subscribe = input))) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = sasl_options("streamlyr-secret", topic = output))
  kcat_produce(input, c("one", "two"))
  expect_true(wait_for_rows(stream, 2))
  stream_stop(stream)
  expect_setequal(kcat_read(output, 2)$value, c("one", "two"))
})

test_that("a wrong password is a clear error in bounded time", {
  started <- Sys.time()
  err <- expect_error(
    stream_write_kafka(data.frame(value = "a"), checkpoint = new_checkpoint(),
                       options = sasl_options("wrong-password-xyz", topic = new_topic())),
    class = "streamlyr_error_kafka"
  )
  expect_match(conditionMessage(err), "Authentication failed")
  expect_match(conditionMessage(err), "kafka.sasl.password", fixed = TRUE)
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 30)
  expect_false(grepl("wrong-password-xyz", conditionMessage(err), fixed = TRUE))
})

test_that("no secret appears in print(), summary(), stats, errors or the checkpoint", {
  secret <- "streamlyr-secret"
  input <- new_topic("sec-in")
  checkpoint <- new_checkpoint()
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  table <- stream_read_kafka(sc, options = sasl_options(secret, subscribe = input))
  stream <- table %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = checkpoint,
                       options = sasl_options(secret, topic = new_topic("sec-out")))
  kcat_produce(input, "x")
  expect_true(wait_for_rows(stream, 1))
  shown <- c(
    capture.output(print(table)),
    capture.output(print(stream)),
    capture.output(print(summary(stream))),
    capture.output(str(stream_stats(stream))),
    capture.output(print(streamlyr:::query_status(stream$ptr)))
  )
  stream_stop(stream)
  failed <- tryCatch(
    stream_write_kafka(data.frame(value = "a"), checkpoint = new_checkpoint(),
                       options = sasl_options("another-secret-pw", topic = new_topic())),
    error = function(e) conditionMessage(e)
  )
  stored <- unlist(lapply(list.files(checkpoint, recursive = TRUE, full.names = TRUE, all.files = TRUE), readLines))
  for (text in list(shown, failed, stored)) {
    expect_false(any(grepl(secret, text, fixed = TRUE)))
    expect_false(any(grepl("key-password-never-shown", text, fixed = TRUE)))
    expect_false(any(grepl("another-secret-pw", text, fixed = TRUE)))
  }
  expect_gt(length(stored), 3)
})
