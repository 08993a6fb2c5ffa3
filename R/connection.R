#' Connect to the streaming engine
#'
#' sparklyr's `spark_connect()`, with its signature and defaults. streamlyr
#' has no cluster and no JVM: the connection owns the engine that runs
#' streams inside this R process. Kafka support is built in, so
#' `packages = "kafka"` is accepted and needs nothing.
#'
#' @param master `"local"` (one worker thread), `"local[N]"` (N worker
#'   threads) or `"local[*]"` (one per core).
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
  threads <- master_threads(master)
  engine <- engine_result(engine_new(threads))
  sc <- structure(
    list(master = master, threads = threads, engine = engine, state = new.env(parent = emptyenv())),
    class = c("streamlyr_connection", "spark_connection", "DBIConnection")
  )
  streamlyr_env$default_connection <- sc
  sc
}

master_threads <- function(master, call = rlang::caller_env()) {
  check_string(master, call = call)
  if (identical(master, "local")) return(1L)
  m <- regmatches(master, regexec("^local\\[([0-9]+|\\*)\\]$", master))[[1]]
  if (length(m) == 0) {
    abort_streamlyr(
      paste0("`master` must be \"local\", \"local[N]\" or \"local[*]\", not \"", master, "\"."),
      hint = "streamlyr runs streams in this R process; Kafka is the distributed part",
      arg = "master", call = call
    )
  }
  if (m[2] == "*") return(max(1L, as.integer(parallel::detectCores(logical = TRUE))))
  n <- as.integer(m[2])
  if (n < 1) abort_streamlyr("`master` must ask for at least one thread.", arg = "master", call = call)
  n
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
    "<streamlyr connection> master: ", x$master, " (", x$threads, " worker thread",
    if (x$threads != 1) "s", "); ", if (open) paste0(streams, " stream", if (streams != 1) "s") else "closed",
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
