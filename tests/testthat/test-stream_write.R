test_that("the seed's example moves every record from topic1 to topic2, keys and values intact", {
  servers <- kafka_bootstrap()
  topic1 <- new_topic("topic1")
  topic2 <- new_topic("topic2")
  withr::local_dir(withr::local_tempdir())
  n <- 500

  # The seed's example, verbatim but for library(), topic names and the port.
  sc <- spark_connect(master = "local", version = "2.3", packages = "kafka")

  read_options <- list(kafka.bootstrap.servers = servers, subscribe = topic1)
  write_options <- list(kafka.bootstrap.servers = servers, topic = topic2)

  stream <- stream_read_kafka(sc, options = read_options) %>%
  stream_write_kafka(options = write_options)

  kcat_produce(topic1, values = sprintf("value-%04d", 1:n), keys = sprintf("key-%04d", 1:n))
  expect_true(wait_for_rows(stream, n))

  stream_stop(stream)

  out <- kcat_read(topic2, n)
  expect_equal(nrow(out), n)
  expect_setequal(paste(out$key, out$value), sprintf("key-%04d value-%04d", 1:n, 1:n))
  # The default checkpoint is checkpoints/_<uuid> under the working directory.
  expect_length(list.files("checkpoints", pattern = "^_"), 1)
  expect_identical(stream_state(stream), "stopped")
})

test_that("a data frame of every column type is written as JSON and reads back equal", {
  servers <- kafka_bootstrap()
  topic <- new_topic("df")
  df <- data.frame(
    num = c(1.5, -2.25e10, NA, 0),
    int = c(1L, NA, -3L, 2147483647L),
    lgl = c(TRUE, FALSE, NA, TRUE),
    chr = c("plain", "ünïcödé ✓ 漢字", "quote \" and \\ backslash", NA),
    fct = factor(c("a", "b", NA, "a"), levels = c("a", "b")),
    date = as.Date(c("2024-02-29", NA, "1970-01-01", "1969-12-31")),
    time = as.POSIXct(c("2024-01-02 03:04:05.25", "1999-12-31 23:59:59", NA, "1970-01-01 00:00:00"), tz = "UTC"),
    stringsAsFactors = FALSE
  )
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = topic))
  expect_true(wait_for(function() stream_state(stream) == "stopped", 30))
  stream_stop(stream)

  out <- kcat_read(topic, nrow(df))
  expect_equal(nrow(out), nrow(df))
  rows <- lapply(out$value[order(out$offset)], jsonlite::fromJSON)
  field <- function(name, convert, na) vapply(rows, function(r) if (is.null(r[[name]])) na else convert(r[[name]]), na)
  back <- data.frame(
    num = field("num", as.numeric, NA_real_),
    int = field("int", as.integer, NA_integer_),
    lgl = field("lgl", as.logical, NA),
    chr = field("chr", as.character, NA_character_),
    fct = factor(field("fct", as.character, NA_character_), levels = c("a", "b")),
    date = as.Date(field("date", as.character, NA_character_)),
    time = as.POSIXct(field("time", as.character, NA_character_), format = "%Y-%m-%dT%H:%M:%OS", tz = "UTC"),
    stringsAsFactors = FALSE
  )
  expect_equal(back, df)
  # NA fields are left out of the JSON, as Spark's to_json() does.
  expect_false("num" %in% names(rows[[3]]))
})

test_that("a data frame of many chunks is written as JSON whole and in order", {
  # More rows than one source chunk (32,768) and than one slice of JSON made ahead (4,096).
  servers <- kafka_bootstrap()
  topic <- new_topic("dfbig")
  n <- 70000
  df <- data.frame(id = seq_len(n), x = seq_len(n) / 3, label = sprintf("row-%06d", seq_len(n)))
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = topic))
  expect_true(wait_for(function() stream_state(stream) == "stopped", 60))
  stream_stop(stream)

  out <- kcat_read(topic, n)
  expect_equal(nrow(out), n)
  back <- jsonlite::stream_in(textConnection(out$value[order(out$offset)]), verbose = FALSE)
  expect_equal(back$id, df$id)
  expect_equal(back$x, df$x)
  expect_equal(back$label, df$label)
})

test_that("a record Kafka can't take fails the stream with an error that says why", {
  servers <- kafka_bootstrap()
  topic <- new_topic("big")
  # librdkafka refuses records over message.max.bytes (1,000,000) when they are handed to it.
  df <- data.frame(value = c("small", strrep("x", 2e6)))
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = topic))
  expect_true(wait_for(function() stream_state(stream) %in% c("failed", "stopped"), 30))
  expect_equal(stream_state(stream), "failed")
  expect_error(stream_stop(stream), "can't send a record to topic `[^`]+`.*[Tt]oo ?[Ll]arge")
})

test_that("a topic that does not exist fails the write within seconds, naming the topic", {
  servers <- kafka_bootstrap()
  # The test broker creates topics on first use; the producer can decline to ask it to.
  no_create <- list(kafka.bootstrap.servers = servers, kafka.allow.auto.create.topics = "false")
  missing <- new_topic("missing")
  started <- Sys.time()
  expect_error(
    stream_write_kafka(data.frame(value = "a"), checkpoint = new_checkpoint(), options = c(no_create, topic = missing)),
    paste0("can't write to topic `", missing, "`: it does not exist"), class = "streamlyr_error_kafka"
  )
  # A topic column naming a missing topic: the stream starts, then fails; stream_stop() says why.
  stream <- stream_write_kafka(data.frame(value = "a", topic = missing), checkpoint = new_checkpoint(), options = no_create)
  expect_true(wait_for(function() stream_state(stream) == "failed", 20))
  expect_error(stream_stop(stream), paste0("topic `", missing, "`: it does not exist"), class = "streamlyr_error_kafka")
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 20)
  expect_identical(nrow(kcat_read(missing, n = 1, timeout = 1)), 0L)
})

test_that("key, topic and partition columns route each record", {
  servers <- kafka_bootstrap()
  a <- new_topic("a")
  b <- new_topic("b")
  df <- data.frame(
    key = c("k1", NA, "k3"),
    value = c("v1", "v2", "v3"),
    topic = c(a, b, a),
    partition = c(0L, NA, 0L)
  )
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers))
  expect_true(wait_for(function() stream_state(stream) == "stopped", 30))
  stream_stop(stream)
  out_a <- kcat_read(a, 2)
  expect_identical(out_a$value, c("v1", "v3"))
  expect_identical(out_a$key, c("k1", "k3"))
  out_b <- kcat_read(b, 1)
  expect_identical(out_b$value, "v2")
  expect_identical(out_b$key, "")

  # The topic option wins over the column.
  c_topic <- new_topic("c")
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = c_topic))
  stream_stop(stream)
  expect_setequal(kcat_read(c_topic, 3)$value, c("v1", "v2", "v3"))
})

test_that("raw values and keys are written byte for byte", {
  servers <- kafka_bootstrap()
  topic <- new_topic("raw")
  df <- data.frame(x = 1:2)
  df$x <- NULL
  df$value <- list(charToRaw("bytes-1"), as.raw(c(0x41, 0x42)))
  df$key <- list(NULL, charToRaw("k"))
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = topic))
  stream_stop(stream)
  out <- kcat_read(topic, 2)
  expect_identical(out$value, c("bytes-1", "AB"))
  expect_identical(out$key, c("", "k"))
})

test_that("a row without any topic is an error that names the row", {
  servers <- kafka_bootstrap()
  df <- data.frame(value = c("a", "b"), topic = c(new_topic(), NA))
  stream <- stream_write_kafka(df, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers))
  expect_true(wait_for(function() stream_state(stream) == "failed", 30))
  expect_output(print(stream), "row 2 has no topic")
  expect_error(stream_stop(stream), "row 2 has no topic", class = "streamlyr_error")
})

test_that("restarting on the same checkpoint resumes after the last committed batch while input keeps arriving", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  checkpoint <- new_checkpoint()
  n <- 3000
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  start <- function() {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
      stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = checkpoint,
                         options = list(kafka.bootstrap.servers = servers, topic = output))
  }
  # A producer that keeps writing in the background, 20 records every 50 ms.
  script <- tempfile(fileext = ".sh")
  writeLines(c(
    "for i in $(seq 0 149); do",
    sprintf("  seq $((i*20+1)) $((i*20+20)) | sed 's/^/record-/' | kcat -P -b %s -t %s", servers, input),
    "  sleep 0.05",
    "done"
  ), script)
  producer <- processx::process$new("bash", script)
  on.exit(producer$kill(), add = TRUE)

  restarts <- 0
  while (producer$is_alive() && restarts < 6) {
    stream <- start()
    Sys.sleep(runif(1, 0.3, 1.2))
    stream_stop(stream)
    restarts <- restarts + 1
  }
  producer$wait(60000)
  stream <- start()
  expect_true(wait_for_rows(stream, 1, timeout = 30))
  expect_true(wait_for(function() nrow(kcat_read(output, 0, timeout = 0)) >= n, 60))
  stream_stop(stream)

  out <- kcat_read(output, n)
  expect_gte(restarts, 3)
  # Nothing lost ...
  expect_setequal(unique(out$value), paste0("record-", 1:n))
  # ... and no record of a committed batch written twice (a graceful stop commits the batch in flight).
  expect_equal(sum(duplicated(out$value)), 0)
  commits <- list.files(file.path(checkpoint, "commits"))
  expect_gte(length(commits), restarts)
  expect_true(all(file.exists(file.path(checkpoint, "offsets", commits))))
})

test_that("a data frame already written on this checkpoint is not written again", {
  servers <- kafka_bootstrap()
  topic <- new_topic("once")
  checkpoint <- new_checkpoint()
  df <- data.frame(value = sprintf("row-%d", 1:10))
  write <- function() {
    s <- stream_write_kafka(df, checkpoint = checkpoint, options = list(kafka.bootstrap.servers = servers, topic = topic))
    stream_stop(s)
  }
  write()
  write()
  expect_identical(kcat_read(topic, 10)$value, df$value)
  expect_equal(nrow(kcat_read(topic, 11, timeout = 2)), 10)
})
