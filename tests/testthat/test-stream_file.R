# The file family: sparklyr's own round trips, each checked for content by
# a reader that is not streamlyr (R's read.csv/readLines/jsonlite, pyarrow),
# reading only what the sink committed in `_spark_metadata`.

people <- data.frame(
  id = 1:6,
  x = c(0.5, NA, 2, -1.25, 1e6, 3),
  s = c("a", "b,c", NA, "d \"q\"", "e f", "g"),
  flag = c(TRUE, FALSE, NA, TRUE, TRUE, FALSE),
  stringsAsFactors = FALSE
)

new_folders <- function() {
  root <- tempfile("files-")
  list(root = root, input = file.path(root, "in"), output = file.path(root, "out"))
}

# What R's read.csv makes of the rows, in `people`'s column order: Spark
# writes logicals as true/false, which read.csv leaves as text.
by_id <- function(df) {
  df <- df[order(df$id), names(people), drop = FALSE]
  df$flag <- as.logical(df$flag)
  rownames(df) <- NULL
  df
}

run_once <- function(stream) {
  expect_true(wait_stopped(stream))
  expect_identical(stream_state(stream), "stopped")
  invisible(stream)
}

test_that("csv -> csv with `|` keeps every row, column and NA", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(people[1:3, ], d$input, "a.csv", na = "")
  put_csv(people[4:6, ], d$input, "b.csv", na = "")
  input <- stream_read_csv(sc, d$input)
  expect_identical(colnames(input), c("id", "x", "s", "flag"))
  run_once(stream_write_csv(input, d$output, delimiter = "|", escape = "\"", trigger = stream_trigger_once()))
  back <- read_committed(d$output, function(f) utils::read.csv(f, sep = "|", stringsAsFactors = FALSE, na.strings = ""))
  expect_equal(by_id(back), people)
  parts <- basename(committed_files(d$output))
  expect_true(all(grepl("^part-[0-9]{5}-[0-9a-f-]{36}\\.c000\\.csv$", parts)), label = paste(parts, collapse = " "))
  expect_true(dir.exists(file.path(d$output, "checkpoint", "offsets")), label = "sparklyr's default checkpoint, in the output folder")
})

test_that("the CSV writer's header, quote and null_value are Spark's header, quote and nullValue", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(people, d$input, "a.csv", na = "")
  run_once(stream_write_csv(stream_read_csv(sc, d$input), d$output, header = FALSE, quote = "'",
                            null_value = "NULL", trigger = stream_trigger_once()))
  lines <- unlist(lapply(committed_files(d$output), readLines, encoding = "UTF-8"))
  expect_length(lines, nrow(people))
  expect_false(any(grepl("^id,", lines)), label = "no header line")
  row <- function(id) lines[startsWith(lines, paste0(id, ","))]
  expect_match(row(2), "^2,NULL,'b,c',false$")
  expect_match(row(3), "^3,2(\\.0)?,NULL,NULL$")
  expect_match(row(4), ",d \"q\",", fixed = FALSE)
  back <- utils::read.csv(text = lines, header = FALSE, quote = "'", na.strings = "NULL",
                          col.names = names(people), stringsAsFactors = FALSE)
  expect_equal(by_id(back), people)
})

test_that("csv -> memory reads the inferred types", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(people, d$input, "a.csv", na = "")
  stream <- stream_read_csv(sc, d$input) %>%
    stream_write_memory("files_memory", trigger = stream_trigger_once(), checkpoint = new_checkpoint())
  run_once(stream)
  got <- dplyr::collect(dplyr::tbl(sc, "files_memory"))
  expect_identical(vapply(got, function(c) class(c)[1], ""), c(id = "integer", x = "numeric", s = "character", flag = "logical"))
  expect_equal(by_id(as.data.frame(got)), people)
})

test_that("text -> text keeps every line", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  lines <- c("first line", "", "a line, with a comma", "\u00e9t\u00e9 \"quoted\"")
  put_lines(lines[1:2], d$input, "a.txt")
  put_lines(lines[3:4], d$input, "b.txt")
  input <- stream_read_text(sc, d$input)
  expect_identical(colnames(input), "line")
  run_once(stream_write_text(input, d$output, trigger = stream_trigger_once()))
  back <- unlist(lapply(committed_files(d$output), readLines, encoding = "UTF-8"))
  expect_setequal(back, lines)
  expect_length(back, length(lines))
})

test_that("csv -> json -> csv gives the rows back, and JSON leaves NA fields out as Spark does", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  json <- file.path(d$root, "json")
  put_csv(people, d$input, "a.csv", na = "")
  run_once(stream_read_csv(sc, d$input) %>% stream_write_json(json, trigger = stream_trigger_once()))
  records <- unlist(lapply(committed_files(json), readLines))
  expect_length(records, nrow(people))
  third <- jsonlite::fromJSON(records[grepl('"id":3\\b', records)])
  expect_identical(sort(names(third)), c("id", "x"), label = "the NA fields of row 3 are left out")
  # escape = "\"" doubles quotes, as R's readers expect (Spark's default escapes them with \).
  run_once(stream_read_json(sc, json) %>% stream_write_csv(d$output, escape = "\"", trigger = stream_trigger_once()))
  back <- read_committed(d$output, function(f) utils::read.csv(f, stringsAsFactors = FALSE, na.strings = ""))
  expect_equal(by_id(back), people)
})

test_that("csv -> parquet -> csv gives the rows back, and pyarrow reads the parquet files", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  parquet <- file.path(d$root, "parquet")
  put_csv(people, d$input, "a.csv", na = "")
  run_once(stream_read_csv(sc, d$input) %>% stream_write_parquet(parquet, trigger = stream_trigger_once()))
  files <- committed_files(parquet)
  expect_true(all(grepl("\\.c000\\.snappy\\.parquet$", files)))
  run_once(stream_read_parquet(sc, parquet) %>% stream_write_csv(d$output, escape = "\"", trigger = stream_trigger_once()))
  back <- read_committed(d$output, function(f) utils::read.csv(f, stringsAsFactors = FALSE, na.strings = ""))
  expect_equal(by_id(back), people)

  expect_equal(by_id(read_by_pyarrow("parquet", files)), people)
})

test_that("csv -> orc -> csv gives the rows back, and pyarrow reads the ORC files", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  orc <- file.path(d$root, "orc")
  put_csv(people, d$input, "a.csv", na = "")
  run_once(stream_read_csv(sc, d$input) %>% stream_write_orc(orc, trigger = stream_trigger_once()))
  files <- committed_files(orc)
  expect_true(length(files) > 0 && all(grepl("\\.c000\\.snappy\\.orc$", files)), label = paste(files, collapse = " "))
  orc_in <- stream_read_orc(sc, orc)
  expect_identical(colnames(orc_in), names(people))
  run_once(orc_in %>% stream_write_csv(d$output, escape = "\"", trigger = stream_trigger_once()))
  back <- read_committed(d$output, function(f) utils::read.csv(f, stringsAsFactors = FALSE, na.strings = ""))
  expect_equal(by_id(back), people)

  expect_equal(by_id(read_by_pyarrow("orc", files)), people)

  zstd <- file.path(d$root, "orc-zstd")
  run_once(stream_read_csv(sc, d$input) %>%
    stream_write_orc(zstd, options = list(compression = "zstd"), trigger = stream_trigger_once()))
  expect_true(all(grepl("\\.zstd\\.orc$", committed_files(zstd))))
  expect_error(
    stream_read_csv(sc, d$input) %>% stream_write_orc(file.path(d$root, "bad"), options = list(compression = "brotli")),
    class = "streamlyr_error_config"
  )
})

test_that("a folder Spark's file sink wrote is read through Spark's `_spark_metadata` log", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(people, d$input, "a.csv", na = "")
  written_by_spark <- file.path(d$root, "spark")
  run_python(c(
    "import sys, tempfile",
    "from pyspark.sql import SparkSession",
    "spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()",
    "schema = spark.read.option('header', True).option('inferSchema', True).csv(sys.argv[1]).schema",
    "q = (spark.readStream.schema(schema).option('header', True).csv(sys.argv[1]).writeStream.format('json')",
    "     .option('path', sys.argv[2]).option('checkpointLocation', tempfile.mkdtemp()).trigger(availableNow=True).start())",
    "q.awaitTermination()"
  ), d$input, written_by_spark)
  expect_true(file.exists(file.path(written_by_spark, "_spark_metadata", "0")))
  # A file the log does not name (what a crashed batch leaves) is not read.
  put_lines('{"id":99,"s":"leftover"}', written_by_spark, "part-00000-leftover.json")
  stream <- stream_read_json(sc, written_by_spark) %>%
    stream_write_memory("from_spark", trigger = stream_trigger_once(), checkpoint = new_checkpoint())
  run_once(stream)
  got <- as.data.frame(dplyr::collect(dplyr::tbl(sc, "from_spark")))
  expect_equal(sort(got$id), people$id)
  # Not row 4: Spark's CSV reader (escape `\`) reads R's doubled quotes its own way.
  expect_setequal(got$s[got$id != 4], people$s[people$id != 4])
})

test_that("partition_by writes key=value folders, read back as a column", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(iris, d$input, "iris.csv")
  run_once(
    stream_read_csv(sc, d$input) %>%
      stream_write_parquet(d$output, partition_by = "Species", trigger = stream_trigger_once())
  )
  expect_setequal(grep("=", list.files(d$output), value = TRUE), paste0("Species=", levels(iris$Species)))
  stream <- stream_read_parquet(sc, d$output) %>%
    stream_write_memory("iris_back", trigger = stream_trigger_once(), checkpoint = new_checkpoint())
  run_once(stream)
  back <- dplyr::collect(dplyr::tbl(sc, "iris_back"))
  expect_identical(names(back), names(iris)[c(1:4, 5)])
  expect_identical(as.vector(table(back$Species)[levels(iris$Species)]), as.vector(table(iris$Species)))
  expect_equal(sum(back$Sepal.Length), sum(iris$Sepal.Length))
})

test_that("files that arrive while the stream runs are each read once, and a restart reads nothing twice", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  checkpoint <- new_checkpoint()
  put_csv(data.frame(n = 1:3), d$input, "a.csv")
  input <- stream_read_csv(sc, d$input)
  stream <- stream_write_csv(input, d$output, trigger = stream_trigger_interval(100), checkpoint = checkpoint)
  expect_true(wait_for_rows(stream, 3))
  put_csv(data.frame(n = 4:5), d$input, "b.csv")
  put_csv(data.frame(n = 6L), d$input, "c.csv")
  expect_true(wait_for_rows(stream, 6))
  stream_stop(stream)
  put_csv(data.frame(n = 7:9), d$input, "d.csv")
  stream <- stream_write_csv(input, d$output, trigger = stream_trigger_once(), checkpoint = checkpoint)
  run_once(stream)
  expect_equal(streamlyr:::query_status(stream$ptr)$rows_in, 3, label = "rows the restarted stream read")
  expect_equal(sort(read_committed(d$output)$n), 1:9)
  sources <- list.files(file.path(checkpoint, "sources", "0"))
  expect_true(length(sources) >= 2, label = "the source's file log in the checkpoint")
})

test_that("a named `columns` vector sets the types; Spark's parse modes apply", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_lines(c("n,word", "1,one", "two,2", "3,three"), d$input, "a.csv")
  input <- stream_read_csv(sc, d$input, columns = c(n = "integer", word = "character"))
  run_once(stream_write_memory(input, "typed", trigger = stream_trigger_once(), checkpoint = new_checkpoint()))
  got <- dplyr::collect(dplyr::tbl(sc, "typed"))
  expect_identical(got$n[order(got$word)], c(NA, 1L, 3L)) # words "2", "one", "three"
  input <- stream_read_csv(sc, d$input, columns = c(n = "integer", word = "character"), options = list(mode = "DROPMALFORMED"))
  run_once(stream_write_memory(input, "dropped", trigger = stream_trigger_once(), checkpoint = new_checkpoint()))
  expect_identical(sort(dplyr::collect(dplyr::tbl(sc, "dropped"))$n), c(1L, 3L))
  input <- stream_read_csv(sc, d$input, columns = c(n = "integer", word = "character"), options = list(mode = "FAILFAST"))
  stream <- stream_write_memory(input, "failed", trigger = stream_trigger_once(), checkpoint = new_checkpoint())
  expect_true(wait_stopped(stream))
  expect_error(stream_stop(stream), "line 3")
})

test_that("bad input is a clear error naming the argument, before anything runs", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  missing <- file.path(d$root, "nowhere")
  expect_snapshot(stream_read_csv(sc, missing), error = TRUE, transform = function(x) gsub(d$root, "<root>", x, fixed = TRUE))
  dir.create(d$input, recursive = TRUE)
  expect_snapshot(stream_read_json(sc, d$input), error = TRUE, transform = function(x) gsub(d$root, "<root>", x, fixed = TRUE))
  put_csv(data.frame(a = 1:2, b = c("x", "y")), d$input, "a.csv")
  input <- stream_read_csv(sc, d$input)
  expect_snapshot(stream_write_text(input, d$output, checkpoint = new_checkpoint()), error = TRUE)
  expect_snapshot(stream_write_csv(input, d$output, mode = "complete", checkpoint = new_checkpoint()), error = TRUE)
  err <- expect_error(stream_read_csv(sc, d$input, options = list(maxFilesPerTriger = 1)), class = "streamlyr_error_config")
  expect_identical(c(err$arg, err$option), c("options", "maxFilesPerTriger"))
  err <- expect_error(stream_read_csv(sc, d$input, options = list(maxFilesPerTrigger = 0)), "must be a positive integer")
  expect_identical(err$option, "maxFilesPerTrigger")
  err <- expect_error(stream_read_csv(sc, d$input, columns = c("a", "b")), class = "streamlyr_error_config")
  expect_identical(err$arg, "columns")
  err <- expect_error(stream_write_csv(input, d$output, partition_by = "z", checkpoint = new_checkpoint()), "not found")
  expect_identical(err$arg, "partition_by")
  expect_warning(stream_read_csv(sc, d$input, options = list(mergeSchema = "true")), class = "streamlyr_warning_ignored_option")
  err <- expect_error(stream_read_csv(sc, d$input, delimiter = "||"), "single ASCII character")
  expect_identical(err$arg, "delimiter")
  err <- expect_error(stream_write_csv(input, d$output, charset = "latin1", checkpoint = new_checkpoint()), "UTF-8")
  expect_identical(err$arg, "charset")
  err <- expect_error(stream_read_csv(sc, d$input, columns = c(a = "integer", a = "character")), "distinct")
  expect_identical(err$arg, "columns")
  err <- expect_error(stream_read_json(sc, d$input, options = list(header = "true")), "not an option of the json")
  expect_identical(err$option, "header")
})

test_that("two streams can't write into one folder", {
  sc <- spark_connect(master = "local")
  d <- new_folders()
  put_csv(data.frame(n = 1:3), d$input, "a.csv")
  run_once(stream_read_csv(sc, d$input) %>% stream_write_json(d$output, trigger = stream_trigger_once()))
  # sparklyr's default checkpoint is new at every call: this is another stream.
  err <- expect_error(
    stream_read_csv(sc, d$input) %>% stream_write_json(d$output, trigger = stream_trigger_once()),
    "another stream"
  )
  expect_identical(err$arg, "path")
})

test_that("stream_generate_test() writes sparklyr's files without blocking the console", {
  path <- file.path(tempfile("generated-"), "source")
  stop_generating <- stream_generate_test(df = 1:10, path = path, distribution = c(2, 3), iterations = 4, interval = 0.05)
  expect_identical(list.files(path), "stream_1.csv", label = "the call returns after the first file")
  expect_true(wait_for(function() {
    later::run_now(0.05)
    length(list.files(path)) == 4
  }, timeout = 10))
  read <- function(i) utils::read.csv(file.path(path, paste0("stream_", i, ".csv")))
  # sparklyr's files for these arguments: rows 1:3, 3:6, 6:8, then 8:11 of the data repeated.
  expect_identical(read(1), data.frame(x = 1:3))
  expect_identical(read(2), data.frame(x = 3:6))
  expect_identical(read(3), data.frame(x = 6:8))
  expect_identical(read(4), data.frame(x = c(8:10, 1L)))
  expect_true(is.function(stop_generating))
})
