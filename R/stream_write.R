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
#' @section Columns:
#' * `value` (character or raw): the record. Without a `value` column each
#'   row's other columns are written as one JSON object (`NA` fields left out,
#'   date-times as ISO 8601 in UTC).
#' * `key` (character or raw, `NA` for none).
#' * `topic`: the topic of each row, unless the `topic` option is set (the
#'   option wins). A row with no topic at all is an error naming the row.
#' * `partition` (integer): the partition; `NA` lets Kafka's partitioner
#'   decide.
#' * `headers`: record headers, as read with `includeHeaders = "true"`,
#'   written when `includeHeaders = "true"`.
#'
#' @param x A stream from a `stream_read_*()` function, or a data frame.
#' @param mode `"append"`, `"complete"` or `"update"`. Only `"append"` applies
#'   to a stream without aggregation.
#' @param trigger When micro-batches run: [stream_trigger_interval()] (the
#'   default, every second), [stream_trigger_continuous()] or
#'   [stream_trigger_once()].
#' @param checkpoint The directory where the stream records its progress.
#'   Restarting with the same directory resumes the stream.
#' @param options A named list: `kafka.bootstrap.servers` (required), `topic`,
#'   `includeHeaders`, `guarantee` (`"at-least-once"`, the default, or
#'   `"exactly-once"`: one Kafka transaction per micro-batch, so a
#'   `read_committed` consumer sees every input record once, even across a
#'   killed process), and any librdkafka producer setting prefixed with
#'   `kafka.` (e.g. `kafka.linger.ms`, `kafka.sasl.password`). Values are
#'   passed as strings. The producer is idempotent with `acks=all` unless you
#'   say otherwise. Secrets are never printed or written to the checkpoint.
#' @param partition_by Not supported for Kafka yet (Spark ignores it); must be
#'   `NULL`.
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
    options = options, partition_by = partition_by, call = rlang::current_env()
  )
}

# Check every argument (nothing starts before they are all fine), describe
# the query to the engine, start it, and wait until it runs or fails.
stream_write_generic <- function(x, sink, mode, trigger, checkpoint, options,
                                 partition_by, call) {
  source <- stream_source(x, call = call)
  mode <- check_mode(mode, call = call)
  trigger <- trigger_spec(trigger, call = call)
  check_string(checkpoint, arg = "checkpoint", call = call)
  options <- options_as_strings(options, call = call)
  if (!is.null(partition_by)) {
    abort_streamlyr(
      "`partition_by` is not supported by the Kafka sink yet.",
      hint = "leave it NULL; to keep rows of a group in one partition give them equal `key`s",
      arg = "partition_by", call = call
    )
  }
  name <- random_string("stream")
  spec <- list(
    name = name,
    source = source$spec,
    sink = list(kind = sink, options = options),
    trigger = trigger,
    checkpoint = path.expand(checkpoint),
    mode = mode
  )
  started <- query_start(source$sc$engine, to_json(spec), source$data)
  ptr <- engine_result(started, call = call)
  warn_ignored(started$ignored, call = call)
  stream <- new_stream(ptr, source$sc)
  wait_until_started(stream, call = call)
  stream
}

stream_source <- function(x, call) {
  if (inherits(x, "tbl_stream")) {
    check_connection(x$sc, arg = "x", call = call)
    return(list(sc = x$sc, spec = x$source, data = NULL))
  }
  if (is.data.frame(x)) {
    data <- as.list(x)
    for (i in seq_along(data)) {
      if (is.character(data[[i]])) data[[i]] <- enc2utf8(data[[i]])
    }
    attr(data, "row.names") <- .set_row_names(nrow(x))
    return(list(sc = default_connection(), spec = list(kind = "data_frame"), data = data))
  }
  abort_streamlyr(
    paste0("`x` must be a stream from a `stream_read_*()` function or a data frame, not ", obj_type(x), "."),
    arg = "x", call = call
  )
}

check_mode <- function(mode, call) {
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
  if (state == "failed") {
    status <- query_status(stream$ptr)
    raise_engine_error(status$error$error, call = call)
  }
  invisible(stream)
}
