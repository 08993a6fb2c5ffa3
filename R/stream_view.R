#' Live views of a stream
#'
#' sparklyr's `stream_render()` and `stream_view()`: how fast a stream reads
#' and writes rows. `stream_render()` collects [stream_stats()] `collect`
#' more times, a second apart (unless `stats` is given), and returns an HTML
#' widget: the source and the sink, the latest rows in and out per second
#' and batch duration, and the rates' history as a chart. `stream_view()` shows
#' the same, updated every second, in a Shiny gadget (in RStudio's viewer or
#' a browser) until you close it.
#'
#' Both need the 'htmlwidgets' package, and `stream_view()` 'shiny' (both in
#' Suggests); sparklyr's r2d3 is not needed.
#'
#' @param stream A stream, from a `stream_write_*()` function.
#' @param collect How many more [stream_stats()] to collect, a second apart.
#' @param stats What [stream_stats()] returned, to render instead.
#' @param ... Passed to [htmlwidgets::createWidget()] (`width`, `height`,
#'   `elementId`).
#' @return `stream_render()`: an htmlwidget (print it, or save it with
#'   [htmlwidgets::saveWidget()]); `stream_view()`: the stream, invisibly.
#' @export
#' @examples
#' \dontrun{
#' stream <- stream_read_csv(sc, "source") %>% stream_write_csv("destination")
#' stream_render(stream)
#' stream_view(stream)
#' }
stream_render <- function(stream = NULL, collect = 10, stats = NULL, ...) {
  require_package("htmlwidgets")
  if (is.null(stats)) {
    check_stream(stream)
    if (!is.numeric(collect) || length(collect) != 1 || is.na(collect) || collect < 0) {
      abort_streamlyr(paste0("`collect` must be a number of seconds, not ", obj_type(collect), "."), arg = "collect")
    }
    stats <- stream_stats(stream)
    for (i in seq_len(collect)) {
      Sys.sleep(1)
      stats <- stream_stats(stream, stats)
    }
  }
  if (!is.list(stats) || is.null(stats$stats)) {
    abort_streamlyr("`stats` must be what stream_stats() returned.", arg = "stats")
  }
  sizing <- htmlwidgets::sizingPolicy(defaultWidth = "100%", defaultHeight = 400, padding = 10, browser.fill = TRUE)
  htmlwidgets::createWidget("stream_render", render_data(stats), package = "streamlyr", sizingPolicy = sizing, ...)
}

# What the widget draws: plain columns, times in milliseconds.
render_data <- function(stats) {
  entries <- stats$stats
  number <- function(f) vapply(entries, function(e) as.numeric(f(e) %||% NA_real_), 0)
  list(
    sources = as.character(stats$sources %||% ""),
    sinks = as.character(stats$sink %||% ""),
    stats = list(
      timestamp = number(function(e) as.numeric(e$timestamp) * 1000),
      rps_in = number(function(e) e$rps[["in"]]),
      rps_out = number(function(e) e$rps[["out"]]),
      duration_ms = number(function(e) e$duration_ms)
    )
  )
}

#' @rdname stream_render
#' @export
stream_view <- function(stream, ...) {
  require_package("shiny")
  require_package("htmlwidgets")
  check_stream(stream)
  app <- stream_view_app(stream, ...)
  shiny::runGadget(app$ui, app$server)
  invisible(stream)
}

# The gadget: the widget, redrawn from a new stream_stats() every second.
stream_view_app <- function(stream, interval_ms = 1000, ...) {
  ui <- shiny::fluidPage(
    htmlwidgets::shinyWidgetOutput("view", "stream_render", "100%", "400px", package = "streamlyr"),
    shiny::actionButton("done", "Done")
  )
  server <- function(input, output, session) {
    stats <- NULL
    output$view <- htmlwidgets::shinyRenderWidget(
      {
        shiny::invalidateLater(interval_ms, session)
        stats <<- stream_stats(stream, stats)
        # The last five minutes at one a second: a gadget left open stays small.
        stats$stats <<- utils::tail(stats$stats, 300)
        stream_render(stats = stats, ...)
      },
      htmlwidgets::shinyWidgetOutput, environment(), FALSE
    )
    shiny::observeEvent(input$done, shiny::stopApp(invisible(stream)))
  }
  list(ui = ui, server = server)
}

#' A stream as a Shiny reactive
#'
#' sparklyr's `reactiveSpark()`: the rows of `x`, a stream or a pipeline
#' over one, as a reactive value in a Shiny app. The stream is written to a
#' memory table (`complete` mode for an aggregation, else `append`), polled
#' every `intervalMillis` through a cheap change counter (the batches
#' committed), and read again only when a batch has committed. The stream
#' stops when the Shiny session ends.
#'
#' @param x A stream from a `stream_read_*()` function, or a pipeline over one.
#' @param intervalMillis How often to look for new batches, in milliseconds.
#' @param session The Shiny session (by default the current one).
#' @return A reactive expression (see [shiny::reactivePoll()]) giving a tibble.
#' @export
reactiveSpark <- function(x, intervalMillis = 1000, session = NULL) {
  require_package("shiny")
  if (!is.numeric(intervalMillis) || length(intervalMillis) != 1 || is.na(intervalMillis) || intervalMillis <= 0) {
    abort_streamlyr(paste0("`intervalMillis` must be a positive number, not ", obj_type(intervalMillis), "."), arg = "intervalMillis")
  }
  session <- session %||% shiny::getDefaultReactiveDomain()
  name <- random_string("sparklyr_tmp_")
  stream <- stream_write_generic(
    x, sink = "memory", mode = NULL, trigger = stream_trigger_interval(intervalMillis),
    checkpoint = tempfile("reactive-"), options = list(), partition_by = NULL,
    call = rlang::current_env(), sink_spec = list(table = name)
  )
  if (!is.null(session)) session$onSessionEnded(function() stream_stop(stream))
  shiny::reactivePoll(
    intervalMillis, session,
    checkFunc = function() {
      status <- query_status(stream$ptr)
      # A failed stream shows in the app, not as rows that stop changing.
      if (identical(status$state, "failed")) raise_engine_error(status$error$error)
      status$batches
    },
    valueFunc = function() dplyr::collect(dplyr::tbl(stream$sc, name))
  )
}

require_package <- function(package, call = rlang::caller_env()) {
  if (!requireNamespace(package, quietly = TRUE)) {
    abort_streamlyr(paste0("The '", package, "' package is required for this operation."), call = call,
                    hint = paste0("install.packages(\"", package, "\")"))
  }
}
