# stream_read_socket(): a TCP server in this R process sends lines.

free_server <- function() {
  for (i in 1:50) {
    port <- sample(20000:40000, 1)
    server <- tryCatch(serverSocket(port), error = function(e) NULL)
    if (!is.null(server)) return(list(server = server, port = port))
  }
  skip("no free port for a test server")
}

test_that("each line a server sends is a row, with its arrival time; the server closing shows in print()", {
  sc <- spark_connect(master = "local")
  s <- free_server()
  on.exit(close(s$server))
  lines <- stream_read_socket(sc, options = list(host = "127.0.0.1", port = s$port, includeTimestamp = TRUE))
  expect_identical(colnames(lines), c("value", "timestamp"))
  before <- Sys.time()
  # The stream connects when it starts (the connection waits in the server's backlog).
  stream <- stream_write_memory(lines, "socket_lines", trigger = stream_trigger_interval(50), checkpoint = new_checkpoint())
  client <- socketAccept(s$server, blocking = TRUE, open = "w")
  writeLines(c("first", "second, with a comma", "\u00e9t\u00e9"), client)
  flush(client)
  expect_true(wait_for_rows(stream, 3))
  writeLines("fourth", client)
  flush(client)
  expect_true(wait_for_rows(stream, 4))
  close(client)
  expect_true(wait_for(function() any(grepl("Stream closed by 127.0.0.1", capture.output(print(stream))))))
  expect_identical(stream_state(stream), "active")
  got <- dplyr::collect(dplyr::tbl(sc, "socket_lines"))
  expect_identical(got$value, c("first", "second, with a comma", "\u00e9t\u00e9", "fourth"))
  expect_s3_class(got$timestamp, "POSIXct")
  expect_true(all(got$timestamp >= before - 1 & got$timestamp <= Sys.time() + 1))
  stream_stop(stream)
})

test_that("the socket source checks its options with Spark's messages, and needs no server to be defined", {
  sc <- spark_connect(master = "local")
  err <- expect_error(stream_read_socket(sc, options = list(port = 9999)), "Set a host to read from", fixed = TRUE)
  expect_identical(c(err$arg, err$option), c("options", "host"))
  err <- expect_error(stream_read_socket(sc, options = list(host = "localhost")), "Set a port to read from", fixed = TRUE)
  expect_identical(err$option, "port")
  expect_error(stream_read_socket(sc, options = list(host = "localhost", port = 1, includeTimestamp = "yes")), "includeTimestamp must be set")
  lazy <- stream_read_socket(sc, options = list(host = "localhost", port = "9999"))
  expect_s3_class(lazy, "tbl_stream")
  expect_identical(colnames(lazy), "value")
})

test_that("no server listening: the stream fails at start, naming the address", {
  sc <- spark_connect(master = "local")
  s <- free_server()
  close(s$server)
  lines <- stream_read_socket(sc, options = list(host = "127.0.0.1", port = s$port))
  err <- expect_error(stream_write_memory(lines, "nowhere", checkpoint = new_checkpoint()), "can't connect to 127.0.0.1")
  expect_identical(err$option, "host")
})
