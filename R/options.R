# `options = list(...)` -> named character vector, the way sparklyr hands
# options to Spark: numbers without a decimal point when whole
# (1000, not "1000.0" or "1e+03"), logicals as "true"/"false".

options_as_strings <- function(options, arg = "options", call = rlang::caller_env()) {
  if (is.null(options)) return(structure(list(), names = character()))
  if (!is.list(options) && !(is.atomic(options) && !is.null(names(options)))) {
    abort_streamlyr(
      paste0("`", arg, "` must be a named list, not ", obj_type(options), "."),
      hint = "for example `options = list(kafka.bootstrap.servers = \"localhost:9092\", topic = \"out\")`",
      arg = arg, call = call
    )
  }
  options <- as.list(options)
  if (length(options) == 0) return(structure(list(), names = character()))
  keys <- names(options)
  if (is.null(keys) || any(is.na(keys) | !nzchar(keys))) {
    abort_streamlyr(
      paste0("every element of `", arg, "` must be named."),
      hint = "for example `list(topic = \"out\")`, not `list(\"out\")`",
      arg = arg, call = call
    )
  }
  if (anyDuplicated(keys)) {
    abort_streamlyr(
      paste0("`", arg, "` names `", keys[anyDuplicated(keys)], "` more than once."),
      arg = arg, call = call
    )
  }
  values <- lapply(keys, function(key) option_string(options[[key]], key, arg, call))
  stats::setNames(values, keys)
}

option_string <- function(value, key, arg, call) {
  if (!is.atomic(value) || length(value) != 1 || is.na(value)) {
    abort_streamlyr(
      paste0("`", arg, "$", key, "` must be a single value, not ", obj_type(value), "."),
      arg = arg, call = call
    )
  }
  if (is.logical(value)) return(if (value) "true" else "false")
  if (is.numeric(value)) {
    if (is.finite(value) && value == round(value) && abs(value) < 2^53) {
      return(format(value, scientific = FALSE, trim = TRUE))
    }
    return(format(value, digits = 15, trim = TRUE))
  }
  enc2utf8(as.character(value))
}
