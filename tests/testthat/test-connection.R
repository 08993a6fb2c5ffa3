test_that("spark_connect() accepts sparklyr's arguments and local masters", {
  sc <- spark_connect(master = "local", version = "2.3", packages = "kafka")
  on.exit(spark_disconnect(sc))
  expect_s3_class(sc, "spark_connection")
  expect_output(print(sc), "master: local; 0 streams")

  sc4 <- spark_connect(master = "local[4]")
  spark_disconnect(sc4)
  expect_output(print(sc4), "master: local\\[4\\]; closed")
  spark_disconnect(spark_connect(master = "local[*]"))
  expect_error(spark_connect(master = "local[0]"), "at least one thread", class = "streamlyr_error_config")
})

test_that("a master that is not local is a clear error", {
  expect_snapshot(spark_connect(master = "yarn"), error = TRUE)
  expect_error(spark_connect(master = 3), class = "streamlyr_error_config")
})

test_that("spark_disconnect() stops every stream of the connection", {
  servers <- kafka_bootstrap()
  sc <- spark_connect()
  streams <- lapply(1:2, function(i) {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = new_topic())) %>%
      stream_write_kafka(checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = new_topic()))
  })
  expect_output(print(sc), "2 streams")
  spark_disconnect(sc)
  for (s in streams) expect_true(wait_for(function() stream_state(s) == "stopped", 10))
  expect_error(stream_read_kafka(sc, options = list()), "is closed", class = "streamlyr_error_config")
})
