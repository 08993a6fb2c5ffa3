#!/usr/bin/env bash
# The benchmark: streamlyr against librdkafka with nothing around it, side by
# side in one run on a local single-node broker. Prints medians and ratios.
#   bash bench/run.sh            (BENCH_ROWS=1000000 BENCH_REPEATS=3 by default)
#   BENCH_ONLY=scale bash bench/run.sh   (only the scale-out case)
#   BENCH_ONLY=kafka bash bench/run.sh   (only P1, P2 with their baselines, and P2's dplyr and continuous cases)
#   BENCH_ONLY=latency bash bench/run.sh (only P3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
tools="$root/tools"
. "$tools/versions.sh"
rows="${BENCH_ROWS:-1000000}"
repeats="${BENCH_REPEATS:-3}"
port="${BENCH_PORT:-39092}"

bash "$tools/setup.sh" >/dev/null
cargo build --release --locked --manifest-path "$here/raw-kafka/Cargo.toml" 2>&1 | grep -v "^\s*Compiling " || true
raw="$CARGO_TARGET_DIR/release/raw-kafka"
cargo build --release --locked --manifest-path "$here/raw-files/Cargo.toml" 2>&1 | grep -v "^\s*Compiling " || true
raw_files="$CARGO_TARGET_DIR/release/raw-files"
# The broker gets room enough that its young generation is not collected
# every two seconds (with the tests' 768 MB G1 heap it pauses 10-25 ms about
# that often under P3's load, which is most of P3's p99; bench/README.md).
export KAFKA_JVM_OPTS="${BENCH_KAFKA_JVM_OPTS:--Xms4g -Xmx4g -Xmn3g -XX:+UseParallelGC}"
servers="$(bash "$tools/kafka.sh" start --port "$port")"
trap 'bash "$tools/kafka.sh" stop --port "$port"' EXIT
results="$(mktemp)"
latencies="$(mktemp)"
topic() { echo "bench-$1-$RANDOM$RANDOM"; }
# A topic that exists before the clock starts, for the raw baseline and
# streamlyr alike (a metadata request creates it).
made_topic() {
  local t; t="$(topic "$1")"
  kcat -L -b "$servers" -t "$t" >/dev/null
  until kcat -L -b "$servers" -t "$t" | grep -q "with 1 partitions"; do sleep 0.1; done
  echo "$t"
}

echo "Preloading $rows records of 100 bytes for the passthrough..."
input="$(topic in)"
seq 1 "$rows" | awk '{printf "%-100s\n", "record-" $1}' | kcat -P -b "$servers" -t "$input" -z none -X linger.ms=50

echo "Writing $rows rows as 10 CSV files for the file case..."
work="$(mktemp -d)"
files_in="$work/in"
mkdir -p "$files_in"
awk -v rows="$rows" -v dir="$files_in" 'BEGIN {
  per = rows / 10
  for (f = 0; f < 10; f++) {
    file = sprintf("%s/f%02d.csv", dir, f); print "id,x,label,flag" > file
    for (i = f * per + 1; i <= (f + 1) * per; i++) printf "%d,%.6f,label-%014d,%s\n", i, i / 7, i, (i % 2 == 0 ? "true" : "false") > file
    close(file)
  }
}'
echo "Starting the test schema registry and writing $rows Confluent-Avro records for the Avro case..."
"$(bash "$tools/python.sh")" "$root/tests/testthat/scripts/registry.py" "$work/registry.json" > "$work/registry.port" &
registry_pid=$!
trap 'kill "$registry_pid" 2>/dev/null || true; bash "$tools/kafka.sh" stop --port "$port"; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/registry.port" ] && break; sleep 0.1; done
registry="http://127.0.0.1:$(head -1 "$work/registry.port")"
avro_input="$(topic avro-in)"
Rscript "$here/streamlyr.R" avro-setup "$servers" "$avro_input" "$rows" "$registry"

"$raw" json-lines "$rows" > "$work/p1.jsonl"
streamlyr() { Rscript "$here/streamlyr.R" "$@" | sed 's/^/streamlyr /' >> "$results"; }
# A baseline `<who>` that prints `<case> <records> <seconds>`; adds
# `cpu-<case> <records> <seconds>`, the CPU time of the whole command (its
# processes start in milliseconds, so nothing to subtract).
baseline() {
  local who="$1" line; shift
  line="$( { TIMEFORMAT='%U %S'; time "$@" 2>/dev/null; } 2>"$work/cpu" )"
  echo "$who $line" >> "$results"
  set -- $line
  awk -v who="$who" -v c="$1" -v n="$2" '{ printf "%s cpu-%s %d %.3f\n", who, c, n, $1 + $2 }' "$work/cpu" >> "$results"
}
# P1's: kcat sending the same JSON rows, made before its clock starts.
kcat_produce() {  # <topic> <file of rows> <n>
  local t0 t1
  t0="$(date +%s.%N)"
  kcat -P -b "$servers" -t "$1" -z none -X enable.idempotence=true -X acks=all -X linger.ms=5 -l "$2"
  t1="$(date +%s.%N)"
  echo "produce-json $3 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
}
# P2's strongest plain baseline: two kcat processes piped, the producer with
# streamlyr's settings (idempotent, acks=all, linger.ms=5, no compression).
kcat_pipe() {  # <from> <to> <n>
  local t0 t1
  t0="$(date +%s.%N)"
  kcat -C -b "$servers" -t "$1" -o beginning -e -q -c "$3" |
    kcat -P -b "$servers" -t "$2" -z none -X enable.idempotence=true -X acks=all -X linger.ms=5
  t1="$(date +%s.%N)"
  echo "passthrough $3 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
}

# Scale-out (#16): <k> processes of one passthrough in a consumer group
# (<group> "none": one process without scaleOut) on a 6-partition topic. The
# clock runs from the first process's stream definition (R's start-up
# excluded) until their committed rows add up to <n>: joining and
# rebalancing count. CPU: all the processes', from /proc, less what each
# had used when its clock started (R's start-up).
scale_out() {  # <k> <group|none> <from> <n> <label>
  local k="$1" group="$2" from="$3" n="$4" label="$5" out pids=() j pid t1 ticks=0
  # As many output partitions: a passthrough keeps each record's `partition`.
  out="$(topic scale-out)"
  bash "$tools/kafka.sh" create-topic --port "$port" --topic "$out" --partitions 6 >/dev/null 2>&1
  rm -f "$work"/progress-"$label"-*
  for j in $(seq 1 "$k"); do
    Rscript "$here/streamlyr.R" member "$servers" "$from" "$out" at-least-once "$group" "$work/progress-$label-$j" >/dev/null &
    pids+=("$!")
  done
  local deadline=$((SECONDS + 600))
  until [ "$(cat "$work"/progress-"$label"-* 2>/dev/null | awk '{ s += $3 } END { printf "%d", s }')" -ge "$n" ]; do
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
        echo "scale-out: a process of $label ended early, or 10 minutes passed" >&2
        kill "${pids[@]}" 2>/dev/null || true
        exit 1
      fi
    done
    sleep 0.02
  done
  t1="$(date +%s.%N)"
  for pid in "${pids[@]}"; do ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  awk -v t1="$t1" -v label="$label" -v n="$n" -v cpu="$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }')" \
    'NR == 1 || $1 < t0 { t0 = $1 } { before += $2 } END { printf "streamlyr %s %d %.4f\nstreamlyr cpu-%s %d %.3f\n", label, n, t1 - t0, label, n, cpu - before }' \
    "$work"/progress-"$label"-* >> "$results"
}
echo "Preloading $rows records on 6 partitions for the scale-out case..."
scale_input="$(topic scale-in)"
bash "$tools/kafka.sh" create-topic --port "$port" --topic "$scale_input" --partitions 6 >/dev/null 2>&1
seq 1 "$rows" | awk '{printf "%-100s\n", "record-" $1}' | kcat -P -b "$servers" -t "$scale_input" -z none -X linger.ms=50

for i in $(seq 1 "$repeats"); do
  [ "${BENCH_ONLY:-}" = latency ] && break
  echo "Run $i of $repeats: P1, P2, P4, P6, window count, join, files, scale-out"
  if [ "${BENCH_ONLY:-}" != kafka ]; then
    for k in 1 2 3; do scale_out "$k" "bench-group-$i-$k" "$scale_input" "$rows" "scale-$k-group"; done
    scale_out 1 none "$scale_input" "$rows" scale-1-alone
  fi
  [ "${BENCH_ONLY:-}" = scale ] && continue
  # P1 and P2, each side going first in every other round: where a case
  # runs (after whose 1M records, how warm the broker) moved P1 by up to 2x
  # here (streamlyr 1.7-3.7 s, kcat -P 1.4-3.3 s; bench/README.md).
  if [ $((i % 2)) = 1 ]; then
    baseline raw "$raw" produce-json "$servers" "$(made_topic p1raw)" "$rows"
    baseline kcat kcat_produce "$(made_topic p1kcat)" "$work/p1.jsonl" "$rows"
    streamlyr produce-json "$servers" "$(made_topic p1)" "$rows"
    baseline raw "$raw" passthrough "$servers" "$input" "$(made_topic p2raw)" "$rows"
    baseline kcat kcat_pipe "$input" "$(made_topic p2kcat)" "$rows"
    streamlyr passthrough "$servers" "$input" "$(made_topic p2)" "$rows"
  else
    streamlyr produce-json "$servers" "$(made_topic p1)" "$rows"
    baseline kcat kcat_produce "$(made_topic p1kcat)" "$work/p1.jsonl" "$rows"
    baseline raw "$raw" produce-json "$servers" "$(made_topic p1raw)" "$rows"
    streamlyr passthrough "$servers" "$input" "$(made_topic p2)" "$rows"
    baseline kcat kcat_pipe "$input" "$(made_topic p2kcat)" "$rows"
    baseline raw "$raw" passthrough "$servers" "$input" "$(made_topic p2raw)" "$rows"
  fi
  # dplyr on P2's input: a filter/mutate pipeline, and a count() over about 1,000 groups.
  streamlyr pipeline "$servers" "$input" "$(made_topic pipeline)" "$rows"
  streamlyr aggregate "$servers" "$input" "$(made_topic count)" "$rows" 0 at-least-once count
  # The continuous trigger moving P2's records (epochs of 100 ms: see streamlyr.R).
  streamlyr passthrough "$servers" "$input" "$(made_topic continuous)" "$rows" continuous at-least-once continuous
  [ "${BENCH_ONLY:-}" = kafka ] && continue
  streamlyr start "$servers" "$input" "$(topic p4)"
  # P6: batches of about a second each (a trigger every second, 150,000 records at most).
  streamlyr passthrough "$servers" "$input" "$(made_topic p6)" "$rows" 1000 at-least-once p6-at-least-once 150000
  streamlyr passthrough "$servers" "$input" "$(made_topic p6)" "$rows" 1000 exactly-once p6-exactly-once 150000
  # Event time and joins (#12): a count per 10-second window of event time, and a 100,000-row lookup.
  streamlyr window "$servers" "$input" "$(made_topic window)" "$rows"
  streamlyr join "$servers" "$input" "$(made_topic join)" "$rows"
  # Files (#13): a folder of 10 CSV files into parquet files, against arrow-rs alone.
  echo "raw $("$raw_files" "$files_in" "$work/raw-$i")" >> "$results"
  streamlyr files "$files_in" "$work/streamlyr-$i" "$rows"
  # Formats (#15): Confluent-Avro decoded into columns and encoded again, against the same records as bytes.
  streamlyr avro "$servers" "$avro_input" "$(made_topic avro)" "$rows" "$registry"
  streamlyr passthrough "$servers" "$avro_input" "$(made_topic avro-bytes)" "$rows" 0 at-least-once avro-bytes
done

# Spark Structured Streaming on P1 and P2 (once: it takes a while to start).
if [ -z "${BENCH_ONLY:-}" ] && [ "${BENCH_SPARK:-1}" = 1 ]; then
  echo "Spark: P1 and P2 through Spark's Kafka sink (local[2])"
  bash "$here/spark.sh" "$servers" "$rows" "$input" "$files_in" >> "$results"
fi

if [ -z "${BENCH_ONLY:-}" ]; then
# P5: peak memory as the stream grows 10x (passthrough, and a count() over ~1,000 groups).
big_rows=$((rows * 10))
echo "P5: preloading $big_rows records"
big="$(topic big)"
seq 1 "$big_rows" | awk '{printf "%-100s\n", "record-" $1}' | kcat -P -b "$servers" -t "$big" -z none -X linger.ms=50
streamlyr passthrough "$servers" "$input" "$(topic p5)" "$rows" 0 at-least-once p5-passthrough-1x
streamlyr passthrough "$servers" "$big" "$(topic p5)" "$big_rows" 0 at-least-once p5-passthrough-10x
streamlyr aggregate "$servers" "$input" "$(topic p5)" "$rows" 0 at-least-once p5-count-1x
streamlyr aggregate "$servers" "$big" "$(topic p5)" "$big_rows" 0 at-least-once p5-count-10x
# Windows close as event time moves on: 10x the records pass 10x the windows, with as many open at a time.
streamlyr window "$servers" "$input" "$(topic p5)" "$rows" 0 at-least-once p5-window-1x
streamlyr window "$servers" "$big" "$(topic p5)" "$big_rows" 0 at-least-once p5-window-10x

fi

if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = latency ]; then
# P3: latency at a fixed input rate, BENCH_LATENCY_REPEATS runs per trigger (medians).
latency_seconds="${BENCH_LATENCY_SECONDS:-30}"
latency_repeats="${BENCH_LATENCY_REPEATS:-3}"
for i in $(seq 1 "$latency_repeats"); do
  echo "P3 ($i of $latency_repeats): the probe alone (its own produce -> visible, one topic): the floor of what it can measure"
  probe="$(made_topic p3self)"
  # Each P3 run starts just after a broker GC, so that no collection (about
  # every 75 s at this load with a 3 GB young generation) falls inside it.
  bash "$tools/kafka.sh" gc --port "$port"
  "$raw" latency "$servers" "$probe" "$probe" 10000 "$latency_seconds" probe-alone >> "$latencies"
  # The relay (librdkafka consume -> produce, linger 0, no checkpoint) is
  # the least any process between the two topics adds: continuous's baseline.
  for trigger in interval0 default continuous relay; do
    echo "P3 ($i of $latency_repeats): latency with the $trigger trigger ($latency_seconds s at 10,000 msg/s)"
    in="$(made_topic p3in)"; out="$(made_topic p3out)"
    ready="$(mktemp)"
    if [ "$trigger" = relay ]; then
      "$raw" relay "$servers" "$in" "$out" > "$ready" &
    else
      Rscript "$here/streamlyr.R" stream "$servers" "$in" "$out" "$trigger" > "$ready" &
    fi
    stream_pid=$!
    until grep -q ready "$ready"; do sleep 0.2; done
    bash "$tools/kafka.sh" gc --port "$port"
    "$raw" latency "$servers" "$in" "$out" 10000 "$latency_seconds" "$trigger" >> "$latencies"
    kill "$stream_pid"; wait "$stream_pid" 2>/dev/null || true
  done
done
fi

Rscript - "$results" "$latencies" <<'RSCRIPT'
files <- commandArgs(TRUE)
# BENCH_ONLY=latency has no throughput cases.
if (file.size(files[1]) > 0) {
  r <- read.table(files[1], col.names = c("who", "case", "records", "value"))
  med <- aggregate(value ~ who + case + records, r, median)
  is_rss <- startsWith(med$case, "rss-")
  is_cpu <- startsWith(med$case, "cpu-")
  times <- med[!is_rss & !is_cpu, ]
  times$records_per_second <- round(times$records / times$value)
  names(times)[names(times) == "value"] <- "seconds"
  cat("\nMedians:\n")
  print(times[order(times$case, times$who), ], row.names = FALSE)
  rate <- function(who, case) times$records_per_second[times$who == who & times$case == case]
  ratio <- function(label, s, b, target) cat(sprintf("%-40s %.2f (target %s)\n", label, s / b, target))
  cat("\nRatios (messages per second):\n")
  ratio("P1 produce-json: streamlyr / raw", rate("streamlyr", "produce-json"), rate("raw", "produce-json"), ">= 0.9")
  ratio("P1 produce-json: streamlyr / kcat -P", rate("streamlyr", "produce-json"), rate("kcat", "produce-json"), ">= 0.9")
  ratio("P2 passthrough: streamlyr / raw", rate("streamlyr", "passthrough"), rate("raw", "passthrough"), ">= 0.8")
  ratio("P2 passthrough: streamlyr / kcat pipe", rate("streamlyr", "passthrough"), rate("kcat", "passthrough"), ">= 0.9")
  ratio("filter/mutate pipeline / passthrough", rate("streamlyr", "pipeline"), rate("streamlyr", "passthrough"), ">= 0.9")
  ratio("count() / passthrough", rate("streamlyr", "count"), rate("streamlyr", "passthrough"), ">= 0.9")
  ratio("continuous / interval(0), passthrough", rate("streamlyr", "continuous"), rate("streamlyr", "passthrough"), ">= 0.8")
  ratio("window count / passthrough", rate("streamlyr", "window"), rate("streamlyr", "passthrough"), ">= 0.7")
  ratio("join, 100,000-row table / passthrough", rate("streamlyr", "join"), rate("streamlyr", "passthrough"), ">= 0.7")
  ratio("files csv -> parquet: streamlyr / arrow-rs", rate("streamlyr", "files"), rate("raw", "files"), ">= 0.8")
  ratio("Confluent-Avro in and out / as bytes", rate("streamlyr", "avro"), rate("streamlyr", "avro-bytes"), ">= 0.7")
  ratio("P6 1 s batches: exactly-once / at-least-once", rate("streamlyr", "p6-exactly-once"), rate("streamlyr", "p6-at-least-once"), ">= 0.9")
  ratio("Scale-out, 1 process: group / alone", rate("streamlyr", "scale-1-group"), rate("streamlyr", "scale-1-alone"), ">= 0.9")
  ratio("Scale-out: 2 processes / 1 (group)", rate("streamlyr", "scale-2-group"), rate("streamlyr", "scale-1-group"), "report")
  ratio("Scale-out: 3 processes / 1 (group)", rate("streamlyr", "scale-3-group"), rate("streamlyr", "scale-1-group"), "report")
  cat(sprintf("%-40s %.2f s (target <= 0.5 s)\n", "P4 library() to a running stream", times$seconds[times$case == "start"]))
  if (any(times$who == "spark")) {
    cat("\nstreamlyr / Spark Structured Streaming (messages per second; > 1 means streamlyr is faster):\n")
    for (case in intersect(c("produce-json", "passthrough", "files"), times$case[times$who == "spark"])) {
      ratio(sprintf("%s, Spark's job alone", case), rate("streamlyr", case), rate("spark", case), "> 1")
      ratio(sprintf("%s, with Spark's start-up", case), rate("streamlyr", case), rate("spark", paste0(case, "-startup")), "> 1")
    }
  } else {
    cat("\nSpark Structured Streaming: not run (see above).\n")
  }
  cpu <- med[is_cpu, ]
  cpu$cpu_s_per_million <- round(cpu$value / cpu$records * 1e6, 2)
  cpu$case <- sub("cpu-", "", cpu$case)
  cat("\nCPU seconds per million records (all threads; medians; target: streamlyr's P2 <= the kcat pipe's):\n")
  print(cpu[order(cpu$case, cpu$who), c("who", "case", "records", "cpu_s_per_million")], row.names = FALSE)
  rss <- med[is_rss & grepl("p5-", med$case), ]
  cat("\nP5 peak RSS of the R process (MB; target: flat as records grow 10x, <= 300):\n")
  print(data.frame(case = sub("rss-", "", rss$case), records = rss$records, peak_rss_mb = rss$value), row.names = FALSE)
}
if (file.exists(files[2]) && file.size(files[2]) > 0) {
  l <- read.table(files[2], col.names = c("case", "records", "p50_ms", "p99_ms"))
  runs <- aggregate(p99_ms ~ case, l, function(x) paste(sprintf("%.1f", x), collapse = " "))
  l <- merge(aggregate(cbind(records, p50_ms, p99_ms) ~ case, l, median), setNames(runs, c("case", "p99_ms_each_run")))
  cat("\nP3 latency, produce -> visible in the output topic, 10,000 msg/s, median of runs (targets: continuous p99 <= 5 ms, interval(0) p99 <= 50 ms):\n")
  print(l, row.names = FALSE)
  p99 <- function(case) l$p99_ms[l$case == paste0("latency-", case)]
  if (length(p99("relay")) && length(p99("continuous"))) {
    cat(sprintf("%-40s %.1f ms (the relay's p99: %.1f ms)\n", "P3 p99: continuous - relay", p99("continuous") - p99("relay"), p99("relay")))
  }
}
RSCRIPT
