# streamlyr's side of bench/run.sh. Usage:
#   Rscript bench/streamlyr.R produce-json <servers> <topic> <rows>
#   Rscript bench/streamlyr.R passthrough  <servers> <from> <to> <n>
#   Rscript bench/streamlyr.R start        <servers> <from> <to>
# Prints `<case> <records> <seconds>`, timed like the raw baselines (the
# data frame is built before the clock starts).
args <- commandArgs(trailingOnly = TRUE)
case <- args[1]
servers <- args[2]

if (case == "start") {
  t0 <- Sys.time()
  library(streamlyr)
  sc <- spark_connect()
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = args[3])) %>%
    stream_write_kafka(checkpoint = tempfile(), options = list(kafka.bootstrap.servers = servers, topic = args[4]))
  cat(sprintf("start 1 %.4f\n", as.numeric(difftime(Sys.time(), t0, units = "secs"))))
  stream_stop(stream)
  quit(save = "no")
}

library(streamlyr)
status <- function(s) streamlyr:::query_status(s$ptr)

if (case == "produce-json") {
  rows <- as.integer(args[4])
  i <- seq_len(rows)
  df <- data.frame(
    id = i,
    x = i / 7,
    label = sprintf("label-%014d", i),
    flag = i %% 2 == 0,
    at = as.POSIXct("2026-01-01 00:00:00", tz = "UTC")
  )
  t0 <- Sys.time()
  stream <- stream_write_kafka(df, checkpoint = tempfile(), options = list(kafka.bootstrap.servers = servers, topic = args[3]))
  while (status(stream)$active) Sys.sleep(0.01)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  stopifnot(status(stream)$rows_out == rows)
  cat(sprintf("produce-json %d %.4f\n", rows, elapsed))
}

if (case == "passthrough") {
  n <- as.numeric(args[5])
  sc <- spark_connect()
  t0 <- Sys.time()
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = args[3], startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_interval(0), checkpoint = tempfile(),
                       options = list(kafka.bootstrap.servers = servers, topic = args[4]))
  while (status(stream)$rows_out < n) Sys.sleep(0.01)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  stream_stop(stream)
  cat(sprintf("passthrough %d %.4f\n", as.integer(n), elapsed))
}
