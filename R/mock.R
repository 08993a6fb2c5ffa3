#' A Kafka for tests: librdkafka's in-process mock cluster
#'
#' `kafka_mock_cluster()` starts a Kafka cluster inside the R process, with
#' no Java and no setup, and returns it; give `cluster$bootstrap_servers` as
#' `kafka.bootstrap.servers`. It speaks Kafka's protocol on loopback ports, so
#' any Kafka client can use it. It is closed with `kafka_mock_close()` or when
#' garbage-collected.
#'
#' It is meant for unit tests (testthat) and fault injection: take a broker
#' down with `kafka_mock_broker_down()` and bring it back with
#' `kafka_mock_broker_up()`. It is not a real broker: it keeps only a few MiB
#' per partition and does not keep offsets committed inside transactions, so
#' test exactly-once delivery against a real Kafka.
#'
#' @param brokers Number of brokers, numbered from 1.
#' @param cluster A cluster from `kafka_mock_cluster()`.
#' @param broker A broker number.
#' @param topic,partitions A topic to create, with this many partitions.
#' @return `kafka_mock_cluster()` returns the cluster (`$bootstrap_servers`
#'   holds its address); the others return `cluster` invisibly.
#' @export
#' @examples
#' cluster <- kafka_mock_cluster()
#' cluster$bootstrap_servers
#' kafka_mock_close(cluster)
kafka_mock_cluster <- function(brokers = 1) {
  if (!is.numeric(brokers) || length(brokers) != 1 || is.na(brokers) || brokers < 1 || brokers != round(brokers)) {
    abort_streamlyr(paste0("`brokers` must be a whole number of at least 1, not ", obj_type(brokers), "."), arg = "brokers")
  }
  made <- mock_cluster_new(as.integer(brokers))
  ptr <- engine_result(made)
  structure(
    list(bootstrap_servers = made$bootstrap_servers, brokers = as.integer(brokers), ptr = ptr),
    class = "streamlyr_mock_cluster"
  )
}

#' @rdname kafka_mock_cluster
#' @export
kafka_mock_broker_down <- function(cluster, broker = 1) {
  check_mock(cluster)
  engine_result(mock_cluster_broker(cluster$ptr, as.integer(broker), FALSE))
  invisible(cluster)
}

#' @rdname kafka_mock_cluster
#' @export
kafka_mock_broker_up <- function(cluster, broker = 1) {
  check_mock(cluster)
  engine_result(mock_cluster_broker(cluster$ptr, as.integer(broker), TRUE))
  invisible(cluster)
}

#' @rdname kafka_mock_cluster
#' @export
kafka_mock_create_topic <- function(cluster, topic, partitions = 1) {
  check_mock(cluster)
  check_string(topic)
  engine_result(mock_cluster_create_topic(cluster$ptr, topic, as.integer(partitions), 1L))
  invisible(cluster)
}

#' @rdname kafka_mock_cluster
#' @export
kafka_mock_close <- function(cluster) {
  check_mock(cluster)
  mock_cluster_close(cluster$ptr)
  invisible(cluster)
}

#' @export
print.streamlyr_mock_cluster <- function(x, ...) {
  cat("<kafka mock cluster> ", x$brokers, " broker", if (x$brokers != 1) "s", " at ", x$bootstrap_servers, "\n", sep = "")
  invisible(x)
}

check_mock <- function(cluster, call = rlang::caller_env()) {
  if (!inherits(cluster, "streamlyr_mock_cluster")) {
    abort_streamlyr(
      paste0("`cluster` must come from kafka_mock_cluster(), not ", obj_type(cluster), "."),
      arg = "cluster", call = call
    )
  }
}
