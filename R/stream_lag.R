#' Add columns with values from earlier rows of a stream
#'
#' sparklyr's `stream_lag()`: each new column holds a column's value from
#' the row a given number of rows before, in the order the stream reads its
#' rows. Unlike sparklyr (whose lag starts empty again in every partition of
#' every micro-batch), the lag carries over from one micro-batch to the next
#' and is saved in the checkpoint with each batch, so a restarted stream goes
#' on as if it had never stopped.
#'
#' With `thresholds`, a value from an earlier row is kept only if that row
#' is recent enough: when, for any threshold column, the current row's value
#' is more than the threshold after the earlier row's, the lagged value is
#' `NA`. Times and dates are compared in milliseconds; other columns are
#' taken as milliseconds since the epoch. A missing time gives `NA` too.
#'
#' @param x A stream, or a dplyr pipeline over one.
#' @param cols Lagged columns to add, as `c(<new column> = <column> ~ <offset>)`,
#'   e.g. `c(yesterday = day ~ 1, two_days_ago = day ~ 2)`.
#' @param thresholds Optional: a named list (or vector) of durations by time
#'   column, each a number of milliseconds or a string such as `"5s"`,
#'   `"5min"`, `"1 hour"`, `"2d"`.
#' @return `x` with the new columns last.
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' stream_read_csv(sc, "days") %>%
#'   stream_lag(cols = c(yesterday = day ~ 1, two_days_ago = day ~ 2)) %>%
#'   stream_write_memory("lagged")
#' }
stream_lag <- function(x, cols, thresholds = NULL) {
  if (!is_stream(x)) {
    abort_streamlyr("expected a streaming dataframe as input", arg = "x")
  }
  exprs <- rlang::exprs(!!!cols)
  columns <- colnames(x)
  grammar <- "expected `...` to be a comma-separated list of expressions of form <destination column> = <source column> ~ <offset>"
  lags <- list()
  for (i in seq_along(exprs)) {
    dst <- names(exprs)[[i]]
    expr <- exprs[[i]]
    if (is.null(dst) || !nzchar(dst) || length(expr) != 3 || as.character(expr[[1]]) != "~" ||
        !is.numeric(expr[[3]]) || !is.symbol(expr[[2]])) {
      abort_streamlyr(grammar, arg = "cols", hint = "for example `cols = c(yesterday = day ~ 1)`")
    }
    src <- as.character(expr[[2]])
    offset <- expr[[3]]
    if (length(offset) != 1 || is.na(offset) || offset < 1 || offset != round(offset)) {
      abort_streamlyr(paste0("`cols`: the offset of `", dst, "` must be a positive whole number of rows, not ", format(offset), "."), arg = "cols")
    }
    if (dst %in% names(lags)) {
      abort_streamlyr(paste0("`cols` names `", dst, "` twice."), arg = "cols")
    }
    if (!src %in% columns) {
      abort_streamlyr(paste0("`cols`: `", src, "` is not a column of `x` (", paste(columns, collapse = ", "), ")."), arg = "cols")
    }
    lags[[dst]] <- list(src = src, offset = as.integer(offset))
  }
  if (length(lags) == 0) abort_streamlyr(grammar, arg = "cols")
  limits <- lag_thresholds(thresholds, columns)

  x <- if (inherits(x, "tbl_stream")) as_lazy_stream(x) else x
  # Each lag's id names its saved rows in the checkpoint: the same script
  # run again must give the same ids.
  earlier <- stream_sql(x)
  before <- if (is.null(earlier)) 0 else lengths(regmatches(earlier$sql, gregexpr("streamlyr_lag(", earlier$sql, fixed = TRUE)))
  time_args <- paste0(
    vapply(names(limits), function(t) paste0(", ", quote_identifier(NULL, t), ", ", format(limits[[t]], scientific = FALSE)), ""),
    collapse = ""
  )
  calls <- list()
  for (i in seq_along(lags)) {
    dst <- names(lags)[[i]]
    id <- quote_string(NULL, paste0(before + i, ":", dst))
    calls[[dst]] <- dbplyr::sql(paste0(
      "streamlyr_lag(", id, ", ", quote_identifier(NULL, lags[[dst]]$src), ", ", lags[[dst]]$offset, time_args, ")"
    ))
  }
  dplyr::mutate(x, !!!calls)
}

# `thresholds` as milliseconds by column, with sparklyr's messages.
lag_thresholds <- function(thresholds, columns, call = rlang::caller_env()) {
  if (is.null(thresholds) || length(thresholds) == 0) return(list())
  if (is.null(names(thresholds)) || any(!nzchar(names(thresholds)))) {
    abort_streamlyr("`thresholds` must be named by time columns, e.g. `c(time = \"1 hour\")`.", arg = "thresholds", call = call)
  }
  limits <- list()
  for (column in names(thresholds)) {
    if (!column %in% columns) {
      abort_streamlyr(paste0("`thresholds`: `", column, "` is not a column of `x`."), arg = "thresholds", call = call)
    }
    limits[[column]] <- to_milliseconds(thresholds[[column]], call = call)
  }
  limits
}

to_milliseconds <- function(dur, call = rlang::caller_env()) {
  if (is.numeric(dur) && length(dur) == 1 && !is.na(dur)) return(round(dur))
  if (!is.character(dur) || length(dur) != 1 || is.na(dur)) {
    abort_streamlyr(
      "time duration specification must be an integer (representing number of milliseconds) or a valid time duration string (e.g., '5s')",
      arg = "thresholds", call = call
    )
  }
  m <- regmatches(dur, regexec("^([0-9]+)\\s*([[:alpha:]]+)$", dur))[[1]]
  units <- c(
    ms = 1, msec = 1, msecs = 1, millisecond = 1, milliseconds = 1,
    s = 1000, sec = 1000, secs = 1000, second = 1000, seconds = 1000,
    m = 60000, min = 60000, mins = 60000, minute = 60000, minutes = 60000,
    h = 3600000, hr = 3600000, hrs = 3600000, hour = 3600000, hours = 3600000,
    d = 86400000, day = 86400000, days = 86400000
  )
  if (length(m) == 0 || !(m[[3]] %in% names(units))) {
    abort_streamlyr(paste0(dur, " is not a valid time duration specification"), arg = "thresholds", call = call)
  }
  as.numeric(m[[2]]) * units[[m[[3]]]]
}
