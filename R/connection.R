#' Connect to the streaming engine
#'
#' sparklyr's `spark_connect()`, with its signature and defaults. streamlyr
#' has no cluster and no JVM: the connection owns the engine that runs
#' streams inside this R process. Kafka support is built in, so
#' `packages = "kafka"` is accepted and needs nothing.
#'
#' @param master `"local"`, `"local[N]"` or `"local[*]"`, as in sparklyr;
#'   anything else is an error. It sizes nothing: each stream runs on a
#'   thread of its own (the Kafka writer encodes JSON ahead on a second one,
#'   and librdkafka has its own), whatever `N` says, so the number of
#'   streams, not `N`, sets how many cores are busy.
#' @param version Accepted for compatibility with sparklyr; ignored.
#' @param packages Accepted for compatibility with sparklyr (e.g. `"kafka"`);
#'   nothing needs installing.
#' @param ... Unused; accepted for compatibility.
#' @return A connection of class `streamlyr_connection` (also
#'   `spark_connection`), to pass to `stream_read_*()`.
#' @seealso [spark_disconnect()]
#' @export
#' @examples
#' sc <- spark_connect(master = "local")
#' spark_disconnect(sc)
spark_connect <- function(master = "local", version = NULL, packages = NULL, ...) {
  check_master(master)
  engine <- engine_result(engine_new())
  sc <- structure(
    list(master = master, engine = engine, state = new.env(parent = emptyenv())),
    class = c("streamlyr_connection", "spark_connection", "DBIConnection")
  )
  streamlyr_env$default_connection <- sc
  sc
}

check_master <- function(master, call = rlang::caller_env()) {
  check_string(master, call = call)
  m <- regmatches(master, regexec("^local(\\[([0-9]+|\\*)\\])?$", master))[[1]]
  if (length(m) == 0) {
    abort_streamlyr(
      paste0("`master` must be \"local\", \"local[N]\" or \"local[*]\", not \"", master, "\"."),
      hint = "streamlyr runs streams in this R process; Kafka is the distributed part",
      arg = "master", call = call
    )
  }
  if (identical(m[3], "0")) abort_streamlyr("`master` must ask for at least one thread.", arg = "master", call = call)
  invisible(master)
}

#' Disconnect and stop every stream of a connection
#'
#' @param sc A connection from [spark_connect()].
#' @param ... Unused.
#' @return `sc`, invisibly.
#' @export
spark_disconnect <- function(sc, ...) {
  check_connection(sc)
  engine_close(sc$engine)
  if (identical(streamlyr_env$default_connection, sc)) streamlyr_env$default_connection <- NULL
  invisible(sc)
}

#' @export
print.streamlyr_connection <- function(x, ...) {
  open <- !engine_is_closed(x$engine)
  streams <- if (open) length(engine_queries(x$engine)) else 0L
  cat(
    "<streamlyr connection> master: ", x$master, "; ",
    if (open) paste0(streams, " stream", if (streams != 1) "s") else "closed",
    "\n",
    sep = ""
  )
  invisible(x)
}

check_connection <- function(sc, arg = rlang::caller_arg(sc), call = rlang::caller_env()) {
  if (!inherits(sc, "streamlyr_connection")) {
    abort_streamlyr(
      paste0("`", arg, "` must be a connection from spark_connect(), not ", obj_type(sc), "."),
      arg = arg, call = call
    )
  }
  if (engine_is_closed(sc$engine)) {
    abort_streamlyr(
      paste0("`", arg, "` is closed."),
      hint = "open a new one with spark_connect()",
      arg = arg, call = call
    )
  }
  invisible(sc)
}

# The connection a data frame is written through: the newest open one, or a
# private one made on first use.
default_connection <- function() {
  sc <- streamlyr_env$default_connection
  if (is.null(sc) || engine_is_closed(sc$engine)) {
    sc <- spark_connect()
  }
  sc
}

streamlyr_env <- new.env(parent = emptyenv())
