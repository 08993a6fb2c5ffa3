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

# dbplyr quotes through DBI's S4 methods by default; our connection is an S3
# object, so it quotes itself (standard SQL, as DataFusion reads it).
quote_identifier <- function(con, x) {
  dbplyr::sql(paste0('"', gsub('"', '""', x, fixed = TRUE), '"'))
}

quote_string <- function(con, x) {
  out <- paste0("'", gsub("'", "''", x, fixed = TRUE), "'")
  out[is.na(x)] <- "NULL"
  dbplyr::sql(out)
}

# dplyr, dbplyr and tibble load only when a pipeline is built (they would
# triple the time from library(streamlyr) to a running stream): our methods
# for their generics are registered when they load. dplyr verbs on a bare
# stream (from stream_read_kafka()) turn it into dbplyr's lazy table first.
stream_verbs <- c(
  "filter", "mutate", "transmute", "select", "rename", "rename_with", "relocate",
  "group_by", "ungroup", "summarise", "count", "tally", "add_count", "distinct",
  "arrange", "pull", "collect", "show_query", "slice_head", "inner_join", "left_join"
)

register_stream_verbs <- function() {
  for (verb in stream_verbs) {
    local({
      verb <- verb
      register_s3_method("dplyr", verb, "tbl_stream", function(.data, ...) {
        getExportedValue("dplyr", verb)(as_lazy_stream(.data), ...)
      })
    })
  }
  register_s3_method("utils", "head", "tbl_stream", function(x, ...) utils::head(as_lazy_stream(x), ...))
  register_s3_method("dplyr", "collect", "tbl_stream_sql", collect.tbl_stream_sql)
  register_s3_method("dplyr", "collect", "tbl_streamlyr_memory", collect.tbl_streamlyr_memory)
  register_s3_method("dplyr", "tbl", "streamlyr_connection", tbl.streamlyr_connection)
  register_s3_method("dbplyr", "dbplyr_edition", "streamlyr_connection", function(con) 2L)
  register_s3_method("dbplyr", "sql_translation", "streamlyr_connection", sql_translation.streamlyr_connection)
  register_s3_method("dbplyr", "sql_escape_ident", "streamlyr_connection", quote_identifier)
  register_s3_method("dbplyr", "sql_escape_string", "streamlyr_connection", quote_string)
}

# As vctrs::s3_register(): now if `pkg` is loaded, and whenever it loads.
register_s3_method <- function(pkg, generic, class, fun) {
  register <- function(...) registerS3method(generic, class, fun, envir = asNamespace(pkg))
  if (isNamespaceLoaded(pkg)) register()
  setHook(packageEvent(pkg, "onLoad"), register)
}

# The connection is the DBI connection dbplyr renders SQL for. The SQL is
# DataFusion's, which is PostgreSQL's in the parts dbplyr uses; where they
# differ, the translation below says what DataFusion runs.

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

# A bare stream: what the engine reads, not yet a dbplyr table.
new_tbl_stream <- function(sc, name, columns, source) {
  structure(list(sc = sc, stream = list(name = name, source = source, columns = columns)), class = "tbl_stream")
}

# dbplyr's lazy table over `name`, with what the engine needs to read it.
new_lazy_stream <- function(sc, name, columns, source, class) {
  x <- dbplyr::tbl_sql("streamlyr", dbplyr::src_dbi(sc), from = dbplyr::ident(name), vars = columns)
  x$stream <- list(name = name, source = source, columns = columns)
  class(x) <- unique(c(class, class(x)))
  x
}

as_lazy_stream <- function(x) {
  new_lazy_stream(x$sc, x$stream$name, x$stream$columns, x$stream$source, class = "tbl_stream_sql")
}

is_stream <- function(x) inherits(x, c("tbl_stream", "tbl_stream_sql"))

# The SQL the engine runs for a pipeline, or NULL when `x` is the bare
# stream (its rows go out untouched, without a SQL engine in the way).
stream_sql <- function(x) {
  if (!inherits(x, "tbl_lazy") || inherits(x$lazy_query, "lazy_base_query")) return(NULL)
  list(sql = as.character(dbplyr::sql_render(x)), table = x$stream$name)
}

#' @export
print.tbl_stream <- function(x, ...) {
  print_stream(x)
}

#' @export
print.tbl_stream_sql <- function(x, ...) {
  print_stream(x)
}

stream_connection <- function(x) if (inherits(x, "tbl_lazy")) x$src$con else x$sc

print_stream <- function(x) {
  opts <- x$stream$source$options
  what <- opts$subscribe %||% opts$subscribePattern %||% opts$assign %||% ""
  cat("# Source: ", x$stream$source$kind, " stream `", x$stream$name, "` [", what, " @ ",
      opts$kafka.bootstrap.servers %||% "", "]\n", sep = "")
  if (!is.null(stream_sql(x))) cat("# A pipeline over the stream; show_query() shows its SQL\n")
  columns <- if (inherits(x, "tbl_lazy")) colnames(x) else x$stream$columns
  cat("# Columns: ", paste(columns, collapse = ", "), "\n", sep = "")
  cat("# collect() reads what has arrived so far; a stream_write_*() function runs it continuously\n")
  invisible(x)
}

#' @rdname streamlyr-dplyr
collect.tbl_stream_sql <- function(x, ...) {
  sc <- x$src$con
  check_connection(sc, arg = "x")
  source <- x$stream$source
  # A one-off read: like Spark's batch read of Kafka, from the earliest offsets unless told otherwise.
  if (identical(source$kind, "kafka") && is.null(source$options$startingOffsets)) {
    source$options$startingOffsets <- "earliest"
  }
  # One batch reads everything there is, whatever the stream's batch limit.
  source$options$maxOffsetsPerTrigger <- NULL
  table <- random_string("streamlyr_collect")
  checkpoint <- tempfile("streamlyr-collect-")
  on.exit(unlink(checkpoint, recursive = TRUE), add = TRUE)
  spec <- list(
    name = table, source = source, sink = list(kind = "memory", table = table),
    trigger = list(kind = "once"), checkpoint = checkpoint,
    sql = stream_sql(x)
  )
  ptr <- engine_result(query_start(sc$engine, to_json(spec), NULL), call = rlang::current_env())
  on.exit(engine_drop_memory(sc$engine, table), add = TRUE)
  repeat {
    state <- query_wait(ptr, 100, FALSE)
    if (state %in% c("stopped", "failed")) break
  }
  status <- query_status(ptr)
  if (!is.null(status$error)) raise_engine_error(status$error$error, call = rlang::current_env())
  tibble::as_tibble(engine_result(engine_query_memory(sc$engine, paste0("SELECT * FROM \"", table, "\""))))
}

#' @export
print.tbl_streamlyr_memory <- function(x, ...) {
  cat("# Memory table `", x$stream$name, "` (rows committed so far; first 10 shown)\n", sep = "")
  print(collect(utils::head(x, 10)))
  invisible(x)
}

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
tbl.streamlyr_connection <- function(src, from, ...) {
  check_connection(src)
  check_string(from, arg = "from")
  empty <- engine_result(engine_query_memory(src$engine, paste0("SELECT * FROM \"", from, "\" LIMIT 0")))
  new_lazy_stream(src, from, names(empty), source = list(kind = "memory"), class = "tbl_streamlyr_memory")
}
