#' Stop a stream and inspect it
#'
#' `stream_stop()` asks the stream to stop, lets the micro-batch in flight
#' finish and commit (aborting it if it can't within 30 seconds, in which
#' case it is written again on restart), and raises the stream's error if it
#' failed. `stream_id()` and `stream_name()` identify a stream,
#' `stream_find()` finds one of a connection's streams by id.
#'
#' @param stream A stream returned by a `stream_write_*()` function.
#' @return `stream_stop()` returns `stream` invisibly; `stream_id()` and
#'   `stream_name()` a string; `stream_find()` a stream.
#' @export
stream_stop <- function(stream) {
  check_stream(stream)
  query_stop(stream$ptr, FALSE)
  if (!wait_terminated(stream, 30)) {
    query_stop(stream$ptr, TRUE)
    wait_terminated(stream, Inf)
  }
  print_console(stream)
  raise_if_failed(stream)
  invisible(stream)
}

#' Wait for a stream to end
#'
#' Blocks until the stream ends: at the end of its input
#' (`stream_trigger_once()`, a data frame), by an error, or stopped by
#' [stream_stop()] from a callback (callbacks scheduled with the later
#' package, such as the console sink's printing, run while it waits). Spark's
#' `awaitTermination()`: the last line of a script that runs a stream as a
#' service, so that the process lives as long as its stream and exits with an
#' error when the stream fails (a supervisor such as Kubernetes or systemd
#' then restarts it, and the checkpoint resumes it where it stood).
#'
#' @inheritParams stream_stop
#' @param timeout Seconds (not milliseconds, unlike triggers) to wait, or
#'   `NULL` to wait as long as the stream runs.
#' @return `TRUE` once the stream has stopped, `FALSE` if `timeout` passed
#'   first, invisibly. If the stream failed, its error is raised.
#' @examples
#' \dontrun{
#' stream <- stream_read_kafka(sc, options = kafka_options) %>%
#'   stream_write_kafka(options = sink_options, checkpoint = "/checkpoint")
#' stream_await(stream)
#' }
#' @export
stream_await <- function(stream, timeout = NULL) {
  check_stream(stream)
  check_seconds(timeout, null_ok = TRUE)
  if (!wait_terminated(stream, timeout %||% Inf)) return(invisible(FALSE))
  print_console(stream)
  raise_if_failed(stream)
  invisible(TRUE)
}

raise_if_failed <- function(stream) {
  status <- query_status(stream$ptr)
  if (identical(status$state, "failed")) {
    raise_engine_error(
      status$error$error,
      prefix = paste0("Stream `", status$name, "` failed: ")
    )
  }
}

# Waits up to `seconds` for the stream to end (TRUE) or not (FALSE),
# running later's callbacks meanwhile: the console sink prints from one.
wait_terminated <- function(stream, seconds) {
  deadline <- Sys.time() + seconds
  repeat {
    left_ms <- as.numeric(difftime(deadline, Sys.time(), units = "secs")) * 1000
    state <- query_wait(stream$ptr, max(0, min(100, left_ms)), FALSE)
    later::run_now(0)
    if (state %in% c("stopped", "failed")) return(TRUE)
    if (Sys.time() >= deadline) return(FALSE)
  }
}

#' @rdname stream_stop
#' @export
stream_id <- function(stream) {
  check_stream(stream)
  stream$id
}

#' @rdname stream_stop
#' @export
stream_name <- function(stream) {
  check_stream(stream)
  stream$name
}

#' @rdname stream_stop
#' @param sc A connection from [spark_connect()].
#' @param id The id of a stream, from `stream_id()`.
#' @export
stream_find <- function(sc, id) {
  check_connection(sc)
  check_string(id)
  ptr <- engine_find(sc$engine, id)
  if (is.null(ptr)) {
    abort_streamlyr(paste0("There is no stream with id \"", id, "\" in this connection."), arg = "id")
  }
  new_stream(ptr, sc)
}

new_stream <- function(ptr, sc) {
  status <- query_status(ptr)
  structure(
    list(ptr = ptr, sc = sc, id = status$id, name = status$name),
    class = c("streamlyr_stream", "spark_stream")
  )
}

check_stream <- function(stream, arg = rlang::caller_arg(stream), call = rlang::caller_env()) {
  if (!inherits(stream, "streamlyr_stream")) {
    abort_streamlyr(
      paste0("`", arg, "` must be a stream from a `stream_write_*()` function, not ", obj_type(stream), "."),
      arg = arg, call = call
    )
  }
}

#' Stream statistics
#'
#' sparklyr's `stream_stats()`: call it repeatedly, passing its result back
#' as `stats`, to collect the rows per second read (`in`) and processed
#' (`out`) over time.
#'
#' @param stream A stream.
#' @param stats A stats object from an earlier call, to extend.
#' @return A list with `sources`, `sink` and `stats`, one entry per call, each
#'   with `timestamp` and `rps` (`in` and `out`), and for event time (see
#'   [stream_watermark()]) `watermark` (a date-time, `NA` without one),
#'   `late_rows` (rows dropped as too late for their window, so far) and
#'   `state_rows` (groups an aggregation holds after the last batch),
#'   `malformed_rows` (Kafka records whose key or value could not be read in
#'   its `value.format`, so far; see [stream_read_kafka()]),
#'   `duration_ms`, how long the last batch took, and for a Kafka source
#'   `lag` (records not yet read, over its partitions) and `partitions`
#'   (a data frame: `topic`, `partition`, `offset` read up to, `lag`; with
#'   `scaleOut = "group"` only the partitions this process owns).
#' @export
stream_stats <- function(stream, stats = list()) {
  check_stream(stream)
  status <- query_status(stream$ptr)
  progress <- query_progress(stream$ptr)
  last <- length(progress$batch_id)
  if (is.null(stats$stats)) {
    stats$sources <- status$source
    stats$sink <- status$sink
    stats$stats <- list()
  }
  stats$stats[[length(stats$stats) + 1]] <- list(
    timestamp = Sys.time(),
    rps = list(
      "in" = if (last > 0) floor(progress$input_rows_per_second[last]) else 0,
      "out" = if (last > 0) floor(progress$processed_rows_per_second[last]) else 0
    ),
    # Event time (stream_watermark()): the watermark, rows dropped as late so
    # far, and the groups an aggregation holds.
    watermark = ms_to_time(status$watermark_ms %||% NA_real_),
    late_rows = status$rows_dropped,
    state_rows = if (last > 0) progress$groups_held[last] else NA_real_,
    malformed_rows = status$rows_malformed,
    # How long the last batch took (stream_render() shows it).
    duration_ms = if (last > 0) progress$duration_ms[last] else NA_real_,
    # A Kafka source: what it reads (in a consumer group, what it owns) and its lag.
    lag = if (length(status$partitions$lag) > 0) sum(status$partitions$lag) else NA_real_,
    partitions = partitions_frame(status$partitions)
  )
  stats
}

stream_progress_frame <- function(stream) {
  p <- query_progress(stream$ptr)
  data.frame(
    batch = p$batch_id,
    time = as.POSIXct(p$timestamp_ms / 1000, origin = "1970-01-01"),
    rows_in = p$rows_in,
    rows_out = p$rows_out,
    duration_ms = p$duration_ms,
    input_rows_per_second = p$input_rows_per_second,
    processed_rows_per_second = p$processed_rows_per_second,
    watermark = ms_to_time(p$watermark_ms),
    rows_dropped = p$rows_dropped,
    rows_malformed = p$rows_malformed,
    groups_held = p$groups_held
  )
}

partitions_frame <- function(p) {
  data.frame(topic = as.character(p$topic), partition = as.integer(p$partition),
             offset = as.numeric(p$offset), lag = as.numeric(p$lag))
}

ms_to_time <- function(ms) as.POSIXct(ms / 1000, origin = "1970-01-01", tz = "UTC")

#' @export
print.streamlyr_stream <- function(x, ...) {
  s <- query_status(x$ptr)
  p <- query_progress(x$ptr)
  n <- length(p$batch_id)
  cat("Stream: ", s$name, "\n", sep = "")
  cat("    id: ", s$id, "\n", sep = "")
  cat("status: ", s$state, " - ", s$message, "\n", sep = "")
  cat("  from: ", s$source, "\n", sep = "")
  cat("    to: ", s$sink, "\n", sep = "")
  cat("trigger: ", s$trigger, "; checkpoint: ", s$checkpoint, "\n", sep = "")
  cat("batches: ", fmt_count(s$batches), " committed; rows in: ", fmt_count(s$rows_in),
      ", rows out: ", fmt_count(s$rows_out), sep = "")
  if (n > 0) cat("; last batch: ", fmt_count(p$processed_rows_per_second[n]), " rows/s", sep = "")
  cat("\n")
  if (!is.null(s$watermark_ms) && !is.na(s$watermark_ms)) {
    wm <- if (s$watermark_ms > 0) format(ms_to_time(s$watermark_ms), "%Y-%m-%d %H:%M:%OS3 %Z") else "none yet"
    cat("watermark: ", wm, "; rows dropped as late: ", fmt_count(s$rows_dropped), "\n", sep = "")
  }
  if (length(s$partitions$topic) > 0) {
    parts <- split(s$partitions$partition, s$partitions$topic)
    owned <- paste0(names(parts), " [", vapply(parts, function(p) paste(sort(p), collapse = ","), ""), "]",
                    collapse = ", ")
    cat("partitions: ", owned, "; lag: ", fmt_count(sum(s$partitions$lag)), " records\n", sep = "")
  }
  if (s$rows_malformed > 0) {
    cat("malformed records (read as NA): ", fmt_count(s$rows_malformed), "\n", sep = "")
  }
  if (!is.null(s$retrying)) {
    since <- (as.numeric(Sys.time()) * 1000 - s$retrying$since_ms) / 1000
    cat("retrying: for ", format(round(since)), " s (try ", s$retrying$tries, "), without progress\n", sep = "")
  }
  if (length(s$warnings) > 0) cat("last warning: ", s$warnings[length(s$warnings)], "\n", sep = "")
  if (!is.null(s$error)) cat("error: ", s$error$error$message, "\n", sep = "")
  invisible(x)
}

#' @export
summary.streamlyr_stream <- function(object, ...) {
  s <- query_status(object$ptr)
  structure(
    list(status = s[c("id", "name", "state", "message", "source", "sink", "trigger", "checkpoint",
                      "batches", "rows_in", "rows_out", "warnings")],
         error = s$error$error$message,
         progress = stream_progress_frame(object)),
    class = "summary_streamlyr_stream"
  )
}

#' @export
print.summary_streamlyr_stream <- function(x, ...) {
  st <- x$status
  cat("Stream ", st$name, " (", st$state, "): ", st$source, " -> ", st$sink, "\n", sep = "")
  cat(fmt_count(st$batches), " batches, ", fmt_count(st$rows_in), " rows in, ",
      fmt_count(st$rows_out), " rows out\n", sep = "")
  p <- x$progress
  if (nrow(p) > 0) {
    cat("per batch: median ", format(stats::median(p$duration_ms), digits = 3), " ms, ",
        "median rate ", fmt_count(stats::median(p$processed_rows_per_second)), " rows/s\n",
        sep = "")
  }
  if (!is.null(x$error)) cat("error: ", x$error, "\n", sep = "")
  invisible(x)
}

#' @export
plot.streamlyr_stream <- function(x, ...) {
  p <- stream_progress_frame(x)
  if (nrow(p) == 0) {
    cli::cli_inform("The stream has not committed a batch yet; nothing to plot.")
    return(invisible(x))
  }
  graphics::plot(
    p$time, p$processed_rows_per_second, type = "b", pch = 19,
    xlab = "batch time", ylab = "rows per second",
    main = paste("Throughput of", x$name), ...
  )
  graphics::lines(p$time, p$input_rows_per_second, type = "b", pch = 1, lty = 2)
  graphics::legend("topleft", c("processed", "input"), pch = c(19, 1), lty = c(1, 2), bty = "n")
  invisible(x)
}
