# stream_read_socket(): a TCP server in this R process sends lines.

free_server <- function() {
  for (i in 1:50) {
    port <- sample(20000:40000, 1)
    server <- tryCatch(serverSocket(port), error = function(e) NULL)
    if (!is.null(server)) return(list(server = server, port = port))
  }
  skip("no free port for a test server")
}

test_that("each line a server sends is a row, with its arrival time; the server closing shows in print()", {
  sc <- spark_connect(master = "local")
  s <- free_server()
  on.exit(close(s$server))
  lines <- stream_read_socket(sc, options = list(host = "127.0.0.1", port = s$port, includeTimestamp = TRUE))
  expect_identical(colnames(lines), c("value", "timestamp"))
  before <- Sys.time()
  # The stream connects when it starts (the connection waits in the server's backlog).
  stream <- stream_write_memory(lines, "socket_lines", trigger = stream_trigger_interval(50), checkpoint = new_checkpoint())
  client <- socketAccept(s$server, blocking = TRUE, open = "w")
  writeLines(c("first", "second, with a comma", "\u00e9t\u00e9"), client)
  flush(client)
  expect_true(wait_for_rows(stream, 3))
  writeLines("fourth", client)
  flush(client)
  expect_true(wait_for_rows(stream, 4))
  close(client)
  expect_true(wait_for(function() any(grepl("Stream closed by 127.0.0.1", capture.output(print(stream))))))
  expect_identical(stream_state(stream), "active")
  got <- dplyr::collect(dplyr::tbl(sc, "socket_lines"))
  expect_identical(got$value, c("first", "second, with a comma", "\u00e9t\u00e9", "fourth"))
  expect_s3_class(got$timestamp, "POSIXct")
  expect_true(all(got$timestamp >= before - 1 & got$timestamp <= Sys.time() + 1))
  stream_stop(stream)
})

test_that("the socket source checks its options with Spark's messages, and needs no server to be defined", {
  sc <- spark_connect(master = "local")
  err <- expect_error(stream_read_socket(sc, options = list(port = 9999)), "Set a host to read from", fixed = TRUE)
  expect_identical(c(err$arg, err$option), c("options", "host"))
  err <- expect_error(stream_read_socket(sc, options = list(host = "localhost")), "Set a port to read from", fixed = TRUE)
  expect_identical(err$option, "port")
  expect_error(stream_read_socket(sc, options = list(host = "localhost", port = 1, includeTimestamp = "yes")), "includeTimestamp must be set")
  lazy <- stream_read_socket(sc, options = list(host = "localhost", port = "9999"))
  expect_s3_class(lazy, "tbl_stream")
  expect_identical(colnames(lazy), "value")
})

test_that("no server listening: the stream fails at start, naming the address", {
  sc <- spark_connect(master = "local")
  s <- free_server()
  close(s$server)
  lines <- stream_read_socket(sc, options = list(host = "127.0.0.1", port = s$port))
  err <- expect_error(stream_write_memory(lines, "nowhere", checkpoint = new_checkpoint()), "can't connect to 127.0.0.1")
  expect_identical(err$option, "host")
})

# Kafka values as typed columns: `value.format`, `value.schema`, `mode`.

read_formatted <- function(sc, topic, ...) {
  stream_read_kafka(sc, options = list(
    kafka.bootstrap.servers = kafka_bootstrap(), subscribe = topic, startingOffsets = "earliest", ...
  ))
}

test_that("JSON values produced by kcat become typed columns; malformed ones are NA and counted, tombstones are NA", {
  sc <- spark_connect(master = "local")
  topic <- new_topic("json")
  kcat_produce(topic, c(
    '{"id":1,"amount":250.5,"at":"2026-11-30T10:00:00Z","extra":"ignored"}',
    '{"id":2,"amount":50}',
    '{"id":3,"amount":"lots"}',
    "not json at all",
    "",
    '{"id":6,"amount":101,"at":"2026-11-30T10:00:06.250Z"}'
  ), keys = paste0("k", 1:6), tombstones = TRUE)
  orders <- read_formatted(sc, topic, value.format = "json", value.schema = "id INT, amount DOUBLE, at TIMESTAMP")
  expect_identical(colnames(orders), c("key", "id", "amount", "at", "topic", "partition", "offset", "timestamp", "timestampType"))
  big <- orders %>% filter(amount > 100) %>% select(id, amount, at, offset)
  stream <- stream_write_memory(big, "big_orders", trigger = stream_trigger_interval(50), checkpoint = new_checkpoint())
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for_rows(stream, 6))
  got <- dplyr::collect(dplyr::tbl(sc, "big_orders"))
  expect_identical(as.integer(got$id), c(1L, 6L))
  expect_identical(got$amount, c(250.5, 101))
  expect_equal(as.numeric(got$at), as.numeric(as.POSIXct(c("2026-11-30 10:00:00", "2026-11-30 10:00:06.25"), tz = "UTC")))
  all_rows <- dplyr::collect(orders)
  expect_identical(as.integer(all_rows$id), c(1L, 2L, NA, NA, NA, 6L))
  expect_true(is.na(all_rows$amount[5]), label = "the tombstone's fields")
  stats <- stream_stats(stream)
  expect_identical(stats$stats[[1]]$malformed_rows, 2)
  expect_output(print(stream), "malformed records (read as NA): 2", fixed = TRUE)
})

test_that("FAILFAST: a malformed value fails the stream with Spark's text and the record's place", {
  sc <- spark_connect(master = "local")
  topic <- new_topic("json")
  kcat_produce(topic, c('{"id":1}', '{"id":"one"}'), partition = 0)
  ids <- read_formatted(sc, topic, value.format = "json", value.schema = c(id = "integer"), mode = "FAILFAST")
  stream <- stream_write_memory(ids, "failfast_ids", trigger = stream_trigger_interval(50), checkpoint = new_checkpoint())
  expect_true(wait_for(function() stream_state(stream) == "failed"))
  expect_output(print(stream), "Parse Mode: FAILFAST", fixed = TRUE)
  err <- expect_error(stream_stop(stream), "Malformed records are detected in record parsing. Parse Mode: FAILFAST.", fixed = TRUE)
  expect_match(conditionMessage(err), paste0("topic ", topic, ", partition 0, offset 1"), fixed = TRUE)
})

test_that("CSV values with an R type vector -> dplyr -> CSV values (value.format = \"csv\"), read back by kcat and by streamlyr", {
  sc <- spark_connect(master = "local")
  input <- new_topic("csv-in")
  output <- new_topic("csv-out")
  kcat_produce(input, c("1,apple,3.5", "2,\"banana, ripe\",12", "3,cherry,", "4,date,20.25"))
  fruit <- read_formatted(sc, input, value.format = "csv",
                          value.schema = c(id = "integer", name = "character", price = "double"))
  priced <- fruit %>% filter(!is.na(price)) %>% mutate(total = price * 2) %>% select(id, name, total)
  stream <- stream_write_kafka(priced, trigger = stream_trigger_interval(50), checkpoint = new_checkpoint(),
                               options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = output, value.format = "csv"))
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for_rows(stream, 4))
  expect_identical(kcat_read(output, 3)$value, c("1,apple,7.0", "2,\"banana, ripe\",24.0", "4,date,40.5"))
  back <- dplyr::collect(read_formatted(sc, output, value.format = "csv", value.schema = "id INT, name STRING, total DOUBLE"))
  expect_identical(as.integer(back$id), c(1L, 2L, 4L))
  expect_identical(back$name, c("apple", "banana, ripe", "date"))
  expect_identical(back$total, c(7, 24, 40.5))
})

test_that("message format options are checked when the stream is defined, naming the option", {
  sc <- spark_connect(master = "local")
  read <- function(...) stream_read_kafka(sc, options = list(kafka.bootstrap.servers = "localhost:1", subscribe = "t", ...))
  err <- expect_error(read(value.format = "json"), "`value.format` needs `value.schema`")
  expect_identical(c(err$arg, err$option), c("options", "value.schema"))
  err <- expect_error(read(value.format = "xml", value.schema = "a INT"), "must be \"json\", \"csv\", \"avro\" or \"avro-confluent\"")
  expect_identical(err$option, "value.format")
  err <- expect_error(read(value.format = "json", value.schema = c(a = "complex")), "column `a` has type \"complex\"")
  expect_identical(err$option, "value.schema")
  err <- expect_error(read(value.format = "json", value.schema = "offset BIGINT"), "names column `offset`, which the stream already has")
  expect_identical(err$option, "value.schema")
  err <- expect_error(read(value.format = "json", value.schema = "a INT", mode = "DROPMALFORMED"), "DROPMALFORMED")
  expect_identical(err$option, "mode")
  expect_identical(colnames(read(key.format = "csv", key.schema = "region STRING")),
                   c("region", "value", "topic", "partition", "offset", "timestamp", "timestampType"))
  df <- data.frame(value = "x")
  err <- expect_error(stream_write_kafka(df, options = list(kafka.bootstrap.servers = "localhost:1", topic = "t", value.format = "csv")),
                      "has a `value` column")
  expect_identical(err$option, "value.format")
  # avro-confluent resolves writer schemas into the reader's by record name: DDL has none.
  err <- expect_error(read(value.format = "avro-confluent", schema.registry.url = "http://127.0.0.1:1", value.schema = "id INT"),
                      "must be Avro schema JSON")
  expect_identical(err$option, "value.schema")
  # Columns must fit the Avro schema's fields, checked before anything starts.
  avro_sink <- function(df) {
    stream_write_kafka(df, options = list(kafka.bootstrap.servers = "localhost:1", topic = "t", value.format = "avro",
                                          value.schema = '{"type": "record", "name": "r", "fields": [{"name": "id", "type": "int"}]}'))
  }
  err <- expect_error(avro_sink(data.frame(id = 1L, extra = "x")), "column `extra` is not a field of `value.schema`")
  expect_identical(err$option, "value.schema")
  # Registry options without avro-confluent would do nothing: an error, naming them.
  err <- expect_error(read(value.format = "json", value.schema = "a INT", value.subject = "s"), "for `value.format = \"avro-confluent\"`")
  expect_identical(err$option, "value.subject")
  err <- expect_error(read(value.format = "json", value.schema = "a INT", schema.registry.url = "http://127.0.0.1:1"), "is for the schema registry")
  expect_identical(err$option, "schema.registry.url")
  err <- expect_error(stream_write_kafka(data.frame(a = 1), options = list(kafka.bootstrap.servers = "localhost:1", topic = "t",
                                                                          value.format = "avro", value.subject = "s")),
                      "names a schema registry subject")
  expect_identical(err$option, "value.subject")
  # Credentials in the registry's address would be printed with it.
  err <- expect_error(read(value.format = "avro-confluent", schema.registry.url = "http://me:s3cret@127.0.0.1:1"), "must not hold credentials")
  expect_identical(err$option, "schema.registry.url")
  expect_false(grepl("s3cret", conditionMessage(err)))
  err <- expect_error(stream_write_kafka(data.frame(a = 1), options = list(
    kafka.bootstrap.servers = "localhost:1", topic = "t", value.format = "avro-confluent", value.schema = "a DOUBLE",
    schema.registry.url = "me:s3cret@127.0.0.1:1"
  )), "must not hold credentials")
  expect_false(grepl("s3cret", conditionMessage(err)))
})

test_that("Avro bodies written by fastavro are read into columns; streamlyr's Avro values are read by fastavro", {
  sc <- spark_connect(master = "local")
  input <- new_topic("avro-in")
  output <- new_topic("avro-out")
  order_schema <- '{"type": "record", "name": "order", "fields": [
    {"name": "id", "type": "int"}, {"name": "item", "type": ["null", "string"], "default": null},
    {"name": "amount", "type": "double"}, {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}'
  # fastavro writes one bare record a value; kcat sends each file as one record.
  dir <- tempfile("avro-")
  run_python(c(
    "import io, json, fastavro, datetime",
    "schema = fastavro.parse_schema(json.loads(sys.argv[1]))",
    "t = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)",
    "rows = [dict(id=1, item='tea', amount=2.5, at=t), dict(id=2, item=None, amount=150.0, at=t),",
    "        dict(id=3, item='\u00e9clair', amount=320.25, at=t + datetime.timedelta(milliseconds=1500))]",
    "os.makedirs(sys.argv[2])",
    "for i, row in enumerate(rows):",
    "    b = io.BytesIO(); fastavro.schemaless_writer(b, schema, row)",
    "    open(os.path.join(sys.argv[2], '%d.avro' % i), 'wb').write(b.getvalue())"
  ), order_schema, dir)
  for (f in sort(list.files(dir, full.names = TRUE))) {
    system2("kcat", c("-P", "-b", kafka_bootstrap(), "-t", input, shQuote(f)))
  }
  orders <- read_formatted(sc, input, value.format = "avro", value.schema = order_schema)
  got <- dplyr::collect(orders)
  expect_identical(as.integer(got$id), 1:3)
  expect_identical(got$item, c("tea", NA, "\u00e9clair"))
  expect_identical(got$amount, c(2.5, 150, 320.25))
  expect_equal(as.numeric(got$at), as.numeric(as.POSIXct("2026-11-30 12:00:00", tz = "UTC")) + c(0, 0, 1.5))

  big <- orders %>% filter(amount > 100) %>% mutate(amount = amount * 2) %>% select(id, item, amount, at)
  stream <- stream_write_kafka(big, trigger = stream_trigger_interval(50), checkpoint = new_checkpoint(),
                               options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = output,
                                              value.format = "avro", value.schema = order_schema))
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for_rows(stream, 3))
  expect_true(wait_for(function() nrow(kcat_read(output, 2, timeout = 0)) >= 2))
  # Each value as one file, decoded by fastavro with the same schema.
  out_dir <- tempfile("avro-out-")
  dir.create(out_dir)
  system2("kcat", c("-C", "-b", kafka_bootstrap(), "-t", output, "-e", "-q", "-D", "''", "-o", "beginning",
                    "-f", shQuote("%s"), "-c", "2"), stdout = file.path(out_dir, "all"))
  decoded <- run_python(c(
    "import io, json, fastavro",
    "schema = fastavro.parse_schema(json.loads(sys.argv[1]))",
    "data = io.BytesIO(open(sys.argv[2], 'rb').read())",
    "while data.tell() < len(data.getvalue()):",
    "    r = fastavro.schemaless_reader(data, schema)",
    "    print(json.dumps(dict(id=r['id'], item=r['item'], amount=r['amount'], at=r['at'].isoformat())))"
  ), order_schema, file.path(out_dir, "all"))
  rows <- lapply(decoded, jsonlite::fromJSON)
  expect_identical(vapply(rows, function(r) r$id, 0L), 2:3)
  expect_identical(lapply(rows, function(r) r$item), list(NULL, "\u00e9clair"))
  expect_identical(vapply(rows, function(r) r$amount, 0), c(300, 640.5))
  expect_identical(vapply(rows, function(r) r$at, ""), c("2026-11-30T12:00:00+00:00", "2026-11-30T12:00:01.500000+00:00"))
})

# Confluent's wire format with a schema registry (the test registry, see start_registry()).

order_v1 <- '{"type": "record", "name": "order", "fields": [{"name": "id", "type": "int"}, {"name": "amount", "type": "double"}]}'
order_v2 <- '{"type": "record", "name": "order", "fields": [{"name": "id", "type": "int"}, {"name": "amount", "type": "double"},
  {"name": "note", "type": "string", "default": "none"}]}'

# confluent-kafka's AvroSerializer: records as JSON objects, each with the schema to write it in.
produce_confluent <- function(registry, topic, schemas, rows) {
  run_python(c(
    "import json",
    "from confluent_kafka import Producer",
    "from confluent_kafka.schema_registry import SchemaRegistryClient",
    "from confluent_kafka.schema_registry.avro import AvroSerializer",
    "from confluent_kafka.serialization import SerializationContext, MessageField",
    "registry = SchemaRegistryClient({'url': sys.argv[1]})",
    "producer = Producer({'bootstrap.servers': sys.argv[2]})",
    "for schema, row in zip(json.loads(sys.argv[4]), json.loads(sys.argv[5])):",
    "    value = AvroSerializer(registry, schema)(row, SerializationContext(sys.argv[3], MessageField.VALUE))",
    "    producer.produce(sys.argv[3], value=value)",
    "producer.flush()"
  ), registry$url, kafka_bootstrap(), topic, jsonlite::toJSON(schemas), jsonlite::toJSON(rows, auto_unbox = TRUE))
}

test_that("avro-confluent: confluent-kafka's records in two schema versions are read into the latest; ours are read by its AvroDeserializer", {
  sc <- spark_connect(master = "local")
  registry <- start_registry()
  input <- new_topic("orders")
  output <- new_topic("big-orders")
  produce_confluent(registry, input, c(order_v1, order_v1, order_v2, order_v2),
                    list(list(id = 1, amount = 5), list(id = 2, amount = 50.5),
                         list(id = 3, amount = 7, note = "late"), list(id = 4, amount = 99, note = "rush")))
  # A frame whose schema id the registry never gave, and a record without a frame.
  dir <- tempfile("frames-")
  dir.create(dir)
  writeBin(as.raw(c(0, 0, 0, 0, 99, 2, 0)), file.path(dir, "unknown-id"))
  writeBin(as.raw(c(2, 0)), file.path(dir, "bare"))
  system2("kcat", c("-P", "-b", kafka_bootstrap(), "-t", input, file.path(dir, c("unknown-id", "bare"))))
  options <- list(value.format = "avro-confluent", schema.registry.url = registry$url)
  orders <- do.call(read_formatted, c(list(sc, input), options))
  expect_identical(colnames(orders)[2:4], c("id", "amount", "note"))
  stream <- stream_write_memory(orders %>% select(id, amount, note), "confluent_orders",
                                trigger = stream_trigger_interval(50), checkpoint = new_checkpoint())
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for_rows(stream, 6))
  got <- dplyr::collect(dplyr::tbl(sc, "confluent_orders"))
  expect_identical(as.integer(got$id), c(1:4, NA, NA))
  expect_identical(got$amount, c(5, 50.5, 7, 99, NA, NA))
  expect_identical(got$note, c("none", "none", "late", "rush", NA, NA), label = "v1 records read with v2's default")
  expect_identical(stream_stats(stream)$stats[[1]]$malformed_rows, 2)

  big <- orders %>% filter(amount > 10) %>% mutate(amount = amount * 2) %>% select(id, amount, note)
  written <- stream_write_kafka(big, trigger = stream_trigger_interval(50), checkpoint = new_checkpoint(),
                                options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = output,
                                               value.format = "avro-confluent", value.schema = order_v2,
                                               schema.registry.url = registry$url))
  on.exit(stream_stop(written), add = TRUE)
  expect_true(wait_for(function() nrow(kcat_read(output, 2, timeout = 0)) >= 2))
  decoded <- run_python(c(
    "import json",
    "from confluent_kafka import Consumer",
    "from confluent_kafka.schema_registry import SchemaRegistryClient",
    "from confluent_kafka.schema_registry.avro import AvroDeserializer",
    "from confluent_kafka.serialization import SerializationContext, MessageField",
    "read = AvroDeserializer(SchemaRegistryClient({'url': sys.argv[1]}))",
    "c = Consumer({'bootstrap.servers': sys.argv[2], 'group.id': 'check', 'auto.offset.reset': 'earliest'})",
    "c.subscribe([sys.argv[3]])",
    "got = []",
    "while len(got) < 2:",
    "    m = c.poll(10)",
    "    if m is None: break",
    "    if m.error(): continue",
    "    got.append(read(m.value(), SerializationContext(sys.argv[3], MessageField.VALUE)))",
    "c.close()",
    "for r in got: print(json.dumps(r))"
  ), registry$url, kafka_bootstrap(), output)
  rows <- lapply(decoded, jsonlite::fromJSON)
  expect_identical(rows, list(list(id = 2L, amount = 101, note = "none"), list(id = 4L, amount = 198, note = "rush")))
  state <- jsonlite::fromJSON(registry$state)
  expect_identical(names(state$subjects), c(paste0(input, "-value"), paste0(output, "-value")))
})

# The schema id in each value's frame, as confluent-kafka's consumer gets them.
frame_ids <- function(topic, n) {
  as.integer(run_python(c(
    "from confluent_kafka import Consumer",
    "import uuid",
    "c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': str(uuid.uuid4()), 'enable.auto.commit': False,",
    "              'auto.offset.reset': 'earliest'})",
    "c.subscribe([sys.argv[2]])",
    "got = []",
    "while len(got) < int(sys.argv[3]):",
    "    m = c.poll(10)",
    "    if m is None: break",
    "    if m.error(): continue",
    "    v = m.value(); got.append(int.from_bytes(v[1:5], 'big') if v[0] == 0 else -1)",
    "c.close()",
    "for i in got: print(i)"
  ), kafka_bootstrap(), topic, n))
}

test_that("avro-confluent sink: the schema id is settled when the stream starts and kept in the checkpoint", {
  sc <- spark_connect(master = "local")
  registry <- start_registry()
  input <- new_topic("ids-in")
  output <- new_topic("ids-out")
  checkpoint <- new_checkpoint()
  write <- function(pipeline, schema) {
    stream_write_kafka(pipeline, trigger = stream_trigger_interval(50), checkpoint = checkpoint,
                       options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = output,
                                      value.format = "avro-confluent", value.schema = schema,
                                      schema.registry.url = registry$url))
  }
  orders <- read_formatted(sc, input, value.format = "json", value.schema = "id INT, amount DOUBLE")
  # Another subject's schema first, so that the sink's id is not 1 by chance.
  produce_confluent(registry, new_topic("other"), order_v2, list(list(id = 0, amount = 0, note = "x")))
  kcat_produce(input, c('{"id":1,"amount":5}', '{"id":2,"amount":6}'))
  stream <- write(orders %>% select(id, amount), order_v1)
  expect_true(wait_for_rows(stream, 2))
  stream_stop(stream)
  kept <- jsonlite::fromJSON(readLines(file.path(checkpoint, "sinks", "0"))[2])$valueSchema
  expect_identical(kept$subject, paste0(output, "-value"))
  expect_true(kept$id > 1)

  # The registry is down: a restart writes with the kept id, asking nothing.
  registry$process$kill()
  registry$process$wait()
  kcat_produce(input, '{"id":3,"amount":7}')
  stream <- write(orders %>% select(id, amount), order_v1)
  expect_true(wait_for_rows(stream, 1))
  stream_stop(stream)
  expect_identical(frame_ids(output, 3), rep(kept$id, 3))

  # Another schema on restart must be registered: retried until the registry is back.
  kcat_produce(input, '{"id":4,"amount":8}')
  stream <- write(orders %>% mutate(note = "new") %>% select(id, amount, note), order_v2)
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for(function() any(grepl("retrying", capture.output(print(stream))))))
  back <- start_registry(state = registry$state, port = registry$port)
  expect_true(wait_for_rows(stream, 1))
  ids <- frame_ids(output, 4)
  expect_identical(ids[1:3], rep(kept$id, 3))
  expect_false(ids[4] == kept$id)
  expect_identical(jsonlite::fromJSON(readLines(file.path(checkpoint, "sinks", "0"))[2])$valueSchema$id, ids[4])
})

test_that("avro-confluent: a registry down for a while is retried; its credentials are never printed", {
  sc <- spark_connect(master = "local")
  registry <- start_registry(auth = "reader:s3cret-pw")
  input <- new_topic("orders")
  expect_error(produce_confluent(registry, input, order_v1, list(list(id = 1, amount = 5))), "Unauthorized")
  # Without `value.schema` the reader schema is the subject's latest, fetched now.
  err <- expect_error(read_formatted(sc, input, value.format = "avro-confluent", schema.registry.url = registry$url,
                                     schema.registry.basic.auth.user.info = "reader:wrong"),
                      "refused the credentials")
  expect_identical(err$option, "schema.registry.basic.auth.user.info")
  expect_false(grepl("wrong", conditionMessage(err)))
  orders <- read_formatted(sc, input, value.format = "avro-confluent", schema.registry.url = registry$url,
                           value.schema = order_v1, schema.registry.basic.auth.user.info = "reader:s3cret-pw")
  checkpoint <- new_checkpoint()
  stream <- stream_write_memory(orders %>% select(id, amount), "orders_after_outage",
                                trigger = stream_trigger_interval(50), checkpoint = checkpoint)
  on.exit(stream_stop(stream), add = TRUE)
  # The registry goes away before the first record: the stream retries until it is back.
  registry$process$kill()
  registry$process$wait()
  plain <- start_registry(state = registry$state)
  produce_confluent(plain, input, c(order_v1, order_v1), list(list(id = 1, amount = 5), list(id = 2, amount = 6)))
  plain$process$kill()
  plain$process$wait()
  expect_true(wait_for(function() any(grepl("retrying", capture.output(print(stream))))))
  expect_identical(streamlyr:::query_status(stream$ptr)$rows_out, 0)
  back <- start_registry(state = registry$state, port = registry$port, auth = "reader:s3cret-pw")
  expect_true(wait_for_rows(stream, 2))
  expect_identical(as.integer(dplyr::collect(dplyr::tbl(sc, "orders_after_outage"))$id), 1:2)
  expect_false(any(grepl("s3cret", capture.output(print(stream), print(orders), str(stream)))))
  files <- list.files(dirname(checkpoint), recursive = TRUE, full.names = TRUE, all.files = TRUE)
  expect_false(any(vapply(files, function(f) any(grepl("s3cret", readLines(f, warn = FALSE), fixed = TRUE)), NA)))
})

# Outside a group the source takes records from librdkafka in batches
# (source/consume_batch.rs, reading its messages in place); in a group it
# polls them one by one through rust-rdkafka. The same records, read both ways.
test_that("records read in batches (alone) and one by one (in a group) are the same rows, keys, headers and times included", {
  sc <- spark_connect(master = "local")
  appended <- new_topic("appended")
  created <- new_topic("created")
  n <- 3000
  run_python(c(
    "from confluent_kafka import Producer",
    "from confluent_kafka.admin import AdminClient, NewTopic",
    "admin = AdminClient({'bootstrap.servers': sys.argv[1]})",
    "topics = [NewTopic(sys.argv[2], 3, 1, config={'message.timestamp.type': 'LogAppendTime'}), NewTopic(sys.argv[3], 2, 1)]",
    "for f in admin.create_topics(topics).values(): f.result(30)",
    "p = Producer({'bootstrap.servers': sys.argv[1]})",
    "for i in range(int(sys.argv[4])):",
    "    key = None if i % 7 == 0 else ('k%d' % i).encode()",
    "    value = None if i % 11 == 0 else (b'' if i % 13 == 0 else ('v%d' % i).encode())",
    "    headers = None if i % 2 else [('n', str(i).encode()), ('empty', None)]",
    "    for topic in sys.argv[2:4]:",
    "        p.produce(topic, value=value, key=key, headers=headers, timestamp=1700000000000 + i)",
    "p.flush()"
  ), kafka_bootstrap(), appended, created, n)
  read_all <- function(name, extra) {
    options <- c(list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = paste(appended, created, sep = ","),
                      startingOffsets = "earliest", includeHeaders = TRUE, maxOffsetsPerTrigger = 1000), extra)
    stream <- stream_read_kafka(sc, options = options) %>%
      stream_write_memory(name, checkpoint = new_checkpoint(), trigger = stream_trigger_interval(100))
    expect_true(wait_for_rows(stream, 2 * n))
    stream_stop(stream)
    rows <- dplyr::collect(dplyr::tbl(sc, name))
    rows <- as.data.frame(rows[order(rows$topic, rows$partition, rows$offset), ])
    row.names(rows) <- NULL
    rows
  }
  alone <- read_all("read_alone", list())
  grouped <- read_all("read_in_group", list(scaleOut = "group", kafka.group.id = new_topic("group")))
  expect_equal(nrow(alone), 2 * n)
  expect_identical(alone, grouped)

  # And both are what was produced.
  number <- function(rows) as.integer(sub("^k", "", vapply(rows$key, function(k) if (is.null(k)) NA_character_ else rawToChar(k), "")))
  made <- alone[alone$topic == created, ]
  expect_identical(sum(vapply(made$key, is.null, TRUE)), sum(seq(0, n - 1) %% 7 == 0))
  keyed <- made[!vapply(made$key, is.null, TRUE), ]
  i <- number(keyed)
  expect_equal(as.numeric(keyed$timestamp), (1700000000000 + i) / 1000, label = "create times, as sent")
  expect_true(all(made$timestampType == 0))
  values <- vapply(keyed$value, function(v) if (is.null(v)) "<null>" else rawToChar(v), "")
  expect_identical(values, ifelse(i %% 11 == 0, "<null>", ifelse(i %% 13 == 0, "", paste0("v", i))))
  # Headers as the memory table shows them: values in hex, a null value empty.
  hex <- function(s) paste(sprintf("%02x", as.integer(charToRaw(s))), collapse = "")
  even <- i[i %% 2 == 0]
  expect_identical(keyed$headers[i %% 2 == 0],
                   sprintf("[{key: n, value: %s}, {key: empty, value: }]", vapply(as.character(even), hex, "", USE.NAMES = FALSE)))
  expect_true(all(is.na(keyed$headers[i %% 2 == 1])))
  appended_rows <- alone[alone$topic == appended, ]
  expect_true(all(appended_rows$timestampType == 1), label = "the broker's append times")
  expect_true(all(as.numeric(appended_rows$timestamp) > 1700000000 + n / 1000))
})
