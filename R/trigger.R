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
#' @param interval Milliseconds between the starts of two micro-batches.
#' @param checkpoint Milliseconds between two checkpoints (epochs).
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
  structure(class = c("stream_trigger_interval"), list(interval = interval))
}

#' @rdname stream_trigger_interval
#' @export
stream_trigger_continuous <- function(checkpoint = 5000) {
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

# The engine's description of a trigger, after checking it.
trigger_spec <- function(trigger, call = rlang::caller_env()) {
  ms <- function(value, what) {
    if (!is.numeric(value) || length(value) != 1 || is.na(value) || value < 0) {
      abort_streamlyr(
        paste0("`trigger`'s ", what, " must be a single non-negative number of milliseconds, not ", obj_type(value), "."),
        arg = "trigger", call = call
      )
    }
    as.numeric(value)
  }
  if (inherits(trigger, "stream_trigger_interval")) {
    return(list(kind = "interval", interval_ms = ms(trigger$interval, "interval")))
  }
  if (inherits(trigger, "stream_trigger_continuous")) {
    return(list(kind = "continuous", checkpoint_ms = ms(trigger$interval, "checkpoint interval")))
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
