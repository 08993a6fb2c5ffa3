#!/usr/bin/env bash
# Command (1): set everything up, start Kafka on localhost:9092, run the main
# job (inst/scripts/seed.R: the seed's stream_read_kafka() %>% stream_write_kafka()
# over sample data), print what happened, stop Kafka.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

bash "$here/setup.sh"

echo; echo "==> Starting Kafka on localhost:9092"
bash "$here/kafka.sh" start --port 9092 >/dev/null
trap 'bash "$here/kafka.sh" stop --port 9092' EXIT

workdir="$(mktemp -d)"
cd "$workdir"
Rscript "$root/inst/scripts/seed.R"
cd "$root"
rm -rf "$workdir"
