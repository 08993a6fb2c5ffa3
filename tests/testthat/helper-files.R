# Helpers for the file family: input folders written the way Spark wants
# them (each file appears whole), and readers that do not go through
# streamlyr (R's own, pyarrow, pyspark) to check what a file sink wrote.

# Write `df` as CSV file `name` in `dir`, atomically (written aside, then moved in).
put_csv <- function(df, dir, name, na = "NA") {
  # Whole numbers as digits: R would write 100000 as 1e+05, which is no integer to Spark.
  old <- options(scipen = 999)
  on.exit(options(old))
  dir.create(dir, showWarnings = FALSE, recursive = TRUE)
  tmp <- file.path(dir, paste0(".", name, ".tmp"))
  utils::write.csv(df, tmp, row.names = FALSE, na = na)
  file.rename(tmp, file.path(dir, name))
}

# `files` CSV files `f0001.csv`, ... of `per_file` rows each: `id` (1, 2,
# ... across the files) and `word`.
put_numbered_csvs <- function(dir, files, per_file) {
  for (i in seq_len(files)) {
    ids <- (i - 1) * per_file + seq_len(per_file)
    put_csv(data.frame(id = ids, word = sprintf("w%06d", ids)), dir, sprintf("f%04d.csv", i))
  }
}

put_lines <- function(lines, dir, name) {
  dir.create(dir, showWarnings = FALSE, recursive = TRUE)
  tmp <- file.path(dir, paste0(".", name, ".tmp"))
  writeLines(lines, tmp)
  file.rename(tmp, file.path(dir, name))
}

# The files a file sink committed, read from its `_spark_metadata` log as
# Spark reads it: the latest `.compact` file and the batches after it.
committed_files <- function(dir) {
  log <- file.path(dir, "_spark_metadata")
  names <- grep("^[0-9]+(\\.compact)?$", list.files(log), value = TRUE)
  if (length(names) == 0) return(character())
  ids <- as.numeric(sub("\\.compact$", "", names))
  compact <- grepl("\\.compact$", names)
  from <- if (any(compact)) max(ids[compact]) else -1
  keep <- names[(ids == from & compact) | ids > from]
  keep <- keep[order(as.numeric(sub("\\.compact$", "", keep)))]
  lines <- unlist(lapply(file.path(log, keep), function(f) readLines(f)[-1]))
  paths <- vapply(lines, function(l) jsonlite::fromJSON(l)$path, "", USE.NAMES = FALSE)
  utils::URLdecode(sub("^file://", "", paths))
}

# Every row a file sink committed, read with R's own reader `read`.
read_committed <- function(dir, read = function(f) utils::read.csv(f, stringsAsFactors = FALSE)) {
  files <- committed_files(dir)
  if (length(files) == 0) return(data.frame())
  do.call(rbind, lapply(files, read))
}

wait_stopped <- function(stream, timeout = 60) {
  wait_for(function() stream_state(stream) %in% c("stopped", "failed"), timeout)
}

# The Python with pyarrow and pyspark that tools/python.sh set up.
python_tools <- function() {
  python <- Sys.getenv("STREAMLYR_PYTHON")
  if (!nzchar(python)) skip("no Python tools: run the tests through tools/test.sh")
  python
}

# Columnar `files` ("parquet" or "orc") as pyarrow reads them, through CSV.
read_by_pyarrow <- function(format, files) {
  csv <- tempfile(fileext = ".csv")
  run_python(c(
    sprintf("import sys, pyarrow as pa, pyarrow.csv as pc, pyarrow.%s as reader", format),
    "tables = [reader.read_table(p) for p in sys.argv[2:]]",
    "pc.write_csv(pa.concat_tables(tables), sys.argv[1])"
  ), csv, files)
  utils::read.csv(csv, stringsAsFactors = FALSE, na.strings = "")
}

# Run Python `code` with `args` (sys.argv[1:]); its standard output as lines.
run_python <- function(code, ...) {
  script <- tempfile(fileext = ".py")
  # Ends without Python's teardown: deltalake's runtime sometimes aborts
  # there ("terminate called without an active exception") after the
  # script has printed everything it had to.
  writeLines(c("import os, sys", code, "sys.stdout.flush()", "os._exit(0)"), script)
  err <- tempfile()
  out <- suppressWarnings(system2(python_tools(), c(script, shQuote(c(...))), stdout = TRUE, stderr = err))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0) stop("python failed: ", paste(utils::tail(readLines(err), 20), collapse = "\n"))
  out
}
