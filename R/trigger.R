#' Stream triggers: when micro-batches run
#'
#' `stream_trigger_interval()` runs a micro-batch every `interval`
#' milliseconds (sparklyr's default trigger); each batch is a unit of work
#' recorded in the checkpoint. `stream_trigger_continuous()` lets records
#' flow as they arrive and records progress every `checkpoint` milliseconds.
#' `stream_trigger_once()` (not in sparklyr) processes what is available when
#' the stream starts, commits, and stops by itself: handy in tests and cron
#' jobs.
#'
#' @param interval Milliseconds between the starts of two micro-batches: a
#'   single non-negative number. `0` starts each micro-batch as soon as the
#'   previous one ends, as Spark's `ProcessingTime(0)`.
#' @param checkpoint Milliseconds between two checkpoints (epochs): a single
#'   positive number.
#' @return A trigger, to pass as `trigger` to a `stream_write_*()` function.
#' @details
#' With `stream_trigger_continuous()` each record is sent on as soon as it is
#' read (the producer does not linger); the checkpoint records an epoch, the
#' positions reached, every `checkpoint` milliseconds, after the sink has
#' acknowledged (or, with exactly-once, committed) everything of it. A crash
#' replays at most the epoch in flight.
#' @export
#' @examples
#' stream_trigger_interval(5000)
stream_trigger_interval <- function(interval = 1000) {
  check_milliseconds(
    interval,
    hint = "for example `stream_trigger_interval(5000)` for a micro-batch every 5 seconds; 0 runs them back to back"
  )
  structure(class = c("stream_trigger_interval"), list(interval = interval))
}

#' @rdname stream_trigger_interval
#' @export
stream_trigger_continuous <- function(checkpoint = 5000) {
  check_milliseconds(
    checkpoint, positive = TRUE,
    hint = "for example `stream_trigger_continuous(1000)` to record progress every second"
  )
  structure(class = c("stream_trigger_continuous"), list(interval = checkpoint))
}

#' @rdname stream_trigger_interval
#' @export
stream_trigger_once <- function() {
  structure(class = c("stream_trigger_once"), list())
}

#' @export
print.stream_trigger_interval <- function(x, ...) {
  cat("<stream_trigger_interval> every ", format(x$interval), " ms\n", sep = "")
  invisible(x)
}

#' @export
print.stream_trigger_continuous <- function(x, ...) {
  cat("<stream_trigger_continuous> checkpoint every ", format(x$interval), " ms\n", sep = "")
  invisible(x)
}

#' @export
print.stream_trigger_once <- function(x, ...) {
  cat("<stream_trigger_once> process what is available, then stop\n")
  invisible(x)
}

# A trigger's time: a single finite number of milliseconds, >= 0 (or > 0
# when `positive`). `what` is how the message names it.
check_milliseconds <- function(x, positive = FALSE, hint = NULL, arg = rlang::caller_arg(x),
                               what = paste0("`", arg, "`"), call = rlang::caller_env()) {
  ok <- is.numeric(x) && length(x) == 1 && is.null(dim(x)) && is.finite(x)
  if (!ok || x < 0 || (positive && x == 0)) {
    abort_streamlyr(
      paste0(what, " must be a single ", if (positive) "positive" else "non-negative",
             " number of milliseconds, not ", obj_type(x), "."),
      hint = hint, arg = arg, call = call
    )
  }
  invisible(x)
}

# The engine's description of a trigger, after checking it (again: the
# constructors check their argument, but a trigger is a list anyone can edit).
trigger_spec <- function(trigger, call = rlang::caller_env()) {
  if (inherits(trigger, "stream_trigger_interval")) {
    check_milliseconds(trigger$interval, arg = "trigger", what = "`trigger`'s interval", call = call)
    return(list(kind = "interval", interval_ms = as.numeric(trigger$interval)))
  }
  if (inherits(trigger, "stream_trigger_continuous")) {
    check_milliseconds(trigger$interval, positive = TRUE, arg = "trigger", what = "`trigger`'s checkpoint interval", call = call)
    return(list(kind = "continuous", checkpoint_ms = as.numeric(trigger$interval)))
  }
  if (inherits(trigger, "stream_trigger_once")) {
    return(list(kind = "once"))
  }
  abort_streamlyr(
    paste0("`trigger` must be a stream trigger, not ", obj_type(trigger), "."),
    hint = "use stream_trigger_interval(), stream_trigger_continuous() or stream_trigger_once()",
    arg = "trigger", call = call
  )
}
