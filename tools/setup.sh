#!/usr/bin/env bash
# Everything streamlyr needs on a fresh Debian machine, idempotent:
#   - R and the r-cran-* packages (Debian, --no-install-recommends), kcat, the
#     C libraries librdkafka links against;
#   - Kafka's jars from Maven Central (pinned, cached outside the clone);
#   - pyarrow, pyspark and deltalake from PyPI (tools/python.sh), independent
#     readers of the files and tables streamlyr writes;
#   - the Rust engine, built in a fixed target directory outside the clone
#     (incremental across clones and runs), and the R package installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
. "$here/versions.sh"

log() { printf '\n==> %s\n' "$*"; }

debian_packages=(
  r-base-dev r-cran-testthat r-cran-dplyr r-cran-dbplyr r-cran-rlang r-cran-cli
  r-cran-dbi r-cran-tibble r-cran-uuid r-cran-jsonlite r-cran-later r-cran-magrittr r-cran-withr
  r-cran-processx r-cran-roxygen2 r-cran-knitr r-cran-rmarkdown
  # stream_render()/stream_view()/reactiveSpark(), and the headless browser
  # their test loads the widget in.
  r-cran-htmlwidgets r-cran-shiny chromium-headless-shell
  kcat cmake pkg-config libssl-dev libsasl2-dev libzstd-dev zlib1g-dev libcurl4-openssl-dev
  maven
  # Debian's Python with venv, for the independent readers (tools/python.sh).
  python3 python3-venv
  # The JDK, not just the runtime: tools/*.java run as single-file programs
  # (they need its compiler) and the benchmark calls jcmd.
  openjdk-17-jdk-headless
)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "setup.sh: Rust's cargo (>= 1.94, from rustup) is required and was not found" >&2
  exit 1
}

if [ ! -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || [ ! -f "$KAFKA_HOME/libs/kafka-tools-$KAFKA_VERSION.jar" ]; then
  log "Fetching Kafka $KAFKA_VERSION from Maven Central"
  rm -rf "$KAFKA_HOME.partial"
  mkdir -p "$KAFKA_HOME.partial"
  mvn -q -B -f "$here/kafka-pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_HOME.partial/libs"
  rm -rf "$KAFKA_HOME"
  mv "$KAFKA_HOME.partial" "$KAFKA_HOME"
fi

bash "$here/python.sh" >/dev/null

log "Building the Rust engine and installing the R package (target: $CARGO_TARGET_DIR)"
mkdir -p "$CARGO_TARGET_DIR"
cd "$root"
R CMD INSTALL --no-multiarch . 2>&1 | grep -v "^\s*Compiling " | tail -20
Rscript -e 'library(streamlyr); cat("streamlyr", format(packageVersion("streamlyr")), "is installed\n")'
