#!/usr/bin/env bash
# The benchmark: streamlyr against librdkafka with nothing around it, side by
# side in one run on a local single-node broker. Prints medians and ratios.
#   bash bench/run.sh            (BENCH_ROWS=1000000 BENCH_REPEATS=3 by default)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
tools="$root/tools"
. "$tools/versions.sh"
rows="${BENCH_ROWS:-1000000}"
repeats="${BENCH_REPEATS:-3}"
port="${BENCH_PORT:-39092}"

bash "$tools/setup.sh" >/dev/null
cargo build --release -p raw-kafka 2>&1 | grep -v "^\s*Compiling " || true
raw="$CARGO_TARGET_DIR/release/raw-kafka"
servers="$(bash "$tools/kafka.sh" start --port "$port")"
trap 'bash "$tools/kafka.sh" stop --port "$port"' EXIT
results="$(mktemp)"
topic() { echo "bench-$1-$RANDOM$RANDOM"; }

echo "Preloading $rows records of 100 bytes for the passthrough..."
input="$(topic in)"
seq 1 "$rows" | awk '{printf "%-100s\n", "record-" $1}' | kcat -P -b "$servers" -t "$input" -z none -X linger.ms=50

for i in $(seq 1 "$repeats"); do
  echo "Run $i of $repeats"
  echo "raw $("$raw" produce-json "$servers" "$(topic p1raw)" "$rows")" >> "$results"
  echo "streamlyr $(Rscript "$here/streamlyr.R" produce-json "$servers" "$(topic p1)" "$rows")" >> "$results"
  echo "raw $("$raw" passthrough "$servers" "$input" "$(topic p2raw)" "$rows")" >> "$results"
  echo "streamlyr $(Rscript "$here/streamlyr.R" passthrough "$servers" "$input" "$(topic p2)" "$rows")" >> "$results"
  echo "streamlyr $(Rscript "$here/streamlyr.R" start "$servers" "$input" "$(topic p4)")" >> "$results"
done

Rscript - "$results" <<'RSCRIPT'
r <- read.table(commandArgs(TRUE)[1], col.names = c("who", "case", "records", "seconds"))
med <- aggregate(seconds ~ who + case + records, r, median)
med$records_per_second <- round(med$records / med$seconds)
cat("\nMedians:\n")
print(med[order(med$case, med$who), ], row.names = FALSE)
ratio <- function(case) {
  s <- med$records_per_second[med$who == "streamlyr" & med$case == case]
  b <- med$records_per_second[med$who == "raw" & med$case == case]
  sprintf("%-13s streamlyr / raw librdkafka = %.2f", case, s / b)
}
cat("\nRatios (messages per second):\n")
cat(ratio("produce-json"), "(target >= 0.9)\n")
cat(ratio("passthrough"), "(target >= 0.8)\n")
cat(sprintf("start         library(streamlyr) to a running stream: %.2f s (target <= 0.5 s)\n",
            med$seconds[med$case == "start"]))
cat("Spark Structured Streaming: not run by this version of the benchmark.\n")
RSCRIPT
