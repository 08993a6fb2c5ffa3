# Pinned versions and the cache locations shared by every tools/ script.
# The caches live outside the clone so a fresh checkout reuses them.
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
STREAMLYR_CACHE="${STREAMLYR_CACHE:-$HOME/.cache/streamlyr}"
KAFKA_HOME="$STREAMLYR_CACHE/kafka-$KAFKA_VERSION"
# One fixed cargo target directory, so rebuilds are incremental across clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STREAMLYR_CACHE/cargo-target}"
# The Python tools tests use as independent readers (tools/python.sh).
PYARROW_VERSION="${PYARROW_VERSION:-26.0.1}"
SPARK_VERSION="${SPARK_VERSION:-3.5.7}"
DELTALAKE_VERSION="${DELTALAKE_VERSION:-1.6.6}"
FASTAVRO_VERSION="${FASTAVRO_VERSION:-1.13.1}"
CONFLUENT_KAFKA_VERSION="${CONFLUENT_KAFKA_VERSION:-2.16.1}"
PYTHON_VENV="$STREAMLYR_CACHE/py-venv"
