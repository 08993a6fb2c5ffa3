#' Write a stream into Kafka
#'
#' sparklyr's `stream_write_kafka()`, with its signature and defaults. `x`
#' is a stream from [stream_read_kafka()] or a data frame (written once,
#' completely, after which the stream stops by itself). Each micro-batch is
#' recorded in `checkpoint` before it is read and committed there once Kafka
#' has acknowledged every record, so a stream stopped, crashed or restarted
#' on the same checkpoint resumes after its last committed batch and loses
#' nothing (at-least-once: the batch in flight at a crash is written again;
#' exactly-once with `options = list(guarantee = "exactly-once")`).
#'
#' @section Pipelines:
#' `x` can be a dplyr pipeline over a stream (see [streamlyr-dplyr]). With an
#' aggregation (`summarise()`, `count()`, `distinct()`) use `mode =
#' "complete"` or `"update"`; each group's record then has the group values as
#' its key (unless the pipeline makes a `key` column), so the topic works as
#' a compacted changelog.
#'
#' @section Columns:
#' * `value` (character or raw): the record. Without a `value` column each
#'   row's other columns are written as one JSON object (`NA` fields left out,
#'   date-times as ISO 8601 in UTC), or with `value.format = "csv"` as one
#'   CSV record (no header, the columns in order, `NA` as an empty field),
#'   or with `value.format = "avro"` as the body of one Avro record (no
#'   schema id, as Spark's `to_avro()`), of the record schema in
#'   `value.schema` (Avro JSON or Spark's DDL; the columns must be its
#'   fields, and are cast to their types: a whole double to an `int`, an
#'   `NA` only where the field can be null) or else one derived from the
#'   columns (nullable columns as unions with null); with `value.format =
#'   "avro-confluent"`, in Confluent's wire format, the schema of
#'   `value.schema` registered (or found) under `value.subject` (default
#'   `"<topic>-value"`) in the registry at `schema.registry.url` when the
#'   stream starts (retried while the registry can't be reached; its id is
#'   kept in the checkpoint, so a restart with the same registry, subject
#'   and schema writes the same id without asking): what
#'   [stream_read_kafka()] reads back with the same `value.format`.
#' * `key` (character or raw, `NA` for none).
#' * `topic`: the topic of each row, unless the `topic` option is set (the
#'   option wins). A row with no topic at all is an error naming the row.
#' * `partition` (integer): the partition; `NA` lets Kafka's partitioner
#'   decide.
#' * `headers`: record headers, as read with `includeHeaders = "true"`,
#'   written when `includeHeaders = "true"`.
#'
#' @param x A stream from a `stream_read_*()` function, or a data frame.
#' @param mode `"append"` (each input row's output once), `"complete"` (an
#'   aggregation's whole result every trigger) or `"update"` (the groups
#'   that changed in the trigger).
#' @param trigger When micro-batches run: [stream_trigger_interval()] (the
#'   default, every second), [stream_trigger_continuous()] or
#'   [stream_trigger_once()].
#' @param checkpoint The directory where the stream records its progress.
#'   Restarting with the same directory resumes the stream.
#' @param options A named list: `kafka.bootstrap.servers` (required), `topic`,
#'   `includeHeaders`, `value.format` (`"json"`, the default, `"csv"`,
#'   `"avro"` or `"avro-confluent"`, with `value.schema`, `value.subject`,
#'   `schema.registry.url` and `schema.registry.basic.auth.user.info`: see
#'   Columns), `guarantee` (`"at-least-once"`, the default, or
#'   `"exactly-once"`: one Kafka transaction per micro-batch, so a
#'   `read_committed` consumer sees every input record once, even across a
#'   killed process), and any librdkafka producer setting prefixed with
#'   `kafka.` (e.g. `kafka.linger.ms`, `kafka.sasl.password`). Values are
#'   passed as strings. The producer is idempotent with `acks=all` unless you
#'   say otherwise (with exactly-once it must be, and other values of
#'   `kafka.enable.idempotence` or `kafka.acks` are errors). Settings
#'   streamlyr manages itself (`kafka.transactional.id`, the consumer group
#'   it keeps exactly-once markers in) can't be replaced; `kafka.group.id`
#'   is accepted, as in sparklyr scripts, and ignored. `retryTimeoutMs`
#'   (any writer): how long the stream keeps trying while Kafka is
#'   unreachable or failing in a way that waiting can cure, with no success
#'   in between, before it fails with the last error (default 300000, five
#'   minutes, as Kafka Streams' `task.timeout.ms`); errors that waiting
#'   can't cure (a missing topic, a record too large, bad credentials) fail
#'   the stream at once. Secrets are never printed or written to the
#'   checkpoint.
#' @param partition_by Column names: rows with equal values in them go to
#'   one partition, the one Kafka's default partitioner (murmur2, as in the
#'   Java client) picks for the key made of those values (one column: its
#'   value as text; several: a JSON object).
#' @param ... Unused.
#' @return A stream (class `streamlyr_stream`); see [stream_stop()].
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local", version = "2.3", packages = "kafka")
#'
#' read_options <- list(kafka.bootstrap.servers = "localhost:9092", subscribe = "topic1")
#' write_options <- list(kafka.bootstrap.servers = "localhost:9092", topic = "topic2")
#'
#' stream <- stream_read_kafka(sc, options = read_options) %>%
#'   stream_write_kafka(options = write_options)
#'
#' stream_stop(stream)
#' }
stream_write_kafka <- function(x,
                               mode = c("append", "complete", "update"),
                               trigger = stream_trigger_interval(),
                               checkpoint = file.path("checkpoints", random_string("")),
                               options = list(),
                               partition_by = NULL,
                               ...) {
  stream_write_generic(
    x, sink = "kafka", mode = mode, trigger = trigger, checkpoint = checkpoint,
    options = schemas_as_ddl(options), partition_by = partition_by, call = rlang::current_env()
  )
}

#' Write a stream into memory, or print it
#'
#' sparklyr's `stream_write_memory()` and `stream_write_console()`.
#' `stream_write_memory()` keeps the result in a table of the connection:
#' read it while the stream runs with `dplyr::tbl(sc, name) %>% collect()`
#' (`append` adds each batch's rows, `complete` replaces the table with the
#' latest result, `update` replaces the changed groups' rows).
#' `stream_write_console()` prints each committed batch in the R console, as
#' Spark's console sink does (at most `options$numRows` rows, 20 by
#' default); printing happens on R's main thread whenever R is idle.
#'
#' @inheritParams stream_write_kafka
#' @param name The name of the memory table.
#' @param options `stream_write_console()`: `numRows`. Otherwise unused.
#' @param partition_by Accepted for compatibility; the memory and console
#'   sinks have no partitions.
#' @return A stream (class `streamlyr_stream`); see [stream_stop()].
#' @family stream readers and writers
#' @export
stream_write_memory <- function(x,
                                name = random_string("sparklyr_tmp_"),
                                mode = c("append", "complete", "update"),
                                trigger = stream_trigger_interval(),
                                checkpoint = file.path("checkpoints", name, random_string("")),
                                options = list(),
                                partition_by = NULL,
                                ...) {
  check_string(name)
  stream_write_generic(
    x, sink = "memory", mode = mode, trigger = trigger, checkpoint = checkpoint,
    options = options, partition_by = NULL, call = rlang::current_env(),
    sink_spec = list(table = name)
  )
}

#' @rdname stream_write_memory
#' @export
stream_write_console <- function(x,
                                 mode = c("append", "complete", "update"),
                                 options = list(),
                                 trigger = stream_trigger_interval(),
                                 partition_by = NULL,
                                 ...) {
  num_rows <- suppressWarnings(as.integer(options$numRows %||% 20L))
  if (length(num_rows) != 1 || is.na(num_rows) || num_rows < 0) {
    abort_streamlyr("`options$numRows` must be a non-negative number of rows.", arg = "options")
  }
  stream <- stream_write_generic(
    x, sink = "console", mode = mode, trigger = trigger,
    checkpoint = tempfile("streamlyr-console-"), options = list(), partition_by = NULL,
    call = rlang::current_env(), sink_spec = list()
  )
  stream$console_rows <- num_rows
  print_console_later(stream)
  stream
}

# The console sink's batches are printed by R's main thread, from the event
# loop (so it works in RStudio too) and once more when the stream stops.
print_console_later <- function(stream) {
  poll <- function() {
    # Look before printing, so the batches of a stream that just ended still print.
    active <- !query_wait(stream$ptr, 0, FALSE) %in% c("stopped", "failed")
    print_console(stream)
    if (active) later::later(poll, 0.2)
  }
  later::later(poll, 0.2)
}

print_console <- function(stream) {
  if (is.null(stream$console_rows)) return(invisible())
  for (b in engine_result(query_console_take(stream$ptr))) {
    rule <- strrep("-", 43)
    cat(rule, "\nBatch: ", format(b$batch, scientific = FALSE), "\n", rule, "\n", sep = "")
    print(utils::head(tibble::as_tibble(b$data), stream$console_rows), n = stream$console_rows)
    cat("\n")
  }
  invisible()
}

check_partition_by <- function(partition_by, call) {
  if (!is.null(partition_by) && (!is.character(partition_by) || anyNA(partition_by) || length(partition_by) == 0)) {
    abort_streamlyr(
      paste0("`partition_by` must be NULL or a character vector of column names, not ", obj_type(partition_by), "."),
      arg = "partition_by", call = call
    )
  }
}

# Check every argument (nothing starts before they are all fine), describe
# the query to the engine, start it, and wait until it runs or fails.
stream_write_generic <- function(x, sink, mode, trigger, checkpoint, options,
                                 partition_by, call, sink_spec = NULL) {
  source <- stream_source(x, call = call)
  mode <- check_mode(mode, call = call)
  trigger <- trigger_spec(trigger, call = call)
  check_string(checkpoint, arg = "checkpoint", call = call)
  options <- options_as_strings(options, call = call)
  check_partition_by(partition_by, call = call)
  name <- random_string("stream")
  spec <- list(
    name = name,
    source = source$spec,
    sink = c(list(kind = sink), sink_spec),
    trigger = trigger,
    checkpoint = path.expand(checkpoint),
    mode = mode,
    options = options,
    sql = source$sql,
    partition_by = I(as.character(partition_by))
  )
  # No mode (reactiveSpark()): the engine takes what the pipeline needs.
  if (is.null(mode)) spec$mode <- NULL
  started <- query_start(source$sc$engine, to_json(spec), source$data)
  ptr <- engine_result(started, call = call)
  warn_ignored(started$ignored, call = call)
  stream <- new_stream(ptr, source$sc)
  wait_until_started(stream, call = call)
  stream
}

stream_source <- function(x, call) {
  if (is_stream(x)) {
    sc <- stream_connection(x)
    check_connection(sc, arg = "x", call = call)
    return(list(sc = sc, spec = x$stream$source, data = NULL, sql = stream_sql(x)))
  }
  if (is.data.frame(x)) {
    data <- as.list(x)
    for (i in seq_along(data)) {
      if (is.character(data[[i]])) data[[i]] <- enc2utf8(data[[i]])
      if (is.factor(data[[i]])) attr(data[[i]], "levels") <- enc2utf8(levels(data[[i]]))
    }
    attr(data, "row.names") <- .set_row_names(nrow(x))
    return(list(sc = default_connection(), spec = list(kind = "data_frame"), data = data, sql = NULL))
  }
  abort_streamlyr(
    paste0("`x` must be a stream from a `stream_read_*()` function or a data frame, not ", obj_type(x), "."),
    arg = "x", call = call
  )
}

check_mode <- function(mode, call) {
  if (is.null(mode)) return(NULL)
  choices <- c("append", "complete", "update")
  tryCatch(
    match.arg(as.character(mode), choices),
    error = function(e) {
      abort_streamlyr(
        paste0("`mode` must be one of \"append\", \"complete\" or \"update\", not ", obj_type(mode), "."),
        arg = "mode", call = call
      )
    }
  )
}

# A stream either runs or fails at start (bad options, unreachable broker,
# foreign checkpoint); wait in short slices so Ctrl-C works.
wait_until_started <- function(stream, call) {
  repeat {
    state <- query_wait(stream$ptr, 100, TRUE)
    if (state != "starting") break
  }
  status <- query_status(stream$ptr)
  # A failure after the start, however soon, belongs to the stream: print() and stream_stop().
  if (state == "failed" && isTRUE(status$failed_starting)) {
    raise_engine_error(status$error$error, call = call)
  }
  invisible(stream)
}
