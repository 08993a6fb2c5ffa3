#' dplyr on streams
#'
#' A stream from a `stream_read_*()` function is a lazy table, as in
#' sparklyr: `filter()`, `mutate()`, `select()`, `group_by()` +
#' `summarise()`, `count()`, `distinct()` and the usual functions inside them
#' build a pipeline that dbplyr renders to SQL; the engine runs that SQL on
#' each micro-batch when the pipeline is written with a `stream_write_*()`
#' function. `show_query()` shows that SQL; `collect()` runs the pipeline
#' once over what has arrived so far and returns a data frame.
#'
#' A pipeline with an aggregation keeps one row of state per group, saved in
#' the checkpoint with every batch; write it with `mode = "complete"` (the
#' whole result every trigger) or `mode = "update"` (the groups that
#' changed). Binary Kafka columns become text with `as.character(value)`.
#'
#' @param x A stream, a pipeline over one, or a memory table from
#'   `dplyr::tbl(sc, name)` after [stream_write_memory()].
#' @param ... Unused.
#' @return `collect()`: a data frame.
#' @name streamlyr-dplyr
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' words <- stream_read_kafka(sc, options = list(
#'   kafka.bootstrap.servers = "localhost:9092", subscribe = "words"
#' ))
#' counts <- words %>%
#'   mutate(word = as.character(value)) %>%
#'   count(word)
#' show_query(counts)
#' stream <- stream_write_kafka(counts, mode = "update", options = list(
#'   kafka.bootstrap.servers = "localhost:9092", topic = "word-counts"
#' ))
#' }
NULL

# The connection is the DBI connection dbplyr renders SQL for (as sparklyr's
# is); DBI's quoting methods reach it through DBIConnection.
#' @importClassesFrom DBI DBIConnection
NULL

register_dbi_class <- function(ns) {
  methods::setOldClass(c("streamlyr_connection", "spark_connection"), where = ns)
  methods::setIs("spark_connection", "DBIConnection", where = ns)
}

# The connection is the DBI connection dbplyr renders SQL for. The SQL is
# DataFusion's, which is PostgreSQL's in the parts dbplyr uses; where they
# differ, the translation below says what DataFusion runs.

#' @importFrom dbplyr dbplyr_edition
#' @export
dbplyr_edition.streamlyr_connection <- function(con) 2L

#' @importFrom dbplyr sql_translation
#' @export
sql_translation.streamlyr_connection <- function(con) {
  postgres <- dbplyr::sql_translation(dbplyr::simulate_postgres())
  sql <- dbplyr::sql
  dbplyr::sql_variant(
    dbplyr::sql_translator(
      .parent = postgres$scalar,
      as.numeric = function(x) dbplyr::build_sql("CAST(", x, " AS DOUBLE)", con = con),
      as.double = function(x) dbplyr::build_sql("CAST(", x, " AS DOUBLE)", con = con),
      as.character = function(x) dbplyr::build_sql("CAST(", x, " AS VARCHAR)", con = con),
      as.integer = function(x) dbplyr::build_sql("CAST(", x, " AS INTEGER)", con = con),
      as.raw = function(x) dbplyr::build_sql("CAST(", x, " AS BYTEA)", con = con),
      sign = dbplyr::sql_prefix("SIGNUM", 1),
      `%/%` = function(x, y) dbplyr::build_sql("FLOOR(CAST(", x, " AS DOUBLE) / ", y, ")", con = con),
      `%%` = function(x, y) dbplyr::build_sql("(", x, " % ", y, ")", con = con),
      nchar = dbplyr::sql_prefix("CHARACTER_LENGTH", 1),
      sub = function(pattern, replacement, x) {
        dbplyr::build_sql("REGEXP_REPLACE(", x, ", ", pattern, ", ", replacement, ")", con = con)
      },
      gsub = function(pattern, replacement, x) {
        dbplyr::build_sql("REGEXP_REPLACE(", x, ", ", pattern, ", ", replacement, ", 'g')", con = con)
      },
      grepl = function(pattern, x, fixed = FALSE, ignore.case = FALSE) {
        if (isTRUE(fixed)) {
          return(dbplyr::build_sql("STRPOS(", x, ", ", pattern, ") > 0", con = con))
        }
        op <- if (isTRUE(ignore.case)) sql(" ~* ") else sql(" ~ ")
        dbplyr::build_sql("(", x, op, pattern, ")", con = con)
      }
    ),
    dbplyr::sql_translator(
      .parent = postgres$aggregate,
      sd = dbplyr::sql_aggregate("STDDEV_SAMP", "sd"),
      var = dbplyr::sql_aggregate("VAR_SAMP", "var")
    ),
    postgres$window
  )
}

# A lazy table over `name` for dbplyr, with what the engine needs to read it.
new_lazy_stream <- function(sc, name, columns, source, class) {
  x <- dbplyr::tbl_sql("stream", dbplyr::src_dbi(sc), from = dbplyr::ident(name), vars = columns)
  x$stream <- list(name = name, source = source)
  class(x) <- unique(c(class, class(x)))
  x
}

# The SQL the engine runs for a pipeline, or NULL when `x` is the bare
# stream (its rows go out untouched, without a SQL engine in the way).
stream_sql <- function(x) {
  if (inherits(x$lazy_query, "lazy_base_query")) return(NULL)
  list(sql = as.character(dbplyr::sql_render(x)), table = x$stream$name)
}

#' @export
print.tbl_stream <- function(x, ...) {
  opts <- x$stream$source$options
  what <- opts$subscribe %||% opts$subscribePattern %||% opts$assign %||% ""
  cat("# Source: ", x$stream$source$kind, " stream `", x$stream$name, "` [", what, " @ ",
      opts$kafka.bootstrap.servers %||% "", "]\n", sep = "")
  if (!is.null(stream_sql(x))) cat("# A pipeline over the stream; show_query() shows its SQL\n")
  cat("# Columns: ", paste(colnames(x), collapse = ", "), "\n", sep = "")
  cat("# collect() reads what has arrived so far; a stream_write_*() function runs it continuously\n")
  invisible(x)
}

#' @rdname streamlyr-dplyr
#' @importFrom dplyr collect
#' @export
collect.tbl_stream <- function(x, ...) {
  sc <- x$src$con
  check_connection(sc, arg = "x")
  source <- x$stream$source
  # A one-off read: like Spark's batch read of Kafka, from the earliest offsets unless told otherwise.
  if (identical(source$kind, "kafka") && is.null(source$options$startingOffsets)) {
    source$options$startingOffsets <- "earliest"
  }
  table <- random_string("streamlyr_collect")
  checkpoint <- tempfile("streamlyr-collect-")
  on.exit(unlink(checkpoint, recursive = TRUE), add = TRUE)
  spec <- list(
    name = table, source = source, sink = list(kind = "memory", table = table),
    trigger = list(kind = "once"), checkpoint = checkpoint,
    mode = "auto", sql = stream_sql(x)
  )
  ptr <- engine_result(query_start(sc$engine, to_json(spec), NULL), call = rlang::current_env())
  on.exit(engine_drop_memory(sc$engine, table), add = TRUE)
  stream <- new_stream(ptr, sc)
  repeat {
    state <- query_wait(ptr, 100, FALSE)
    if (state %in% c("stopped", "failed")) break
  }
  status <- query_status(ptr)
  if (!is.null(status$error)) raise_engine_error(status$error$error, call = rlang::current_env())
  tibble::as_tibble(engine_result(engine_query_memory(sc$engine, paste0("SELECT * FROM \"", table, "\""))))
}

#' @export
collect.tbl_streamlyr_memory <- function(x, ...) {
  sc <- x$src$con
  check_connection(sc, arg = "x")
  tibble::as_tibble(engine_result(engine_query_memory(sc$engine, as.character(dbplyr::sql_render(x)))))
}

#' A memory table as a lazy table
#'
#' `dplyr::tbl(sc, name)` after [stream_write_memory()]: the rows the stream
#' has committed so far, queried with dplyr verbs and read with `collect()`.
#'
#' @param src A connection from [spark_connect()].
#' @param from The `name` given to [stream_write_memory()].
#' @param ... Unused.
#' @importFrom dplyr tbl
#' @export
tbl.streamlyr_connection <- function(src, from, ...) {
  check_connection(src)
  check_string(from, arg = "from")
  empty <- engine_result(engine_query_memory(src$engine, paste0("SELECT * FROM \"", from, "\" LIMIT 0")))
  new_lazy_stream(src, from, names(empty), source = list(kind = "memory"), class = "tbl_streamlyr_memory")
}
