#!/usr/bin/env bash
# Command (2): set everything up, start a local Kafka, run every test
# (the engine's Rust tests, the R package's testthat suite against the real
# broker, then R CMD check of the source tarball as a machine with only R
# and Rust would run it), print one summary line, stop Kafka.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
. "$here/versions.sh"

bash "$here/setup.sh"

port="${STREAMLYR_TEST_PORT:-19092}"
echo; echo "==> Starting Kafka on 127.0.0.1:$port"
export STREAMLYR_TEST_BOOTSTRAP="$(bash "$here/kafka.sh" start --port "$port")"
trap 'bash "$here/kafka.sh" stop --port "$port"' EXIT
export STREAMLYR_KAFKA_TOOLS="$here"
export STREAMLYR_PYTHON="$(bash "$here/python.sh")"
export STREAMLYR_TEST_SASL_BOOTSTRAP="127.0.0.1:$((port + 50))"

cd "$root"
echo; echo "==> cargo test (engine, without R)"
cargo test --release --locked --manifest-path src/rust/Cargo.toml 2>&1 | grep -v "^\s*Compiling "

echo; echo "==> Starting the test schema registry (tests/testthat/scripts/registry.py) for the vignette"
registry_out="$(mktemp)"
"$STREAMLYR_PYTHON" tests/testthat/scripts/registry.py "$(mktemp -d)/registry.json" > "$registry_out" &
registry_pid=$!
trap 'kill "$registry_pid" 2>/dev/null || true; bash "$here/kafka.sh" stop --port "$port"' EXIT
for _ in $(seq 100); do [ -s "$registry_out" ] && break; sleep 0.1; done
export STREAMLYR_SCHEMA_REGISTRY="http://127.0.0.1:$(head -1 "$registry_out")"

echo; echo "==> vignette (runs its code against the broker and the registry)"
Rscript -e 'out <- knitr::knit("vignettes/streamlyr.Rmd", output = tempfile(fileext = ".md"), quiet = TRUE); cat("vignette ran:", out, "\n")'

echo; echo "==> testthat (R package, against Kafka at $STREAMLYR_TEST_BOOTSTRAP)"
summary="$(mktemp)"
Rscript "$here/run-testthat.R" | tee "$summary"

echo; echo "==> R CMD build + R CMD check --no-manual (the tarball, as on a machine with only R and Rust: no broker)"
bash "$here/check.sh"

# The testthat summary again, as the last line.
echo; tail -1 "$summary"
