# Helpers for tests against the real broker that tools/test.sh starts
# (STREAMLYR_TEST_BOOTSTRAP), checked with kcat, an independent client.

kafka_bootstrap <- function() {
  servers <- Sys.getenv("STREAMLYR_TEST_BOOTSTRAP")
  if (!nzchar(servers)) skip("no Kafka broker: run the tests through tools/test.sh")
  servers
}

new_topic <- function(prefix = "t") {
  paste0(prefix, "-", gsub("-", "", uuid::UUIDgenerate()))
}

new_checkpoint <- function() {
  file.path(tempfile("checkpoint-"), "cp")
}

# Produce `values` (and `keys`) with kcat, one record per element; with
# `tombstones`, empty values are sent as null values (only with `keys`:
# kcat skips empty lines).
kcat_produce <- function(topic, values, keys = NULL, partition = NULL, servers = kafka_bootstrap(), tombstones = FALSE) {
  lines <- if (is.null(keys)) values else paste0(keys, "\t", values)
  file <- tempfile(fileext = ".txt")
  writeLines(lines, file, useBytes = TRUE)
  args <- c("-P", "-b", servers, "-t", topic, "-l", file)
  if (!is.null(keys)) args <- c(args, "-K", "\t")
  if (!is.null(partition)) args <- c(args, "-p", partition)
  if (tombstones) args <- c(args, "-Z")
  out <- suppressWarnings(system2("kcat", shQuote(args), stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0) stop("kcat failed: ", paste(out, collapse = "\n"))
  invisible(length(values))
}

# Read a whole topic with kcat as a data frame (key, value, partition,
# offset), waiting until at least `n` records are there or `timeout` passes.
kcat_read <- function(topic, n = 1, timeout = 30, servers = kafka_bootstrap()) {
  deadline <- Sys.time() + timeout
  repeat {
    out <- suppressWarnings(system2(
      "kcat",
      c("-C", "-b", servers, "-t", topic, "-e", "-q", "-u",
        "-f", "'%p\\t%o\\t%k\\t%s\\n'", "-X", "isolation.level=read_committed"),
      stdout = TRUE, stderr = FALSE
    ))
    if (length(out) >= n || Sys.time() > deadline) break
    Sys.sleep(0.25)
  }
  if (length(out) == 0) {
    return(data.frame(partition = integer(), offset = numeric(), key = character(), value = character()))
  }
  parts <- strsplit(out, "\t", fixed = TRUE)
  field <- function(i) vapply(parts, function(p) if (length(p) >= i) p[[i]] else "", "")
  data.frame(
    partition = as.integer(field(1)),
    offset = as.numeric(field(2)),
    key = field(3),
    value = field(4),
    stringsAsFactors = FALSE
  )
}

wait_for <- function(condition, timeout = 30, interval = 0.1) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    if (isTRUE(condition())) return(TRUE)
    Sys.sleep(interval)
  }
  FALSE
}

# Wait until the stream has processed `rows` input rows in total.
wait_for_rows <- function(stream, rows, timeout = 60) {
  wait_for(function() streamlyr:::query_status(stream$ptr)$rows_in >= rows, timeout)
}

stream_state <- function(stream) streamlyr:::query_status(stream$ptr)$state

# tools/kafka.sh against the test broker (its port), for what kcat can't do.
kafka_tool <- function(...) {
  tools <- Sys.getenv("STREAMLYR_KAFKA_TOOLS")
  if (!nzchar(tools)) skip("tools/kafka.sh is not known: run the tests through tools/test.sh")
  suppressWarnings(system2("bash", c(file.path(tools, "kafka.sh"), ..., "--port", sub(".*:", "", kafka_bootstrap())),
                           stdout = TRUE, stderr = FALSE))
}

# What a consumer group committed, read by Kafka's own Admin client.
group_offsets <- function(group) {
  lines <- kafka_tool("group-offsets", "--id", group)
  parts <- strsplit(lines, " ", fixed = TRUE)
  data.frame(
    topic = vapply(parts, `[`, "", 1), partition = as.integer(vapply(parts, `[`, "", 2)),
    offset = as.numeric(vapply(parts, `[`, "", 3)), lag = as.numeric(vapply(parts, `[`, "", 4)),
    metadata = vapply(parts, `[`, "", 5)
  )
}

# `kafka-consumer-groups --describe --group <group>`, Kafka's own tool, as a
# data frame: topic, partition, offset (CURRENT-OFFSET), end (LOG-END-OFFSET),
# lag and consumer (CONSUMER-ID, "-" for none).
consumer_groups <- function(group) {
  lines <- kafka_tool("consumer-groups", "--id", group)
  rows <- strsplit(trimws(grep(paste0("^", group, " "), lines, value = TRUE)), " +")
  field <- function(i) vapply(rows, `[`, "", i)
  number <- function(i) suppressWarnings(as.numeric(field(i))) # "-": none yet
  data.frame(topic = field(2), partition = as.integer(field(3)), offset = number(4),
             end = number(5), lag = number(6), consumer = field(7))
}

# The query id a checkpoint keeps across restarts.
checkpoint_query_id <- function(checkpoint) {
  jsonlite::fromJSON(readLines(file.path(checkpoint, "metadata"))[2])$id
}

# The test schema registry (scripts/registry.py, Confluent's REST calls),
# listening on `port` (a free one by default) and keeping its subjects in
# `state`, killed when the calling test ends. Start it again with the same
# `state` and `port` for a registry that was down for a while.
start_registry <- function(state = tempfile(fileext = ".json"), port = "0", auth = NULL, env = parent.frame()) {
  p <- processx::process$new(python_tools(), c(test_path("scripts", "registry.py"), state, auth),
                             env = c("current", REGISTRY_PORT = port), stdout = "|", stderr = "|")
  withr::defer(p$kill(), envir = env)
  # poll_io() also returns for stderr or the process: wait for the port's line itself.
  port <- NA
  deadline <- Sys.time() + 20
  while (is.na(port) && p$is_alive() && Sys.time() < deadline) {
    p$poll_io(1000)
    port <- p$read_output_lines(n = 1)[1]
  }
  if (is.na(port)) {
    # Killed first: reading all of stderr waits for its end.
    p$kill()
    stop("the test registry did not start: ", paste(p$read_all_error_lines(), collapse = "\n"))
  }
  list(url = paste0("http://127.0.0.1:", port), port = port, state = state, process = p)
}

# tests/testthat/scripts/run-stream.R in its own R process, configured by
# environment variables (see the script); used by the fault and group tests.
run_stream_process <- function(env) {
  processx::process$new(
    file.path(R.home("bin"), "Rscript"), test_path("scripts", "run-stream.R"),
    env = c("current", env), stdout = "|", stderr = "|"
  )
}

# Waits for run-stream.R's "started" line; an error with its stderr if the
# process ends or the timeout passes first.
wait_started <- function(p, timeout = 60) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline && p$is_alive()) {
    p$poll_io(200)
    if (any(grepl("started", p$read_output_lines()))) return(invisible(TRUE))
  }
  stop("the stream process did not start: ", paste(p$read_all_error_lines(), collapse = "\n"))
}
