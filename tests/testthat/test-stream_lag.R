# stream_lag(): sparklyr's grammar and test, and the lag computed in R on
# the whole input, though the stream reads it in many micro-batches and is
# stopped and restarted on the way.

weekdays <- data.frame(
  day = c("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
  x = c(1L, 1L, 2L, 3L, 3L, 3L, 6L),
  stringsAsFactors = FALSE
)

# The lag of `v` by `k` rows, NA where the row `k` back is more than `limit`
# before in `t` (sparklyr's rule), on the whole input at once.
lag_in_r <- function(v, k, t = NULL, limit = Inf) {
  n <- length(v)
  back <- seq_len(n) - k
  out <- ifelse(back >= 1, v[pmax(back, 1)], NA)
  if (!is.null(t)) out[back >= 1 & t - t[pmax(back, 1)] > limit] <- NA
  out
}

lagged_rows <- function(sc, name) {
  got <- as.data.frame(dplyr::collect(dplyr::tbl(sc, name)))
  got[order(got$i), , drop = FALSE]
}

test_that("sparklyr's weekdays test: one file a batch, so every lag crosses batch boundaries", {
  sc <- spark_connect(master = "local")
  input <- tempfile("days-")
  for (i in seq_len(nrow(weekdays))) put_csv(weekdays[i, ], input, sprintf("%d.csv", i))
  days <- stream_read_csv(sc, input, options = list(maxFilesPerTrigger = 1))
  stream <- days %>%
    stream_lag(cols = c(yesterday = day ~ 1, two_days_ago = day ~ 2)) %>%
    stream_write_memory("days_lagged", trigger = stream_trigger_interval(0), checkpoint = new_checkpoint())
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "days_lagged"))) == 7, 30))
  stream_stop(stream)
  got <- as.data.frame(dplyr::collect(dplyr::tbl(sc, "days_lagged")))
  got <- got[match(weekdays$day, got$day), ]
  expect_identical(names(got), c("day", "x", "yesterday", "two_days_ago"))
  expect_identical(got$yesterday, c(NA, "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))
  expect_identical(got$two_days_ago, c(NA, NA, "Monday", "Tuesday", "Wednesday", "Thursday", "Friday"))

  stream <- days %>%
    stream_lag(cols = c(yesterday = day ~ 1, two_days_ago = day ~ 2), thresholds = c(x = 1L)) %>%
    stream_write_memory("days_thresholds", trigger = stream_trigger_interval(0), checkpoint = new_checkpoint())
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "days_thresholds"))) == 7, 30))
  stream_stop(stream)
  got <- as.data.frame(dplyr::collect(dplyr::tbl(sc, "days_thresholds")))
  got <- got[match(weekdays$day, got$day), ]
  expect_identical(got$yesterday, c(NA, "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", NA))
  expect_identical(got$two_days_ago, c(NA, NA, "Monday", NA, "Wednesday", "Thursday", NA))
})

test_that("the lag equals R's on the whole input across batches, a stop and a restart, with a time threshold", {
  sc <- spark_connect(master = "local")
  input <- tempfile("lag-")
  set.seed(3)
  n <- 600
  rows <- data.frame(
    i = seq_len(n),
    v = round(stats::rnorm(n), 3),
    t = as.POSIXct("2026-01-01", tz = "UTC") + cumsum(sample(c(1, 2, 5, 30), n, TRUE))
  )
  write_part <- function(part) put_csv(transform(rows[part, ], t = format(t, "%Y-%m-%dT%H:%M:%SZ")), input, sprintf("%04d.csv", min(part)))
  for (start in seq(1, 300, by = 50)) write_part(start:(start + 49))
  checkpoint <- new_checkpoint()
  start_stream <- function() {
    stream_read_csv(sc, input, columns = c(i = "integer", v = "double", t = "timestamp"), options = list(maxFilesPerTrigger = 2)) %>%
      dplyr::filter(v > -1.5) %>%
      stream_lag(cols = c(v1 = v ~ 1, v3 = v ~ 3), thresholds = list(t = "10s")) %>%
      dplyr::mutate(gap = v - v1) %>%
      stream_write_memory("lagged", trigger = stream_trigger_interval(0), checkpoint = checkpoint)
  }
  stream <- start_stream()
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "lagged"))) == sum(rows$v[1:300] > -1.5), 30))
  stream_stop(stream)
  first <- lagged_rows(sc, "lagged")
  for (start in seq(301, n, by = 50)) write_part(start:(start + 49))
  stream <- start_stream()
  kept <- rows[rows$v > -1.5, ]
  expect_true(wait_for(function() nrow(dplyr::collect(dplyr::tbl(sc, "lagged"))) == sum(kept$i > 300), 30))
  stream_stop(stream)
  got <- rbind(first, lagged_rows(sc, "lagged"))

  secs <- as.numeric(kept$t)
  expect_identical(got$i, kept$i)
  expect_equal(got$v1, lag_in_r(kept$v, 1, secs * 1000, 10000))
  expect_equal(got$v3, lag_in_r(kept$v, 3, secs * 1000, 10000))
  expect_equal(got$gap, kept$v - got$v1)
  expect_true(any(is.na(got$v1[-1])), label = "the threshold made some lags NA")
})

test_that("stream_lag() checks its arguments as sparklyr does", {
  sc <- spark_connect(master = "local")
  input <- tempfile("days-")
  put_csv(weekdays, input, "1.csv")
  days <- stream_read_csv(sc, input)
  err <- expect_error(stream_lag(weekdays, c(y = day ~ 1)), class = "streamlyr_error_config")
  expect_identical(conditionMessage(err), "expected a streaming dataframe as input")
  err <- expect_error(stream_lag(days, cols = "no-a-column"), class = "streamlyr_error_config")
  expect_match(conditionMessage(err), "comma-separated list of expressions")
  expect_identical(err$arg, "cols")
  expect_error(stream_lag(days, cols = c(y = nope ~ 1)), "`nope` is not a column", class = "streamlyr_error_config")
  expect_error(stream_lag(days, cols = c(y = day ~ 0)), "positive whole number", class = "streamlyr_error_config")
  err <- expect_error(stream_lag(days, c(y = day ~ 1), thresholds = c(x = "5 fortnights")), class = "streamlyr_error_config")
  expect_identical(conditionMessage(err), "5 fortnights is not a valid time duration specification")
  expect_identical(streamlyr:::to_milliseconds("5min"), 300000)
  expect_identical(streamlyr:::to_milliseconds("2 days"), 172800000)
  # The lag's rows are saved with each micro-batch: no continuous trigger.
  kafka <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = "127.0.0.1:9", subscribe = "t"))
  err <- expect_error(
    kafka %>% stream_lag(c(previous = value ~ 1)) %>% stream_write_memory("lag_cont", trigger = stream_trigger_continuous()),
    class = "streamlyr_error_config"
  )
  expect_identical(err$arg, "trigger")
  expect_match(conditionMessage(err), "stream_lag()", fixed = TRUE)
})
