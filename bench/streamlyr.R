# streamlyr's side of bench/run.sh. Usage:
#   Rscript bench/streamlyr.R produce-json <servers> <topic> <rows>
#   Rscript bench/streamlyr.R passthrough  <servers> <from> <to> <n>
#   Rscript bench/streamlyr.R start        <servers> <from> <to>
#   Rscript bench/streamlyr.R passthrough  <servers> <from> <to> <n> [<trigger ms|continuous> <guarantee> <case> <max per batch>]
#   Rscript bench/streamlyr.R aggregate    <servers> <from> <to> <n>   # count() over 1,000 groups
#   Rscript bench/streamlyr.R pipeline     <servers> <from> <to> <n>   # mutate(), filter() (drops 1 in 9), transmute()
#   Rscript bench/streamlyr.R window       <servers> <from> <to> <n>   # count per 10-second window of event time
#   Rscript bench/streamlyr.R join         <servers> <from> <to> <n>   # left join with a 100,000-row table
#   Rscript bench/streamlyr.R stream       <servers> <from> <to> <interval0|default|continuous>
#   Rscript bench/streamlyr.R files        <csv folder> <parquet folder> <rows>  # stream_read_csv -> stream_write_parquet
#   Rscript bench/streamlyr.R avro-setup   <servers> <topic> <rows> <registry>  # Confluent-Avro records to read (untimed)
#   Rscript bench/streamlyr.R avro         <servers> <from> <to> <n> <registry>  # Confluent-Avro -> columns -> Confluent-Avro
#   Rscript bench/streamlyr.R member       <servers> <from> <to> <guarantee> <group|none> <progress file>
#     one process of a scaled-out passthrough (`scaleOut = "group"` unless `none`): until killed, keeps
#     "<clock start> <CPU s at the start> <rows committed>" in <progress file> (run.sh adds them up over the processes)
# Prints `<case> <records> <seconds>`, timed like the raw baselines (the
# data frame is built before the clock starts), `cpu-<case> <records>
# <seconds>`: the CPU time of this process (all its threads) over the same
# span, and `rss-<case> <records> <MB>`: the peak resident memory of this R
# process. `stream` runs a
# passthrough until killed (for the latency probe), printing `ready`.
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
peak_rss_mb <- function() {
  line <- grep("^VmHWM:", readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}
cpu_seconds <- function() sum(proc.time()[c("user.self", "sys.self")])
# The clock of a case: wall time returned, CPU time kept for report().
clock_start <- function() {
  cpu_at_start <<- cpu_seconds()
  Sys.time()
}
report <- function(case, records, seconds) {
  n <- as.integer(records)
  cat(sprintf("%s %d %.4f\ncpu-%s %d %.3f\nrss-%s %d %.1f\n", case, n, seconds, case, n, cpu_seconds() - cpu_at_start,
              case, n, peak_rss_mb()))
}

if (case == "member") {
  sc <- spark_connect()
  read_options <- list(kafka.bootstrap.servers = servers, subscribe = args[3], startingOffsets = "earliest")
  if (args[6] != "none") read_options <- c(read_options, scaleOut = "group", kafka.group.id = args[6])
  t0 <- as.numeric(Sys.time())
  cpu0 <- cpu_seconds()
  stream <- stream_read_kafka(sc, options = read_options) %>%
    stream_write_kafka(trigger = stream_trigger_interval(0), checkpoint = tempfile(),
                       options = list(kafka.bootstrap.servers = servers, topic = args[4], guarantee = args[5]))
  progress <- args[7]
  # Written whole: the next to it under a name run.sh's glob does not match, then renamed.
  tmp <- file.path(dirname(progress), paste0("tmp-", basename(progress)))
  repeat {
    if (status(stream)$state == "failed") stream_stop(stream) # raises the stream's error
    writeLines(sprintf("%.4f %.3f %.0f", t0, cpu0, status(stream)$rows_in), tmp)
    file.rename(tmp, progress)
    Sys.sleep(0.02)
  }
}

if (case == "files") {
  # The whole job, as a user runs it: the schema inferred from the files
  # (as the baseline's), then one trigger over every file.
  rows <- as.numeric(args[4])
  sc <- spark_connect()
  t0 <- clock_start()
  stream <- stream_read_csv(sc, args[2]) %>%
    stream_write_parquet(args[3], trigger = stream_trigger_once(), checkpoint = tempfile())
  while (!status(stream)$state %in% c("stopped", "failed")) Sys.sleep(0.005)
  seconds <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  if (status(stream)$rows_in != rows) stop("files: read ", status(stream)$rows_in, " rows, not ", rows)
  report("files", rows, seconds)
  quit(save = "no")
}

if (case == "stream") {
  sc <- spark_connect()
  trigger <- switch(args[5],
    interval0 = stream_trigger_interval(0),
    default = stream_trigger_interval(),
    continuous = stream_trigger_continuous()
  )
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = args[3])) %>%
    stream_write_kafka(trigger = trigger, checkpoint = tempfile(),
                       options = list(kafka.bootstrap.servers = servers, topic = args[4]))
  cat("ready\n")
  flush(stdout())
  Sys.sleep(3600)
}

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
  t0 <- clock_start()
  stream <- stream_write_kafka(df, checkpoint = tempfile(), options = list(kafka.bootstrap.servers = servers, topic = args[3]))
  while (!status(stream)$state %in% c("stopped", "failed")) Sys.sleep(0.01)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  stopifnot(status(stream)$rows_out == rows)
  report("produce-json", rows, elapsed)
}

# dbplyr's methods load at the first verb of a process (about 0.25 s here):
# start-up, which P4 measures, not throughput. Cases with verbs pay it before
# their clock starts.
warm_up_dplyr <- function(sc, read_options) {
  invisible(dplyr::filter(stream_read_kafka(sc, options = read_options), TRUE))
}

# Confluent-framed Avro records of four fields (about 40 bytes each).
order_schema <- '{"type": "record", "name": "order", "fields": [{"name": "id", "type": "int"},
  {"name": "name", "type": "string"}, {"name": "amount", "type": "double"}, {"name": "flag", "type": "boolean"}]}'
avro_options <- function(registry) {
  list(kafka.bootstrap.servers = servers, value.format = "avro-confluent", schema.registry.url = registry)
}

if (case == "avro-setup") {
  rows <- as.integer(args[4])
  i <- seq_len(rows)
  df <- data.frame(id = i, name = sprintf("name-%08d", i), amount = i / 7, flag = i %% 2 == 0)
  stream <- stream_write_kafka(df, checkpoint = tempfile(),
                               options = c(avro_options(args[5]), topic = args[3], value.schema = order_schema))
  while (!status(stream)$state %in% c("stopped", "failed")) Sys.sleep(0.01)
  stopifnot(status(stream)$rows_out == rows)
}

if (case == "avro") {
  # Every field decoded into columns and encoded again: the cost of the format over the bytes' passthrough.
  n <- as.numeric(args[5])
  sc <- spark_connect()
  warm_up_dplyr(sc, list(kafka.bootstrap.servers = servers, subscribe = args[3]))
  t0 <- clock_start()
  stream <- stream_read_kafka(sc, options = c(avro_options(args[6]), subscribe = args[3], startingOffsets = "earliest")) %>%
    dplyr::select(id, name, amount, flag) %>%
    stream_write_kafka(trigger = stream_trigger_interval(0), checkpoint = tempfile(),
                       options = c(avro_options(args[6]), topic = args[4], value.schema = order_schema))
  while (status(stream)$rows_in < n) Sys.sleep(0.01)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  stopifnot(status(stream)$rows_malformed == 0)
  stream_stop(stream)
  report("avro", n, elapsed)
}

if (case %in% c("passthrough", "aggregate", "window", "join", "pipeline")) {
  n <- as.numeric(args[5])
  # "continuous": epochs of 100 ms, so that rows_in (counted per epoch) shows progress within 0.1 s.
  trigger <- if (length(args) >= 6) args[6] else "0"
  trigger <- if (trigger == "continuous") stream_trigger_continuous(checkpoint = 100) else stream_trigger_interval(as.numeric(trigger))
  guarantee <- if (length(args) >= 7) args[7] else "at-least-once"
  label <- if (length(args) >= 8) args[8] else case
  read_options <- list(kafka.bootstrap.servers = servers, subscribe = args[3], startingOffsets = "earliest")
  if (length(args) >= 9) read_options$maxOffsetsPerTrigger <- args[9]
  sc <- spark_connect()
  if (case != "passthrough") warm_up_dplyr(sc, read_options)
  t0 <- clock_start()
  input <- stream_read_kafka(sc, options = read_options)
  mode <- "append"
  if (case == "aggregate") {
    # About 1,000 groups: the first three digits of each record's number.
    input <- input %>%
      dplyr::mutate(text = as.character(value)) %>%
      dplyr::mutate(group = substr(text, 8L, 10L)) %>%
      dplyr::count(group)
    mode <- "update"
  }
  if (case == "pipeline") {
    # A filter and a mutate on each record's text: the seed's kind of pipeline.
    input <- input %>%
      dplyr::mutate(text = as.character(value)) %>%
      dplyr::filter(substr(text, 8L, 8L) != "7") %>%
      dplyr::transmute(value = paste0(text, "!"))
  }
  if (case %in% c("window", "join")) {
    # Each record's number: record N is N milliseconds of event time (1M records: 1,000 s).
    input <- input %>% dplyr::mutate(n = dplyr::sql("CAST(TRIM(SUBSTR(CAST(value AS VARCHAR), 8)) AS BIGINT)"))
  }
  if (case == "window") {
    # A count per 10-second window, each written once when the watermark passes it: 2 windows open at a time.
    input <- input %>%
      dplyr::mutate(ts = to_timestamp_millis(n)) %>%
      stream_watermark("ts", "5 seconds") %>%
      dplyr::group_by(w = window(ts, "10 seconds")) %>%
      dplyr::summarise(records = n(), .groups = "drop")
  }
  if (case == "join") {
    # Enrich every record from a 100,000-row table (built before the clock starts would be fairer; it takes ~0.1 s).
    lookup <- data.frame(k = as.character(0:99999), label = sprintf("label-%06d", 0:99999))
    table <- dplyr::copy_to(sc, lookup, "lookup")
    input <- input %>%
      dplyr::mutate(k = dplyr::sql("CAST(n % 100000 AS VARCHAR)")) %>%
      dplyr::left_join(table, by = "k") %>%
      dplyr::transmute(value = label)
  }
  stream <- stream_write_kafka(input, mode = mode, trigger = trigger, checkpoint = tempfile(),
                               options = list(kafka.bootstrap.servers = servers, topic = args[4], guarantee = guarantee))
  while (status(stream)$rows_in < n) Sys.sleep(0.01)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  stream_stop(stream)
  report(label, n, elapsed)
}
