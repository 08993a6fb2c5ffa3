# The mock cluster users get for their own tests, and the faults only it
# can stage quickly. These tests need neither a broker nor kcat: what a
# stream wrote is read back through streamlyr itself, so `R CMD check`
# exercises the whole data path.

# Everything in `topic` as (key, value) text, read once from the earliest offsets.
read_back <- function(sc, servers, topic) {
  stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = topic)) %>%
    dplyr::transmute(key = as.character(key), value = as.character(value)) %>%
    dplyr::collect()
}

test_that("a data frame written to the mock cluster is read back whole by a stream", {
  cluster <- kafka_mock_cluster(brokers = 3)
  on.exit(kafka_mock_close(cluster))
  expect_output(print(cluster), "3 brokers at ")
  kafka_mock_create_topic(cluster, "events", partitions = 3)
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE)
  rows <- data.frame(key = c("a", "b", "c", NA), value = c("1", "2", "3", "no key"))
  stream <- stream_write_kafka(
    rows,
    checkpoint = new_checkpoint(),
    options = list(kafka.bootstrap.servers = cluster$bootstrap_servers, topic = "events")
  )
  stream_stop(stream)
  out <- read_back(sc, cluster$bootstrap_servers, "events")
  expect_setequal(paste(out$key, out$value), paste(rows$key, rows$value))
})

test_that("a pipeline moves records between mock topics, exactly once, across a restart", {
  cluster <- kafka_mock_cluster()
  on.exit(kafka_mock_close(cluster))
  servers <- cluster$bootstrap_servers
  kafka_mock_create_topic(cluster, "in", partitions = 2)
  kafka_mock_create_topic(cluster, "out")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE)
  checkpoint <- new_checkpoint()
  write_in <- function(values) {
    stream_stop(stream_write_kafka(data.frame(value = values), checkpoint = new_checkpoint(),
                                   options = list(kafka.bootstrap.servers = servers, topic = "in")))
  }
  run_once <- function() {
    stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = "in",
                                                   startingOffsets = "earliest")) %>%
      dplyr::transmute(value = toupper(as.character(value))) %>%
      dplyr::filter(value != "SKIP") %>%
      stream_write_kafka(trigger = stream_trigger_once(), checkpoint = checkpoint,
                         options = list(kafka.bootstrap.servers = servers, topic = "out",
                                        guarantee = "exactly-once"))
    expect_true(wait_for(function() stream_state(stream) == "stopped", 30))
    stream_stop(stream)
  }
  write_in(c("a", "b", "skip"))
  run_once()
  write_in(c("c", "d"))
  run_once()
  run_once() # nothing new: nothing written
  expect_setequal(read_back(sc, servers, "out")$value, c("A", "B", "C", "D"))
  expect_identical(nrow(read_back(sc, servers, "out")), 4L)
})

test_that("a broker down mid-stream: the stream waits, reports it, and resumes without loss", {
  cluster <- kafka_mock_cluster(brokers = 1)
  on.exit(kafka_mock_close(cluster))
  servers <- cluster$bootstrap_servers
  kafka_mock_create_topic(cluster, "in")
  kafka_mock_create_topic(cluster, "out")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE)
  write_in <- function(values) {
    stream_stop(stream_write_kafka(data.frame(value = values), checkpoint = new_checkpoint(),
                                   options = list(kafka.bootstrap.servers = servers, topic = "in")))
  }
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = "in", startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = "out"))
  write_in(sprintf("a%d", 1:100))
  expect_true(wait_for_rows(stream, 100))

  kafka_mock_broker_down(cluster, 1)
  expect_true(wait_for(function() length(streamlyr:::query_status(stream$ptr)$warnings) > 0, 30))
  expect_identical(stream_state(stream), "active")
  kafka_mock_broker_up(cluster, 1)

  write_in(sprintf("b%d", 1:100))
  expect_true(wait_for_rows(stream, 200, timeout = 90))
  stream_stop(stream)
  expect_setequal(unique(read_back(sc, servers, "out")$value), c(sprintf("a%d", 1:100), sprintf("b%d", 1:100)))
})

test_that("a broker that stays down fails the stream after `retryTimeoutMs`, and print() shows the retrying", {
  cluster <- kafka_mock_cluster(brokers = 1)
  on.exit(kafka_mock_close(cluster))
  servers <- cluster$bootstrap_servers
  kafka_mock_create_topic(cluster, "in")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE)
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = "in")) %>%
    stream_write_memory(name = "held", trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                        options = list(retryTimeoutMs = 3000))
  kafka_mock_broker_down(cluster, 1)
  expect_true(wait_for(function() !is.null(streamlyr:::query_status(stream$ptr)$retrying), 30))
  expect_output(print(stream), "retrying: for [0-9]+ s \\(try [0-9]+\\), without progress")
  expect_true(wait_for(function() stream_state(stream) == "failed", 60))
  cnd <- expect_error(stream_stop(stream), class = "streamlyr_error_kafka")
  said <- gsub("\\s+", " ", conditionMessage(cnd))
  expect_match(said, "gave up after [0-9]+ tries over [0-9.]+ s without progress")
  expect_match(said, "`retryTimeoutMs` is 3000", fixed = TRUE)
  expect_match(said, "can't reach Kafka", fixed = TRUE)
})

test_that("mock cluster helpers check their arguments", {
  expect_error(kafka_mock_cluster(0), "at least 1", class = "streamlyr_error_config")
  expect_error(kafka_mock_broker_down(list()), "kafka_mock_cluster", class = "streamlyr_error_config")
  cluster <- kafka_mock_cluster()
  kafka_mock_close(cluster)
  expect_error(kafka_mock_broker_down(cluster), "closed", class = "streamlyr_error_config")
})
