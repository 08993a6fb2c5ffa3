# scaleOut = "group" (stream_read_kafka()): several processes share the
# input's partitions in a consumer group, against the real broker.

# The partitions a member said it owned last (see STREAM_STATUS_FILE).
owned_by <- function(status_file) {
  if (!file.exists(status_file)) return(character())
  lines <- readLines(status_file)
  lines[nzchar(trimws(lines))]
}

group_env <- function(input, output, group, checkpoint, guarantee = "exactly-once") {
  c(STREAM_SERVERS = kafka_bootstrap(), STREAM_INPUT = input, STREAM_OUTPUT = output,
    STREAM_CHECKPOINT = checkpoint, STREAM_GUARANTEE = guarantee, STREAM_GROUP = group,
    STREAM_PIPELINE = "tag", STREAM_MAX_OFFSETS = "500", STREAM_INTERVAL = "100")
}

# What the "tag" pipeline makes of records 1..n (see produce_numbered()).
expected_tagged <- function(n) {
  i <- seq_len(n)
  paste0(sprintf("record-%05d", i[i %% 10 != 7]), "!")
}

# Records "record-<i>" keyed i %% 10.
produce_numbered <- function(topic, from, to) {
  i <- seq(from, to)
  kcat_produce(topic, sprintf("record-%05d", i), keys = as.character(i %% 10))
}

test_that("3 processes share a 6-partition topic; kills, restarts and 3 -> 1 lose and double nothing (exactly-once)", {
  input <- new_topic("in")
  output <- new_topic("out")
  kafka_tool("create-topic", "--topic", input, "--partitions", "6")
  kafka_tool("create-topic", "--topic", output, "--partitions", "3")
  group <- new_topic("group")
  checkpoint <- new_checkpoint()
  n <- 30000
  chunk <- n / 6
  produce_numbered(input, 1, chunk)
  status <- file.path(tempdir(), paste0(group, "-", 1:3))
  start <- function(k) {
    p <- run_stream_process(c(group_env(input, output, group, checkpoint), STREAM_STATUS_FILE = status[[k]]))
    wait_started(p)
    p
  }
  members <- lapply(1:3, start)
  on.exit(for (p in members) p$kill(), add = TRUE)
  ever_owned <- c(FALSE, FALSE, FALSE)
  watch <- function(seconds) {
    deadline <- Sys.time() + seconds
    while (Sys.time() < deadline) {
      for (k in 1:3) if (members[[k]]$is_alive() && length(owned_by(status[[k]])) > 0) ever_owned[[k]] <<- TRUE
      Sys.sleep(0.2)
    }
  }
  watch(8)
  set.seed(16)
  # Input keeps flowing while one member at a time is killed (SIGKILL) and restarted.
  for (round in 2:5) {
    produce_numbered(input, (round - 1) * chunk + 1, round * chunk)
    victim <- sample(1:3, 1)
    watch(runif(1, 1, 3))
    members[[victim]]$kill()
    members[[victim]]$wait()
    unlink(status[[victim]]) # what it owned says nothing about its successor
    members[[victim]] <- start(victim)
    watch(2)
  }
  expect_true(all(ever_owned), label = paste("each member owned partitions:", paste(ever_owned, collapse = ",")))
  # Scale down to one member: it takes every partition over.
  for (k in 2:3) {
    members[[k]]$kill()
    members[[k]]$wait()
  }
  produce_numbered(input, 5 * chunk + 1, n)
  expected <- expected_tagged(n)
  complete <- wait_for(function() nrow(kcat_read(output, 0, timeout = 0)) >= length(expected), 120, 1)
  expect_true(complete)
  Sys.sleep(2) # anything extra would show now
  values <- kcat_read(output, length(expected))$value
  expect_equal(sum(duplicated(values)), 0)
  expect_setequal(values, expected)
  expect_setequal(owned_by(status[[1]]), paste(input, 0:5))
  # Kafka's own Admin client sees the group at the end of the input, with no lag.
  committed <- group_offsets(group)
  expect_equal(sort(committed$partition), 0:5)
  expect_equal(sum(committed$lag), 0)
  expect_equal(sum(committed$offset), n)
})

test_that("a member paused mid-transaction past its session timeout is fenced: its late transaction commits nothing", {
  input <- new_topic("in")
  output <- new_topic("out")
  kafka_tool("create-topic", "--topic", input, "--partitions", "4")
  group <- new_topic("group")
  checkpoint <- new_checkpoint()
  n <- 40000
  produce_numbered(input, 1, 10000)
  # Small batches through a tiny producer queue, so that a pause lands inside
  # a transaction; transactions may stay open 30 s, so only the group's
  # generation (KIP-447), not a timeout, can stop the paused member's.
  # A 10 s session: each look at the transaction (a JVM) happens while the member is frozen.
  env <- c(group_env(input, output, group, checkpoint), STREAM_MAX_OFFSETS = "200", STREAM_PRODUCER_QUEUE = "10",
           STREAM_TXN_TIMEOUT_MS = "30000", STREAM_SESSION_MS = "10000")
  a <- run_stream_process(env)
  wait_started(a)
  b <- run_stream_process(env)
  wait_started(b)
  on.exit({a$kill(); b$kill()}, add = TRUE)
  Sys.sleep(3) # both own partitions
  produce_numbered(input, 10001, n) # and write, for longer than what follows takes
  a_transaction <- paste0("streamlyr-", checkpoint_query_id(file.path(checkpoint, "members", "0")))
  for (try in 1:10) {
    a$suspend() # SIGSTOP: no heartbeats; the group gives its partitions to b after 10 s
    if (any(grepl("Ongoing", kafka_tool("transaction-state", "--id", a_transaction)))) break
    a$resume()
    Sys.sleep(0.2)
  }
  expect_match(kafka_tool("transaction-state", "--id", a_transaction), "Ongoing", all = FALSE)
  Sys.sleep(14)
  a$resume() # its open transaction belongs to a generation that is gone
  expected <- expected_tagged(n)
  complete <- wait_for(function() nrow(kcat_read(output, 0, timeout = 0)) >= length(expected), 120, 1)
  expect_true(complete)
  Sys.sleep(3)
  values <- kcat_read(output, length(expected))$value
  expect_equal(sum(duplicated(values)), 0)
  expect_setequal(values, expected)
})

test_that("the lag stream_stats() shows is the lag kafka-consumer-groups shows for the group (at-least-once)", {
  sc <- spark_connect(master = "local")
  input <- new_topic("in")
  kafka_tool("create-topic", "--topic", input, "--partitions", "3")
  for (p in 0:2) kcat_produce(input, sprintf("record-%d-%04d", p, 1:1000), partition = p)
  group <- new_topic("group")
  stream <- stream_read_kafka(sc, options = list(
    kafka.bootstrap.servers = kafka_bootstrap(), subscribe = input, startingOffsets = "earliest",
    scaleOut = "group", kafka.group.id = group, maxOffsetsPerTrigger = 1200
  )) %>%
    stream_write_memory("group_lag", checkpoint = new_checkpoint(), trigger = stream_trigger_interval(300000))
  on.exit(stream_stop(stream), add = TRUE)
  expect_true(wait_for(function() streamlyr:::query_status(stream$ptr)$batches >= 1, 60))
  stats <- stream_stats(stream)$stats[[1]]
  expect_equal(nrow(stats$partitions), 3)
  expect_equal(stats$lag, 1800)
  described <- NULL
  expect_true(wait_for(function() {
    described <<- consumer_groups(group)
    nrow(described) == 3 && all(is.finite(described$offset))
  }, 30, 0.5))
  described <- described[order(described$partition), ]
  shown <- stats$partitions[order(stats$partitions$partition), ]
  expect_equal(described$offset, shown$offset)
  expect_equal(described$lag, shown$lag)
  expect_true(all(described$consumer != "-"), label = "the stream's consumer is a live member of the group")
  expect_output(print(stream), "partitions: .*\\[0,1,2\\]; lag: 1,800 records")
})

test_that("a second process with the same kafka.group.instance.id fences the first: it fails naming the option, the second goes on", {
  sc <- spark_connect(master = "local")
  input <- new_topic("in")
  kafka_tool("create-topic", "--topic", input, "--partitions", "2")
  options <- list(
    kafka.bootstrap.servers = kafka_bootstrap(), subscribe = input, startingOffsets = "earliest",
    scaleOut = "group", kafka.group.id = new_topic("group"), kafka.group.instance.id = "pod-0"
  )
  start <- function(name) {
    stream_read_kafka(sc, options = options) %>%
      stream_write_memory(name, checkpoint = new_checkpoint(), trigger = stream_trigger_interval(200))
  }
  first <- start("fenced_first")
  on.exit(try(stream_stop(first), silent = TRUE), add = TRUE)
  kcat_produce(input, sprintf("a-%03d", 1:100))
  expect_true(wait_for_rows(first, 100))
  # Another machine's copy with the same pod name (its own checkpoint folder).
  second <- start("fenced_second")
  on.exit(try(stream_stop(second), silent = TRUE), add = TRUE)
  expect_true(wait_for(function() stream_state(first) == "failed", 60))
  expect_output(print(first), "kafka.group.instance.id")
  expect_error(stream_stop(first), "kafka.group.instance.id")
  kcat_produce(input, sprintf("b-%03d", 1:100))
  read_by_second <- function() vapply(dplyr::collect(dplyr::tbl(sc, "fenced_second"))$value, rawToChar, "")
  expect_true(wait_for(function() all(sprintf("b-%03d", 1:100) %in% read_by_second()), 60))
  expect_equal(stream_state(second), "active")
})

test_that("scaleOut's requirements are errors naming the option or argument, before anything runs", {
  sc <- spark_connect(master = "local")
  base <- list(kafka.bootstrap.servers = kafka_bootstrap(), subscribe = "t", scaleOut = "group")
  expect_error(
    stream_read_kafka(sc, options = base) %>% stream_write_memory("g1", checkpoint = new_checkpoint()),
    "kafka.group.id", class = "streamlyr_error_config"
  )
  grouped <- stream_read_kafka(sc, options = c(base, kafka.group.id = "g"))
  expect_error(
    grouped %>% dplyr::count(topic) %>% stream_write_memory("g2", mode = "update", checkpoint = new_checkpoint()),
    "keeps state", class = "streamlyr_error_config"
  )
  expect_error(
    grouped %>% stream_write_parquet(tempfile(), checkpoint = new_checkpoint()),
    "parquet", class = "streamlyr_error_config"
  )
})
