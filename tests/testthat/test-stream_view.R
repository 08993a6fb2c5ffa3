# Live views: the stream_render() widget as a real browser shows it
# (Debian's headless Chromium), stream_view()'s gadget server, and
# reactiveSpark() in a Shiny session.

# A file stream busy for a while: one file of 2000 rows every batch.
busy_stream <- function(sc, files = 40) {
  input <- tempfile("view-")
  put_numbered_csvs(input, files, 2000)
  stream_read_csv(sc, input, columns = c(id = "integer", word = "character"), options = list(maxFilesPerTrigger = 1)) %>%
    stream_write_memory(random_name("view"), trigger = stream_trigger_interval(250), checkpoint = new_checkpoint())
}

random_name <- function(prefix) paste0(prefix, "_", paste(sample(letters, 8), collapse = ""))

browser <- function() {
  found <- Sys.which(c("chromium-headless-shell", "chromium"))
  found <- found[nzchar(found)]
  if (length(found) == 0) skip("no headless Chromium: tools/setup.sh installs chromium-headless-shell")
  found[[1]]
}

test_that("stream_render()'s widget shows the stream's rates in a browser", {
  sc <- spark_connect(master = "local")
  stream <- busy_stream(sc)
  on.exit(stream_stop(stream), add = TRUE)
  widget <- stream_render(stream, collect = 3)
  expect_s3_class(widget, "htmlwidget")
  expect_length(widget$x$stats$rps_in, 4)

  dir <- tempfile("render-")
  dir.create(dir)
  page <- file.path(dir, "stream.html")
  htmlwidgets::saveWidget(widget, page, selfcontained = FALSE)
  chromium <- browser()
  args <- c("--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000")
  dom <- system2(chromium, c(args, "--dump-dom", paste0("file://", page)), stdout = TRUE, stderr = FALSE)
  text <- paste(dom, collapse = "\n")
  expect_match(text, "rows in/s: [1-9][0-9,]*", label = "the page's text")
  expect_match(text, "rows out/s: [1-9]")
  expect_match(text, "last batch: [0-9,]+ ms")
  expect_match(text, "csv files in", fixed = TRUE)
  expect_match(text, "<polyline", fixed = TRUE)
  shot <- file.path(dir, "stream.png")
  system2(chromium, c(args, paste0("--screenshot=", shot), "--window-size=800,500", paste0("file://", page)),
          stdout = FALSE, stderr = FALSE)
  expect_gt(file.size(shot), 1000)
  message("stream_render() screenshot: ", shot)
})

test_that("stream_view()'s gadget redraws from stream_stats() and returns the stream", {
  sc <- spark_connect(master = "local")
  stream <- busy_stream(sc, files = 10)
  on.exit(stream_stop(stream), add = TRUE)
  app <- streamlyr:::stream_view_app(stream, interval_ms = 200)
  shiny::testServer(app$server, {
    first <- output$view
    expect_match(first, "\"rps_in\"", fixed = TRUE)
    Sys.sleep(0.5)
    session$elapse(250)
    expect_false(identical(output$view, first), label = "a second drawing")
  })
  err <- expect_error(stream_render(stats = list(nope = 1)), class = "streamlyr_error_config")
  expect_identical(err$arg, "stats")
  err <- expect_error(stream_view(mtcars), class = "streamlyr_error_config")
  expect_identical(err$arg, "stream")
  err <- expect_error(streamlyr:::require_package("notapackage.streamlyr"), class = "streamlyr_error_config")
  expect_match(conditionMessage(err), "^The 'notapackage.streamlyr' package is required for this operation.")
})

# The running streams reactiveSpark() made (into its `sparklyr_tmp_` tables).
reactive_streams <- function(sc) {
  status <- lapply(streamlyr:::engine_queries(sc$engine), streamlyr:::query_status)
  running <- Filter(function(s) grepl("memory[sparklyr_tmp_", s$sink, fixed = TRUE) && s$state %in% c("starting", "active"), status)
  vapply(running, function(s) s$id, "")
}

test_that("reactiveSpark() gives the stream's rows to a Shiny app and stops with the session", {
  sc <- spark_connect(master = "local")
  folder <- tempfile("reactive-")
  put_csv(data.frame(word = c("a", "b", "a")), folder, "1.csv")
  words <- stream_read_csv(sc, folder)
  server <- function(input, output, session) {
    counts <- reactiveSpark(dplyr::count(words, word), intervalMillis = 100, session = session)
    output$counts <- shiny::renderText({
      got <- counts()
      paste(got$word[order(got$word)], got$n[order(got$word)], collapse = " ")
    })
  }
  shiny::testServer(server, {
    seen <- ""
    for (i in 1:100) {
      Sys.sleep(0.1)
      session$elapse(100)
      seen <- output$counts
      if (identical(seen, "a 2 b 1")) break
    }
    expect_identical(seen, "a 2 b 1")
    put_csv(data.frame(word = c("b", "c")), folder, "2.csv")
    for (i in 1:100) {
      Sys.sleep(0.1)
      session$elapse(100)
      seen <- output$counts
      if (identical(seen, "a 2 b 2 c 1")) break
    }
    expect_identical(seen, "a 2 b 2 c 1", label = "complete mode: the aggregation's whole result")
    expect_length(reactive_streams(sc), 1)
  })
  expect_identical(reactive_streams(sc), character(), label = "streams of reactiveSpark() still running")
})
