#' Read a Delta table as a stream
#'
#' sparklyr's `stream_read_delta()`: the rows of a Delta Lake table, and
#' then the rows each new version of the table adds, as Spark's Delta
#' source reads them. The first micro-batch reads the table as it is when
#' the stream starts (or, with `startingVersion`, the versions from that
#' one on); each trigger then reads the files that the versions committed
#' since added, up to `maxFilesPerTrigger` files. The checkpoint records the
#' last file read (Spark's `reservoirVersion` and `index`), so a restarted
#' stream reads every file once.
#'
#' A version that removes rows (a delete, an update, a `complete` write)
#' fails the stream, as in Spark, unless an option says what to do with it.
#' Tables with column mapping or deletion vectors can't be read yet.
#'
#' @inheritParams stream_read_csv
#' @param path The table's folder (the one holding `_delta_log`).
#' @param options A named list of Spark's Delta source options:
#'   `startingVersion` (a version number, or `"latest"` for changes after
#'   the version there at start), `maxFilesPerTrigger` (default 1000),
#'   `maxBytesPerTrigger` (e.g. `"100m"`), and for versions that remove
#'   rows `ignoreDeletes` (skip versions that only delete),
#'   `skipChangeCommits` (skip every such version) or `ignoreChanges` (read
#'   the files they add: rewritten rows come again).
#' @return A stream table ([dplyr::tbl()]-like) to pipe into dplyr verbs and a
#'   `stream_write_*()` function.
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' stream_read_delta(sc, "events-table") %>%
#'   dplyr::filter(amount > 100) %>%
#'   stream_write_delta("big-events", checkpoint = "big-events-checkpoint")
#' }
stream_read_delta <- function(sc, path, name = NULL, options = list(), ...) {
  check_connection(sc)
  check_string(path)
  name <- name %||% random_string("sparklyr_tmp_")
  check_string(name)
  options <- options_as_strings(options)
  checked <- engine_result(delta_source_check(path.expand(path), to_json(options)))
  source <- list(kind = "delta", path = checked$path, options = options)
  new_tbl_stream(sc, name, checked$names, source = source)
}

#' Write a stream into a Delta table
#'
#' sparklyr's `stream_write_delta()` (it has no `trigger` argument: micro-batches
#' run back to back, as Spark's default trigger runs them). Each micro-batch
#' is one commit to the table, which carries a transaction identifier (the
#' query's id and the batch number, as Spark's Delta sink writes them):
#' a batch written again after a crash or a kill is recognised and skipped,
#' so every row is in the table once. A table that does not exist is
#' created with the stream's columns, partitioned by `partition_by`; an
#' existing table must have the stream's columns.
#'
#' `mode = "append"` adds each batch's rows; `mode = "complete"` (for an
#' aggregation) replaces the table's rows with the whole result at each
#' batch, in one commit. `"update"` is an error, as in Spark.
#'
#' @inheritParams stream_write_csv
#' @param path The table's folder (created if needed).
#' @param options A named list: `userMetadata` (text kept in each commit's
#'   `commitInfo`), `retryTimeoutMs` (see [stream_write_kafka()]).
#' @param partition_by Column names: the table's partition columns.
#' @return A stream (class `streamlyr_stream`); see [stream_stop()].
#' @family stream readers and writers
#' @export
stream_write_delta <- function(x,
                               path,
                               mode = c("append", "complete", "update"),
                               checkpoint = file.path("checkpoints", random_string("")),
                               options = list(),
                               partition_by = NULL,
                               ...) {
  check_string(path)
  stream_write_generic(
    x, sink = "delta", mode = mode, trigger = stream_trigger_interval(0), checkpoint = checkpoint,
    options = options, partition_by = partition_by, call = rlang::current_env(),
    sink_spec = list(path = path.expand(path))
  )
}
