#!/usr/bin/env bash
# Spark Structured Streaming on P1 and P2, for bench/run.sh:
#   bash bench/spark.sh <servers> <rows> <passthrough-input-topic> [<csv folder>] >> results
# Uses pyspark from tools/python.sh (a venv in the cache) and Spark's Kafka
# connector from Maven Central on first use. If that fails it says so on
# stderr and prints nothing, so the benchmark goes on without Spark.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../tools/versions.sh"
spark_version="$SPARK_VERSION"
jars_dir="$STREAMLYR_CACHE/spark-kafka-$spark_version"

python="$(bash "$here/../tools/python.sh")" ||
  { echo "Spark: pyspark $spark_version could not be installed; skipping the Spark comparison" >&2; exit 0; }
if [ ! -d "$jars_dir" ]; then
  mvn -q -B -f "$here/spark-pom.xml" -Dspark.version="$spark_version" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$jars_dir.partial" >&2 && mv "$jars_dir.partial" "$jars_dir" ||
    { echo "Spark: the Kafka connector could not be fetched from Maven Central; skipping the Spark comparison" >&2; exit 0; }
fi
# Only the connector and what pyspark does not ship already.
jars="$(ls "$jars_dir"/{spark-sql-kafka,spark-token-provider-kafka,kafka-clients,commons-pool2}*.jar | paste -sd,)"
"$python" "$here/spark.py" "$1" "bench-spark-$RANDOM$RANDOM" "$2" "$3" "$jars" ${4:+"$4"} 2>/dev/null ||
  echo "Spark: the Spark run failed; skipping the Spark comparison" >&2
