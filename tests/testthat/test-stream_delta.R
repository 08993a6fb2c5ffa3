# Delta tables: round trips through streamlyr's Delta sink and source, each
# checked by delta-rs's Python package (`deltalake`, a reader that is not
# streamlyr): the rows, and one commit per micro-batch in the table's history.

people <- data.frame(
  id = 1:6,
  x = c(0.5, NA, 2, -1.25, 1e6, 3),
  s = c("a", "b,c", NA, "d \"q\"", "e f", "g"),
  stringsAsFactors = FALSE
)

# The table as deltalake reads it (rows sorted by id), and its history.
delta_by_python <- function(path) {
  csv <- tempfile(fileext = ".csv")
  history <- run_python(c(
    "import sys, json, pyarrow.csv as pc",
    "from deltalake import DeltaTable",
    "t = DeltaTable(sys.argv[1])",
    "pc.write_csv(t.to_pyarrow_table(), sys.argv[2])",
    "for h in t.history(): print(json.dumps({'version': h.get('version'), 'operation': h.get('operation'), 'epoch': (h.get('operationParameters') or {}).get('epochId')}))"
  ), path, csv)
  rows <- utils::read.csv(csv, stringsAsFactors = FALSE, na.strings = "")
  history <- jsonlite::fromJSON(paste0("[", paste(history, collapse = ","), "]"))
  list(rows = rows[order(rows$id), , drop = FALSE], history = history[order(history$version), , drop = FALSE])
}

test_that("csv -> delta -> csv gives the rows back; deltalake reads them, one commit a batch", {
  sc <- spark_connect(master = "local")
  root <- tempfile("delta-")
  input <- file.path(root, "in")
  table <- file.path(root, "table")
  for (i in 1:3) put_csv(people[(2 * i - 1):(2 * i), ], input, sprintf("f%d.csv", i), na = "")
  stream <- stream_read_csv(sc, input, options = list(maxFilesPerTrigger = 1)) %>%
    stream_write_delta(table, checkpoint = file.path(root, "cp"))
  expect_true(wait_for(function() file.exists(file.path(root, "cp", "commits", "2")), 60))
  stream_stop(stream)

  by_python <- delta_by_python(table)
  expect_equal(by_python$rows$id, people$id)
  expect_equal(by_python$rows$s, people$s)
  expect_equal(by_python$rows$x, people$x)
  # Version 0 creates the table; then one STREAMING UPDATE per batch.
  updates <- by_python$history[by_python$history$operation == "STREAMING UPDATE", ]
  expect_identical(nrow(updates), 3L)
  expect_identical(as.numeric(updates$epoch), c(0, 1, 2))

  source <- stream_read_delta(sc, table)
  expect_identical(colnames(source), c("id", "x", "s"))
  output <- file.path(root, "out")
  run <- stream_write_csv(source, output, escape = "\"", trigger = stream_trigger_once())
  expect_true(wait_stopped(run))
  back <- read_committed(output, function(f) utils::read.csv(f, stringsAsFactors = FALSE, na.strings = ""))
  back <- back[order(back$id), names(people)]
  rownames(back) <- NULL
  expect_equal(back, people)
})

test_that("a Delta source reads new versions as they come, each once across a restart", {
  sc <- spark_connect(master = "local")
  root <- tempfile("delta-")
  table <- file.path(root, "table")
  writer <- stream_write_delta(people[1:2, ], table, checkpoint = file.path(root, "w1"))
  expect_true(wait_stopped(writer))
  checkpoint <- file.path(root, "reader")
  reader <- stream_read_delta(sc, table) %>%
    stream_write_memory("delta_in", checkpoint = checkpoint, trigger = stream_trigger_interval(50))
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "delta_in"))) == 2, 30))
  expect_true(wait_stopped(stream_write_delta(people[3:4, ], table, checkpoint = file.path(root, "w2"))))
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "delta_in"))) == 4, 30))
  stream_stop(reader)
  expect_true(wait_stopped(stream_write_delta(people[5:6, ], table, checkpoint = file.path(root, "w3"))))
  again <- stream_read_delta(sc, table) %>%
    stream_write_memory("delta_in", checkpoint = checkpoint, trigger = stream_trigger_once())
  expect_true(wait_stopped(again))
  expect_identical(sort(dplyr::collect(dplyr::tbl(sc, "delta_in"))$id), 5:6)
})

test_that("an aggregation in complete mode replaces the table at each batch", {
  sc <- spark_connect(master = "local")
  root <- tempfile("delta-")
  input <- file.path(root, "in")
  table <- file.path(root, "counts")
  put_csv(data.frame(word = c("a", "b", "a")), input, "1.csv")
  put_csv(data.frame(word = c("a", "c")), input, "2.csv")
  stream <- stream_read_csv(sc, input, options = list(maxFilesPerTrigger = 1)) %>%
    dplyr::count(word) %>%
    stream_write_delta(table, mode = "complete", checkpoint = file.path(root, "cp"))
  expect_true(wait_for(function() file.exists(file.path(root, "cp", "commits", "1")), 60))
  stream_stop(stream)
  rows <- run_python(c(
    "import sys",
    "from deltalake import DeltaTable",
    "t = DeltaTable(sys.argv[1]).to_pyarrow_table().sort_by('word')",
    "for w, n in zip(t['word'].to_pylist(), t['n'].to_pylist()): print(w, n)"
  ), table)
  expect_identical(rows, c("a 3", "b 1", "c 1"))
})

test_that("Delta arguments and tables are checked before anything runs", {
  sc <- spark_connect(master = "local")
  root <- tempfile("delta-")
  dir.create(root)
  err <- expect_error(stream_read_delta(sc, root), class = "streamlyr_error_config")
  expect_identical(err$arg, "path")
  expect_match(conditionMessage(err), "is not a Delta table")
  input <- file.path(root, "in")
  put_csv(people, input, "1.csv", na = "")
  counts <- stream_read_csv(sc, input) %>% dplyr::count(s)
  err <- expect_error(stream_write_delta(counts, file.path(root, "t"), mode = "update"), class = "streamlyr_error_config")
  expect_identical(err$arg, "mode")
  expect_match(conditionMessage(err), "Data source delta does not support Update output mode.", fixed = TRUE)
  err <- expect_error(stream_write_delta(people, file.path(root, "t"), options = list(compresion = "zstd")), class = "streamlyr_error_config")
  expect_identical(err$option, "compresion")
  err <- expect_error(stream_write_delta(people, file.path(root, "t"), partition_by = "nope"), class = "streamlyr_error_config")
  expect_identical(err$arg, "partition_by")

  table <- file.path(root, "t")
  expect_true(wait_stopped(stream_write_delta(people, table, checkpoint = file.path(root, "w"))))
  err <- expect_error(stream_read_delta(sc, table, options = list(startingVersion = "first")), class = "streamlyr_error_config")
  expect_identical(err$option, "startingVersion")
  # Another stream's columns into the table: the stream fails as it starts, saying why.
  err <- expect_error(stream_write_delta(data.frame(z = 1), table, checkpoint = file.path(root, "w2")), class = "streamlyr_error_config")
  expect_identical(err$arg, "x")
  expect_match(conditionMessage(err), "are not those of the Delta table")
})
