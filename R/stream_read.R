#' Read a Kafka stream
#'
#' sparklyr's `stream_read_kafka()`: a stream of the records of one or more
#' Kafka topics, with Spark's schema: `key` and `value` (raw), `topic`,
#' `partition`, `offset`, `timestamp`, `timestampType`, and `headers` when
#' `includeHeaders = "true"`. Nothing is read until the stream is written
#' somewhere with a `stream_write_*()` function.
#'
#' @param sc A connection from [spark_connect()].
#' @param name A name for the stream table; a random one by default.
#' @param options A named list of options, as in Spark:
#'   * `kafka.bootstrap.servers` (required): the brokers, `"host:port,..."`.
#'   * One of `subscribe` (comma-separated topics), `subscribePattern` (a
#'     regular expression over topic names) or `assign` (JSON such as
#'     `{"topic1":[0,1]}`).
#'   * `startingOffsets`: `"latest"` (default), `"earliest"`, or JSON such as
#'     `{"topic1":{"0":23,"1":-2}}` (-2 earliest, -1 latest). Only used when
#'     the checkpoint is new.
#'   * `maxOffsetsPerTrigger`: at most this many records per micro-batch.
#'   * `failOnDataLoss`: `"true"` (default) fails the stream when records it
#'     should read were deleted; `"false"` skips them.
#'   * `includeHeaders`: `"true"` adds a `headers` column.
#'   * `value.format`: `"json"` (one object a record), `"csv"` (one record
#'     a value, no header) or `"avro"` (the body of one Avro record, without
#'     a schema id, as Spark's `from_avro()` reads it) reads each value into
#'     the columns of `value.schema`, which take the place of `value` (so
#'     `filter(amount > 100)` works directly). `value.schema` is Spark's DDL
#'     (`"id INT, name STRING, at TIMESTAMP"`), a named vector of R types
#'     (`c(id = "integer", name = "character")`), or for Avro the record
#'     schema's JSON (the writer's schema). Fields missing from a record,
#'     and every field of a null value (a tombstone), are `NA`.
#'   * `value.format = "avro-confluent"`: Confluent's wire format (a zero
#'     byte, the schema id, the Avro body) with a schema registry at
#'     `schema.registry.url` (and `schema.registry.basic.auth.user.info =
#'     "user:password"`, never printed or written to the checkpoint). Each
#'     schema id is fetched once; records written in older or newer schemas
#'     are read into the reader schema (Avro's schema resolution: a field
#'     added with a default gets it), which is `value.schema` (Avro schema
#'     JSON: writer schemas are matched to it by record name) or else the
#'     latest schema of `value.subject` (default `"<topic>-value"`), fetched
#'     now. A registry that can't be reached is retried as Kafka is (see
#'     `retryTimeoutMs` in [stream_write_kafka()]); an id it doesn't have
#'     makes the record malformed.
#'   * `key.format`, `key.schema` and `key.subject`: the same for keys.
#'   * `mode`: what to do with a value its format can't read. `"PERMISSIVE"`
#'     (default, as Spark's `from_json()`) reads it as a row of `NA` and
#'     counts it (`malformed_rows` in [stream_stats()], and `print()`);
#'     `"FAILFAST"` fails the stream with an error naming the record's topic,
#'     partition and offset.
#'   * `scaleOut = "group"`: share the input between processes. Every
#'     process that runs the same query with the same `kafka.group.id`
#'     (required) joins that Kafka consumer group, which gives each one a
#'     share of the partitions and moves them when a process starts, stops
#'     or dies. Kafka keeps where each partition stands (the group's
#'     committed offsets, which `kafka-consumer-groups --describe`, KEDA or
#'     Burrow read); `startingOffsets` applies to partitions the group has
#'     no offset for. With `guarantee = "exactly-once"` in
#'     [stream_write_kafka()], each batch's records and offsets commit in one
#'     transaction with the group's generation (Kafka's KIP-447), so a
#'     process that lost its partitions can't commit them, and the output
#'     has each record once across all processes; otherwise offsets are
#'     committed after Kafka acknowledged the batch (at-least-once). Each
#'     process takes its own part of `checkpoint` (`members/<n>`, or
#'     `members/<kafka.group.instance.id>` for a static member). Runs
#'     pipelines without state across batches (no aggregation or
#'     [stream_lag()]), in micro-batches, into Kafka, memory or the console;
#'     `assign` can't be used, and the group protocol (classic), assignment
#'     (`range`) and `isolation.level` (`read_committed`) are pinned.
#'     Without `scaleOut`, `kafka.group.id` is accepted and ignored, as Spark
#'     does (there it only names the group for ACLs).
#'   * `kafka.*`: any librdkafka consumer setting, prefix removed. As in Spark,
#'     `kafka.auto.offset.reset`, `kafka.enable.auto.commit` and the
#'     deserializers are managed by the stream and are errors. One default
#'     differs from librdkafka's: `kafka.fetch.queue.backoff.ms` is 10 (not
#'     1000), so a batch that converts slower than Kafka delivers doesn't
#'     stall a second each time a partition's queue fills.
#' @param ... Unused.
#' @return A stream table of class `tbl_stream`: a lazy table for dplyr
#'   verbs (see [streamlyr-dplyr]), to pass to a `stream_write_*()` function.
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' stream_read_kafka(sc, options = list(
#'   kafka.bootstrap.servers = "localhost:9092",
#'   subscribe = "topic1"
#' ))
#'
#' # JSON values as typed columns
#' orders <- stream_read_kafka(sc, options = list(
#'   kafka.bootstrap.servers = "localhost:9092",
#'   subscribe = "orders",
#'   value.format = "json",
#'   value.schema = c(id = "integer", amount = "double", at = "timestamp")
#' ))
#' }
stream_read_kafka <- function(sc, name = NULL, options = list(), ...) {
  check_connection(sc)
  name <- name %||% random_string("streamlyr_tmp")
  check_string(name)
  options <- options_as_strings(schemas_as_ddl(options))
  checked <- engine_result(kafka_source_check(to_json(options)))
  warn_ignored(checked$ignored)
  new_tbl_stream(sc, name, checked$columns, source = list(kind = "kafka", options = options))
}

# `key.schema` and `value.schema` given as named type vectors
# (`c(id = "integer")`), as Spark's DDL (`"`id` integer"`).
schemas_as_ddl <- function(options) {
  for (key in intersect(c("key.schema", "value.schema"), names(options))) {
    types <- options[[key]]
    if (!is.null(names(types))) {
      options[[key]] <- paste0("`", names(types), "` ", unlist(types), collapse = ", ")
    }
  }
  options
}

warn_ignored <- function(ignored, call = rlang::caller_env()) {
  if (length(ignored) > 0) {
    cli::cli_warn(
      "{cli::qty(length(ignored))}Option{?s} {.field {ignored}} {?is/are} Spark's and {?has/have} no effect in streamlyr.",
      class = "streamlyr_warning_ignored_option",
      call = call
    )
  }
}

to_json <- function(x) {
  as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", digits = NA))
}

#' Read lines from a TCP socket as a stream
#'
#' sparklyr's `stream_read_socket()`: each line a TCP server sends is a row
#' of column `value` (and `timestamp`, its arrival time, with
#' `includeTimestamp = "true"`). The stream connects when it is written
#' somewhere, not when it is defined, as in Spark, so the server must be
#' listening by then (for a quick try: `nc -lk 9999`). When the server
#' closes the connection the stream keeps running, with nothing new, and
#' `print(stream)` says so.
#'
#' As in Spark, this source is for tests and demos: it can't recover. Lines
#' are held in memory until their batch commits, and a restarted stream
#' opens a new connection (the lines of a batch in flight at a crash are
#' lost, and `print(stream)` says how many).
#'
#' @inheritParams stream_read_kafka
#' @param columns Ignored, as in sparklyr: the columns are `value` (and
#'   `timestamp`).
#' @param options A named list: `host` and `port` (required),
#'   `includeTimestamp` (`"true"` or `"false"`, the default).
#' @return A stream table (class `tbl_stream`).
#' @family stream readers and writers
#' @export
#' @examples
#' \dontrun{
#' sc <- spark_connect(master = "local")
#' # in a shell: nc -lk 9999
#' stream <- stream_read_socket(sc, options = list(host = "localhost", port = 9999)) %>%
#'   stream_write_console()
#' }
stream_read_socket <- function(sc, name = NULL, columns = NULL, options = list(), ...) {
  check_connection(sc)
  name <- name %||% random_string("sparklyr_tmp_")
  check_string(name)
  options <- options_as_strings(options)
  checked <- engine_result(socket_source_check(to_json(options)))
  warn_ignored(checked$ignored)
  new_tbl_stream(sc, name, checked$columns, source = list(kind = "socket", options = options))
}
