//! The file source and sink in real queries on real folders: round trips
//! through every format, the source's once-only rule across restarts and
//! crashes, and the sink's commit protocol.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::options::FileSourceOptions;
use super::schema::timestamp;
use super::sink::{FileSink, FileSinkPlan};
use super::source::{resolve_schema, FileSource, FileSourcePlan};
use crate::engine::query::Query;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::engine::trigger::Trigger;
use crate::error::Result;
use crate::sink::memory::{MemorySink, MemoryTable, Tables, Target};
use crate::sink::Sink;
use crate::source::memory::MemorySource;
use crate::source::{Positions, Source};
use crate::transform::OutputMode;

use crate::kafka::config::options_of as options;

pub(crate) fn rows() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("t", timestamp(), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(4)])),
        Arc::new(Float64Array::from(vec![Some(0.5), None, Some(-2.25), Some(1e10)])),
        Arc::new(StringArray::from(vec![Some("a"), Some("b,c"), Some("d \"e\""), None])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(1_700_000_000_123_000), None, Some(-1_000_000)]).with_timezone("+00:00")),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

pub(crate) fn run(source: Box<dyn Source>, sink: Box<dyn Sink>, checkpoint: &Path) -> Result<()> {
    let mut q = Query {
        source,
        transform: None,
        sink,
        trigger: Trigger::Once,
        checkpoint: checkpoint.to_path_buf(),
        retry_timeout: Duration::from_secs(5),
        source_log: false,
    };
    let status = SharedStatus::default();
    let log = q.start(&status, &StopSignal::default())?;
    q.run(&log, &status, &StopSignal::default())
}

fn file_sink(format: &str, dir: &Path, schema: &SchemaRef, partition_by: &[&str], opts: &[(&str, &str)]) -> Box<dyn Sink> {
    let partition_by: Vec<String> = partition_by.iter().map(|s| s.to_string()).collect();
    let plan = FileSinkPlan::new(format, dir.to_str().unwrap(), &options(opts), schema, &partition_by).unwrap();
    Box::new(FileSink::new(plan, schema.clone()))
}

fn file_source(format: &str, dir: &Path, opts: &[(&str, &str)]) -> Box<dyn Source> {
    let parsed = FileSourceOptions::parse(format, &options(opts)).unwrap();
    let (schema, partitions) = resolve_schema(&parsed.format, dir, None).unwrap();
    let columns = super::source::column_types(&schema);
    Box::new(FileSource::new(FileSourcePlan::new(format, dir.to_str().unwrap(), &options(opts), &columns, &partitions).unwrap()))
}

/// A memory table and a sink into it.
pub(crate) fn collector(schema: SchemaRef) -> (Arc<Tables>, Box<dyn Sink>) {
    let tables = Arc::new(Tables::default());
    let table = Arc::new(MemoryTable::default());
    tables.insert("out", table.clone());
    let target = Target::Table { name: "out".into(), table, mode: OutputMode::Append, key_columns: vec![] };
    (tables, Box::new(MemorySink::new(target, schema)))
}

pub(crate) fn collected(tables: &Tables) -> RecordBatch {
    let (_, schema, batches) = tables.snapshots().into_iter().find(|(n, _, _)| n == "out").unwrap();
    concat_batches(&schema, &batches).unwrap()
}

/// Write `rows()` as `format`, read the folder back as a stream.
fn round_trip(format: &str, partition_by: &[&str]) -> RecordBatch {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = rows();
    let opts: &[(&str, &str)] = if format == "csv" { &[("header", "true")] } else { &[] };
    run(Box::new(MemorySource::new(data.clone())), file_sink(format, &out, &data.schema(), partition_by, opts), &dir.path().join("cp1")).unwrap();
    assert!(out.join("_spark_metadata/0").exists());
    let source = file_source(format, &out, opts);
    let (tables, sink) = collector(source.schema());
    run(source, sink, &dir.path().join("cp2")).unwrap();
    collected(&tables)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_any().downcast_ref::<T>().unwrap()
}

#[test]
fn every_format_round_trips_with_its_types() {
    for format in ["csv", "json", "parquet", "orc"] {
        let back = round_trip(format, &[]);
        let schema = back.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        // Spark sorts the columns of JSON files by name.
        let expected = if format == "json" { ["n", "s", "t", "x"] } else { ["n", "x", "s", "t"] };
        assert_eq!(names, expected, "{format}");
        let x = back.column_by_name("x").unwrap();
        assert_eq!(x.data_type(), &DataType::Float64, "{format}");
        let s = column::<StringArray>(&back, "s");
        assert_eq!((s.value(0), s.value(1), s.value(2), s.is_null(3)), ("a", "b,c", "d \"e\"", true), "{format}");
        let n = back.column_by_name("n").unwrap();
        let n = arrow::compute::cast(n, &DataType::Int64).unwrap();
        let n = n.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((n.value(0), n.is_null(2), n.value(3)), (1, true, 4), "{format}");
        let t = back.column_by_name("t").unwrap();
        if format == "json" {
            // Spark infers no timestamps in JSON (`inferTimestamp` is off): text in Spark's format.
            let t = column::<StringArray>(&back, "t");
            assert_eq!((t.value(1), t.is_null(2)), ("2023-11-14T22:13:20.123Z", true));
            continue;
        }
        assert_eq!(t.data_type(), &timestamp(), "{format}");
        let t = t.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!((t.value(1), t.is_null(2), t.value(3)), (1_700_000_000_123_000, true, -1_000_000), "{format}");
    }
}

#[test]
fn partition_folders_become_columns_again() {
    let back = round_trip("parquet", &["s"]);
    let schema = back.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["n", "x", "t", "s"]);
    let mut pairs: Vec<(Option<i32>, Option<String>)> = (0..back.num_rows())
        .map(|i| {
            let n = column::<Int32Array>(&back, "n");
            let s = column::<StringArray>(&back, "s");
            (n.is_valid(i).then(|| n.value(i)), s.is_valid(i).then(|| s.value(i).to_string()))
        })
        .collect();
    pairs.sort();
    assert_eq!(pairs, [(None, Some("d \"e\"".into())), (Some(1), Some("a".into())), (Some(2), Some("b,c".into())), (Some(4), None)]);
}

fn write_csv(dir: &Path, name: &str, body: &str) {
    fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, body).unwrap();
    fs::rename(tmp, dir.join(name)).unwrap();
}

fn numbers_read(tables: &Tables) -> Vec<i64> {
    let batch = collected(tables);
    let n = arrow::compute::cast(batch.column(0), &DataType::Int64).unwrap();
    let mut v: Vec<i64> = n.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
    v.sort();
    v
}

#[test]
fn each_file_is_read_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input, "a.csv", "n\n1\n2\n");
    write_csv(&input, "b.csv", "n\n3\n");
    let cp = dir.path().join("cp");
    let source = file_source("csv", &input, &[("header", "true")]);
    let (tables, sink) = collector(source.schema());
    run(source, sink, &cp).unwrap();
    assert_eq!(numbers_read(&tables), [1, 2, 3]);
    write_csv(&input, "c.csv", "n\n4\n5\n");
    let (tables, sink) = collector(file_source("csv", &input, &[("header", "true")]).schema());
    run(file_source("csv", &input, &[("header", "true")]), sink, &cp).unwrap();
    assert_eq!(numbers_read(&tables), [4, 5], "only the new file");
    let (tables, sink) = collector(file_source("csv", &input, &[("header", "true")]).schema());
    run(file_source("csv", &input, &[("header", "true")]), sink, &cp).unwrap();
    assert!(tables.snapshots().iter().all(|(_, _, b)| b.iter().all(|b| b.num_rows() == 0)), "nothing new");
    assert_eq!(fs::read_to_string(cp.join("offsets/1")).unwrap().contains(r#""end":{"logOffset":1}"#), true);
}

#[test]
fn a_batch_logged_before_a_crash_reads_the_files_it_logged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input, "a.csv", "n\n1\n");
    let cp = dir.path().join("cp");
    fs::create_dir_all(&cp).unwrap();
    {
        // The source logs batch 0's files; the process dies before `offsets/0`.
        let mut source = file_source("csv", &input, &[("header", "true")]);
        source.open_log(&cp).unwrap();
        let start = source.initial_positions().unwrap();
        let planned = source.plan(&start).unwrap();
        assert!(planned.is_some());
    }
    write_csv(&input, "b.csv", "n\n2\n");
    let (tables, sink) = collector(file_source("csv", &input, &[("header", "true")]).schema());
    let mut q = Query {
        source: file_source("csv", &input, &[("header", "true")]),
        transform: None,
        sink,
        trigger: Trigger::Interval(Duration::ZERO),
        checkpoint: cp.clone(),
        retry_timeout: Duration::from_secs(5),
        source_log: false,
    };
    let status = SharedStatus::default();
    let stop = StopSignal::default();
    let log = q.start(&status, &stop).unwrap();
    let stopper = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        stopper.stop();
    });
    q.run(&log, &status, &stop).unwrap();
    t.join().unwrap();
    assert_eq!(numbers_read(&tables), [1, 2]);
    let first = fs::read_to_string(cp.join("sources/0/0")).unwrap();
    assert!(first.contains("a.csv") && !first.contains("b.csv"), "{first}");
}

#[test]
fn max_files_per_trigger_and_latest_first_pick_files_as_spark_does() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        write_csv(&input, name, &format!("n\n{i}\n"));
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
        fs::File::options().write(true).open(input.join(name)).unwrap().set_modified(t).unwrap();
    }
    for (latest_first, order) in [("false", [0, 1, 2]), ("true", [2, 1, 0])] {
        let cp = dir.path().join(format!("cp-{latest_first}"));
        fs::create_dir_all(&cp).unwrap();
        let opts = [("header", "true"), ("maxFilesPerTrigger", "1"), ("latestFirst", latest_first)];
        let mut source = file_source("csv", &input, &opts);
        source.open_log(&cp).unwrap();
        assert_eq!(drain(&mut source, &SharedStatus::default()), order, "latestFirst = {latest_first}");
    }
}

#[test]
fn max_file_age_ignores_files_older_than_the_newest_seen_less_the_age_unless_latest_first_takes_a_few() {
    // Spark's rule: after each batch, files older than the newest seen less
    // `maxFileAge` are no longer new; latestFirst with maxFilesPerTrigger ignores it.
    let cases: [(&[(&str, &str)], Vec<i64>, Vec<i64>); 2] = [
        (&[("header", "true"), ("maxFileAge", "5s")], vec![0, 1], vec![3]),
        (&[("header", "true"), ("maxFileAge", "5s"), ("latestFirst", "true"), ("maxFilesPerTrigger", "1")], vec![1, 0], vec![3, 2]),
    ];
    for (opts, first, second) in cases {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let write_at = |name: &str, n: i64, secs: u64| {
            write_csv(&input, name, &format!("n\n{n}\n"));
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            fs::File::options().write(true).open(input.join(name)).unwrap().set_modified(t).unwrap();
        };
        write_at("a.csv", 0, 1_000_000);
        write_at("b.csv", 1, 1_000_010);
        let cp = dir.path().join("cp");
        fs::create_dir_all(&cp).unwrap();
        let mut source = file_source("csv", &input, opts);
        source.open_log(&cp).unwrap();
        let status = SharedStatus::default();
        let at = source.initial_positions().unwrap();
        let (read, at) = drain_from(&mut source, at, &status);
        assert_eq!(read, first, "the first batch takes every file: {opts:?}");
        // c is 9 s older than b, the newest seen; d is newer.
        write_at("c.csv", 2, 1_000_001);
        write_at("d.csv", 3, 1_000_020);
        let (read, _) = drain_from(&mut source, at, &status);
        assert_eq!(read, second, "{opts:?}");
    }
}

#[test]
fn malformed_csv_fields_follow_the_parse_mode() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input, "a.csv", "n,s\n1,x\n2,y\n");
    let schema_of = |mode: &str| {
        let parsed = FileSourceOptions::parse("csv", &options(&[("header", "true"), ("mode", mode)])).unwrap();
        resolve_schema(&parsed.format, &input, None).unwrap()
    };
    assert_eq!(schema_of("PERMISSIVE").0.field(0).data_type(), &DataType::Int32, "Spark infers integer");
    write_csv(&input, "b.csv", "n,s\nthree,z\n4,w\n");
    let read = |mode: &str| -> Result<Vec<Option<i32>>> {
        let parsed = FileSourceOptions::parse("csv", &options(&[("header", "true"), ("mode", mode)])).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true), Field::new("s", DataType::Utf8, true)]));
        let mut out = Vec::new();
        parsed.format.read(&input.join("b.csv"), &schema, &mut |b| {
            let n = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            out.extend((0..n.len()).map(|i| n.is_valid(i).then(|| n.value(i))));
            Ok(())
        })?;
        Ok(out)
    };
    assert_eq!(read("PERMISSIVE").unwrap(), [None, Some(4)]);
    assert_eq!(read("DROPMALFORMED").unwrap(), [Some(4)]);
    let e = read("FAILFAST").unwrap_err();
    assert!(e.message.contains("b.csv") && e.message.contains("line 2"), "{e}");
}

#[test]
fn an_aborted_batch_leaves_no_file_and_a_committed_one_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = rows();
    let mut sink = file_sink("json", &out, &data.schema(), &[], &[("maxRecordsPerFile", "3")]);
    let id = uuid::Uuid::new_v4().to_string();
    sink.connect(&SharedStatus::default(), &id).unwrap();
    let stop = StopSignal::default();
    let (cp, _) = crate::checkpoint::CheckpointLog::open(&dir.path().join("cp"), "s", "k").unwrap();
    sink.begin(0).unwrap();
    sink.write(&data, &stop).unwrap();
    sink.abort().unwrap();
    let visible = |d: &Path| fs::read_dir(d).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('_')).count();
    assert_eq!(visible(&out), 0, "nothing left of the aborted batch");
    assert!(!sink.was_committed(0, &cp).unwrap());
    sink.begin(0).unwrap();
    sink.write(&data, &stop).unwrap();
    sink.flush(&stop, &SharedStatus::default()).unwrap();
    sink.commit(0, &Positions::Rows { rows: 4 }, &cp).unwrap();
    assert!(sink.was_committed(0, &cp).unwrap());
    let mut names: Vec<String> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('_')).collect();
    names.sort();
    assert_eq!(names.len(), 2, "rolled after 3 rows: {names:?}");
    assert!(names[0].starts_with("part-00000-") && names[0].ends_with(".c000.json"), "{names:?}");
    assert!(names[1].ends_with(".c001.json"), "{names:?}");
    let log = fs::read_to_string(out.join("_spark_metadata/0")).unwrap();
    assert_eq!(log.lines().count(), 3, "v1 and one line a file: {log}");
    // Another query may not write into this folder.
    let mut other = file_sink("json", &out, &data.schema(), &[], &[]);
    let e = other.connect(&SharedStatus::default(), &uuid::Uuid::new_v4().to_string()).unwrap_err();
    assert_eq!(e.arg.as_deref(), Some("path"));
}

#[test]
fn types_are_inferred_from_a_sample_of_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // 10,000 small numbers (the sample), then one that needs a bigint.
    let mut body = String::from("n\n");
    for i in 0..10_000 {
        body.push_str(&format!("{i}\n"));
    }
    body.push_str("3000000000\n");
    write_csv(&input, "a.csv", &body);
    let parsed = FileSourceOptions::parse("csv", &options(&[("header", "true")])).unwrap();
    let (schema, _) = resolve_schema(&parsed.format, &input, None).unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    // A second file whose sample needs a bigint widens the column.
    write_csv(&input, "b.csv", "n\n4000000000\n");
    let (schema, _) = resolve_schema(&parsed.format, &input, None).unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
}

/// Plan and read every batch the source has, committing each; the numbers read.
fn drain(source: &mut Box<dyn Source>, status: &SharedStatus) -> Vec<i64> {
    let at = source.initial_positions().unwrap();
    drain_from(source, at, status).0
}

/// What `drain` reads from `at`, and where it ends.
fn drain_from(source: &mut Box<dyn Source>, mut at: Positions, status: &SharedStatus) -> (Vec<i64>, Positions) {
    let mut seen = Vec::new();
    while let Some((start, end)) = source.plan(&at).unwrap() {
        source
            .read(&start, &end, &StopSignal::default(), &mut |b| {
                let n = arrow::compute::cast(b.column(0), &DataType::Int64)?;
                seen.extend(n.as_any().downcast_ref::<Int64Array>().unwrap().values().iter().copied());
                Ok(())
            })
            .unwrap();
        source.committed(&end, status);
        at = end;
    }
    (seen, at)
}

#[test]
fn clean_source_deletes_or_archives_a_file_once_its_batch_committed() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    for (mode, extra) in [("delete", None), ("archive", Some(archive.to_str().unwrap()))] {
        let input = dir.path().join(format!("in-{mode}"));
        write_csv(&input.join("day=1"), "a.csv", "n\n1\n");
        write_csv(&input, "b.csv", "n\n2\n");
        let cp = dir.path().join(format!("cp-{mode}"));
        fs::create_dir_all(&cp).unwrap();
        let mut opts = vec![("header", "true"), ("cleanSource", mode)];
        if let Some(a) = extra {
            opts.push(("sourceArchiveDir", a));
        }
        let mut source = file_source("csv", &input, &opts);
        source.open_log(&cp).unwrap();
        let status = SharedStatus::default();
        source.connect(&status).unwrap();
        let mut read = drain(&mut source, &status);
        read.sort();
        assert_eq!(read, [1, 2], "{mode}");
        assert!(!input.join("b.csv").exists() && !input.join("day=1/a.csv").exists(), "{mode}: cleaned");
        if mode == "archive" {
            // Each file keeps its own path below the archive folder.
            assert!(archive.join(input.strip_prefix("/").unwrap()).join("day=1/a.csv").exists());
        }
        assert!(status.snapshot().warnings.iter().all(|w| !w.contains("cleanSource")), "{:?}", status.snapshot().warnings);
    }
}

#[test]
fn file_name_only_tells_files_apart_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input.join("k=1"), "a.csv", "n\n1\n");
    write_csv(&input.join("k=2"), "a.csv", "n\n2\n");
    for (by_name, expected) in [("true", 1), ("false", 2)] {
        let cp = dir.path().join(format!("cp-{by_name}"));
        fs::create_dir_all(&cp).unwrap();
        let mut source = file_source("csv", &input, &[("header", "true"), ("fileNameOnly", by_name)]);
        source.open_log(&cp).unwrap();
        assert_eq!(drain(&mut source, &SharedStatus::default()).len(), expected, "fileNameOnly = {by_name}");
    }
}

#[test]
fn given_columns_put_the_partition_columns_last_whatever_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input.join("day=mon"), "a.csv", "n\n1\n");
    let columns = vec![("day".to_string(), "string".to_string()), ("n".to_string(), "integer".to_string())];
    let parsed = FileSourceOptions::parse("csv", &options(&[("header", "true")])).unwrap();
    let (schema, partitions) = resolve_schema(&parsed.format, &input, Some(&columns)).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!((names, partitions), (vec!["n", "day"], vec!["day".to_string()]));
    // A query description with the user's order reads the same.
    let plan = FileSourcePlan::new("csv", input.to_str().unwrap(), &options(&[("header", "true")]), &columns, &["day".into()]).unwrap();
    let source: Box<dyn Source> = Box::new(FileSource::new(plan));
    let (tables, sink) = collector(source.schema());
    run(source, sink, &dir.path().join("cp")).unwrap();
    let back = collected(&tables);
    assert_eq!((column::<Int32Array>(&back, "n").value(0), column::<StringArray>(&back, "day").value(0)), (1, "mon"));
}

#[test]
fn offsets_without_the_source_log_are_a_checkpoint_error_not_a_reread() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_csv(&input, "a.csv", "n\n1\n");
    let cp = dir.path().join("cp");
    let (tables, sink) = collector(file_source("csv", &input, &[("header", "true")]).schema());
    run(file_source("csv", &input, &[("header", "true")]), sink, &cp).unwrap();
    assert_eq!(numbers_read(&tables), [1]);
    fs::remove_dir_all(cp.join("sources/0")).unwrap();
    let (_, sink) = collector(file_source("csv", &input, &[("header", "true")]).schema());
    let e = run(file_source("csv", &input, &[("header", "true")]), sink, &cp).unwrap_err();
    assert_eq!(e.kind, crate::error::ErrorKind::Checkpoint, "{e}");
}

#[test]
fn the_sink_skips_a_committed_batch_fills_gaps_and_clears_its_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = rows();
    let id = uuid::Uuid::new_v4().to_string();
    let stop = StopSignal::default();
    let status = SharedStatus::default();
    let (cp, _) = crate::checkpoint::CheckpointLog::open(&dir.path().join("cp"), "s", "k").unwrap();
    let mut sink = file_sink("csv", &out, &data.schema(), &[], &[]);
    sink.connect(&status, &id).unwrap();
    // A stream resumed at batch 3 into a new folder: batches 0-2 are empty entries.
    sink.begin(3).unwrap();
    sink.write(&data, &stop).unwrap();
    sink.flush(&stop, &status).unwrap();
    sink.commit(3, &Positions::Rows { rows: 4 }, &cp).unwrap();
    for n in 0..3 {
        assert_eq!(fs::read_to_string(out.join(format!("_spark_metadata/{n}"))).unwrap(), "v1\n");
    }
    let files = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.contains("part-")).collect();
        v.sort();
        v
    };
    let committed = files(&out);
    assert_eq!(committed.len(), 1);
    // Batch 3 again: nothing is written.
    sink.begin(3).unwrap();
    sink.write(&data, &stop).unwrap();
    sink.flush(&stop, &status).unwrap();
    sink.commit(3, &Positions::Rows { rows: 4 }, &cp).unwrap();
    assert_eq!(files(&out), committed);
    // Batch 4 is killed after its files were placed: a restart removes them.
    sink.begin(4).unwrap();
    sink.write(&data, &stop).unwrap();
    sink.flush(&stop, &status).unwrap();
    assert_eq!(files(&out).len(), 2);
    drop(sink);
    let mut restarted = file_sink("csv", &out, &data.schema(), &[], &[]);
    restarted.connect(&status, &id).unwrap();
    assert_eq!(files(&out), committed);
    // A batch's log entry is never replaced.
    let log = super::log::MetadataLog::<super::log::SinkFileStatus>::new(out.join("_spark_metadata"));
    assert!(log.add(3, Vec::new()).unwrap_err().message.contains("another stream"));
}

#[test]
fn text_lines_lose_their_line_ends_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(&input).unwrap();
    fs::write(input.join("a.txt"), b"one\r\n\ntwo \xff\nlast without end").unwrap();
    for (whole, expected) in [
        ("false", vec!["one", "", "two \u{fffd}", "last without end"]),
        ("true", vec!["one\r\n\ntwo \u{fffd}\nlast without end"]),
    ] {
        let parsed = FileSourceOptions::parse("text", &options(&[("wholetext", whole)])).unwrap();
        let (schema, _) = resolve_schema(&parsed.format, &input, None).unwrap();
        let mut lines = Vec::new();
        parsed.format.read(&input.join("a.txt"), &Arc::new(schema), &mut |b| {
            let v = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            lines.extend(v.iter().map(|s| s.unwrap().to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(lines, expected, "wholetext = {whole}");
    }
}
