# Faults are tested, not assumed: killed processes, a broker that goes away,
# bad checkpoints.

# The stream's process killed (SIGKILL) `kills` times, each at a random
# moment after it started; how many kills left work undone (`unfinished()`).
# With `writing` and `in_batch` (see freeze_in_batch()), the process is
# frozen inside a batch before the kill, so that the kill lands mid-batch
# however fast this machine writes.
kills_mid_work <- function(env, kills, unfinished, writing = NULL, in_batch = NULL) {
  undone <- 0
  for (i in seq_len(kills)) {
    p <- run_stream_process(env)
    wait_started(p)
    Sys.sleep(runif(1, 0.3, 1.5))
    if (!is.null(in_batch) && !freeze_in_batch(p, writing, in_batch)) warning("kill ", i, " did not catch a batch")
    p$kill()
    p$wait()
    undone <- undone + isTRUE(unfinished())
  }
  undone
}

# Stops the process (SIGSTOP) inside a batch: when the cheap `writing()`
# says a batch is being written, the process is stopped, and kept stopped if
# `in_batch()` then holds (a batch lasts a few milliseconds on a fast disk,
# less than a check of the log). Gives up after `timeout` seconds, leaving it
# running.
freeze_in_batch <- function(p, writing, in_batch, timeout = 10) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    if (writing()) {
      p$suspend()
      if (in_batch()) return(TRUE)
      p$resume()
    }
    Sys.sleep(0.001) # leave the stream a core on a 2-core machine
  }
  FALSE
}

kill_and_restart <- function(guarantee, kills = 10, n = 20000) {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, sprintf("record-%05d", seq_len(n)))
  env <- c(
    STREAM_SERVERS = servers, STREAM_INPUT = input, STREAM_OUTPUT = output,
    STREAM_CHECKPOINT = new_checkpoint(), STREAM_GUARANTEE = guarantee,
    # Batches back to back through a producer queue of 10 records (backpressure
    # on every batch), so that most kills land in the middle of a batch.
    STREAM_MAX_OFFSETS = "1000", STREAM_INTERVAL = "0", STREAM_PRODUCER_QUEUE = "10"
  )
  set.seed(42)
  for (i in seq_len(kills)) {
    p <- run_stream_process(env)
    wait_started(p)
    Sys.sleep(runif(1, 0.2, 1.5))
    p$kill() # SIGKILL: no finaliser, no graceful stop
    p$wait()
  }
  # The kills happened while there was still work to do.
  expect_lt(length(unique(kcat_read(output, 0, timeout = 0)$value)), n)
  p <- run_stream_process(env)
  on.exit(p$kill())
  wait_started(p)
  complete <- wait_for(function() length(unique(kcat_read(output, 0, timeout = 0)$value)) >= n, 120, 1)
  expect_true(complete)
  kcat_read(output, n)$value
}

test_that("exactly-once: killed 10 times at random moments, the output has every record exactly once", {
  values <- kill_and_restart("exactly-once")
  expect_setequal(values, sprintf("record-%05d", 1:20000))
  expect_equal(sum(duplicated(values)), 0)
})

test_that("at-least-once: killed 10 times at random moments, no record is lost", {
  values <- kill_and_restart("at-least-once")
  expect_setequal(unique(values), sprintf("record-%05d", 1:20000))
})

test_that("a running count killed 6 times at random moments ends with the exact counts (exactly-once)", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  n <- 20000
  set.seed(7)
  keys <- sample(sprintf("word%02d", 1:40), n, replace = TRUE)
  kcat_produce(input, seq_len(n), keys = keys)
  env <- c(
    STREAM_SERVERS = servers, STREAM_INPUT = input, STREAM_OUTPUT = output,
    STREAM_CHECKPOINT = new_checkpoint(), STREAM_GUARANTEE = "exactly-once",
    STREAM_PIPELINE = "count", STREAM_MAX_OFFSETS = "100", STREAM_INTERVAL = "0"
  )
  latest_counts <- function() {
    got <- kcat_read(output, 0, timeout = 0)
    if (nrow(got) == 0) return(integer())
    last <- got[!duplicated(got$key, fromLast = TRUE), ]
    setNames(vapply(last$value, function(v) jsonlite::fromJSON(v)$n, 0), last$key)
  }
  expect_gte(kills_mid_work(env, 6, function() sum(latest_counts()) < n), 3)
  p <- run_stream_process(env)
  on.exit(p$kill())
  wait_started(p)
  expect_true(wait_for(function() sum(latest_counts()) >= n, 120, 1))
  counts <- latest_counts()
  expected <- table(keys)
  expect_equal(as.numeric(counts[names(expected)]), as.numeric(expected))
})

test_that("a windowed count in append mode killed 6 times (exactly-once): every closed window once, with the oracle's count", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  n <- 20000
  set.seed(11)
  # Time moves on 1 s every 20 records, each up to 3 s out of order: within the 5 s delay, so nothing is late.
  times <- 1000 + (seq_len(n) - 1) %/% 20 + sample(0:3, n, TRUE)
  words <- sample(c("a", "b", "c"), n, TRUE)
  kcat_produce(input, paste0(words, ",", times))
  watermark <- max(times) - 5
  start <- floor(times / 10) * 10
  closed <- start + 10 <= watermark
  expected <- table(paste(start[closed], words[closed]))
  env <- c(
    STREAM_SERVERS = servers, STREAM_INPUT = input, STREAM_OUTPUT = output,
    STREAM_CHECKPOINT = new_checkpoint(), STREAM_GUARANTEE = "exactly-once",
    STREAM_PIPELINE = "windowed", STREAM_MAX_OFFSETS = "50", STREAM_INTERVAL = "0"
  )
  written <- function() {
    got <- kcat_read(output, 0, timeout = 0)
    if (nrow(got) == 0) return(data.frame(window = character(), n = numeric()))
    rows <- lapply(got$value, jsonlite::fromJSON)
    start <- vapply(rows, function(r) as.numeric(as.POSIXct(r$w$start, format = "%Y-%m-%dT%H:%M:%OSZ", tz = "UTC")), 0)
    data.frame(window = paste(start, vapply(rows, function(r) r$word, "")), n = vapply(rows, function(r) r$n, 0))
  }
  expect_gte(kills_mid_work(env, 6, function() nrow(written()) < length(expected)), 3)
  p <- run_stream_process(env)
  on.exit(p$kill())
  wait_started(p)
  expect_true(wait_for(function() nrow(written()) >= length(expected), 120, 1))
  got <- written()
  expect_equal(sum(duplicated(got$window)), 0)
  expect_setequal(got$window, names(expected))
  expect_equal(got$n[match(names(expected), got$window)], as.numeric(expected))
})

test_that("a csv -> json file stream killed 8 times mid-batch: readers of `_spark_metadata` (streamlyr, pyspark) see every row once", {
  root <- tempfile("kill-files-")
  input <- file.path(root, "in")
  output <- file.path(root, "out")
  checkpoint <- file.path(root, "cp")
  # One input file a batch, each 20 output files of 100 rows, a batch every
  # 200 ms: enough of them that every kill has work left.
  files <- 60
  per_file <- 2000
  n <- files * per_file
  put_numbered_csvs(input, files, per_file)
  env <- c(
    STREAM_FILES_IN = input, STREAM_FILES_OUT = output, STREAM_CHECKPOINT = checkpoint,
    STREAM_INTERVAL = "200", STREAM_MAX_FILES = "1"
  )
  batches_done <- function() length(list.files(file.path(checkpoint, "commits")))
  # A kill inside a batch leaves files that the log does not name; those of
  # earlier kills stay (as in Spark), so only new ones count.
  uncommitted <- function() {
    on_disk <- basename(list.files(output, pattern = "part-", all.files = TRUE, recursive = TRUE))
    setdiff(on_disk, c(basename(committed_files(output)), orphans))
  }
  orphans <- character()
  killed_mid_batch <- 0
  unfinished <- function() {
    left <- uncommitted()
    killed_mid_batch <<- killed_mid_batch + (length(left) > 0)
    orphans <<- c(orphans, left)
    batches_done() < files
  }
  set.seed(7)
  writing <- function() length(list.files(output, pattern = "^[.]part-.*[.]tmp$", all.files = TRUE)) > 0
  undone <- kills_mid_work(env, kills = 8, unfinished, writing, in_batch = function() length(uncommitted()) > 0)
  expect_gt(undone, 0)
  expect_gt(killed_mid_batch, 0)
  p <- run_stream_process(env)
  on.exit(p$kill())
  wait_started(p)
  expect_true(wait_for(function() batches_done() >= files, timeout = 120))
  p$kill()
  ids <- unlist(lapply(committed_files(output), function(f) jsonlite::stream_in(file(f), verbose = FALSE)$id))
  expect_identical(sort(ids), seq_len(n), label = "R's JSON reader on the files the log names")

  sc <- spark_connect(master = "local")
  stream <- stream_read_json(sc, output) %>%
    stream_write_memory("files_after_kills", trigger = stream_trigger_once(), checkpoint = new_checkpoint())
  expect_true(wait_stopped(stream))
  read_back <- dplyr::collect(dplyr::tbl(sc, "files_after_kills"))
  expect_identical(sort(as.integer(read_back$id)), seq_len(n), label = "streamlyr's file source, through the log")

  spark <- run_python(c(
    "import sys",
    "from pyspark.sql import SparkSession",
    "spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()",
    "df = spark.read.json(sys.argv[1])",
    "print(df.count()); print(df.select('id').distinct().count()); print(df.agg({'id': 'sum'}).collect()[0][0])"
  ), output)
  expect_identical(as.numeric(utils::tail(spark, 3)), c(n, n, n * (n + 1) / 2), label = "pyspark, through the log")
})

test_that("a csv -> Delta stream killed 6 times: deltalake reads every row once, one commit a batch", {
  root <- tempfile("kill-delta-")
  input <- file.path(root, "in")
  table <- file.path(root, "table")
  checkpoint <- file.path(root, "cp")
  files <- 40
  per_file <- 1500
  n <- files * per_file
  put_numbered_csvs(input, files, per_file)
  env <- c(STREAM_FILES_IN = input, STREAM_DELTA_OUT = table, STREAM_CHECKPOINT = checkpoint, STREAM_MAX_FILES = "1")
  batches_done <- function() length(list.files(file.path(checkpoint, "commits")))
  set.seed(9)
  undone <- kills_mid_work(env, kills = 6, function() batches_done() < files)
  expect_gt(undone, 0)
  p <- run_stream_process(env)
  on.exit(p$kill())
  wait_started(p)
  expect_true(wait_for(function() batches_done() >= files, timeout = 120))
  p$kill()
  got <- run_python(c(
    "import sys",
    "from deltalake import DeltaTable",
    "t = DeltaTable(sys.argv[1])",
    "ids = t.to_pyarrow_table().column('id').to_pylist()",
    "updates = [h for h in t.history() if h.get('operation') == 'STREAMING UPDATE']",
    "print(len(ids)); print(len(set(ids))); print(sum(ids)); print(len(updates))",
    "print(len(set(h['operationParameters']['epochId'] for h in updates)))"
  ), table)
  expect_identical(as.numeric(got), c(n, n, n * (n + 1) / 2, files, files),
                   label = "rows, distinct ids, their sum, commits, distinct batches")
})

test_that("an R session that ends stops its stream and exits promptly", {
  servers <- kafka_bootstrap()
  p <- run_stream_process(c(
    STREAM_SERVERS = servers, STREAM_INPUT = new_topic("in"), STREAM_OUTPUT = new_topic("out"),
    STREAM_CHECKPOINT = new_checkpoint(), STREAM_EXIT_AFTER = "1"
  ))
  wait_started(p)
  p$wait(20000)
  expect_false(p$is_alive())
  expect_equal(p$get_exit_status(), 0)
})

test_that("the single broker stopped for 10 s mid-stream: the stream waits, says so, and loses nothing", {
  servers <- kafka_bootstrap()
  port <- sub(".*:", "", servers)
  tools <- Sys.getenv("STREAMLYR_KAFKA_TOOLS")
  skip_if(!nzchar(tools), "the broker script is not known")
  input <- new_topic("in")
  output <- new_topic("out")
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    stream_write_kafka(trigger = stream_trigger_interval(200), checkpoint = new_checkpoint(),
                       options = list(kafka.bootstrap.servers = servers, topic = output))
  kcat_produce(input, sprintf("before-%d", 1:500))
  expect_true(wait_for_rows(stream, 500))

  system2("bash", c(file.path(tools, "kafka.sh"), "stop-node", "--port", port, "--node", "0"))
  Sys.sleep(10)
  status <- streamlyr:::query_status(stream$ptr)
  expect_identical(status$state, "active")
  expect_gt(length(status$warnings), 0)
  system2("bash", c(file.path(tools, "kafka.sh"), "restart-node", "--port", port, "--node", "0"))

  kcat_produce(input, sprintf("after-%d", 1:500))
  expect_true(wait_for_rows(stream, 1000, timeout = 120))
  stream_stop(stream)
  values <- kcat_read(output, 1000)$value
  expect_setequal(unique(values), c(sprintf("before-%d", 1:500), sprintf("after-%d", 1:500)))
})

test_that("a damaged checkpoint, another query's checkpoint, or an unwritable one is a clear error", {
  servers <- kafka_bootstrap()
  topic <- new_topic("cp")
  checkpoint <- new_checkpoint()
  write <- function(df, topic, checkpoint) {
    s <- stream_write_kafka(df, checkpoint = checkpoint, options = list(kafka.bootstrap.servers = servers, topic = topic))
    stream_stop(s)
  }
  write(data.frame(value = "a"), topic, checkpoint)

  # Another query: a different sink.
  expect_error(write(data.frame(value = "a"), new_topic("other"), checkpoint), "belongs to another query", class = "streamlyr_error_checkpoint")
  # Another query: a different source.
  expect_error(write(data.frame(value = c("a", "b")), topic, checkpoint), "belongs to another query", class = "streamlyr_error_checkpoint")

  # A damaged offsets file.
  writeLines(c("v1", "{\"start\": "), file.path(checkpoint, "offsets", "0"))
  expect_error(write(data.frame(value = "a"), topic, checkpoint), "damaged", class = "streamlyr_error_checkpoint")

  # An unknown version.
  writeLines(c("v9", "{}"), file.path(checkpoint, "metadata"))
  expect_error(write(data.frame(value = "a"), topic, checkpoint), "unknown version", class = "streamlyr_error_checkpoint")

  # An unwritable directory.
  expect_error(
    write(data.frame(value = "a"), topic, "/proc/streamlyr/checkpoint"),
    "can't create checkpoint directory", class = "streamlyr_error_checkpoint"
  )
  # Nothing was written twice meanwhile.
  expect_equal(nrow(kcat_read(topic, 2, timeout = 2)), 1)
})

test_that("a checkpoint in use by a running stream is refused, in this session or from another process", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  kcat_produce(input, sprintf("record-%03d", 1:100))
  checkpoint <- new_checkpoint()
  sc <- spark_connect()
  start <- function() {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest",
                                         maxOffsetsPerTrigger = 1000)) %>%
      stream_write_kafka(checkpoint = checkpoint, options = list(kafka.bootstrap.servers = servers, topic = output))
  }
  first <- start()
  expect_error(start(), "in use by another running query", class = "streamlyr_error_checkpoint")
  stream_stop(first)
  # Free again once the stream has stopped.
  stream_stop(start())

  # A stream in another process holds it until that process is gone, however it goes.
  p <- run_stream_process(c(STREAM_SERVERS = servers, STREAM_INPUT = input, STREAM_OUTPUT = output, STREAM_CHECKPOINT = checkpoint))
  on.exit(p$kill())
  wait_started(p)
  expect_error(start(), "in use by another running query", class = "streamlyr_error_checkpoint")
  p$kill() # SIGKILL
  p$wait()
  stream_stop(start())
  # Every record went through, whichever stream wrote it.
  expect_setequal(kcat_read(output, 100)$value, sprintf("record-%03d", 1:100))
})

test_that("a stalled broker: the stream slows down within the producer queue's limit and says so", {
  servers <- kafka_bootstrap()
  port <- sub(".*:", "", servers)
  tools <- Sys.getenv("STREAMLYR_KAFKA_TOOLS")
  skip_if(!nzchar(tools), "the broker script is not known")
  kafka <- function(...) system2("bash", c(file.path(tools, "kafka.sh"), ..., "--port", port, "--node", "0"))
  topic <- new_topic("bp")
  n <- 200000
  df <- data.frame(value = sprintf("row-%06d", seq_len(n)))
  kcat_produce(topic, "warm-up") # the topic exists before the broker stalls
  stream <- stream_write_kafka(
    df, checkpoint = new_checkpoint(),
    options = list(kafka.bootstrap.servers = servers, topic = topic,
                   kafka.queue.buffering.max.messages = 1000)
  )
  # Connected and writing: now the broker stops answering.
  kafka("pause-node")
  on.exit(kafka("resume-node"), add = TRUE)
  expect_true(wait_for(function() grepl("producer queue is full", streamlyr:::query_status(stream$ptr)$message), 30))
  waiting <- as.numeric(sub(".*\\(([0-9]+) records.*", "\\1", streamlyr:::query_status(stream$ptr)$message))
  expect_lte(waiting, 1000)
  expect_equal(streamlyr:::query_status(stream$ptr)$rows_out, 0)
  kafka("resume-node")
  expect_true(wait_for(function() stream_state(stream) == "stopped", 120))
  stream_stop(stream)
  out <- kcat_read(topic, n + 1, timeout = 60)$value
  expect_setequal(out, c("warm-up", df$value))
})

test_that("exactly-once commits the input positions to the query's group: Kafka's tools see the lag, and a restart after a lost checkpoint commit writes nothing twice", {
  servers <- kafka_bootstrap()
  input <- new_topic("in")
  output <- new_topic("out")
  # Each record keeps its partition (the source's `partition` column): three on both sides.
  for (topic in c(input, output)) kafka_tool("create-topic", "--topic", topic, "--partitions", "3")
  kcat_produce(input, sprintf("first-%03d", 1:300))
  checkpoint <- new_checkpoint()
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  run <- function() {
    stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
      stream_write_kafka(checkpoint = checkpoint, trigger = stream_trigger_interval(100),
                         options = list(kafka.bootstrap.servers = servers, topic = output, guarantee = "exactly-once"))
  }
  stream <- run()
  expect_true(wait_for_rows(stream, 300))
  stream_stop(stream)
  group <- paste0("streamlyr-eos-", checkpoint_query_id(checkpoint))
  committed <- group_offsets(group)
  expect_equal(sort(committed$partition), 0:2)
  expect_equal(unique(committed$topic), input)
  expect_equal(sum(committed$offset), 300)
  expect_equal(committed$lag, c(0, 0, 0))
  expect_match(committed$metadata, "^streamlyr-batch-[0-9]+$")
  # As if the process had died after Kafka committed the last batch but before the checkpoint did.
  commits <- list.files(file.path(checkpoint, "commits"), pattern = "^[0-9]+$")
  last <- max(as.integer(commits))
  file.remove(file.path(checkpoint, "commits", last))
  stream <- run()
  kcat_produce(input, sprintf("second-%03d", 1:100))
  expect_true(wait_for(function() nrow(kcat_read(output, 0, timeout = 0)) >= 400, 60))
  Sys.sleep(1)
  stream_stop(stream)
  values <- kcat_read(output, 400)$value
  expect_equal(length(values), 400)
  expect_equal(sum(duplicated(values)), 0)
  expect_equal(sum(group_offsets(group)$offset), 400)
})

test_that("a data frame written with exactly-once is read once by a read_committed consumer", {
  servers <- kafka_bootstrap()
  topic <- new_topic("eos-df")
  checkpoint <- new_checkpoint()
  df <- data.frame(key = sprintf("k%d", 1:1000), value = sprintf("v%d", 1:1000))
  for (i in 1:2) {
    stream <- stream_write_kafka(df, checkpoint = checkpoint,
                                 options = list(kafka.bootstrap.servers = servers, topic = topic, guarantee = "exactly-once"))
    stream_stop(stream)
  }
  out <- kcat_read(topic, 1000)
  expect_equal(nrow(out), 1000)
  expect_setequal(out$value, df$value)
  expect_error(
    stream_write_kafka(df, options = list(kafka.bootstrap.servers = servers, topic = topic, guarantee = "twice")),
    "`guarantee` must be", class = "streamlyr_error_config"
  )
})
