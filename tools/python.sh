#!/usr/bin/env bash
# The Python that tests (and the benchmark) use as independent readers of
# what streamlyr writes: pyarrow for parquet and ORC, pyspark for Spark's
# `_spark_metadata` log, deltalake (delta-rs's Python package) for Delta
# tables, fastavro and confluent-kafka (Confluent's Python client, with its
# schema registry serializers) for Avro values in Kafka. One venv in the cache, pinned versions from PyPI,
# installed once. Prints the venv's python.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/versions.sh"

# Debian's Python (setup.sh installs python3-venv): a python3 earlier on the
# PATH may be built without a working ssl module, which pyarrow imports.
python=/usr/bin/python3
stamp="$PYTHON_VENV/.streamlyr-debian-pyarrow-$PYARROW_VERSION-pyspark-$SPARK_VERSION-deltalake-$DELTALAKE_VERSION-fastavro-$FASTAVRO_VERSION-confluent-kafka-$CONFLUENT_KAFKA_VERSION"
if [ ! -f "$stamp" ]; then
  echo "==> Installing pyarrow $PYARROW_VERSION, pyspark $SPARK_VERSION, deltalake $DELTALAKE_VERSION, fastavro $FASTAVRO_VERSION and confluent-kafka $CONFLUENT_KAFKA_VERSION from PyPI into $PYTHON_VENV" >&2
  [ -x "$PYTHON_VENV/bin/pip" ] || "$python" -m venv "$PYTHON_VENV" >&2
  "$PYTHON_VENV/bin/pip" install -q --disable-pip-version-check \
    "pyarrow==$PYARROW_VERSION" "pyspark==$SPARK_VERSION" "deltalake==$DELTALAKE_VERSION" "fastavro==$FASTAVRO_VERSION" \
    "confluent-kafka[avro]==$CONFLUENT_KAFKA_VERSION" >&2
  touch "$stamp"
fi
echo "$PYTHON_VENV/bin/python"
