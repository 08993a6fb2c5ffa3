# Event time: stream_watermark() and window(), checked against an oracle that
# counts the same events per window in plain R with Spark's rules.

test_that("stream_watermark() checks its arguments when it is called", {
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  s <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = "localhost:1", subscribe = "t"))
  expect_error(stream_watermark(s, "timestamp", "ten minutes"), class = "streamlyr_error_config", regexp = "`threshold`: can't read \"ten minutes\"")
  expect_error(stream_watermark(s, "timestamp", "1 month"), regexp = "no fixed length")
  expect_error(stream_watermark(s, threshold = -5), regexp = "should not be negative")
  expect_error(stream_watermark(s, threshold = TRUE), regexp = "`threshold` must be a duration")
  expect_error(stream_watermark(s, column = 1), regexp = "`column` must be a single non-empty string")
  expect_error(stream_watermark(data.frame(x = 1)), regexp = "`x` must be a stream")
  cnd <- rlang::catch_cnd(stream_watermark(s, threshold = "soon"))
  expect_equal(cnd$arg, "threshold")

  # A Spark interval string or milliseconds; the column marked in the SQL.
  sql <- as.character(dbplyr::sql_render(stream_watermark(s, "timestamp", "1 hour 30 minutes")))
  expect_match(sql, "streamlyr_watermark(\"timestamp\", 5400000) AS \"timestamp\"", fixed = TRUE)
  sql <- as.character(dbplyr::sql_render(stream_watermark(s, "timestamp", 2500)))
  expect_match(sql, "streamlyr_watermark(\"timestamp\", 2500)", fixed = TRUE)
  # A column that isn't there is the batch's time, as in sparklyr.
  sql <- as.character(dbplyr::sql_render(stream_watermark(s, "arrived", "1 minute")))
  expect_match(sql, "streamlyr_watermark(now(), 60000) AS \"arrived\"", fixed = TRUE)
})

test_that("bad event-time pipelines are clear errors when the stream is written", {
  servers <- kafka_bootstrap()
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  s <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = new_topic()))
  expect_error(
    s %>% stream_watermark("value") %>% stream_write_memory(name = "x"),
    class = "streamlyr_error_config", regexp = "`column`: Event time must be defined on a window or a timestamp, but value is of type Binary"
  )
  # Append with an aggregation needs a watermark on a grouping column.
  cnd <- rlang::catch_cnd(
    s %>% group_by(w = window(timestamp, "10 seconds")) %>% summarise(n = n()) %>% stream_write_memory(name = "y", mode = "append")
  )
  expect_s3_class(cnd, "streamlyr_error_config")
  expect_equal(cnd$arg, "mode")
  expect_match(conditionMessage(cnd), "Append output mode not supported when there are streaming aggregations on streaming DataFrames/DataSets without watermark", fixed = TRUE)
  expect_match(conditionMessage(cnd), "stream_watermark()", fixed = TRUE)
  expect_error(
    s %>% group_by(w = window(timestamp, "10 seconds", "20 seconds")) %>% summarise(n = n()) %>% stream_write_memory(name = "z", mode = "update"),
    regexp = "must be less than or equal to the windowDuration"
  )
  expect_error(
    s %>% group_by(w = session_window(timestamp, "5 minutes")) %>% summarise(n = n()) %>% stream_write_memory(name = "z", mode = "update"),
    regexp = "session_window\\(\\)` is not supported"
  )
})

# Events as "word,seconds" records; `sets` are produced one after the other,
# each once the stream has taken the one before. A set may still arrive in
# more than one batch, so each row is either on time whatever the split
# (its windows end after the set's latest time minus the delay) or late
# whatever the split (its windows end before the sets before it let in).
event_sets <- function(seed) {
  set.seed(seed)
  lapply(0:4, function(k) {
    base <- 1000 + 30 * k
    on_time <- data.frame(word = sample(c("a", "b", "c"), 40, TRUE), t = base + c(8, sample(0:8, 39, TRUE)))
    if (k == 0) return(on_time[sample(nrow(on_time)), ])
    # Out of order but in time, and too late.
    behind <- data.frame(word = sample(c("a", "b"), 4, TRUE), t = base - sample(1:2, 4, TRUE))
    late <- data.frame(word = sample(c("a", "b"), 6, TRUE), t = base - 30 - sample(12:25, 6))
    rows <- rbind(on_time, behind, late)
    rows[sample(nrow(rows)), ]
  })
}

# Spark's rules: rows of a window the previous batches' watermark has passed
# are dropped; the watermark is the latest time seen minus the delay.
window_oracle <- function(sets, delay, width, slide, mode) {
  wm <- 0
  dropped <- 0
  kept <- NULL
  for (set in sets) {
    for (i in seq_len(nrow(set))) {
      t <- set$t[i]
      starts <- seq(floor((t - width) / slide) * slide, t, by = slide)
      starts <- starts[starts <= t & starts + width > t]
      late <- if (mode == "complete") rep(FALSE, length(starts)) else starts + width <= wm
      dropped <- dropped + sum(late)
      if (any(!late)) kept <- rbind(kept, data.frame(start = starts[!late], word = set$word[i]))
    }
    wm <- max(wm, max(set$t) - delay)
  }
  counts <- stats::aggregate(list(n = rep(1, nrow(kept))), kept[c("start", "word")], sum)
  counts$end <- counts$start + width
  counts$closed <- counts$end <= wm
  list(counts = counts[order(counts$start, counts$word), ], dropped = dropped, watermark = wm)
}

events_pipeline <- function(stream, width, slide) {
  stream %>%
    mutate(v = as.character(value)) %>%
    mutate(word = split_part(v, ",", 1L), ts = to_timestamp(as.integer(split_part(v, ",", 2L)))) %>%
    stream_watermark("ts", "10 seconds") %>%
    group_by(w = window(ts, width, slide), word) %>%
    summarise(n = n(), .groups = "drop")
}

run_windowed <- function(mode, width = 10, slide = width, seed = 1) {
  servers <- kafka_bootstrap()
  topic <- new_topic("events")
  sets <- event_sets(seed)
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = topic, startingOffsets = "earliest"))
  pipeline <- events_pipeline(stream, paste(width, "seconds"), paste(slide, "seconds"))
  table <- paste0("windows_", mode)
  st <- stream_write_memory(pipeline, name = table, mode = mode, trigger = stream_trigger_interval(100),
                            checkpoint = new_checkpoint())
  sent <- 0
  for (k in seq_along(sets)) {
    kcat_produce(topic, paste0(sets[[k]]$word, ",", sets[[k]]$t))
    sent <- sent + nrow(sets[[k]])
    expected <- window_oracle(sets[seq_len(k)], delay = 10, width, slide, mode)
    # The set is taken, and (but in complete mode) the watermark it reached has run a batch.
    taken <- wait_for(function() {
      s <- streamlyr:::query_status(st$ptr)
      s$rows_in >= sent && (mode == "complete" || identical(s$watermark_ms, expected$watermark * 1000))
    }, 60)
    expect_true(taken)
  }
  if (mode == "complete") Sys.sleep(1)
  got <- collect(tbl(sc, table))
  stats <- stream_stats(st)$stats[[1]]
  stream_stop(st)
  list(got = got, expected = expected, stats = stats)
}

as_counts <- function(df) {
  out <- data.frame(start = as.numeric(df$w_start), end = as.numeric(df$w_end), word = df$word, n = as.numeric(df$n))
  out[order(out$start, out$word), c("start", "end", "word", "n")]
}

test_that("tumbling windows in append mode: each closed window once, with the oracle's counts; late rows counted", {
  r <- run_windowed("append")
  want <- r$expected$counts[r$expected$counts$closed, c("start", "end", "word", "n")]
  expect_gt(nrow(want), 5)
  expect_equal(as_counts(r$got), want, ignore_attr = TRUE)
  expect_false(any(duplicated(r$got[c("w_start", "word")])))
  expect_gt(r$expected$dropped, 0)
  expect_equal(r$stats$late_rows, r$expected$dropped)
  # The closed windows left the state; the open ones are all it holds.
  expect_equal(r$stats$state_rows, sum(!r$expected$counts$closed))
  expect_equal(as.numeric(r$stats$watermark), r$expected$watermark)
})

test_that("sliding windows in append mode: a row counts in every window that covers it", {
  r <- run_windowed("append", width = 10, slide = 5, seed = 2)
  want <- r$expected$counts[r$expected$counts$closed, c("start", "end", "word", "n")]
  expect_equal(as_counts(r$got), want, ignore_attr = TRUE)
  expect_equal(r$stats$late_rows, r$expected$dropped)
})

test_that("update mode: the latest count of every window equals the oracle; closed windows are forgotten", {
  r <- run_windowed("update", seed = 3)
  want <- r$expected$counts[c("start", "end", "word", "n")]
  expect_equal(as_counts(r$got), want, ignore_attr = TRUE)
  expect_equal(r$stats$late_rows, r$expected$dropped)
  expect_equal(r$stats$state_rows, sum(!r$expected$counts$closed))
})

test_that("complete mode: every window, nothing dropped", {
  r <- run_windowed("complete", seed = 4)
  want <- r$expected$counts[c("start", "end", "word", "n")]
  expect_equal(as_counts(r$got), want, ignore_attr = TRUE)
  expect_equal(r$stats$late_rows, 0)
  expect_equal(r$stats$state_rows, nrow(want))
})

test_that("a windowed count into Kafka: the window is in the key and the value, as Spark writes it", {
  servers <- kafka_bootstrap()
  input <- new_topic("events")
  output <- new_topic("windows")
  kcat_produce(input, c("a,1001", "a,1002", "b,1012", "a,1030"))
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest"))
  st <- stream_write_kafka(events_pipeline(stream, "10 seconds", "10 seconds"), mode = "append",
                           checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = output))
  on.exit(stream_stop(st), add = TRUE)
  got <- kcat_read(output, 2)
  expect_equal(nrow(got), 2)
  expect_equal(got$key[1], '{"w":{"start":"1970-01-01T00:16:40Z","end":"1970-01-01T00:16:50Z"},"word":"a"}')
  value <- jsonlite::fromJSON(got$value[1])
  expect_equal(value$n, 2)
  expect_equal(value$w$end, "1970-01-01T00:16:50Z")
})

test_that("Sys.time() in a pipeline is the batch's time", {
  servers <- kafka_bootstrap()
  topic <- new_topic()
  kcat_produce(topic, c("x", "y"))
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = topic, startingOffsets = "earliest"))
  before <- Sys.time()
  got <- stream %>% mutate(now = Sys.time()) %>% collect()
  expect_equal(length(unique(got$now)), 1)
  expect_true(got$now[1] >= before - 1 && got$now[1] <= Sys.time() + 1)
})
