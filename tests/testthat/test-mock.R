# The mock cluster users get for their own tests, and the faults only it
# can stage quickly.

test_that("a data frame can be written to the mock cluster and read back by kcat", {
  cluster <- kafka_mock_cluster(brokers = 3)
  on.exit(kafka_mock_close(cluster))
  expect_output(print(cluster), "3 brokers at ")
  kafka_mock_create_topic(cluster, "events", partitions = 3)
  stream <- stream_write_kafka(
    data.frame(key = c("a", "b", "c"), value = c("1", "2", "3")),
    checkpoint = new_checkpoint(),
    options = list(kafka.bootstrap.servers = cluster$bootstrap_servers, topic = "events")
  )
  stream_stop(stream)
  out <- system2("kcat", c("-C", "-b", cluster$bootstrap_servers, "-t", "events", "-e", "-q", "-f", "'%k=%s\\n'"), stdout = TRUE)
  expect_setequal(out, c("a=1", "b=2", "c=3"))
})

test_that("a broker down mid-stream: the stream waits, reports it, and resumes without loss", {
  cluster <- kafka_mock_cluster(brokers = 1)
  on.exit(kafka_mock_close(cluster))
  servers <- cluster$bootstrap_servers
  kafka_mock_create_topic(cluster, "in")
  kafka_mock_create_topic(cluster, "out")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE)
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = "in", startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = "out"))
  kcat_produce("in", sprintf("a%d", 1:100), servers = servers)
  expect_true(wait_for_rows(stream, 100))

  kafka_mock_broker_down(cluster, 1)
  expect_true(wait_for(function() length(streamlyr:::query_status(stream$ptr)$warnings) > 0, 30))
  expect_identical(stream_state(stream), "active")
  kafka_mock_broker_up(cluster, 1)

  kcat_produce("in", sprintf("b%d", 1:100), servers = servers)
  expect_true(wait_for_rows(stream, 200, timeout = 90))
  stream_stop(stream)
  out <- kcat_read("out", 200, servers = servers)$value
  expect_setequal(unique(out), c(sprintf("a%d", 1:100), sprintf("b%d", 1:100)))
})

test_that("mock cluster helpers check their arguments", {
  expect_error(kafka_mock_cluster(0), "at least 1", class = "streamlyr_error_config")
  expect_error(kafka_mock_broker_down(list()), "kafka_mock_cluster", class = "streamlyr_error_config")
  cluster <- kafka_mock_cluster()
  kafka_mock_close(cluster)
  expect_error(kafka_mock_broker_down(cluster), "closed", class = "streamlyr_error_config")
})
