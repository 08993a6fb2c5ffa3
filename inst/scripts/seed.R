# The main job: the reference page's example, verbatim but for library(),
# run against the local Kafka that tools/demo.sh started, fed with sample
# records while it runs. Prints what happened, then stops cleanly.
n <- as.integer(Sys.getenv("STREAMLYR_DEMO_RECORDS", "200000"))

library(streamlyr)
sc <- spark_connect(master = "local", version = "2.3", packages = "kafka")

read_options <- list(kafka.bootstrap.servers = "localhost:9092", subscribe = "topic1")
write_options <- list(kafka.bootstrap.servers = "localhost:9092", topic = "topic2")

stream <- stream_read_kafka(sc, options = read_options) %>%
stream_write_kafka(options = write_options)

cat("\nStarted:\n")
print(stream)

cat("\nProducing", format(n, big.mark = ","), "sample records into topic1 with kcat...\n")
system(sprintf(
  "seq 1 %d | awk '{printf \"sensor-%%d\\t{\\\"reading\\\":%%d,\\\"unit\\\":\\\"C\\\"}\\n\", $1 %% 16, $1}' | kcat -P -b localhost:9092 -t topic1 -K '\t' -z lz4",
  n
))

deadline <- Sys.time() + 120
stats <- stream_stats(stream)
while (streamlyr:::query_status(stream$ptr)$rows_out < n && Sys.time() < deadline) {
  Sys.sleep(1)
  stats <- stream_stats(stream, stats)
}

cat("\nAfter the sample data went through:\n")
print(stream)
print(summary(stream))
stream_stop(stream)

written <- length(system("kcat -C -b localhost:9092 -t topic2 -e -q -o beginning", intern = TRUE))
cat(sprintf("\nkcat reads %s records back from topic2 (of %s produced into topic1).\n",
            format(written, big.mark = ","), format(n, big.mark = ",")))
spark_disconnect(sc)
if (written < n) quit(status = 1)
