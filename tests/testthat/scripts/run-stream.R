# A stream in its own R process, for tests that kill it. Configured by
# environment variables; prints "started" once the stream runs, then waits
# until it is killed (or, with STREAM_EXIT_AFTER, quits without stopping it).
library(streamlyr)
env <- function(name, default = NULL) {
  value <- Sys.getenv(name)
  if (nzchar(value)) value else default
}
sc <- spark_connect()
files_in <- env("STREAM_FILES_IN")
if (!is.null(files_in)) {
  # A folder of CSV files into a folder of JSON files, a few files a batch,
  # several output files each.
  # With STREAM_DELTA_OUT, into a Delta table instead (one commit a batch).
  input <- stream_read_csv(sc, files_in, columns = c(id = "integer", word = "character"),
                           options = list(maxFilesPerTrigger = env("STREAM_MAX_FILES", "2")))
  delta_out <- env("STREAM_DELTA_OUT")
  stream <- if (is.null(delta_out)) {
    stream_write_json(input, env("STREAM_FILES_OUT"), checkpoint = env("STREAM_CHECKPOINT"),
                      trigger = stream_trigger_interval(as.numeric(env("STREAM_INTERVAL", "100"))),
                      options = list(maxRecordsPerFile = 100))
  } else {
    stream_write_delta(dplyr::mutate(input, part = id %% 4L), delta_out,
                       checkpoint = env("STREAM_CHECKPOINT"), partition_by = "part")
  }
  cat("started\n")
  repeat Sys.sleep(0.1)
}
read_options <- list(
  kafka.bootstrap.servers = env("STREAM_SERVERS"),
  subscribe = env("STREAM_INPUT"),
  startingOffsets = "earliest",
  maxOffsetsPerTrigger = as.numeric(env("STREAM_MAX_OFFSETS", "1000"))
)
write_options <- list(
  kafka.bootstrap.servers = env("STREAM_SERVERS"),
  topic = env("STREAM_OUTPUT"),
  guarantee = env("STREAM_GUARANTEE", "at-least-once")
)
group <- env("STREAM_GROUP")
if (!is.null(group)) {
  # Scaled out: this process is one of several in the consumer group.
  read_options$scaleOut <- "group"
  read_options$kafka.group.id <- group
  read_options$kafka.session.timeout.ms <- env("STREAM_SESSION_MS", "6000")
  read_options$kafka.heartbeat.interval.ms <- "1000"
  # A dead member's open transaction holds its partitions' offsets until this ends.
  write_options$kafka.transaction.timeout.ms <- env("STREAM_TXN_TIMEOUT_MS", "10000")
}
queue <- env("STREAM_PRODUCER_QUEUE")
if (!is.null(queue)) write_options$kafka.queue.buffering.max.messages <- queue
input <- stream_read_kafka(sc, options = read_options)
mode <- "append"
if (identical(env("STREAM_PIPELINE"), "count")) {
  # A running count per key: aggregation state across kills.
  input <- input %>% dplyr::mutate(word = as.character(key)) %>% dplyr::count(word)
  mode <- "update"
} else if (identical(env("STREAM_PIPELINE"), "windowed")) {
  # Counts per 10-second window of the event time in "word,seconds" values,
  # each written once when the watermark (5 s behind) passes its end.
  input <- input %>%
    dplyr::mutate(v = as.character(value)) %>%
    dplyr::mutate(word = split_part(v, ",", 1L), ts = to_timestamp(as.integer(split_part(v, ",", 2L)))) %>%
    stream_watermark("ts", "5 seconds") %>%
    dplyr::group_by(w = window(ts, "10 seconds"), word) %>%
    dplyr::summarise(n = n(), .groups = "drop")
} else if (identical(env("STREAM_PIPELINE"), "tag")) {
  # Stateless: drops the records keyed "7", marks the others.
  input <- input %>%
    dplyr::filter(as.character(key) != "7") %>%
    dplyr::transmute(key, value = paste0(as.character(value), "!"))
}
stream <- input %>%
  stream_write_kafka(
    mode = mode,
    trigger = stream_trigger_interval(as.numeric(env("STREAM_INTERVAL", "100"))),
    checkpoint = env("STREAM_CHECKPOINT"),
    options = write_options
  )
cat("started\n")
exit_after <- env("STREAM_EXIT_AFTER")
if (!is.null(exit_after)) {
  Sys.sleep(as.numeric(exit_after))
  quit(save = "no")
}
status_file <- env("STREAM_STATUS_FILE")
repeat {
  Sys.sleep(0.2)
  if (!is.null(status_file)) {
    # What this process owns now, one "topic partition" line each (written whole).
    owned <- stream_stats(stream)$stats[[1]]$partitions
    writeLines(paste(owned$topic, owned$partition), paste0(status_file, ".tmp"))
    file.rename(paste0(status_file, ".tmp"), status_file)
  }
}
