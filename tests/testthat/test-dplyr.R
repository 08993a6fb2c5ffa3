# dplyr pipelines over a Kafka stream, each checked against the same
# pipeline run by dplyr on the same rows as a local data frame (the oracle).

library(dplyr, warn.conflicts = FALSE)

words <- c("apple", "banana", "avocado", "cherry", "apricot", "blueberry", "kiwi")

# One input topic for the verb families: key = a word, value = a number.
input_rows <- local({
  set.seed(42)
  n <- 300
  data.frame(k = sample(words, n, replace = TRUE), v = round(runif(n, 0, 100), 2))
})

setup_input <- function() {
  topic <- new_topic("dplyr-in")
  kcat_produce(topic, format(input_rows$v, nsmall = 2, trim = TRUE), keys = input_rows$k)
  sc <- spark_connect(master = "local")
  stream <- stream_read_kafka(sc, options = list(
    kafka.bootstrap.servers = kafka_bootstrap(), subscribe = topic, startingOffsets = "earliest"
  ))
  list(sc = sc, topic = topic, stream = stream %>%
    transmute(k = as.character(key), v = as.numeric(as.character(value)), off = offset))
}

oracle_rows <- function() transform(input_rows, off = as.numeric(seq_len(nrow(input_rows)) - 1))

# Compare as sets of rows: order and integer/double storage aside.
expect_same_rows <- function(got, expected) {
  got <- as.data.frame(got)
  expected <- as.data.frame(expected)
  expect_setequal(names(got), names(expected))
  got <- got[do.call(order, unname(got[names(expected)])), names(expected), drop = FALSE]
  expected <- expected[do.call(order, unname(expected)), , drop = FALSE]
  rownames(got) <- rownames(expected) <- NULL
  for (col in names(expected)) {
    if (is.factor(expected[[col]])) expected[[col]] <- as.character(expected[[col]])
    if (is.numeric(expected[[col]])) got[[col]] <- as.numeric(got[[col]])
    if (is.numeric(expected[[col]])) expected[[col]] <- as.numeric(expected[[col]])
  }
  expect_equal(got, expected, tolerance = 1e-9)
}

pipelines <- list(
  filter = function(x) filter(x, v > 25, !is.na(k), k %in% c("apple", "kiwi", "cherry"), v <= 90 | k == "kiwi"),
  mutate_arith = function(x) mutate(x, w = v * 2 + 1, d = v / 4 - 3, m = v %/% 7, r = v %% 7, s = sign(v - 50)),
  conditionals = function(x) transmute(x, k,
    size = if_else(v > 50, "big", "small"),
    flag = ifelse(v > 10, 1, 0),
    band = case_when(v < 20 ~ "low", v < 60 ~ "mid", TRUE ~ "high")
  ),
  casts = function(x) transmute(x, k, txt = as.character(off), int = as.integer(off), num = as.numeric(off)),
  strings = function(x) transmute(x,
    p = paste0(k, "-", k), n = nchar(k), u = toupper(k), s = substr(k, 2, 4),
    g = grepl("^a", k), one = sub("a", "_", k), all = gsub("a", "_", k)
  ),
  select_rename = function(x) x %>% select(k, v) %>% rename(word = k, amount = v),
  summarise = function(x) x %>% group_by(k) %>% summarise(
    n = n(), total = sum(v, na.rm = TRUE), avg = mean(v, na.rm = TRUE), lo = min(v, na.rm = TRUE),
    hi = max(v, na.rm = TRUE), distinct = n_distinct(v), spread = sd(v, na.rm = TRUE)
  ),
  count = function(x) count(x, k),
  distinct = function(x) distinct(x, k),
  after_summary = function(x) x %>% group_by(k) %>% summarise(n = n()) %>% filter(n > 40) %>% mutate(half = n / 2)
)

test_that("each verb family on a stream gives what dplyr gives on a data frame", {
  input <- setup_input()
  on.exit(spark_disconnect(input$sc))
  for (name in names(pipelines)) {
    f <- pipelines[[name]]
    got <- collect(f(input$stream))
    expect_equal(nrow(got), nrow(f(oracle_rows())), label = paste(name, "row count"))
    expect_same_rows(got, f(oracle_rows()))
  }
})

test_that("collect() reads everything so far, whatever the stream's batch limit", {
  input <- setup_input()
  on.exit(spark_disconnect(input$sc))
  limited <- stream_read_kafka(input$sc, options = list(
    kafka.bootstrap.servers = kafka_bootstrap(), subscribe = input$topic, maxOffsetsPerTrigger = 10
  ))
  expect_equal(nrow(collect(limited)), nrow(input_rows))
  expect_equal(sum(collect(count(limited, topic))$n), nrow(input_rows))
})

test_that("show_query() shows the SQL the engine runs", {
  input <- setup_input()
  on.exit(spark_disconnect(input$sc))
  expect_output(show_query(input$stream %>% count(k)), "GROUP BY")
  expect_output(show_query(input$stream %>% filter(v > 1)), "WHERE")
})

test_that("a pipeline written into Kafka arrives as the oracle says (read with kcat)", {
  input <- setup_input()
  on.exit(spark_disconnect(input$sc))
  out <- new_topic("dplyr-out")
  stream <- input$stream %>%
    filter(v > 50) %>%
    transmute(value = paste0(k, ":", as.character(off))) %>%
    stream_write_kafka(checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = out))
  expected <- with(subset(oracle_rows(), v > 50), paste0(k, ":", off))
  got <- kcat_read(out, n = length(expected))
  stream_stop(stream)
  expect_setequal(got$value, expected)

  # Text back to bytes: a raw `value`, written as is.
  raw_out <- new_topic("dplyr-raw")
  stream <- input$stream %>%
    filter(v > 50) %>%
    transmute(value = as.raw(paste0(k, "!"))) %>%
    stream_write_kafka(checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = raw_out))
  got <- kcat_read(raw_out, n = length(expected))
  stream_stop(stream)
  expect_setequal(got$value, paste0(subset(oracle_rows(), v > 50)$k, "!"))
})

# A running word count: words arrive in rounds; after each round the
# output matches dplyr's count() over everything so far.
word_rounds <- list(c("a", "b", "a", "c"), c("b", "d"), c("a"))

word_counts <- function(sc, topic) {
  stream_read_kafka(sc, options = list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = topic)) %>%
    mutate(word = as.character(value)) %>%
    count(word)
}

test_that("complete mode writes the whole result after each trigger", {
  topic <- new_topic("wc")
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  counts <- word_counts(sc, topic)
  stream <- stream_write_memory(counts, name = "wc_complete", mode = "complete",
                                trigger = stream_trigger_interval(100), checkpoint = new_checkpoint())
  # In update mode the memory table replaces the changed groups' rows.
  updates <- stream_write_memory(counts, name = "wc_update", mode = "update",
                                 trigger = stream_trigger_interval(100), checkpoint = new_checkpoint())
  seen <- character()
  for (round in word_rounds) {
    kcat_produce(topic, round)
    seen <- c(seen, round)
    expected <- count(data.frame(word = seen), word)
    for (table in c("wc_complete", "wc_update")) {
      wait_for(function() isTRUE(sum(collect(tbl(sc, table))$n) == length(seen)))
      expect_same_rows(collect(tbl(sc, table)), expected)
    }
  }
  stream_stop(stream)
  stream_stop(updates)
})

test_that("update mode writes only the groups a trigger changed, keyed by group", {
  topic <- new_topic("wc")
  out <- new_topic("wc-out")
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  counts <- word_counts(sc, topic)
  stream <- stream_write_kafka(counts, mode = "update", trigger = stream_trigger_interval(100),
                               checkpoint = new_checkpoint(),
                               options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = out))
  seen <- character()
  written <- 0
  # The records of a round may be read by one trigger or split over two; each
  # trigger writes only the groups it changed, so the round's new records are
  # keyed by changed words only, and each word's latest record has its count.
  latest_counts <- function(records) {
    values <- lapply(records$value, jsonlite::fromJSON)
    rows <- data.frame(word = vapply(values, `[[`, "", "word"), n = vapply(values, `[[`, 0, "n"))
    rows[!duplicated(rows$word, fromLast = TRUE), ]
  }
  for (round in word_rounds) {
    kcat_produce(topic, round)
    seen <- c(seen, round)
    changed <- unique(round)
    expected <- count(data.frame(word = seen), word) %>% filter(word %in% changed)
    new_records <- NULL
    caught_up <- wait_for(function() {
      got <- kcat_read(out, n = written + length(changed), timeout = 1)
      new_records <<- got[seq_len(nrow(got)) > written, ]
      nrow(new_records) > 0 && setequal(latest_counts(new_records)$word, changed) &&
        isTRUE(all.equal(latest_counts(new_records)[order(latest_counts(new_records)$word), "n"],
                         expected[order(expected$word), "n"], check.attributes = FALSE))
    }, timeout = 30)
    expect_true(caught_up)
    expect_true(all(new_records$key %in% changed))
    expect_identical(new_records$key, vapply(lapply(new_records$value, jsonlite::fromJSON), `[[`, "", "word"))
    expect_same_rows(latest_counts(new_records), expected)
    written <- written + nrow(new_records)
  }
  stream_stop(stream)
})

test_that("an aggregation stopped and restarted mid-way ends with the uninterrupted result", {
  topic <- new_topic("restart")
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  checkpoint <- new_checkpoint()
  summary_of <- function(x) x %>% group_by(word) %>% summarise(n = n(), total = sum(num, na.rm = TRUE))
  pipeline <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = topic,
                                                   startingOffsets = "earliest")) %>%
    transmute(word = as.character(key), num = as.numeric(as.character(value))) %>%
    summary_of()
  first <- data.frame(word = c("x", "y", "x", "z"), num = c(1, 2, 3, 4))
  second <- data.frame(word = c("x", "w", "y"), num = c(10, 20, 30))
  kcat_produce(topic, first$num, keys = first$word)
  stream <- stream_write_memory(pipeline, name = "restart_wc", mode = "complete", checkpoint = checkpoint,
                                trigger = stream_trigger_interval(100))
  wait_for(function() isTRUE(sum(collect(tbl(sc, "restart_wc"))$n) == 4))
  stream_stop(stream)
  kcat_produce(topic, second$num, keys = second$word)
  stream <- stream_write_memory(pipeline, name = "restart_wc", mode = "complete", checkpoint = checkpoint,
                                trigger = stream_trigger_interval(100))
  wait_for(function() isTRUE(sum(collect(tbl(sc, "restart_wc"))$n) == 7))
  stream_stop(stream)
  expect_same_rows(collect(tbl(sc, "restart_wc")), summary_of(rbind(first, second)))
  expect_true(length(list.files(file.path(checkpoint, "state"))) >= 2)
})

test_that("partition_by puts each group in the partition murmur2 gives its key", {
  topic <- new_topic("six")
  system2("bash", c(file.path(Sys.getenv("STREAMLYR_KAFKA_TOOLS"), "kafka.sh"), "create-topic",
                    "--port", sub(".*:", "", kafka_bootstrap()), "--topic", topic, "--partitions", "6"),
          stdout = FALSE, stderr = FALSE)
  groups <- paste0("group-", 1:12)
  rows <- data.frame(grp = rep(groups, 5), value = paste0("row-", 1:60))
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  stream <- stream_write_kafka(rows, checkpoint = new_checkpoint(), partition_by = "grp",
                               options = list(kafka.bootstrap.servers = kafka_bootstrap(), topic = topic))
  got <- kcat_read(topic, n = 60)
  stream_stop(stream)
  got$grp <- rows$grp[match(got$value, rows$value)]
  where <- tapply(got$partition, got$grp, function(p) unique(p))
  expect_true(all(lengths(where) == 1))
  expect_gt(length(unique(unlist(where))), 1)
  # kcat (librdkafka's murmur2_random, Java's partitioner) puts each key where we did.
  probe <- new_topic("six-probe")
  system2("bash", c(file.path(Sys.getenv("STREAMLYR_KAFKA_TOOLS"), "kafka.sh"), "create-topic",
                    "--port", sub(".*:", "", kafka_bootstrap()), "--topic", probe, "--partitions", "6"),
          stdout = FALSE, stderr = FALSE)
  file <- tempfile()
  writeLines(paste0(groups, "\t", groups), file)
  system2("kcat", c("-P", "-b", kafka_bootstrap(), "-t", probe, "-K", "'\t'", "-X", "topic.partitioner=murmur2_random", "-l", file))
  java_side <- kcat_read(probe, n = 12)
  expect_equal(unlist(where)[java_side$key], setNames(as.numeric(java_side$partition), java_side$key), ignore_attr = TRUE)
})

test_that("pipeline mistakes are clear errors when the stream starts", {
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  s <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = new_topic()))
  opts <- list(kafka.bootstrap.servers = kafka_bootstrap(), topic = new_topic())
  expect_error(
    stream_write_kafka(s %>% mutate(value = my_unknown_fn(value)), options = opts, checkpoint = new_checkpoint()),
    "`my_unknown_fn\\(\\)` can't be used", class = "streamlyr_error_config"
  )
  expect_error(
    stream_write_kafka(s %>% count(topic), options = opts, checkpoint = new_checkpoint()),
    "Append output mode not supported when there are streaming aggregations", class = "streamlyr_error_config"
  )
  expect_error(
    stream_write_kafka(s %>% mutate(value = offset * 2), options = opts, checkpoint = new_checkpoint()),
    "column `value` must be character or raw", class = "streamlyr_error_config"
  )
  df <- data.frame(id = 1:2)
  df$value <- list(c(1, 2), c(3, 4))
  expect_error(
    stream_write_kafka(df, options = opts, checkpoint = new_checkpoint()),
    "list of double values", class = "streamlyr_error_config"
  )
  expect_error(
    stream_write_kafka(s, mode = "complete", options = opts, checkpoint = new_checkpoint()),
    "needs an aggregation", class = "streamlyr_error_config"
  )
  expect_error(
    stream_write_kafka(s %>% mutate(n = row_number()), options = opts, checkpoint = new_checkpoint()),
    "window function", class = "streamlyr_error_config"
  )
  expect_error(stream_write_kafka(s, partition_by = 1, options = opts), "`partition_by` must be NULL or a character")
})

test_that("the console sink prints each batch from R's main thread", {
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  stream <- stream_write_console(data.frame(word = c("hello", "world")))
  wait_for(function() stream_state(stream) == "stopped")
  expect_output(stream_stop(stream), "Batch: 0.*hello.*world")
})

# Verbs that can't run on a stream yet: a classed error naming the verb,
# raised by the verb itself, never a DBI dispatch error from inside dbplyr.
# No broker needed: a stream connects only when it is written.

unconnected_stream <- function(sc) {
  stream_read_kafka(sc, options = list(kafka.bootstrap.servers = "127.0.0.1:1", subscribe = "t"))
}

set_verbs <- c("union", "union_all", "intersect", "setdiff")

# A stream, a pipeline over it with a text column `k`, and a table `labels` with `k`.
join_fixture <- function(sc) {
  s <- unconnected_stream(sc)
  list(s = s, pipeline = transmute(s, k = as.character(key)),
       labels = copy_to(sc, data.frame(k = c("a", "b"), label = c("x", "y")), "labels"))
}

test_that("joins with a stream on the right, of two streams, and nest_join() are errors that name the verb", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  list2env(join_fixture(sc), environment())
  expect_snapshot(left_join(pipeline, s, by = c(k = "topic")), error = TRUE)
  expect_snapshot(left_join(labels, pipeline, by = "k"), error = TRUE)
  expect_snapshot(nest_join(pipeline, labels, by = "k"), error = TRUE)
  for (verb in c("inner_join", "left_join", "right_join", "full_join", "semi_join", "anti_join")) {
    join <- getExportedValue("dplyr", verb)
    for (x in list(s, pipeline)) {
      expect_error(join(x, pipeline, by = "k"), paste0("`", verb, "\\(\\)` between two streams is not supported yet"),
                   class = "streamlyr_error_unsupported")
    }
    expect_error(join(labels, pipeline, by = "k"), paste0("`", verb, "\\(\\)` with a stream on the right"),
                 class = "streamlyr_error_unsupported")
  }
})

test_that("joins outside Spark's matrix and keys of other types are errors when the stream starts, before it connects", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  list2env(join_fixture(sc), environment())
  expect_error(stream_write_memory(right_join(pipeline, labels, by = "k"), name = "r"),
               "Right outer join with a streaming DataFrame/Dataset on the left is not supported", class = "streamlyr_error_config")
  expect_error(stream_write_memory(full_join(pipeline, labels, by = "k"), name = "f"),
               "Full outer joins with streaming DataFrames/Datasets are not supported", class = "streamlyr_error_config")
  cnd <- rlang::catch_cnd(stream_write_memory(left_join(s, labels, by = c(value = "k")), name = "t"))
  expect_s3_class(cnd, "streamlyr_error_config")
  expect_equal(cnd$arg, "by")
  expect_match(conditionMessage(cnd), "can't join `value` (Binary) with `k` (Utf8)", fixed = TRUE)
  expect_error(stream_write_memory(semi_join(s, labels, by = c(value = "k")), name = "u"), "the key types differ")
})

test_that("copy_to() makes a table of the connection, with sparklyr's checks", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  lookup <- data.frame(k = c("a", "b"), n = c(1L, 2L))
  table <- copy_to(sc, lookup)
  expect_s3_class(table, "tbl_streamlyr_memory")
  expect_same_rows(collect(table), lookup)
  expect_snapshot(copy_to(sc, lookup), error = TRUE)
  replaced <- copy_to(sc, data.frame(k = "c", n = 3L), "lookup", overwrite = TRUE)
  expect_same_rows(collect(replaced), data.frame(k = "c", n = 3L))
  expect_error(copy_to(sc, 1:3, "x"), "`df` must be a data frame", class = "streamlyr_error_config")
  expect_error(copy_to(sc, lookup, "x", overwrite = NA), "`overwrite` must be `TRUE` or `FALSE`")
  # A name that isn't a variable's gets a fresh one.
  expect_match(copy_to(sc, data.frame(k = "a"))$stream$name, "^streamlyr_tmp_")
  # dbplyr's own door (`copy = TRUE`) registers the table the same way.
  copy_to(dbplyr::src_dbi(sc), data.frame(k = "z"), name = "via_dbplyr")
  expect_same_rows(collect(tbl(sc, "via_dbplyr")), data.frame(k = "z"))
})

test_that("set operations on a stream are errors that name the verb", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  s <- unconnected_stream(sc)
  expect_snapshot(union_all(s, s), error = TRUE)
  expect_snapshot(s %>% select(key) %>% dplyr::setdiff(data.frame(key = "a")), error = TRUE)
  for (verb in c(set_verbs, "setequal")) {
    set_op <- getExportedValue("dplyr", verb)
    expect_error(set_op(s, s), paste0("`", verb, "\\(\\)` on a stream is not supported yet"),
                 class = "streamlyr_error_unsupported")
    expect_error(set_op(select(s, key), select(s, key)), paste0("`", verb, "\\(\\)` on a stream"),
                 class = "streamlyr_error_unsupported")
  }
})

test_that("compute(), collapse(), explain() and rows_*() are errors that name the verb", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  s <- unconnected_stream(sc)
  expect_snapshot(compute(s), error = TRUE)
  expect_snapshot(s %>% filter(partition == 0L) %>% collapse(), error = TRUE)
  expect_snapshot(explain(s), error = TRUE)
  expect_error(rows_insert(s, data.frame(key = "a"), by = "key"), "`rows_insert\\(\\)` on a stream",
               class = "streamlyr_error_unsupported")
})

test_that("memory tables combine with each other, and give clear errors with anything else", {
  sc <- spark_connect()
  on.exit(spark_disconnect(sc))
  write_table <- function(df, name) {
    stream <- stream_write_memory(df, name = name, checkpoint = tempfile())
    wait_for(function() stream_state(stream) == "stopped")
    tbl(sc, name)
  }
  words <- write_table(data.frame(k = c("a", "b", "c"), n = c(1, 2, 3)), "words")
  labels <- write_table(data.frame(k = c("a", "b"), label = c("x", "y")), "labels")
  expect_same_rows(collect(left_join(words, labels, by = "k")),
                   data.frame(k = c("a", "b", "c"), n = c(1, 2, 3), label = c("x", "y", NA)))
  expect_same_rows(collect(union_all(select(words, k), select(labels, k))), data.frame(k = c("a", "b", "c", "a", "b")))
  expect_same_rows(collect(left_join(words, data.frame(k = "a", other = 1), by = "k", copy = TRUE)),
                   data.frame(k = c("a", "b", "c"), n = c(1, 2, 3), other = c(1, NA, NA)))
  expect_snapshot(semi_join(words, unconnected_stream(sc), by = c(k = "topic")), error = TRUE)
  expect_error(compute(words), "`compute\\(\\)` on a memory table is not supported yet", class = "streamlyr_error_unsupported")
  expect_error(collapse(words), "`collapse\\(\\)` on a memory table", class = "streamlyr_error_unsupported")
})

test_that("a stream joins a table: left join into Kafka (unmatched rows without the table's columns), a replaced table from the next batch on", {
  servers <- kafka_bootstrap()
  input <- new_topic("orders")
  output <- new_topic("enriched")
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  customers <- copy_to(sc, data.frame(id = c("c1", "c2"), city = c("Lyon", "Oslo")), "customers")
  orders <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest"))
  enriched <- orders %>%
    transmute(order = as.character(value), id = as.character(key)) %>%
    left_join(customers, by = "id")
  stream <- stream_write_kafka(enriched, checkpoint = new_checkpoint(), options = list(kafka.bootstrap.servers = servers, topic = output))
  kcat_produce(input, c("o1", "o2", "o3"), keys = c("c1", "c2", "c3"))
  got <- kcat_read(output, 3)
  rows <- lapply(got$value, jsonlite::fromJSON)
  expect_equal(sort(vapply(rows, function(r) paste(r$order, r$id, rlang::`%||%`(r$city, "NA")), "")), c("o1 c1 Lyon", "o2 c2 Oslo", "o3 c3 NA"))
  # copy_to(overwrite = TRUE): the next batch joins the new rows.
  copy_to(sc, data.frame(id = c("c1", "c3"), city = c("Lima", "Rome")), "customers", overwrite = TRUE)
  kcat_produce(input, c("o4", "o5"), keys = c("c3", "c2"))
  got <- kcat_read(output, 5)
  rows <- lapply(got$value[4:5], jsonlite::fromJSON)
  expect_equal(sort(vapply(rows, function(r) paste(r$order, rlang::`%||%`(r$city, "NA")), "")), c("o4 Rome", "o5 NA"))
  stream_stop(stream)
})

test_that("inner, semi and anti joins, and a join then a windowed count, equal dplyr on the same data frame", {
  servers <- kafka_bootstrap()
  input <- new_topic("clicks")
  sc <- spark_connect(master = "local")
  on.exit(spark_disconnect(sc))
  set.seed(5)
  clicks <- data.frame(user = sample(paste0("u", 1:8), 200, TRUE), t = 1000 + sort(sample(0:59, 200, TRUE)))
  users <- data.frame(user = paste0("u", 1:6), country = rep(c("FR", "NO", "PE"), 2))
  kcat_produce(input, paste0(clicks$user, ",", clicks$t))
  table <- copy_to(sc, users, "users")
  stream <- stream_read_kafka(sc, options = list(kafka.bootstrap.servers = servers, subscribe = input, startingOffsets = "earliest")) %>%
    mutate(v = as.character(value)) %>%
    transmute(user = split_part(v, ",", 1L), t = as.integer(split_part(v, ",", 2L)))
  expect_same_rows(collect(inner_join(stream, table, by = "user")), dplyr::inner_join(clicks, users, by = "user"))
  # A data frame joins through dbplyr's `copy = TRUE`, copied into the connection first.
  expect_same_rows(collect(left_join(stream, users, by = "user", copy = TRUE)), dplyr::left_join(clicks, users, by = "user"))
  expect_same_rows(collect(semi_join(stream, table, by = "user")), dplyr::semi_join(clicks, users, by = "user"))
  expect_same_rows(collect(anti_join(stream, table, by = "user")), dplyr::anti_join(clicks, users, by = "user"))
  # Enrich, then count per country and 10-second window, written once each window closes.
  per_window <- stream %>%
    inner_join(table, by = "user") %>%
    mutate(ts = to_timestamp(t)) %>%
    stream_watermark("ts", "5 seconds") %>%
    group_by(w = window(ts, "10 seconds"), country) %>%
    summarise(n = n(), .groups = "drop")
  st <- stream_write_memory(per_window, name = "per_window", mode = "append", checkpoint = new_checkpoint())
  expect_true(wait_for(function() streamlyr:::query_status(st$ptr)$rows_in >= 200))
  expect_true(wait_for(function() nrow(collect(tbl(sc, "per_window"))) > 0))
  Sys.sleep(0.5)
  stream_stop(st)
  got <- collect(tbl(sc, "per_window"))
  joined <- dplyr::inner_join(clicks, users, by = "user")
  joined$start <- floor(joined$t / 10) * 10
  closed <- joined[joined$start + 10 <= max(clicks$t) - 5, ]
  expected <- as.data.frame(dplyr::count(closed, start, country))
  expect_same_rows(data.frame(start = as.numeric(got$w_start), country = got$country, n = as.numeric(got$n)),
                   data.frame(start = expected$start, country = expected$country, n = as.numeric(expected$n)))
})
