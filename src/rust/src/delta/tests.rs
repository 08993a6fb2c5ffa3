//! The Delta sink and source in real queries on real tables: round trips,
//! one commit per batch with its `txn`, a replayed batch not written twice,
//! and Spark's rules for what the source reads.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, StringArray};
use arrow::datatypes::{DataType, Int32Type, Schema};
use arrow::record_batch::RecordBatch;

use super::sink::{DeltaSink, DeltaSinkPlan};
use super::source::{DeltaSource, DeltaSourcePlan};
use crate::engine::plan::DEFAULT_RETRY_TIMEOUT;
use crate::file::tests::{collected, collector, rows, run};
use crate::kafka::config::options_of as options;
use crate::sink::Sink;
use crate::source::memory::MemorySource;
use crate::source::Source;
use crate::transform::OutputMode;

fn delta_sink(dir: &Path, data: &RecordBatch, partition_by: &[&str], mode: OutputMode) -> Box<dyn Sink> {
    let partition_by: Vec<String> = partition_by.iter().map(|s| s.to_string()).collect();
    let plan = DeltaSinkPlan::new(dir.to_str().unwrap(), &options(&[]), &data.schema(), &partition_by, mode).unwrap();
    Box::new(DeltaSink::new(plan, data.schema()))
}

fn delta_source(dir: &Path, opts: &[(&str, &str)]) -> Box<dyn Source> {
    Box::new(DeltaSource::new(DeltaSourcePlan::new(dir.to_str().unwrap(), &options(opts)).unwrap()))
}

fn write(dir: &Path, checkpoint: &Path, data: RecordBatch, partition_by: &[&str]) {
    let sink = delta_sink(dir, &data, partition_by, OutputMode::Append);
    run(Box::new(MemorySource::new(data)), sink, checkpoint).unwrap();
}

fn read(dir: &Path, checkpoint: &Path, opts: &[(&str, &str)]) -> crate::error::Result<RecordBatch> {
    let source = delta_source(dir, opts);
    let (tables, sink) = collector(source.schema());
    run(source, sink, checkpoint)?;
    Ok(collected(&tables))
}

fn numbers(from: i32, to: i32) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        arrow::datatypes::Field::new("id", DataType::Int32, true),
        arrow::datatypes::Field::new("group", DataType::Utf8, true),
    ]));
    let ids: Vec<i32> = (from..to).collect();
    let groups: Vec<String> = ids.iter().map(|i| format!("g{}", i % 3)).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(ids)), Arc::new(StringArray::from(groups))]).unwrap()
}

fn ids(batch: &RecordBatch) -> Vec<i32> {
    let mut ids: Vec<i32> = batch.column_by_name("id").unwrap().as_primitive::<Int32Type>().iter().flatten().collect();
    ids.sort();
    ids
}

fn commits(dir: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("_delta_log"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join("_delta_log").join(n)).unwrap();
            serde_json::Value::Array(text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        })
        .collect()
}

#[test]
fn a_stream_written_to_delta_reads_back_with_its_types() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let data = rows();
    write(&table, &dir.path().join("cp1"), data.clone(), &[]);
    let back = read(&table, &dir.path().join("cp2"), &[]).unwrap();
    assert_eq!(back.num_rows(), data.num_rows());
    for (name, t) in [("n", DataType::Int32), ("x", DataType::Float64), ("s", DataType::Utf8)] {
        let got = back.column_by_name(name).unwrap();
        assert_eq!(got.data_type(), &t);
        assert_eq!(got.as_ref(), data.column_by_name(name).unwrap().as_ref(), "{name}");
    }
    let t = arrow::compute::cast(back.column_by_name("t").unwrap(), data.column_by_name("t").unwrap().data_type()).unwrap();
    assert_eq!(t.as_ref(), data.column_by_name("t").unwrap().as_ref());
    // Version 0 creates the table; version 1 is the batch, with its txn and Spark's operation.
    let log = commits(&table);
    assert_eq!(log.len(), 2);
    let batch = log[1].as_array().unwrap();
    assert!(batch.iter().any(|a| a["txn"]["version"] == 0 && a["txn"]["appId"].is_string()));
    assert!(batch.iter().any(|a| a["commitInfo"]["operation"] == "STREAMING UPDATE"));
}

#[test]
fn partition_columns_are_delta_partitions_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    write(&table, &dir.path().join("cp1"), numbers(0, 30), &["group"]);
    assert!(table.join("group=g1").is_dir());
    let back = read(&table, &dir.path().join("cp2"), &[]).unwrap();
    assert_eq!(ids(&back), (0..30).collect::<Vec<_>>());
    let groups = back.column_by_name("group").unwrap().as_string::<i32>();
    let id = back.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert!((0..back.num_rows()).all(|i| groups.value(i) == format!("g{}", id.value(i) % 3)));
}

#[test]
fn a_batch_replayed_after_a_crash_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let checkpoint = dir.path().join("cp");
    write(&table, &checkpoint, numbers(0, 10), &[]);
    // The process died after Delta's commit, before the checkpoint's.
    std::fs::remove_file(checkpoint.join("commits/0")).unwrap();
    write(&table, &checkpoint, numbers(0, 10), &[]);
    assert_eq!(commits(&table).len(), 2, "no second commit");
    assert_eq!(ids(&read(&table, &dir.path().join("r"), &[]).unwrap()), (0..10).collect::<Vec<_>>());

    // Another query (another checkpoint, another app id) appends.
    write(&table, &dir.path().join("cp-other"), numbers(10, 15), &[]);
    assert_eq!(ids(&read(&table, &dir.path().join("r2"), &[]).unwrap()), (0..15).collect::<Vec<_>>());
}

#[test]
fn the_source_reads_each_new_version_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let reader = dir.path().join("reader");
    write(&table, &dir.path().join("w1"), numbers(0, 10), &[]);
    assert_eq!(ids(&read(&table, &reader, &[]).unwrap()), (0..10).collect::<Vec<_>>());
    write(&table, &dir.path().join("w2"), numbers(10, 20), &[]);
    write(&table, &dir.path().join("w3"), numbers(20, 25), &[]);
    assert_eq!(ids(&read(&table, &reader, &[]).unwrap()), (10..25).collect::<Vec<_>>(), "only what was added since");
    assert_eq!(read(&table, &reader, &[]).unwrap().num_rows(), 0);

    // startingVersion: changes from that version on, no snapshot.
    assert_eq!(ids(&read(&table, &dir.path().join("v2"), &[("startingVersion", "2")]).unwrap()), (10..25).collect::<Vec<_>>());
    assert_eq!(read(&table, &dir.path().join("latest"), &[("startingVersion", "latest")]).unwrap().num_rows(), 0);
    let e = read(&table, &dir.path().join("v9"), &[("startingVersion", "9")]).err().unwrap();
    assert!(e.message.contains("Cannot time travel Delta table to version 9"), "{e}");
}

#[test]
fn max_files_per_trigger_cuts_batches_at_files() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    for (i, start) in [0, 10, 20].into_iter().enumerate() {
        write(&table, &dir.path().join(format!("w{i}")), numbers(start, start + 10), &[]);
    }
    let source = delta_source(&table, &[("maxFilesPerTrigger", "1")]);
    let (tables, sink) = collector(source.schema());
    let mut q = crate::engine::query::Query {
        source,
        transform: None,
        sink,
        trigger: crate::engine::trigger::Trigger::Interval(std::time::Duration::ZERO),
        checkpoint: dir.path().join("cp"),
        retry_timeout: DEFAULT_RETRY_TIMEOUT,
        source_log: false,
    };
    let status = crate::engine::status::SharedStatus::default();
    let stop = crate::engine::stop::StopSignal::default();
    let log = q.start(&status, &stop).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while log.latest_commit::<serde_json::Value>().ok().flatten().map(|(n, _)| n) != Some(2) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            stop.stop();
        });
        q.run(&log, &status, &stop).unwrap();
    });
    assert_eq!(ids(&collected(&tables)), (0..30).collect::<Vec<_>>());
    assert_eq!(log.latest_commit::<serde_json::Value>().unwrap().map(|(n, _)| n), Some(2), "one file a batch: three batches");
}

#[test]
fn removed_data_fails_the_source_unless_an_option_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    write(&table, &dir.path().join("w1"), numbers(0, 10), &[]);
    let reader = dir.path().join("reader");
    read(&table, &reader, &[]).unwrap();
    // `complete` mode: the next batch replaces every file.
    let data = numbers(100, 105);
    run(Box::new(MemorySource::new(data.clone())), delta_sink(&table, &data, &[], OutputMode::Complete), &dir.path().join("w2")).unwrap();
    let e = read(&table, &reader, &[]).err().unwrap();
    assert!(e.message.contains("Detected a data update") && e.message.contains("at version 2"), "{e}");
    assert_eq!(read(&table, &dir.path().join("skip"), &[("startingVersion", "2"), ("skipChangeCommits", "true")]).unwrap().num_rows(), 0);
    assert_eq!(ids(&read(&table, &dir.path().join("changes"), &[("startingVersion", "2"), ("ignoreChanges", "true")]).unwrap()), (100..105).collect::<Vec<_>>());
    // A snapshot after the replacement holds only the new rows.
    assert_eq!(ids(&read(&table, &dir.path().join("now"), &[]).unwrap()), (100..105).collect::<Vec<_>>());
}

#[test]
fn wrong_tables_and_options_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = DeltaSourcePlan::new(dir.path().to_str().unwrap(), &options(&[])).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("path"));
    let table = dir.path().join("table");
    write(&table, &dir.path().join("w"), numbers(0, 3), &["group"]);
    let e = DeltaSourcePlan::new(table.to_str().unwrap(), &options(&[("maxFilesPerTrigger", "0")])).err().unwrap();
    assert_eq!(e.option.as_deref(), Some("maxFilesPerTrigger"));
    let e = DeltaSourcePlan::new(table.to_str().unwrap(), &options(&[("readChangeFeed", "true")])).err().unwrap();
    assert_eq!(e.option.as_deref(), Some("readChangeFeed"));

    let data = numbers(0, 3);
    let e = DeltaSinkPlan::new(table.to_str().unwrap(), &options(&[]), &data.schema(), &[], OutputMode::Update).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("mode"));
    let e = DeltaSinkPlan::new(table.to_str().unwrap(), &options(&[("compression", "zstd")]), &data.schema(), &[], OutputMode::Append).err().unwrap();
    assert_eq!(e.option.as_deref(), Some("compression"));
    // Another partitioning, other columns: errors at connect, naming the argument.
    let mut sink = delta_sink(&table, &data, &["id"], OutputMode::Append);
    let e = sink.connect(&Default::default(), "q").err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("partition_by"));
    let other = rows();
    let mut sink = delta_sink(&table, &other, &[], OutputMode::Append);
    let e = sink.connect(&Default::default(), "q").err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("x"));
}
