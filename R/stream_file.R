#' Read a folder of files as a stream
#'
#' sparklyr's file readers, with their arguments and defaults. The stream
#' reads the files of `path` (and of its `key=value` subfolders, which
#' become columns): each micro-batch takes the files that appeared since
#' the last one, oldest first. The files a batch reads are recorded in the
#' writer's `checkpoint` before it reads them, so a stream that is stopped,
#' crashes or restarts reads every file exactly once. A folder written by a
#' `stream_write_*()` file writer is read through its `_spark_metadata` log:
#' only the files of committed batches. Files should appear whole (write
#' them elsewhere, then move them in), as Spark requires.
#'
#' @section Columns:
#' With `columns = NULL` the columns and their types are inferred now, from
#' the files `path` holds when the stream is defined (so it must hold some),
#' as Spark infers them: for CSV, whole numbers are `integer` (or `bigint`
#' when too large), other numbers `double`, `true`/`false` `logical`, dates
#' and date-times `date` and `timestamp`, anything else `character`.
#' Otherwise `columns` names the types: `c(day = "character", n =
#' "integer")` (R's names `character`, `integer`, `double`, `logical`,
#' `Date`, `POSIXct`, or Spark's `string`, `int`, `bigint`, `double`,
#' `boolean`, `date`, `timestamp`). `stream_read_text()` has one column,
#' `line`.
#'
#' @section Options:
#' * Which files each batch takes (Spark's): `maxFilesPerTrigger` (at most
#'   this many), `latestFirst` (`"true"`: newest first), `maxFileAge`
#'   (default `"7d"`: files older than this, before the newest file seen,
#'   are ignored; not with `latestFirst` and `maxFilesPerTrigger` together,
#'   where, as in Spark, no file is forgotten and the list of files seen
#'   grows with the folder), `fileNameOnly` (`"true"`: a file is known by its name,
#'   not its whole path), `cleanSource` (`"off"`, `"delete"` or `"archive"`
#'   with `sourceArchiveDir`: what happens to a file once its batch has
#'   committed).
#' * Parsing: `mode` = `"PERMISSIVE"` (default: a field that does not parse
#'   as its column's type is `NA`, and the count shows in `print(stream)`),
#'   `"DROPMALFORMED"` (the row is left out) or `"FAILFAST"` (the stream
#'   fails, naming the file and line). CSV: `comment`; text: `wholetext`
#'   (one row per file).
#' * An option streamlyr does not know is an error; Spark's options that
#'   have no effect here (`inferSchema`, `mergeSchema`, ...) are accepted
#'   with a warning.
#'
#' @param sc A connection from [spark_connect()].
#' @param path The folder: a path, or a `file://` URI.
#' @param name A name for the stream table; a random one by default.
#' @param header Does each CSV file start with a line of column names?
#' @param columns `NULL` to infer the columns from the files there now, or a
#'   named vector of column types (see Columns).
#' @param delimiter,quote,escape The CSV field delimiter, quote and escape
#'   characters.
#' @param charset The files' encoding: only `"UTF-8"`.
#' @param null_value The text that stands for `NA` (default: an empty field).
#' @param options A named list of options (see Options).
#' @param ... Unused.
#' @return A stream table (class `tbl_stream`), for dplyr verbs and the
#'   `stream_write_*()` functions.
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#'
#' dir.create("csv-in")
#' write.csv(iris, "csv-in/data.csv", row.names = FALSE)
#'
#' stream <- stream_read_csv(sc, "csv-in") %>% stream_write_csv("csv-out")
#'
#' stream_stop(stream)
#' }
stream_read_csv <- function(sc,
                            path,
                            name = NULL,
                            header = TRUE,
                            columns = NULL,
                            delimiter = ",",
                            quote = "\"",
                            escape = "\\",
                            charset = "UTF-8",
                            null_value = NULL,
                            options = list(),
                            ...) {
  options <- csv_options(options, header, delimiter, quote, escape, charset, null_value)
  stream_read_file(sc, path, "csv", name, columns, options)
}

#' @rdname stream_read_csv
#' @export
stream_read_text <- function(sc, path, name = NULL, options = list(), ...) {
  stream_read_file(sc, path, "text", name, NULL, options)
}

#' @rdname stream_read_csv
#' @export
stream_read_json <- function(sc, path, name = NULL, columns = NULL, options = list(), ...) {
  stream_read_file(sc, path, "json", name, columns, options)
}

#' @rdname stream_read_csv
#' @export
stream_read_parquet <- function(sc, path, name = NULL, columns = NULL, options = list(), ...) {
  stream_read_file(sc, path, "parquet", name, columns, options)
}

#' @rdname stream_read_csv
#' @export
stream_read_orc <- function(sc, path, name = NULL, columns = NULL, options = list(), ...) {
  stream_read_file(sc, path, "orc", name, columns, options)
}

#' Write a stream into a folder of files
#'
#' sparklyr's file writers, with their arguments and defaults. Each
#' micro-batch becomes new files in `path` (named as Spark names them,
#' `part-<n>-<uuid>.c000.csv`, in `key=value` subfolders with
#' `partition_by`), and is committed by a `_spark_metadata/<batch>` log
#' entry written once every file is safely on disk. Readers that follow
#' that log ([stream_read_csv()] and the other readers, and Spark) see every
#' row exactly once, even after the writing process was killed mid-batch;
#' a restarted stream first removes the files a batch in flight at the
#' crash left. File sinks append: `mode = "complete"` or `"update"` is an error, as in Spark
#' (an aggregation needs a watermark, see [stream_watermark()]).
#'
#' One folder takes the output of one stream: a second stream (another
#' checkpoint) writing into it is an error. Note that, as in sparklyr, the
#' default `checkpoint` of every writer but `stream_write_csv()` is new at
#' each call: to resume a stream, give it a fixed `checkpoint`.
#'
#' @inheritParams stream_write_kafka
#' @inheritParams stream_read_csv
#' @param path The folder to write into (created if needed).
#' @param header Write a first line of column names in each CSV file?
#' @param null_value The text written for `NA` (default: an empty field).
#' @param options A named list: `maxRecordsPerFile` (a new file after this
#'   many rows), `compression` (parquet: `"snappy"`, the default, or
#'   `"none"`; orc: `"snappy"`, the default, `"zlib"`, `"lz4"`, `"zstd"` or
#'   `"none"`), `retryTimeoutMs` (see [stream_write_kafka()]).
#' @param partition_by Column names: each combination of their values gets
#'   a `name=value` subfolder, and the columns are left out of the files.
#' @return A stream (class `streamlyr_stream`); see [stream_stop()].
#' @family stream readers and writers
#' @export
stream_write_csv <- function(x,
                             path,
                             mode = c("append", "complete", "update"),
                             trigger = stream_trigger_interval(),
                             checkpoint = file.path(path, "checkpoint"),
                             header = TRUE,
                             delimiter = ",",
                             quote = "\"",
                             escape = "\\",
                             charset = "UTF-8",
                             null_value = NULL,
                             options = list(),
                             partition_by = NULL,
                             ...) {
  options <- csv_options(options, header, delimiter, quote, escape, charset, null_value)
  stream_write_file(x, path, "csv", mode, trigger, checkpoint, options, partition_by)
}

#' @rdname stream_write_csv
#' @export
stream_write_text <- function(x,
                              path,
                              mode = c("append", "complete", "update"),
                              trigger = stream_trigger_interval(),
                              checkpoint = file.path(path, "checkpoints", random_string("")),
                              options = list(),
                              partition_by = NULL,
                              ...) {
  stream_write_file(x, path, "text", mode, trigger, checkpoint, options, partition_by)
}

#' @rdname stream_write_csv
#' @export
stream_write_json <- function(x,
                              path,
                              mode = c("append", "complete", "update"),
                              trigger = stream_trigger_interval(),
                              checkpoint = file.path(path, "checkpoints", random_string("")),
                              options = list(),
                              partition_by = NULL,
                              ...) {
  stream_write_file(x, path, "json", mode, trigger, checkpoint, options, partition_by)
}

#' @rdname stream_write_csv
#' @export
stream_write_parquet <- function(x,
                                 path,
                                 mode = c("append", "complete", "update"),
                                 trigger = stream_trigger_interval(),
                                 checkpoint = file.path(path, "checkpoints", random_string("")),
                                 options = list(),
                                 partition_by = NULL,
                                 ...) {
  stream_write_file(x, path, "parquet", mode, trigger, checkpoint, options, partition_by)
}

#' @rdname stream_write_csv
#' @export
stream_write_orc <- function(x,
                             path,
                             mode = c("append", "complete", "update"),
                             trigger = stream_trigger_interval(),
                             checkpoint = file.path(path, "checkpoints", random_string("")),
                             options = list(),
                             partition_by = NULL,
                             ...) {
  stream_write_file(x, path, "orc", mode, trigger, checkpoint, options, partition_by)
}

# sparklyr's CSV arguments as Spark's options; the arguments win over
# `options`, as in sparklyr.
csv_options <- function(options, header, delimiter, quote, escape, charset, null_value,
                        call = rlang::caller_env()) {
  options <- options_as_strings(options, call = call)
  for (arg in c("delimiter", "quote", "escape")) {
    value <- get(arg, envir = environment())
    one_char <- is.character(value) && length(value) == 1 && !is.na(value) &&
      (nchar(value, "bytes") == 1 || value == "\\t" || (arg == "quote" && value == ""))
    if (!one_char) {
      abort_streamlyr(paste0("`", arg, "` must be a single ASCII character, not ", obj_type(value), "."), arg = arg, call = call)
    }
  }
  if (!is.character(charset) || length(charset) != 1 || is.na(charset) || !toupper(gsub("-", "", charset)) %in% c("UTF8", "")) {
    abort_streamlyr(paste0("`charset` must be \"UTF-8\" (the only encoding streamlyr reads and writes), not ", obj_type(charset), "."),
                    arg = "charset", call = call)
  }
  if (!is.null(null_value) && (!is.character(null_value) || length(null_value) != 1 || is.na(null_value))) {
    abort_streamlyr(paste0("`null_value` must be NULL or a single string, not ", obj_type(null_value), "."), arg = "null_value", call = call)
  }
  if (!isTRUE(header) && !isFALSE(header)) {
    abort_streamlyr(paste0("`header` must be `TRUE` or `FALSE`, not ", obj_type(header), "."), arg = "header", call = call)
  }
  explicit <- list(
    header = if (header) "true" else "false",
    delimiter = delimiter, quote = quote, escape = escape, charset = charset,
    nullValue = toString(null_value)
  )
  options[names(explicit)] <- explicit
  options
}

stream_read_file <- function(sc, path, format, name, columns, options, call = rlang::caller_env()) {
  check_connection(sc, call = call)
  check_string(path, arg = "path", call = call)
  path <- path.expand(path)
  name <- name %||% random_string("sparklyr_tmp_")
  check_string(name, arg = "name", call = call)
  options <- options_as_strings(options, call = call)
  if (!is.null(options$sourceArchiveDir)) options$sourceArchiveDir <- path.expand(options$sourceArchiveDir)
  checked <- engine_result(
    file_source_check(format, path, to_json(options), columns_json(column_pairs(columns, call))),
    call = call
  )
  warn_ignored(checked$ignored, call = call)
  pairs <- Map(function(n, t) c(n, t), checked$names, checked$types)
  source <- list(
    kind = "file", format = format, path = checked$path, options = options,
    columns = unname(pairs), partitions = I(checked$partitions)
  )
  new_tbl_stream(sc, name, checked$names, source = source)
}

columns_json <- function(pairs) if (is.null(pairs)) "null" else to_json(pairs)

# `columns` as (name, type) pairs for the engine; NULL to infer them.
column_pairs <- function(columns, call) {
  if (is.null(columns)) return(NULL)
  types <- if (is.list(columns)) unlist(lapply(columns, function(t) t[[1]])) else columns
  if (!is.character(types) || is.null(names(columns)) || any(!nzchar(names(columns))) ||
      anyDuplicated(names(columns)) > 0 || length(types) != length(columns) || anyNA(types)) {
    abort_streamlyr(
      paste0("`columns` must be NULL or a vector of column types named by distinct column names, not ", obj_type(columns), "."),
      hint = "for example `columns = c(day = \"character\", n = \"integer\")`",
      arg = "columns", call = call
    )
  }
  unname(Map(function(n, t) c(n, t), names(columns), types))
}

stream_write_file <- function(x, path, format, mode, trigger, checkpoint, options, partition_by,
                              call = rlang::caller_env()) {
  check_string(path, arg = "path", call = call)
  stream_write_generic(
    x, sink = "file", mode = mode, trigger = trigger, checkpoint = checkpoint,
    options = options, partition_by = partition_by, call = call,
    sink_spec = list(format = format, path = path.expand(path))
  )
}

#' Generate test files for a file stream
#'
#' sparklyr's `stream_generate_test()`: writes `iterations` CSV files
#' `stream_1.csv`, `stream_2.csv`, ... into `path`, one every `interval`
#' seconds, with the rows of `df` taken in turn, `distribution[i] + 1` rows
#' in file `i` (a file starts with the last row of the one before, as in
#' sparklyr). The same files as sparklyr's, except that each appears whole
#' (written aside, then moved in, as a file stream wants) and the console is
#' not blocked: files are written from R's event loop (the 'later'
#' package) while you go on.
#'
#' @param df A data frame (or what `as.data.frame()` makes one of) to take
#'   the rows from.
#' @param path The folder to write into (created if needed).
#' @param distribution The number of rows of each file, less one, used in
#'   turn.
#' @param iterations How many files to write.
#' @param interval Seconds between two files.
#' @return Invisibly, a function that stops writing more files.
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' stream_generate_test(iterations = 5)
#' stream <- stream_read_csv(sc, "source") %>% stream_write_csv("destination")
#' }
stream_generate_test <- function(df = rep(1:1000),
                                 path = "source",
                                 distribution = floor(10 + 1e5 * stats::dbinom(1:20, 20, 0.5)),
                                 iterations = 50,
                                 interval = 1) {
  if (!is.data.frame(df)) df <- as.data.frame(df)
  check_string(path)
  if (!is.numeric(iterations) || length(iterations) != 1 || is.na(iterations) || iterations < 0) {
    abort_streamlyr(paste0("`iterations` must be a number of files, not ", obj_type(iterations), "."), arg = "iterations")
  }
  if (!is.numeric(distribution) || length(distribution) == 0 || anyNA(distribution) || any(distribution < 0)) {
    abort_streamlyr("`distribution` must be a vector of non-negative row counts.", arg = "distribution")
  }
  check_seconds(interval)
  if (!dir.exists(path)) dir.create(path, recursive = TRUE)
  cancelled <- FALSE
  # sparklyr's walk through the rows: each file starts at the row the last one ended on.
  write_file <- function(file, row_end, dist) {
    if (cancelled || file > iterations) return(invisible())
    if (dist > length(distribution)) dist <- 1
    row_start <- row_end %% nrow(df)
    row_end <- row_start + distribution[dist]
    cycled <- df
    while (nrow(cycled) < row_end) cycled <- rbind(cycled, df)
    rows <- cycled[row_start:row_end, ]
    target <- file.path(path, paste0("stream_", file, ".csv"))
    aside <- file.path(path, paste0(".stream_", file, ".csv.tmp"))
    utils::write.csv(rows, aside, row.names = FALSE)
    file.rename(aside, target)
    later::later(function() write_file(file + 1, row_end, dist + 1), interval)
  }
  write_file(1, 1, 1)
  invisible(function() cancelled <<- TRUE)
}
