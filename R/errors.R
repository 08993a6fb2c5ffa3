# Errors in the tidyverse style: classed (`streamlyr_error_<kind>`, after
# any more specific `class`), naming the argument at fault, raised with the
# user's call.

abort_streamlyr <- function(message, kind = "config", hint = NULL, arg = NULL,
                            call = rlang::caller_env(), parent = NULL, class = NULL,
                            option = NULL) {
  bullets <- c("{message}")
  if (!is.null(hint) && nzchar(hint)) bullets <- c(bullets, i = "{hint}")
  cli::cli_abort(
    bullets,
    class = c(class, paste0("streamlyr_error_", kind), "streamlyr_error"),
    call = call,
    parent = parent,
    arg = arg,
    option = option,
    .envir = rlang::env(message = message, hint = hint)
  )
}

# Turn the engine's `list(error = list(kind, arg, message, hint))` into an
# R error; return `ok` otherwise.
engine_result <- function(result, call = rlang::caller_env()) {
  e <- result$error
  if (is.null(e)) {
    return(result$ok)
  }
  raise_engine_error(e, call = call)
}

raise_engine_error <- function(e, call = rlang::caller_env(), prefix = NULL) {
  arg <- if (nzchar(e$arg)) e$arg else NULL
  option <- if (nzchar(e$option %||% "")) e$option else NULL
  message <- e$message
  if (!is.null(arg) && e$kind == "config") message <- paste0("`", arg, "`: ", message)
  if (!is.null(prefix)) message <- paste0(prefix, message)
  abort_streamlyr(message, kind = e$kind, hint = e$hint, arg = arg, option = option, call = call)
}

check_string <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.character(x) || length(x) != 1 || is.na(x) || !nzchar(x)) {
    abort_streamlyr(
      paste0("`", arg, "` must be a single non-empty string, not ", obj_type(x), "."),
      arg = arg, call = call
    )
  }
}

# A single non-negative number of seconds (`NULL` too when `null_ok`).
check_seconds <- function(x, null_ok = FALSE, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (null_ok && is.null(x)) return(invisible(x))
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || x < 0) {
    abort_streamlyr(
      paste0("`", arg, "` must be ", if (null_ok) "`NULL` or ", "a single non-negative number of seconds, not ", obj_type(x), "."),
      arg = arg, call = call
    )
  }
  invisible(x)
}

obj_type <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.character(x) && length(x) == 1) return(paste0("the string \"", x, "\""))
  if (is.logical(x) && length(x) == 1) return(paste0("`", x, "`"))
  if (is.numeric(x) && length(x) == 1 && is.null(attributes(x))) {
    return(paste0(if (is.integer(x)) "the integer " else "the number ", format(x)))
  }
  if (is.data.frame(x)) return("a data frame")
  if (identical(class(x), "list")) return("a list")
  if (is.atomic(x) && is.null(attributes(x))) return(paste0("a ", typeof(x), " vector of length ", length(x)))
  paste0("an object of class <", class(x)[1], ">")
}
