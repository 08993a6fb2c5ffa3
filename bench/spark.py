"""Spark Structured Streaming's side of bench/run.sh (what sparklyr runs).

    python spark.py <servers> <topic-prefix> <rows> <passthrough-input> <jars> [<csv folder>]

Prints lines `spark <case> <records> <seconds>` for:
  produce-json[-startup]  a <rows>-row DataFrame (integer, double, 20-char
                          string, boolean, timestamp) -> to_json -> Kafka sink
  passthrough[-startup]   Kafka source -> Kafka sink over <rows> preloaded
                          records (trigger availableNow)
  files[-startup]         a folder of CSV files (<rows> rows) -> parquet files,
                          the schema inferred first as sparklyr does (trigger
                          availableNow)
`-startup` includes starting the SparkSession (local[2]).
"""
import sys
import tempfile
import time

t_launch = time.time()
from pyspark.sql import SparkSession, functions as F  # noqa: E402

servers, prefix, rows, source_topic, jars = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
spark = (
    SparkSession.builder.master("local[2]")
    .config("spark.jars", jars)
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "2")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
startup = time.time() - t_launch


def report(case, seconds):
    print(f"spark {case} {rows} {seconds:.4f}")
    print(f"spark {case}-startup {rows} {seconds + startup:.4f}")
    sys.stdout.flush()


# P1: the same rows and JSON as bench/streamlyr.R, built before the clock.
df = (
    spark.range(1, rows + 1)
    .select(
        F.col("id").cast("int").alias("id"),
        (F.col("id") / 7).alias("x"),
        F.format_string("label-%014d", F.col("id")).alias("label"),
        (F.col("id") % 2 == 0).alias("flag"),
        F.lit("2026-01-01 00:00:00").cast("timestamp").alias("at"),
    )
    .select(F.to_json(F.struct("*")).alias("value"))
    .cache()
)
df.count()
t0 = time.time()
df.write.format("kafka").option("kafka.bootstrap.servers", servers).option("topic", f"{prefix}-p1").save()
report("produce-json", time.time() - t0)

# P2: Kafka -> Kafka over the preloaded records.
t0 = time.time()
query = (
    spark.readStream.format("kafka")
    .option("kafka.bootstrap.servers", servers)
    .option("subscribe", source_topic)
    .option("startingOffsets", "earliest")
    .load()
    .select("key", "value")
    .writeStream.format("kafka")
    .option("kafka.bootstrap.servers", servers)
    .option("topic", f"{prefix}-p2")
    .option("checkpointLocation", tempfile.mkdtemp())
    .trigger(availableNow=True)
    .start()
)
query.awaitTermination()
report("passthrough", time.time() - t0)

if len(sys.argv) > 6:
    files_in = sys.argv[6]
    t0 = time.time()
    schema = spark.read.option("header", True).option("inferSchema", True).csv(files_in).schema
    query = (
        spark.readStream.schema(schema)
        .option("header", True)
        .csv(files_in)
        .writeStream.format("parquet")
        .option("path", tempfile.mkdtemp())
        .option("checkpointLocation", tempfile.mkdtemp())
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    report("files", time.time() - t0)
spark.stop()
