test_that("a stream can be found, printed, summarised, plotted and measured", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input)) %>%
    stream_write_kafka(trigger = stream_trigger_interval(200), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = new_topic("out")))
  expect_match(stream_id(stream), "^[0-9a-f-]{36}$")
  expect_match(stream_name(stream), "^stream_")
  found <- stream_find(sc, stream_id(stream))
  expect_identical(stream_id(found), stream_id(stream))

  stats <- stream_stats(stream)
  kcat_produce(input, sprintf("m%d", 1:200))
  expect_true(wait_for_rows(stream, 200))
  stats <- stream_stats(stream, stats)
  expect_named(stats, c("sources", "sink", "stats"))
  expect_length(stats$stats, 2)
  expect_named(stats$stats[[2]]$rps, c("in", "out"))
  expect_gt(stats$stats[[2]]$rps$out, 0)
  expect_match(stats$sources, input, fixed = TRUE)

  expect_output(print(stream), "status: active")
  expect_output(print(stream), "rows in: 200, rows out: 200")
  expect_output(print(summary(stream)), "200 rows in, 200 rows out")
  png_file <- tempfile(fileext = ".png")
  grDevices::png(png_file)
  plot(stream)
  grDevices::dev.off()
  expect_gt(file.size(png_file), 1000)

  stream_stop(stream)
  expect_output(print(stream), "status: stopped")
  # Stopping twice is fine.
  expect_silent(stream_stop(stream))
})

test_that("stream_trigger_once() processes what is there and stops by itself", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, sprintf("m%d", 1:50))
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_once(), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = output))
  expect_true(wait_for(function() stream_state(stream) == "stopped", 30))
  expect_equal(nrow(kcat_read(output, 50)), 50)
})

test_that("maxOffsetsPerTrigger caps each micro-batch", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  kcat_produce(input, sprintf("m%d", 1:100))
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input,
                                                 startingOffsets = "earliest", maxOffsetsPerTrigger = 30)) %>%
    stream_write_kafka(trigger = stream_trigger_interval(0), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = new_topic("out")))
  expect_true(wait_for_rows(stream, 100))
  stream_stop(stream)
  p <- streamlyr:::query_progress(stream$ptr)
  expect_true(all(p$rows_in <= 30))
  expect_equal(sum(p$rows_in), 100)
})

test_that("startingOffsets latest skips what was there, and headers pass through with includeHeaders", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, "old")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, includeHeaders = TRUE)) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = output, includeHeaders = TRUE))
  system2("kcat", c("-P", "-b", servers, "-t", input, "-H", "trace=abc", "-H", "n=1"), input = "new")
  expect_true(wait_for_rows(stream, 1))
  stream_stop(stream)
  out <- system2("kcat", c("-C", "-b", servers, "-t", output, "-e", "-q", "-f", "'%h|%s\\n'"), stdout = TRUE)
  expect_identical(out, "trace=abc,n=1|new")
})

test_that("a stream whose handle is garbage-collected stops", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, "before")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input)) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = output))
  kcat_produce(input, "while referenced")
  expect_true(wait_for_rows(stream, 1))
  rm(stream)
  gc()
  expect_length(streamlyr:::engine_queries(sc$engine), 0)
  Sys.sleep(0.5)
  kcat_produce(input, "after gc")
  Sys.sleep(2)
  expect_identical(kcat_read(output, 2, timeout = 1)$value, "while referenced")
})

test_that("a Rust panic comes back as an R error, and R goes on", {
  expect_error(streamlyr:::rust_panic_for_test(), "deliberate panic")
  expect_identical(1 + 1, 2)
})

test_that("continuous processing sends records before the epoch ends, and commits epochs", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  checkpoint <- new_checkpoint()
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  start <- function() {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
      stream_write_kafka(trigger = stream_trigger_continuous(checkpoint = 4000), checkpoint = checkpoint,
                         options = list(kafka.bootstrap.servers = servers, topic = output))
  }
  stream <- start()
  Sys.sleep(1)
  sent <- Sys.time()
  kcat_produce(input, "first")
  expect_identical(kcat_read(output, 1, timeout = 3)$value, "first")
  # It arrived long before the 4 s epoch could have ended.
  expect_lt(as.numeric(difftime(Sys.time(), sent, units = "secs")), 3)
  expect_length(list.files(file.path(checkpoint, "commits")), 0)
  expect_true(wait_for(function() length(list.files(file.path(checkpoint, "commits"))) == 1, 10))

  kcat_produce(input, sprintf("m%d", 1:300))
  expect_true(wait_for_rows(stream, 301))
  stream_stop(stream)
  kcat_produce(input, sprintf("later%d", 1:100))
  stream <- start()
  expect_true(wait_for_rows(stream, 100))
  stream_stop(stream)
  out <- kcat_read(output, 401)$value
  expect_setequal(unique(out), c("first", sprintf("m%d", 1:300), sprintf("later%d", 1:100)))
  expect_equal(sum(duplicated(out)), 0)
})

test_that("continuous processing reads many records at a time from several partitions, each once across a restart", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  for (topic in c(input, output)) kafka_tool("create-topic", "--topic", topic, "--partitions", "3")
  checkpoint <- new_checkpoint()
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  start <- function() {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
      stream_write_kafka(trigger = stream_trigger_continuous(checkpoint = 200), checkpoint = checkpoint,
                         options = list(kafka.bootstrap.servers = servers, topic = output))
  }
  for (p in 0:2) kcat_produce(input, sprintf("p%d-%05d", p, 1:20000), partition = p)
  stream <- start()
  # Stopped while records are still arriving; the restart goes on where the last epoch ended.
  for (p in 0:2) kcat_produce(input, sprintf("q%d-%05d", p, 1:5000), partition = p)
  stream_stop(stream)
  stream <- start()
  out <- kcat_read(output, 75000, timeout = 60)
  stream_stop(stream)
  # A stop ends the epoch in flight: nothing twice. The passthrough keeps each
  # record's partition, and each partition's order.
  for (p in 0:2) {
    expect_identical(out$value[out$partition == p], c(sprintf("p%d-%05d", p, 1:20000), sprintf("q%d-%05d", p, 1:5000)))
  }
})

test_that("exactly-once: a batch that writes nothing opens no transaction; one that writes commits it", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  checkpoint <- new_checkpoint()
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input)) %>%
    dplyr::filter(as.character(value) == "keep") %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = checkpoint,
                       options = list(kafka.bootstrap.servers = servers, topic = output, guarantee = "exactly-once"))
  metadata <- jsonlite::fromJSON(paste(readLines(file.path(checkpoint, "metadata"))[-1], collapse = ""))
  transaction_state <- function() {
    system2("bash", c(file.path(Sys.getenv("STREAMLYR_KAFKA_TOOLS"), "kafka.sh"), "transaction-state",
                      "--port", sub(".*:", "", servers), "--id", paste0("streamlyr-", metadata$id)), stdout = TRUE)
  }
  kcat_produce(input, sprintf("drop-%d", 1:50))
  expect_true(wait_for_rows(stream, 50))
  expect_gte(length(list.files(file.path(checkpoint, "commits"))), 1)
  # The batches were committed in the checkpoint without a round trip to the transaction coordinator.
  expect_equal(transaction_state(), "Empty")
  kcat_produce(input, "keep")
  expect_identical(kcat_read(output, 1, timeout = 10)$value, "keep")
  expect_true(wait_for(function() identical(transaction_state(), "CompleteCommit"), 20, 1))
  stream_stop(stream)
})

test_that("stream_await() returns when the stream ends, FALSE on timeout, and raises a failed stream's error", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  kcat_produce(input, sprintf("m%d", 1:50))
  running <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_memory("awaited_running", checkpoint = new_checkpoint(), trigger = stream_trigger_interval(100))
  expect_false(stream_await(running, timeout = 0.5))
  expect_equal(stream_state(running), "active")
  stream_stop(running)
  expect_true(stream_await(running))
  expect_true(stream_await(running, timeout = 0))

  once <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_memory("awaited_once", checkpoint = new_checkpoint(), trigger = stream_trigger_once())
  expect_true(stream_await(once, timeout = 60))
  expect_equal(nrow(dplyr::collect(dplyr::tbl(sc, "awaited_once"))), 50)

  # librdkafka refuses records over message.max.bytes (1,000,000).
  failing <- stream_write_kafka(data.frame(value = strrep("x", 2e6)), checkpoint = new_checkpoint(),
                                options = list(kafka.bootstrap.servers = servers, topic = new_topic("big")))
  expect_error(stream_await(failing, timeout = 60), "[Tt]oo ?[Ll]arge")
  expect_error(stream_await(running, timeout = "1"), "`timeout` must be `NULL` or a single non-negative number of seconds")

  # The console sink's batches print while the script waits, as at the console.
  console <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_console(trigger = stream_trigger_once())
  expect_output(stream_await(console, timeout = 60), "Batch: 0")
})
