#' streamlyr: structured streaming into Apache Kafka, with no JVM
#'
#' The `stream_*()` verbs of sparklyr, with the same names, arguments and
#' defaults, run by a Rust engine inside the R process. Start with
#' [spark_connect()], read with [stream_read_kafka()], write with
#' [stream_write_kafka()] and stop with [stream_stop()].
#'
#' @keywords internal
#' @useDynLib streamlyr, .registration = TRUE
"_PACKAGE"

#' Pipe operator
#'
#' See \code{magrittr::\link[magrittr:pipe]{\%>\%}} for details.
#'
#' @name %>%
#' @rdname pipe
#' @keywords internal
#' @export
#' @importFrom magrittr %>%
#' @usage lhs \%>\% rhs
#' @param lhs A value or the magrittr placeholder.
#' @param rhs A function call using the magrittr semantics.
#' @return The result of calling `rhs(lhs)`.
NULL

.onLoad <- function(libname, pkgname) {
  register_stream_verbs()
}
