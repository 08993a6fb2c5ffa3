#' Random string generation
#'
#' As in sparklyr: `prefix` followed by `_` and a UUID with `-` replaced by `_`.
#' The default checkpoint of the `stream_write_*()` functions uses it.
#'
#' @param prefix A length-one character vector.
#' @return A string.
#' @export
#' @examples
#' random_string("stream")
random_string <- function(prefix = "table") {
  paste0(prefix, "_", gsub("-", "_", uuid::UUIDgenerate(), fixed = TRUE))
}

`%||%` <- function(x, y) if (is.null(x)) y else x

fmt_count <- function(x) format(round(x), big.mark = ",", scientific = FALSE, trim = TRUE)
