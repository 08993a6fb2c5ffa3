//! The query loop without Kafka: a finite in-memory source that hands out a
//! few rows per batch and a scripted sink that records what it committed
//! and fails when told to. Each test runs a real `Query` on a real
//! checkpoint directory.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::query::Query;
use super::status::SharedStatus;
use super::stop::StopSignal;
use super::trigger::Trigger;
use super::run_caught;
use crate::checkpoint::CheckpointLog;
use crate::error::{Error, ErrorKind, Result};
use crate::sink::Sink;
use crate::source::{Positions, Scope, Source};

/// Rows `0..total` of one Int64 column `n`, `per_batch` at a time; rows
/// become visible to `plan` as `available` grows (all of them by default).
struct CountingSource {
    total: usize,
    per_batch: usize,
    available: Arc<AtomicUsize>,
    /// Errors the next `plan` calls return.
    plan_failures: Arc<Mutex<VecDeque<Error>>>,
    /// Like a source in a consumer group: the position is kept outside the
    /// checkpoint (here, shared across restarts) and advanced on commit.
    group: Option<GroupPosition>,
    /// Errors the next `read` calls return.
    read_failures: VecDeque<Error>,
}

struct GroupPosition {
    committed: Arc<AtomicUsize>,
    next: usize,
}

impl CountingSource {
    fn new(total: usize, per_batch: usize) -> Self {
        CountingSource {
            total,
            per_batch,
            available: Arc::new(AtomicUsize::new(total)),
            plan_failures: Arc::default(),
            group: None,
            read_failures: VecDeque::new(),
        }
    }

    /// A source whose position `committed` keeps (a consumer group's offsets).
    fn in_group(total: usize, per_batch: usize, committed: &Arc<AtomicUsize>) -> Self {
        let next = committed.load(Ordering::SeqCst);
        CountingSource { group: Some(GroupPosition { committed: committed.clone(), next }), ..CountingSource::new(total, per_batch) }
    }

    /// Nothing there yet: rows arrive as the returned count grows.
    fn arriving(total: usize, per_batch: usize) -> (Self, Arc<AtomicUsize>) {
        let source = CountingSource::new(total, per_batch);
        source.available.store(0, Ordering::SeqCst);
        let available = source.available.clone();
        (source, available)
    }
}

fn rows_of(p: &Positions) -> usize {
    match p {
        Positions::Rows { rows } => *rows as usize,
        other => panic!("not a row position: {other:?}"),
    }
}

fn numbers(from: usize, to: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(from as i64..to as i64))]).unwrap()
}

impl Source for CountingSource {
    fn describe(&self) -> String {
        format!("counting[{}]", self.total)
    }
    fn identity(&self) -> String {
        self.describe()
    }
    fn schema(&self) -> SchemaRef {
        numbers(0, 0).schema()
    }
    fn connect(&mut self, _status: &SharedStatus) -> Result<()> {
        Ok(())
    }
    fn initial_positions(&mut self) -> Result<Positions> {
        Ok(Positions::Rows { rows: 0 })
    }
    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        if let Some(e) = self.plan_failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let from = self.group.as_ref().map_or(rows_of(start), |g| g.next);
        let until = (from + self.per_batch).min(self.available.load(Ordering::SeqCst));
        Ok((until > from).then(|| (Positions::Rows { rows: from as u64 }, Positions::Rows { rows: until as u64 })))
    }
    fn scope(&self) -> Scope {
        match self.group {
            Some(_) => Scope::Shared { instance: None },
            None => Scope::Whole,
        }
    }
    fn rewind(&mut self) {
        if let Some(g) = &mut self.group {
            g.next = g.committed.load(Ordering::SeqCst);
        }
    }
    fn committed(&mut self, end: &Positions, _status: &SharedStatus) {
        if let Some(g) = &mut self.group {
            g.next = rows_of(end);
            g.committed.store(g.next, Ordering::SeqCst);
        }
    }
    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        stop.check_abort()?;
        if let Some(e) = self.read_failures.pop_front() {
            return Err(e);
        }
        emit(numbers(rows_of(start), rows_of(end)))
    }
    fn is_exhausted(&self, committed_end: &Positions) -> bool {
        rows_of(committed_end) >= self.total
    }
}

/// What scripted sinks of one test share, across restarts.
#[derive(Default)]
struct SinkRecord {
    /// Committed batches: (batch id, the numbers written).
    committed: Vec<(u64, Vec<i64>)>,
    /// What the next `write` calls do: `Some(error)` fails the call.
    script: VecDeque<Option<Error>>,
    writes: usize,
    /// Errors the next `settle` calls return, and how many calls there were.
    settle_failures: VecDeque<Error>,
    settles: usize,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<SinkRecord>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SinkRecord> {
        self.0.lock().unwrap()
    }
    fn committed_ids(&self) -> Vec<u64> {
        self.lock().committed.iter().map(|c| c.0).collect()
    }
    fn all_numbers(&self) -> Vec<i64> {
        self.lock().committed.iter().flat_map(|c| c.1.clone()).collect()
    }
    fn fail_next(&self, errors: impl IntoIterator<Item = Error>) {
        self.lock().script.extend(errors.into_iter().map(Some));
    }
}

struct ScriptedSink {
    shared: Shared,
    pending: Vec<i64>,
    /// Like a transactional sink: can tell after a crash whether it committed a batch.
    two_phase: bool,
    /// Panics right after committing this batch, before the checkpoint records it.
    crash_after_commit: Option<u64>,
    /// Blocks in `write` until aborted.
    hang: bool,
}

impl ScriptedSink {
    fn new(shared: &Shared) -> Self {
        ScriptedSink { shared: shared.clone(), pending: Vec::new(), two_phase: false, crash_after_commit: None, hang: false }
    }
}

impl Sink for ScriptedSink {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn identity(&self) -> String {
        self.describe()
    }
    fn connect(&mut self, _status: &SharedStatus, _query_id: &str) -> Result<()> {
        Ok(())
    }
    fn settle(&mut self, log: &CheckpointLog) -> Result<()> {
        let mut shared = self.shared.lock();
        shared.settles += 1;
        if let Some(e) = shared.settle_failures.pop_front() {
            return Err(e);
        }
        log.write_sink_settings(&"settled")
    }
    fn begin(&mut self, _batch: u64) -> Result<()> {
        self.pending.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &RecordBatch, stop: &StopSignal) -> Result<u64> {
        let scripted = {
            let mut shared = self.shared.lock();
            shared.writes += 1;
            shared.script.pop_front().flatten()
        };
        if let Some(e) = scripted {
            return Err(e);
        }
        while self.hang {
            // Context on the way up must not turn an abort into a failure.
            stop.check_abort().map_err(|e| e.context("while writing"))?;
            stop.wait(Duration::from_millis(5));
        }
        let n = chunk.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        self.pending.extend(n.values().iter());
        Ok(chunk.num_rows() as u64)
    }
    fn flush(&mut self, _stop: &StopSignal, _status: &SharedStatus) -> Result<()> {
        Ok(())
    }
    fn commit(&mut self, batch: u64, _read: &Positions, _log: &CheckpointLog) -> Result<()> {
        self.shared.lock().committed.push((batch, std::mem::take(&mut self.pending)));
        if self.crash_after_commit == Some(batch) {
            panic!("simulated crash after the sink committed batch {batch}");
        }
        Ok(())
    }
    fn abort(&mut self) -> Result<()> {
        self.pending.clear();
        Ok(())
    }
    fn was_committed(&mut self, batch: u64, _log: &CheckpointLog) -> Result<bool> {
        Ok(self.two_phase && self.shared.committed_ids().contains(&batch))
    }
}

fn query(source: CountingSource, sink: ScriptedSink, checkpoint: &Path) -> Query {
    Query {
        source: Box::new(source),
        transform: None,
        sink: Box::new(sink),
        trigger: Trigger::Interval(Duration::ZERO),
        checkpoint: checkpoint.to_path_buf(),
        retry_timeout: Duration::from_secs(5),
        source_log: false,
    }
}

/// Runs `q` to its end as the engine does (a panic becomes an error).
fn run(q: &mut Query, stop: &StopSignal) -> Result<()> {
    let status = SharedStatus::default();
    run_caught(|| {
        let log = q.start(&status, &StopSignal::default())?;
        q.run(&log, &status, stop)
    })
}

/// Ten numbers, four a batch, into a plain scripted sink, to the end.
fn run_plainly(shared: &Shared, checkpoint: &Path) -> Result<()> {
    run(&mut query(CountingSource::new(10, 4), ScriptedSink::new(shared), checkpoint), &StopSignal::default())
}

fn committed_in_checkpoint(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> =
        std::fs::read_dir(dir.join("commits")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap()).collect();
    ids.sort();
    ids
}

#[test]
fn a_finite_source_is_written_once_batch_by_batch() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    run_plainly(&shared, dir.path()).unwrap();
    assert_eq!(shared.committed_ids(), vec![0, 1, 2]);
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
    assert_eq!(committed_in_checkpoint(dir.path()), vec![0, 1, 2]);
    // Run again: the checkpoint has it all, nothing is written twice.
    run_plainly(&shared, dir.path()).unwrap();
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_crash_between_the_sinks_commit_and_the_checkpoints_is_not_written_twice_by_a_two_phase_sink() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let mut crashing = ScriptedSink::new(&shared);
    crashing.two_phase = true;
    crashing.crash_after_commit = Some(1);
    let e = run(&mut query(CountingSource::new(10, 4), crashing, dir.path()), &StopSignal::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("simulated crash"), "{e}");
    assert_eq!(committed_in_checkpoint(dir.path()), vec![0], "batch 1 reached the sink, not the checkpoint");

    let mut restarted = ScriptedSink::new(&shared);
    restarted.two_phase = true;
    run(&mut query(CountingSource::new(10, 4), restarted, dir.path()), &StopSignal::default()).unwrap();
    assert_eq!(shared.committed_ids(), vec![0, 1, 2]);
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
    assert_eq!(committed_in_checkpoint(dir.path()), vec![0, 1, 2]);
}

#[test]
fn an_uncommitted_batch_is_replayed_on_exactly_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let mut crashing = ScriptedSink::new(&shared);
    crashing.crash_after_commit = Some(1);
    run(&mut query(CountingSource::new(10, 4), crashing, dir.path()), &StopSignal::default()).unwrap_err();
    // Restarted, the source would plan 4..10 (6 a batch): the replay must still be 4..8.
    let source = CountingSource::new(10, 6);
    run(&mut query(source, ScriptedSink::new(&shared), dir.path()), &StopSignal::default()).unwrap();
    let committed = shared.lock().committed.clone();
    assert_eq!(committed[1], (1, vec![4, 5, 6, 7]));
    assert_eq!(committed[2], (1, vec![4, 5, 6, 7]), "at-least-once writes batch 1 again, on the same range");
    assert_eq!(committed[3], (2, vec![8, 9]));
}

#[test]
fn a_retriable_failure_runs_the_batch_again_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.fail_next([Error::kafka("broker restarting").retriable(), Error::kafka("still restarting").retriable()]);
    let began = Instant::now();
    run_plainly(&shared, dir.path()).unwrap();
    assert!(began.elapsed() >= Duration::from_millis(1400), "it waited 0.5 s, then 1 s: {:?}", began.elapsed());
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
    assert_eq!(shared.lock().writes, 5);
}

#[test]
fn a_permanent_failure_fails_the_query_at_once_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.fail_next([Error::kafka("topic `t` does not exist")]);
    let began = Instant::now();
    let e = run_plainly(&shared, dir.path()).unwrap_err();
    assert_eq!(e.message, "topic `t` does not exist");
    assert!(began.elapsed() < Duration::from_secs(1));
    assert_eq!(shared.lock().writes, 1);
    assert!(committed_in_checkpoint(dir.path()).is_empty());
}

#[test]
fn retrying_ends_after_the_retry_bound_with_the_last_error_and_never_spins() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.fail_next((0..1000).map(|i| Error::kafka(format!("broker down ({i})")).retriable()));
    let mut q = query(CountingSource::new(10, 4), ScriptedSink::new(&shared), dir.path());
    q.retry_timeout = Duration::from_millis(1500);
    let began = Instant::now();
    let e = run(&mut q, &StopSignal::default()).unwrap_err();
    let took = began.elapsed();
    assert!(!e.retriable, "{e:?}");
    assert!(e.message.contains("gave up after") && e.message.contains("retryTimeoutMs"), "{e}");
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "{took:?}");
    let tries = shared.lock().writes;
    assert!((3..=8).contains(&tries), "tries waited for each other: {tries}");
}

#[test]
fn stopping_while_retrying_ends_with_the_error_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.fail_next((0..100_000).map(|_| Error::kafka("broker down").retriable()));
    let mut q = query(CountingSource::new(10, 4), ScriptedSink::new(&shared), dir.path());
    q.retry_timeout = Duration::from_secs(60);
    let stop = StopSignal::default();
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.stop();
        })
    };
    let e = run(&mut q, &stop).unwrap_err();
    stopper.join().unwrap();
    assert!(e.message.contains("stopped while retrying") && e.message.contains("broker down"), "{e}");
    assert!(shared.lock().writes < 10);
}

#[test]
fn an_abort_during_a_batch_ends_quietly_and_the_batch_runs_again_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let mut hanging = ScriptedSink::new(&shared);
    hanging.hang = true;
    let stop = StopSignal::default();
    let aborter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.abort();
        })
    };
    run(&mut query(CountingSource::new(10, 4), hanging, dir.path()), &stop).unwrap();
    aborter.join().unwrap();
    assert!(shared.committed_ids().is_empty());
    assert!(committed_in_checkpoint(dir.path()).is_empty());
    run_plainly(&shared, dir.path()).unwrap();
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
}

#[test]
fn continuous_epochs_commit_what_arrived_and_resume_after_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let (source, available) = CountingSource::arriving(1000, 3);
    let mut q = query(source, ScriptedSink::new(&shared), dir.path());
    run_continuously(&mut q, &available, 20, Duration::from_millis(100)).unwrap();
    assert_eq!(shared.all_numbers(), (0..20).collect::<Vec<_>>());
    let epochs = shared.committed_ids();
    assert!(epochs.len() >= 2, "records arrived over several epochs: {epochs:?}");
    assert_eq!(committed_in_checkpoint(dir.path()), epochs);

    // Restarted with more rows: it goes on after the last epoch.
    let source = CountingSource::new(1000, 50);
    source.available.store(25, Ordering::SeqCst);
    let mut q = query(source, ScriptedSink::new(&shared), dir.path());
    q.trigger = Trigger::Continuous(Duration::from_millis(30));
    let stop = StopSignal::default();
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.stop();
        })
    };
    run(&mut q, &stop).unwrap();
    stopper.join().unwrap();
    assert_eq!(shared.all_numbers(), (0..25).collect::<Vec<_>>());
}

#[test]
fn a_source_that_answers_again_ends_a_run_of_failures_even_with_nothing_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let (source, available) = CountingSource::arriving(4, 4);
    source.plan_failures.lock().unwrap().push_back(Error::kafka("broker restarting").retriable());
    let failures = source.plan_failures.clone();
    let mut q = query(source, ScriptedSink::new(&shared), dir.path());
    q.retry_timeout = Duration::from_millis(1500);
    let later = std::thread::spawn(move || {
        // Idle and healthy for longer than the bound, then one more blip, then data.
        std::thread::sleep(Duration::from_millis(2500));
        failures.lock().unwrap().push_back(Error::kafka("a blip hours later").retriable());
        available.store(4, Ordering::SeqCst);
    });
    run(&mut q, &StopSignal::default()).unwrap();
    later.join().unwrap();
    assert_eq!(shared.all_numbers(), vec![0, 1, 2, 3]);
}

/// Runs a continuous query until `rows` rows are available and a little more.
/// Long enough after the last row for retried or replayed epochs to finish.
const EPOCH_LINGER: Duration = Duration::from_millis(1500);

/// `q` on a continuous trigger while `rows` rows arrive, one every 10 ms;
/// stopped `linger` after the last.
fn run_continuously(q: &mut Query, available: &Arc<AtomicUsize>, rows: usize, linger: Duration) -> Result<()> {
    q.trigger = Trigger::Continuous(Duration::from_millis(30));
    let stop = StopSignal::default();
    let feeder = {
        let (stop, available) = (stop.clone(), available.clone());
        std::thread::spawn(move || {
            for n in 1..=rows {
                available.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(linger);
            stop.stop();
        })
    };
    let result = run(q, &stop);
    feeder.join().unwrap();
    result
}

#[test]
fn a_retriable_failure_in_an_epoch_reads_the_epoch_again_without_loss_or_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let (source, available) = CountingSource::arriving(1000, 3);
    let mut q = query(source, ScriptedSink::new(&shared), dir.path());
    shared.lock().script.extend([None, None, Some(Error::kafka("leader moved").retriable())]);
    run_continuously(&mut q, &available, 20, EPOCH_LINGER).unwrap();
    assert_eq!(shared.all_numbers(), (0..20).collect::<Vec<_>>());
}

#[test]
fn an_epoch_in_flight_at_a_crash_is_replayed_on_its_range_or_recorded_if_the_sink_committed_it() {
    for two_phase in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::default();
        let (source, available) = CountingSource::arriving(1000, 3);
        let mut crashing = ScriptedSink::new(&shared);
        crashing.crash_after_commit = Some(1);
        crashing.two_phase = two_phase;
        let e = run_continuously(&mut query(source, crashing, dir.path()), &available, 20, EPOCH_LINGER).unwrap_err();
        assert!(e.message.contains("simulated crash"), "{e}");
        let in_flight = shared.lock().committed[1].clone();

        let source = CountingSource::new(1000, 3);
        let available = source.available.clone();
        let mut restarted = ScriptedSink::new(&shared);
        restarted.two_phase = two_phase;
        run_continuously(&mut query(source, restarted, dir.path()), &available, 30, EPOCH_LINGER).unwrap();
        let committed = shared.lock().committed.clone();
        if two_phase {
            assert_eq!(shared.all_numbers(), (0..30).collect::<Vec<_>>(), "recorded, not written twice");
        } else {
            assert_eq!(committed[2], in_flight, "epoch 1 written again on exactly its range");
            let mut numbers = shared.all_numbers();
            numbers.sort();
            numbers.dedup();
            assert_eq!(numbers, (0..30).collect::<Vec<_>>());
        }
    }
}

/// Counts per 10-second window of event time `n` seconds, written when the
/// watermark (no delay) passes the window's end; the sink sees the counts.
fn windowed_query(source: CountingSource, sink: ScriptedSink, checkpoint: &Path) -> Query {
    let sql = r#"SELECT COUNT(*) AS "c", "w" FROM (SELECT window("t", '10 seconds') AS "w" FROM (SELECT streamlyr_watermark(to_timestamp_seconds("n"), 0) AS "t" FROM "numbers") "q01") "q02" GROUP BY "w""#;
    let transform =
        crate::transform::Transform::plan(sql, "numbers", numbers(0, 0).schema(), Some(crate::transform::OutputMode::Append), false, &Arc::default())
            .unwrap();
    Query { transform: Some(transform), ..query(source, sink, checkpoint) }
}

#[test]
fn closed_windows_are_written_once_across_a_crash_and_the_watermark_is_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let mut crashing = ScriptedSink::new(&shared);
    crashing.two_phase = true;
    crashing.crash_after_commit = Some(5);
    run(&mut windowed_query(CountingSource::new(30, 4), crashing, dir.path()), &StopSignal::default()).unwrap_err();
    let mut restarted = ScriptedSink::new(&shared);
    restarted.two_phase = true;
    run(&mut windowed_query(CountingSource::new(30, 4), restarted, dir.path()), &StopSignal::default()).unwrap();
    // [0, 10) and [10, 20) closed, each written once; [20, 30) waits for a watermark past 30 s.
    assert_eq!(shared.all_numbers(), vec![10, 10]);

    // Each batch records its time and watermark, each commit the next watermark (Spark's names).
    let log = CheckpointLog::open(dir.path(), "counting[30]", "scripted").unwrap().0;
    let (last, offsets) = log.latest_offsets::<serde_json::Value>().unwrap().unwrap();
    let (_, commit) = log.latest_commit::<serde_json::Value>().unwrap().unwrap();
    assert!(offsets["batchTimestampMs"].as_i64().unwrap() > 1_000_000_000_000, "{offsets}");
    assert_eq!(offsets["batchWatermarkMs"], 29_000, "{offsets}");
    assert_eq!(commit["nextBatchWatermarkMs"], 29_000, "{commit}");
    // 8 batches of rows; the watermark the last one reached gets a batch without rows.
    assert_eq!(last, 8);
    drop(log); // it holds the checkpoint's lock

    // Run again: nothing more to write, nothing written twice.
    run(&mut windowed_query(CountingSource::new(30, 4), ScriptedSink::new(&shared), dir.path()), &StopSignal::default()).unwrap();
    assert_eq!(shared.all_numbers(), vec![10, 10]);
}

#[test]
fn checkpoints_from_before_event_time_still_read() {
    let old = r#"{"start":{"rows":0},"end":{"rows":4},"timestamp_ms":1700000000000.4}"#;
    let offsets: super::query::BatchOffsets = serde_json::from_str(old).unwrap();
    assert_eq!((offsets.timestamp_ms, offsets.watermark_ms), (1_700_000_000_000, 0));
    let commit: super::query::BatchCommit = serde_json::from_str(r#"{"rows_in":4,"rows_out":4}"#).unwrap();
    assert_eq!(commit.next_watermark_ms, 0);
}

#[test]
fn a_crash_after_the_sink_committed_the_last_batch_keeps_the_watermark_it_reached() {
    // 31 numbers, 4 a batch: the last batch (28..=30) moves the watermark to 30 s, which closes [20, 30).
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let mut crashing = ScriptedSink::new(&shared);
    crashing.two_phase = true;
    crashing.crash_after_commit = Some(7);
    run(&mut windowed_query(CountingSource::new(31, 4), crashing, dir.path()), &StopSignal::default()).unwrap_err();
    assert_eq!(shared.all_numbers(), vec![10, 10]);
    let mut restarted = ScriptedSink::new(&shared);
    restarted.two_phase = true;
    run(&mut windowed_query(CountingSource::new(31, 4), restarted, dir.path()), &StopSignal::default()).unwrap();
    assert_eq!(shared.all_numbers(), vec![10, 10, 10]);
}

#[test]
fn what_a_sink_settles_at_start_is_retried_while_retriable_and_a_permanent_error_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.lock().settle_failures.extend([Error::execution("registry down").retriable(), Error::execution("still down").retriable()]);
    run_plainly(&shared, dir.path()).unwrap();
    assert_eq!(shared.lock().settles, 3);
    assert_eq!(std::fs::read_to_string(dir.path().join("sinks/0")).unwrap().lines().last(), Some("\"settled\""));
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());

    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.lock().settle_failures.push_back(Error::option("schema.registry.basic.auth.user.info", "refused"));
    let e = run_plainly(&shared, dir.path()).unwrap_err();
    assert_eq!((e.option.as_deref(), shared.lock().settles), (Some("schema.registry.basic.auth.user.info"), 1));
    assert!(shared.committed_ids().is_empty());
}

#[test]
fn a_query_retrying_while_it_starts_has_started_for_r() {
    let status = SharedStatus::default();
    assert_eq!(status.wait(Duration::ZERO, true), super::status::State::Starting);
    status.set_retrying(1, Duration::ZERO, "registry down".into());
    assert_eq!(status.wait(Duration::from_secs(1), true), super::status::State::Active);
}

#[test]
fn a_batch_voided_by_a_rebalance_is_planned_again_at_once_and_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let position = Arc::new(AtomicUsize::new(0));
    let mut source = CountingSource::in_group(10, 4, &position);
    source.read_failures.push_back(Error::rebalanced());
    let began = Instant::now();
    run(&mut query(source, ScriptedSink::new(&shared), dir.path()), &StopSignal::default()).unwrap();
    assert!(began.elapsed() < Duration::from_millis(400), "a rebalance is no failure to wait out: {:?}", began.elapsed());
    assert_eq!(shared.all_numbers(), (0..10).collect::<Vec<_>>());
    assert_eq!(shared.committed_ids(), vec![0, 1, 2], "the voided batch 0 was planned again as batch 0");
    let member = dir.path().join("members/0");
    assert_eq!(committed_in_checkpoint(&member), vec![0, 1, 2], "the checkpoint is this process's member directory");
    assert_eq!(position.load(Ordering::SeqCst), 10);
}

#[test]
fn a_shared_source_resumes_where_the_shared_position_is_not_where_its_checkpoint_was() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    let position = Arc::new(AtomicUsize::new(0));
    let mut crashing = ScriptedSink::new(&shared);
    crashing.crash_after_commit = Some(1);
    run(&mut query(CountingSource::in_group(10, 4, &position), crashing, dir.path()), &StopSignal::default()).unwrap_err();
    // Meanwhile another process of the group went on to 8 (and the partition came back).
    position.store(8, Ordering::SeqCst);
    run(&mut query(CountingSource::in_group(10, 4, &position), ScriptedSink::new(&shared), dir.path()), &StopSignal::default())
        .unwrap();
    let committed = shared.lock().committed.clone();
    assert_eq!(committed.last().unwrap(), &(2, vec![8, 9]), "no replay of batch 1's recorded range; numbering goes on");
    assert_eq!(position.load(Ordering::SeqCst), 10);
}

#[test]
fn a_shared_sources_failures_count_toward_the_retry_bound_though_each_plan_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::default();
    shared.fail_next((0..1000).map(|i| Error::kafka(format!("broker down ({i})")).retriable()));
    let position = Arc::new(AtomicUsize::new(0));
    let mut q = query(CountingSource::in_group(10, 4, &position), ScriptedSink::new(&shared), dir.path());
    q.retry_timeout = Duration::from_millis(1500);
    let began = Instant::now();
    let e = run(&mut q, &StopSignal::default()).unwrap_err();
    assert!(e.message.contains("gave up after"), "{e}");
    assert!(began.elapsed() < Duration::from_secs(4), "{:?}", began.elapsed());
    assert!(shared.committed_ids().is_empty());
    assert_eq!(position.load(Ordering::SeqCst), 0);
}
