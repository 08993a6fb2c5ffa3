#' Watermark a stream's event time
#'
#' sparklyr's `stream_watermark()`: says how late rows may arrive, measured
#' in the stream's own time (`column`), so that an aggregation over
#' `window()`s of that time knows when a window is complete.
#'
#' The watermark is the latest event time seen so far, minus `threshold`. It
#' never moves back; each batch runs with the watermark the batches before
#' it reached. An aggregation grouped by `window(column, ...)` (or by
#' `column` itself) then:
#' - drops rows that arrive for a window the watermark has already passed,
#'   and counts them (`print()` and [stream_stats()] show rows dropped as
#'   late);
#' - in `mode = "append"`, writes each window once, when the watermark passes
#'   its end, and then forgets it;
#' - in `mode = "update"`, writes the windows each batch changed and forgets
#'   the closed ones;
#' - in `mode = "complete"`, writes and keeps every window (nothing is late).
#'
#' When the watermark moves but no new rows arrive, a batch without rows
#' runs so that the windows it closed are written (Spark's no-data batch).
#' If input stops altogether, the watermark stops too: the last windows stay
#' open until more rows come. The watermark and each batch's time are kept
#' in the checkpoint and restored on restart.
#'
#' @section Windows:
#' `window(column, width, slide, start)` is used inside `group_by()` or
#' `mutate()`, as with sparklyr: `group_by(window = window(timestamp, "5
#' minutes"))` gives tumbling windows `[start, end)` aligned to the epoch
#' (plus `start`, an offset); with a `slide` shorter than `width` the windows
#' overlap and a row counts in every window that covers it. Durations are
#' Spark interval strings. In R (memory tables, `collect()`, the console) a
#' window column `w` arrives as two date-time columns, `w_start` and
#' `w_end`; Kafka gets it as Spark writes it, `{"w":{"start":...,"end":...}}`,
#' in the value and, for an aggregation, in the key. `session_window()` is
#' not supported yet. `Sys.time()` (SQL's `now()`) in a pipeline is the
#' batch's time, the same when a batch runs again after a crash.
#'
#' @param x A stream from a `stream_read_*()` function, or a pipeline over one.
#' @param column The event-time column, a date-time (a Kafka stream's
#'   `timestamp` by default). If `x` has no column of that name, one is added
#'   holding each batch's time, as sparklyr does.
#' @param threshold How late rows may arrive: a Spark interval string such as
#'   `"10 minutes"`, `"30 seconds"` or `"1 hour 30 minutes"`, or a number of
#'   milliseconds.
#' @return A pipeline over `x`, to go on with dplyr verbs and a
#'   `stream_write_*()` function.
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' clicks <- stream_read_kafka(sc, options = list(
#'   kafka.bootstrap.servers = "localhost:9092", subscribe = "clicks"
#' ))
#' per_minute <- clicks %>%
#'   stream_watermark("timestamp", "30 seconds") %>%
#'   group_by(window = window(timestamp, "1 minute")) %>%
#'   summarise(clicks = n())
#' stream_write_kafka(per_minute, mode = "append", options = list(
#'   kafka.bootstrap.servers = "localhost:9092", topic = "clicks-per-minute"
#' ))
#' }
#' @export
stream_watermark <- function(x, column = "timestamp", threshold = "10 minutes") {
  if (!is_stream(x)) {
    abort_streamlyr(
      paste0("`x` must be a stream from a `stream_read_*()` function or a pipeline over one, not ", obj_type(x), "."),
      arg = "x"
    )
  }
  check_string(column)
  delay_ms <- threshold_ms(threshold)
  x <- if (inherits(x, "tbl_stream")) as_lazy_stream(x) else x
  time <- if (column %in% colnames(x)) quote_identifier(NULL, column) else "now()"
  marked <- dbplyr::sql(paste0("streamlyr_watermark(", time, ", ", format(delay_ms, scientific = FALSE), ")"))
  dplyr::mutate(x, !!column := !!marked)
}

threshold_ms <- function(threshold, call = rlang::caller_env()) {
  if (is.character(threshold) && length(threshold) == 1 && !is.na(threshold)) {
    ms <- engine_result(duration_ms(threshold, "threshold"), call = call)
  } else if (is.numeric(threshold) && length(threshold) == 1 && is.finite(threshold)) {
    ms <- threshold
  } else {
    abort_streamlyr(
      paste0("`threshold` must be a duration such as \"10 minutes\" or a number of milliseconds, not ", obj_type(threshold), "."),
      arg = "threshold", call = call
    )
  }
  if (ms < 0) {
    abort_streamlyr(
      paste0("`threshold`: delay threshold (", format(threshold), ") should not be negative."),
      arg = "threshold", call = call
    )
  }
  round(ms)
}
