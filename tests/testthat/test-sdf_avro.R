# sparklyr's sdf_from_avro() / sdf_to_avro() on streams: Spark's bare Avro
# bodies, checked against fastavro (an independent reader and writer).

order_schema <- '{"type": "record", "name": "order", "fields": [
  {"name": "id", "type": "int"}, {"name": "item", "type": ["null", "string"], "default": null},
  {"name": "amount", "type": "double"}]}'

read_topic <- function(sc, topic) {
  stream_read_kafka(sc, options = list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = topic, startingOffsets = "earliest"))
}

# Each of `values` (raw vectors) as one Kafka record.
produce_raw <- function(topic, values) {
  for (v in values) {
    f <- tempfile(fileext = ".bin")
    writeBin(v, f)
    system2("kcat", c("-P", "-b", kafka_bootstrap(), "-t", topic, shQuote(f)))
  }
}

# Bare bodies by fastavro, one raw vector each.
fastavro_bodies <- function(schema, rows_json) {
  hex <- run_python(c(
    "import io, json, fastavro",
    "schema = fastavro.parse_schema(json.loads(sys.argv[1]))",
    "for row in json.loads(sys.argv[2]):",
    "    b = io.BytesIO(); fastavro.schemaless_writer(b, schema, row); print(b.getvalue().hex())"
  ), schema, rows_json)
  lapply(hex, function(h) if (nzchar(h)) as.raw(strtoi(substring(h, seq(1, nchar(h), 2), seq(2, nchar(h), 2)), 16L)) else raw())
}

test_that("sdf_from_avro() reads fastavro's bodies into a struct, collected as one column a field", {
  sc <- spark_connect(master = "local")
  topic <- new_topic("sdf-avro-in")
  produce_raw(topic, fastavro_bodies(order_schema, '[{"id": 1, "item": "tea", "amount": 2.5},
    {"id": 2, "item": null, "amount": 150.0}, {"id": 3, "item": "\\u00e9clair", "amount": 320.25}]'))
  orders <- read_topic(sc, topic) %>% sdf_from_avro(c(value = order_schema))
  expect_identical(colnames(orders)[1:2], c("key", "value"))
  got <- dplyr::collect(orders)
  expect_identical(got$value_id, 1:3)
  expect_identical(got$value_item, c("tea", NA, "\u00e9clair"))
  expect_identical(got$value_amount, c(2.5, 150, 320.25))

  # A primitive schema, written as sparklyr's documentation does (no JSON quotes).
  names <- new_topic("sdf-avro-names")
  produce_raw(names, fastavro_bodies('"string"', '["tea", "\\u00e9clair"]'))
  got <- dplyr::collect(read_topic(sc, names) %>% sdf_from_avro(list(value = "string")))
  expect_identical(got$value, c("tea", "\u00e9clair"))

  # Spark's FAILFAST: a value that is not one record fails the stream.
  produce_raw(names, list(charToRaw("\x10no")))
  err <- expect_error(dplyr::collect(read_topic(sc, names) %>% sdf_from_avro(c(value = '"string"'))),
                      "Malformed records are detected in record parsing. Current parse Mode: FAILFAST")
})

test_that("sdf_to_avro() writes Spark's bodies: fastavro reads them with Spark's schema, and sdf_from_avro() reads them back", {
  sc <- spark_connect(master = "local")
  input <- new_topic("sdf-avro-json")
  output <- new_topic("sdf-avro-out")
  kcat_produce(input, c('{"id":1,"name":"tea"}', '{"id":2}', '{"id":3,"name":"\u00e9clair"}'))
  rows <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = input,
                                              startingOffsets = "earliest", value.format = "json",
                                              value.schema = "id INT, name STRING")) %>%
    mutate(value = named_struct("id", id, "name", name), key = name) %>%
    select(key, value) %>%
    sdf_to_avro()
  stream <- stream_write_kafka(rows, trigger = stream_trigger_interval(50), checkpoint = new_checkpoint(),
                               options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = output))
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for_rows(stream, 3))

  # Spark's toAvroType: a record `topLevelRecord` whose nullable fields are [type, "null"]; the nullable string key too.
  spark_schema <- '{"type": "record", "name": "topLevelRecord", "fields": [
    {"name": "id", "type": ["int", "null"]}, {"name": "name", "type": ["string", "null"]}]}'
  out <- tempfile("sdf-avro-")
  dir.create(out)
  for (part in c("key", "value")) {
    system2("kcat", c("-C", "-b", kafka_bootstrap(), "-t", output, "-e", "-q", "-D", "''", "-o", "beginning",
                      "-f", shQuote(if (part == "key") "%k" else "%s"), "-c", "3"), stdout = file.path(out, part))
  }
  decoded <- run_python(c(
    "import io, json, fastavro",
    "def read(path, schema):",
    "    data = io.BytesIO(open(path, 'rb').read()); out = []",
    "    while data.tell() < len(data.getvalue()): out.append(fastavro.schemaless_reader(data, fastavro.parse_schema(schema)))",
    "    return out",
    "print(json.dumps(dict(keys=read(sys.argv[2], ['string', 'null']), values=read(sys.argv[3], json.loads(sys.argv[1])))))"
  ), spark_schema, file.path(out, "key"), file.path(out, "value"))
  got <- jsonlite::fromJSON(decoded, simplifyVector = FALSE)
  # The NA key stays no key (Spark's to_avro is null-safe): two keys were written.
  expect_identical(got$keys, list("tea", "\u00e9clair"))
  expect_identical(got$values, list(list(id = 1L, name = "tea"), list(id = 2L, name = NULL), list(id = 3L, name = "\u00e9clair")))

  back <- dplyr::collect(read_topic(sc, output) %>% sdf_from_avro(c(key = '["string", "null"]', value = spark_schema)))
  expect_identical(back$key, c("tea", NA, "\u00e9clair"))
  expect_identical(back$value_id, 1:3)
})

test_that("sdf_from_avro() and sdf_to_avro() check their arguments before anything runs", {
  sc <- spark_connect(master = "local")
  s <- read_topic(sc, new_topic("sdf-avro-args"))
  err <- expect_error(sdf_from_avro(data.frame(value = 1), c(value = "string")), "expected a streaming dataframe")
  expect_identical(err$arg, "x")
  err <- expect_error(sdf_from_avro(s, "string"), "named list of columns")
  expect_identical(err$arg, "cols")
  err <- expect_error(sdf_from_avro(s, c(payload = "string")), "`payload` is not a column of `x`")
  expect_identical(err$arg, "cols")
  err <- expect_error(sdf_from_avro(s, c(value = '{"type": "recrod"}')), "the schema of `value` is not an Avro schema")
  expect_identical(err$arg, "cols")
  err <- expect_error(sdf_from_avro(s, c(value = "{not json")), "the schema of `value` is not JSON")
  expect_identical(err$arg, "cols")
  err <- expect_error(sdf_to_avro(s, "payload"), "`payload` is not a column of `x`")
  expect_identical(err$arg, "cols")
  # A column that is not binary: the pipeline's plan says so, naming `cols`.
  err <- expect_error(dplyr::collect(s %>% sdf_from_avro(c(topic = "string"))), "reads binary columns")
})
