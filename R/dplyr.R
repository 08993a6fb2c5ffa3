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
#' changed), or, grouped by a `window()` of a watermarked time, with
#' `mode = "append"` (see [stream_watermark()]). Binary Kafka columns become
#' text with `as.character(value)`.
#'
#' A stream joins a table of its connection (from `copy_to(sc, df, name)`,
#' or a memory table) with `inner_join()`, `left_join()`, `semi_join()` or
#' `anti_join()`, the stream on the left, as in Spark; `left_join(stream, df,
#' copy = TRUE)` copies the data frame in first. Each batch joins its new
#' rows with the table as it is when the batch begins, so `copy_to(...,
#' overwrite = TRUE)` changes what running streams join with from their next
#' batch. Right and full joins with a stream, and joins of two streams, are
#' errors.
#'
#' Verbs that can't run on a stream yet are errors of class
#' `streamlyr_error_unsupported` that name the verb and say what to do
#' instead: `nest_join()`, set operations (`union()`, `union_all()`,
#' `intersect()`, `setdiff()`), `compute()`, `collapse()`, `explain()`,
#' `do()` and the `rows_*()` verbs. Joins and set operations between two
#' memory tables of one connection work. Window functions (a grouped
#' `mutate()`, `lag()`, `row_number()`) build, but are an error when the
#' stream is written.
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
  "arrange", "pull", "collect", "show_query", "slice_head"
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
  register_unsupported_verbs()
  register_stream_joins()
  register_s3_method("dplyr", "collect", "tbl_stream_sql", collect.tbl_stream_sql)
  register_s3_method("dplyr", "collect", "tbl_streamlyr_memory", collect.tbl_streamlyr_memory)
  register_s3_method("dplyr", "tbl", "streamlyr_connection", tbl.streamlyr_connection)
  register_s3_method("dbplyr", "dbplyr_edition", "streamlyr_connection", function(con) 2L)
  register_s3_method("dbplyr", "sql_translation", "streamlyr_connection", sql_translation.streamlyr_connection)
  register_s3_method("dbplyr", "sql_escape_ident", "streamlyr_connection", quote_identifier)
  register_s3_method("dbplyr", "sql_escape_string", "streamlyr_connection", quote_string)
}

# Verbs that can't run on a stream (yet), with what to do instead. Without
# a method of ours, dbplyr would run them through DBI's S4 generics, which
# know nothing of our S3 connection ("unable to find an inherited method for
# function 'dbBegin'"). Each is an error naming the verb when it is called.
join_hint <- "a stream joins a table (`copy_to()`, a memory table) with the stream on the left, e.g. `left_join(stream, table)`"
set_hint <- "a stream has no end to compare; to keep rows whose key is in a set, `filter(key %in% c(...))`"
write_hint <- "a stream can't be changed in place: write the rows with a `stream_write_*()` function"
unsupported_stream_verbs <- list(
  nest_join = "join the table with `left_join()` and nest what arrives downstream",
  union = "to read several topics as one stream, subscribe to all of them: `options = list(subscribe = \"a,b\")`",
  union_all = "to read several topics as one stream, subscribe to all of them: `options = list(subscribe = \"a,b\")`",
  intersect = set_hint, setdiff = set_hint, setequal = set_hint,
  compute = "to keep a stream's rows in a table, write it with `stream_write_memory(x, name = \"...\")` and query `tbl(sc, \"...\")`",
  collapse = "a pipeline over a stream becomes one SQL query when it is written; leave `collapse()` out",
  explain = "`show_query()` shows the SQL the engine runs on each micro-batch",
  do = "streams support filter(), mutate(), select(), and one group_by() + summarise()",
  rows_insert = write_hint, rows_append = write_hint, rows_update = write_hint,
  rows_patch = write_hint, rows_upsert = write_hint, rows_delete = write_hint
)

# Joins and set operations between tables of one connection run in the
# engine (a data frame with `copy = TRUE` is copied in first); with a stream
# on the right they can't.
two_table_verbs <- c(
  "inner_join", "left_join", "right_join", "full_join", "semi_join", "anti_join",
  "union", "union_all", "intersect", "setdiff"
)

abort_unsupported_verb <- function(verb, what, hint, arg = "x", call) {
  abort_streamlyr(
    paste0("`", verb, "()` ", what, " is not supported yet."),
    class = "streamlyr_error_unsupported", hint = hint, arg = arg, call = call
  )
}

register_unsupported_verbs <- function() {
  for (verb in names(unsupported_stream_verbs)) {
    local({
      verb <- verb
      hint <- unsupported_stream_verbs[[verb]]
      # A method's frame carries the generic's call: the error names `left_join()`.
      stream_method <- function(...) abort_unsupported_verb(verb, "on a stream", hint, call = rlang::current_env())
      register_s3_method("dplyr", verb, "tbl_stream", stream_method)
      register_s3_method("dplyr", verb, "tbl_stream_sql", stream_method)
      if (!verb %in% c(two_table_verbs, "setequal")) {
        register_s3_method("dplyr", verb, "tbl_streamlyr_memory", function(...) {
          abort_unsupported_verb(verb, "on a memory table", hint = NULL, call = rlang::current_env())
        })
      }
    })
  }
  for (verb in two_table_verbs) {
    local({
      verb <- verb
      register_s3_method("dplyr", verb, "tbl_streamlyr_memory", function(x, y, ...) {
        check_memory_partner(y, verb, call = rlang::current_env())
        NextMethod()
      })
    })
  }
  register_s3_method("dplyr", "copy_to", "streamlyr_connection", copy_to.streamlyr_connection)
  register_s3_method("dbplyr", "db_copy_to", "streamlyr_connection", db_copy_to.streamlyr_connection)
  # A backstop for dbplyr's compute step when it is reached without one of
  # the verbs above: a streamlyr error naming the verb on the call stack,
  # not a DBI error.
  register_s3_method("dbplyr", "db_compute", "streamlyr_connection", function(con, ...) {
    found <- user_verb_frame()
    abort_unsupported_verb(found$verb %||% "compute", "on a streamlyr connection", hint = NULL, arg = NULL, call = found$frame)
  })
}

# Joins with a stream on the left: dbplyr renders them, the engine checks
# them against Spark's support matrix when the stream is written. Only a
# stream on the right side is refused here, where it is known.
stream_join_verbs <- c("inner_join", "left_join", "right_join", "full_join", "semi_join", "anti_join")

register_stream_joins <- function() {
  for (verb in stream_join_verbs) {
    local({
      verb <- verb
      register_s3_method("dplyr", verb, "tbl_stream", function(x, y, ...) {
        getExportedValue("dplyr", verb)(as_lazy_stream(x), y, ...)
      })
      register_s3_method("dplyr", verb, "tbl_stream_sql", function(x, y, ...) {
        if (is_stream(y)) {
          abort_unsupported_verb(verb, "between two streams", hint = join_hint, arg = "y", call = rlang::current_env())
        }
        NextMethod()
      })
    })
  }
}

check_memory_partner <- function(y, verb, call) {
  if (is_stream(y)) {
    abort_unsupported_verb(verb, "with a stream on the right", hint = join_hint, arg = "y", call = call)
  }
  if (!inherits(y, "tbl_streamlyr_memory") && !is.data.frame(y)) {
    abort_unsupported_verb(
      verb, paste0("of a memory table with ", obj_type(y)),
      hint = "combine two tables of one connection, or a table with a data frame (`copy = TRUE`)",
      arg = "y", call = call
    )
  }
}

#' Copy a data frame into the connection
#'
#' sparklyr's `copy_to()`: `df` becomes the connection's table `name`, which
#' `tbl(sc, name)` reads and streams join with (see [streamlyr-dplyr]). A
#' stream joining the table sees a replacement (`overwrite = TRUE`) from its
#' next batch on; the table is not part of any checkpoint.
#'
#' @param dest A connection from [spark_connect()].
#' @param df A data frame.
#' @param name The table's name.
#' @param overwrite Replace a table of that name? Otherwise it is an error.
#' @param memory,repartition sparklyr's; a table here is always in memory,
#'   in one piece.
#' @param ... Unused.
#' @return The table, as `tbl(dest, name)`.
#' @name copy_to
copy_to.streamlyr_connection <- function(dest, df, name = spark_table_name(substitute(df)), overwrite = FALSE,
                                         memory = TRUE, repartition = 0L, ...) {
  check_connection(dest, arg = "dest")
  if (!is.data.frame(df)) {
    abort_streamlyr(paste0("`df` must be a data frame, not ", obj_type(df), "."), arg = "df")
  }
  check_string(name)
  if (!rlang::is_bool(overwrite)) {
    abort_streamlyr(paste0("`overwrite` must be `TRUE` or `FALSE`, not ", obj_type(overwrite), "."), arg = "overwrite")
  }
  engine_result(engine_copy_to(dest$engine, name, as.data.frame(df), overwrite))
  tbl.streamlyr_connection(dest, name)
}

# The name sparklyr gives a copied table: the variable's, else a fresh one.
spark_table_name <- function(expr) {
  if (is.name(expr)) as.character(expr) else random_string("streamlyr_tmp")
}

# dbplyr's door for `copy = TRUE` in a join: the same table registry.
db_copy_to.streamlyr_connection <- function(con, table, values, ..., overwrite = FALSE) {
  name <- as.character(table)
  engine_result(engine_copy_to(con$engine, name, as.data.frame(values), isTRUE(overwrite)), call = rlang::caller_env(2))
  dbplyr::ident(name)
}

# For errors raised deep inside dbplyr: the outermost dplyr verb on the call
# stack, which is the one the user called.
user_verb_frame <- function() {
  verbs <- c(names(unsupported_stream_verbs), "copy_to")
  calls <- sys.calls()
  for (i in seq_along(calls)) {
    head <- calls[[i]][[1]]
    if (is.call(head) && (identical(head[[1]], quote(`::`)) || identical(head[[1]], quote(`:::`)))) head <- head[[3]]
    if (is.symbol(head) && as.character(head) %in% verbs) return(list(verb = as.character(head), frame = sys.frame(i)))
  }
  NULL
}

# As vctrs::s3_register(): now if `pkg` is loaded, and whenever it loads;
# not at all if this version of `pkg` has no such generic (union() and the
# other set operations are dplyr's through the generics package).
register_s3_method <- function(pkg, generic, class, fun) {
  register <- function(...) {
    ns <- asNamespace(pkg)
    if (exists(generic, envir = ns)) registerS3method(generic, class, fun, envir = ns)
  }
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
      # The batch's time (Spark's current_timestamp() in a stream).
      Sys.time = function() dbplyr::sql("now()"),
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

# colnames() and ncol() of a stream, as of a lazy table (dbplyr's way).
#' @export
dim.tbl_stream <- function(x) c(NA_integer_, length(x$stream$columns))

#' @export
dimnames.tbl_stream <- function(x) list(NULL, x$stream$columns)

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
  source <- x$stream$source
  opts <- source$options
  what <- switch(source$kind,
    kafka = paste0(opts$subscribe %||% opts$subscribePattern %||% opts$assign %||% "", " @ ",
                   opts$kafka.bootstrap.servers %||% ""),
    file = paste0(source$format, " files in ", source$path),
    socket = paste0(opts$host, ":", opts$port),
    ""
  )
  cat("# Source: ", source$kind, " stream `", x$stream$name, "` [", what, "]\n", sep = "")
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
  print(dplyr::collect(utils::head(x, 10)))
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
