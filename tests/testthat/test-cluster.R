# Three brokers, replication factor 3, min.insync.replicas = 2: killing the
# leader of the output topic mid-stream loses nothing, and the stream goes on.

test_that("a 3-broker cluster survives its output leader being killed mid-stream", {
  tools <- Sys.getenv("STREAMLYR_KAFKA_TOOLS")
  skip_if(!nzchar(tools) || !nzchar(Sys.getenv("STREAMLYR_TEST_BOOTSTRAP")), "run the tests through tools/test.sh")
  kafka <- file.path(tools, "kafka.sh")
  port <- "29092"
  servers <- system2("bash", c(kafka, "start", "--port", port, "--brokers", "3"), stdout = TRUE)
  servers <- tail(servers, 1)
  on.exit(system2("bash", c(kafka, "stop", "--port", port)), add = TRUE)
  expect_match(servers, "^127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094$")

  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, sprintf("a%d", 1:2000), servers = servers)
  sc <- spark_connect()
  on.exit(spark_disconnect(sc), add = TRUE, after = FALSE)
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_interval(100), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = output))
  expect_true(wait_for_rows(stream, 2000, timeout = 60))

  metadata <- system2("kcat", c("-L", "-b", servers, "-t", output), stdout = TRUE)
  replicas <- regmatches(metadata, regexpr("replicas: [0-9,]+", metadata))
  expect_match(replicas, "replicas: [0-9],[0-9],[0-9]")
  leader <- as.integer(sub(".*leader ([0-9]+).*", "\\1", grep("partition 0, leader", metadata, value = TRUE)))
  system2("bash", c(kafka, "kill", "--port", port, "--node", leader - 1))

  kcat_produce(input, sprintf("b%d", 1:2000), servers = servers)
  expect_true(wait_for_rows(stream, 4000, timeout = 120))
  expect_identical(stream_state(stream), "active")
  stream_stop(stream)
  out <- kcat_read(output, 4000, servers = servers)$value
  expect_setequal(unique(out), c(sprintf("a%d", 1:2000), sprintf("b%d", 1:2000)))
})
