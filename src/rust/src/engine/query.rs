//! One streaming query: source -> micro-batch -> sink -> commit, on a trigger.
//!
//! The loop, for batch N:
//! 1. plan: ask the source for the range after the last commit;
//! 2. write `offsets/N` (what N will read) before reading a single row;
//! 3. read the range chunk by chunk, handing each chunk to the sink;
//! 4. flush the sink: every record acknowledged;
//! 5. write `commits/N`.
//!
//! A restart finds `offsets/N` without `commits/N` and runs batch N again on
//! the same range: nothing is lost (at-least-once).
//!
//! Event time: `offsets/N` also records the batch's time and the watermark
//! it runs with (Spark's `batchTimestampMs`, `batchWatermarkMs`), so a batch
//! run again sees both as they were; `commits/N` records the watermark the
//! next batch gets (`nextBatchWatermarkMs`). When the watermark has moved
//! and closed groups wait to be emitted or forgotten, a batch runs even
//! without new rows (Spark's no-data batch).
//!
//! A retriable failure (see `kafka::errors`) runs the batch (or epoch) again
//! on its recorded range after a pause (0.5 s doubling to 10 s), unless the
//! sink says the failed try did commit (a commit that timed out but went
//! through is never written twice). Once failures have gone on for the retry
//! bound (`retryTimeoutMs`) with no success in between, or the query is
//! asked to stop meanwhile, it fails with the last error. A permanent
//! failure fails it at once. An abort (`stream_stop()` giving up) ends it
//! quietly: the uncommitted batch runs again on restart.
//!
//! A source whose input is shared between processes (`Scope::Shared`, a
//! Kafka consumer group) keeps its positions outside the checkpoint, and
//! what this process owns may change between batches. So a failed or
//! voided batch (a rebalance: `ErrorKind::Rebalanced`) is planned again,
//! never replayed on its recorded range; a restart resumes where the shared
//! positions say; and the checkpoint is this process's member directory
//! (`CheckpointLog::open_member`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::status::{now_ms, BatchProgress, SharedStatus};
use super::stop::StopSignal;
use super::trigger::Trigger;
use crate::checkpoint::CheckpointLog;
use crate::error::{Error, ErrorKind, Result};
use crate::sink::Sink;
use crate::transform::Transform;
use crate::source::{Positions, Scope, Source};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchOffsets {
    pub start: Positions,
    pub end: Positions,
    #[serde(rename = "batchTimestampMs", alias = "timestamp_ms", deserialize_with = "whole_ms")]
    pub timestamp_ms: i64,
    #[serde(rename = "batchWatermarkMs", default)]
    pub watermark_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchCommit {
    pub rows_in: u64,
    pub rows_out: u64,
    #[serde(rename = "nextBatchWatermarkMs", default)]
    pub next_watermark_ms: i64,
}

/// Milliseconds as Spark writes them (whole); older checkpoints have fractions.
fn whole_ms<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    f64::deserialize(d).map(|ms| ms.round() as i64)
}

/// What a committed batch did, for its commit record and its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BatchOutcome {
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_dropped: u64,
    pub rows_malformed: u64,
    pub next_watermark_ms: i64,
}

impl BatchOutcome {
    fn commit(&self) -> BatchCommit {
        BatchCommit { rows_in: self.rows_in, rows_out: self.rows_out, next_watermark_ms: self.next_watermark_ms }
    }
}

pub(crate) struct Query {
    pub source: Box<dyn Source>,
    /// The user's pipeline; `None` writes the source's rows as they are.
    pub transform: Option<Transform>,
    pub sink: Box<dyn Sink>,
    pub trigger: Trigger,
    pub checkpoint: PathBuf,
    /// How long retriable failures may go on with no success in between.
    pub retry_timeout: Duration,
    /// The source keeps its own log in the checkpoint (see `Source::open_log`).
    pub source_log: bool,
}

/// Where the watermark stands between batches.
#[derive(Debug, Clone, Copy, Default)]
struct Watermark {
    /// What the last batch ran with.
    last_ran: i64,
    /// What the next batch gets.
    next: i64,
}

/// How a batch's run ended.
enum BatchEnd {
    Committed(BatchOutcome),
    /// `stream_stop()` gave up on it.
    Aborted,
    /// A shared source's batch that failed (`failed`) or was voided by a
    /// rebalance: plan it again.
    Superseded { failed: bool },
}

/// What the checkpoint says to do next.
enum Resume {
    /// Batch `n` was planned but never committed: run it again, same range.
    Replay(u64, BatchOffsets),
    /// Batch `n` is next, starting at `start`.
    Next(u64, Positions, Watermark),
}

impl Query {
    /// Connect source and sink and open the checkpoint; errors here are the
    /// user's (bad options, unreachable broker, foreign checkpoint).
    pub fn start(&mut self, status: &SharedStatus, stop: &StopSignal) -> Result<CheckpointLog> {
        let (source, sink) = (self.source.identity(), self.sink.identity());
        let (log, metadata) = match self.source.scope() {
            Scope::Whole => CheckpointLog::open(&self.checkpoint, &source, &sink)?,
            Scope::Shared { instance } => CheckpointLog::open_member(&self.checkpoint, instance.as_deref(), &source, &sink)?,
        };
        self.source_log = self.source.open_log(&self.checkpoint)?;
        self.source.connect(status)?;
        self.sink.connect(status, &metadata.id)?;
        let mut retry = Retry::new(self.retry_timeout);
        loop {
            match self.sink.settle(&log) {
                Ok(()) => break,
                Err(e) if e.retriable => retry.wait(e, status, stop)?,
                Err(e) => return Err(e),
            }
        }
        retry.reset(status);
        Ok(log)
    }

    fn is_shared(&self) -> bool {
        self.source.scope() != Scope::Whole
    }

    fn resume(&mut self, log: &CheckpointLog) -> Result<Resume> {
        let last_planned = log.latest_offsets::<BatchOffsets>()?;
        let last_commit = log.latest_commit::<BatchCommit>()?;
        let last_committed = last_commit.as_ref().map(|(n, _)| *n);
        if self.is_shared() {
            // The shared positions say where to go on; batch numbers go on after the last one here.
            let next = last_planned.map(|(n, _)| n).max(last_committed).map_or(0, |n| n + 1);
            return Ok(Resume::Next(next, self.source.initial_positions()?, Watermark::default()));
        }
        Ok(match (last_planned, last_committed) {
            (None, None) if self.source_log => Resume::Next(0, self.source.initial_positions()?, Watermark::default()),
            (None, None) => match log.initial_positions()? {
                Some(p) => Resume::Next(0, p, Watermark::default()),
                None => {
                    let p = self.source.initial_positions()?;
                    log.write_initial_positions(&p)?;
                    Resume::Next(0, p, Watermark::default())
                }
            },
            (Some((n, offsets)), Some(c)) if c == n => {
                let next = last_commit.map_or(0, |(_, c)| c.next_watermark_ms);
                Resume::Next(n + 1, offsets.end, Watermark { last_ran: offsets.watermark_ms, next: next.max(offsets.watermark_ms) })
            }
            (Some((n, offsets)), c) if c.is_none_or(|c| c + 1 == n) => {
                if self.sink.was_committed(n, log)? {
                    // The sink committed it just before a crash: record it, don't write it twice.
                    // The watermark it reached was saved with its state (written before the
                    // sink's commit); without state, a watermark closes nothing.
                    let reached = log.state(n).ok().and_then(|saved| Transform::saved_watermark(&saved));
                    let next = reached.unwrap_or(offsets.watermark_ms).max(offsets.watermark_ms);
                    log.write_commit(n, &BatchOutcome { next_watermark_ms: next, ..Default::default() }.commit())?;
                    Resume::Next(n + 1, offsets.end, Watermark { last_ran: offsets.watermark_ms, next })
                } else {
                    Resume::Replay(n, offsets)
                }
            }
            (planned, committed) => {
                return Err(Error::checkpoint(format!(
                    "the checkpoint is inconsistent: last planned batch {:?}, last committed batch {:?}",
                    planned.map(|p| p.0),
                    committed
                )))
            }
        })
    }

    /// Back to the pipeline state (aggregation, lags) of the last committed batch.
    fn restore_state(&mut self, log: &CheckpointLog) -> Result<()> {
        let Some(transform) = self.transform.as_mut().filter(|t| t.has_state()) else { return Ok(()) };
        match log.latest_commit::<BatchCommit>()? {
            None => transform.restore_state(None),
            Some((n, _)) => transform.restore_state(Some(&log.state(n)?)),
        }
    }

    /// Run until stopped, failed, or (for bounded sources and `Once`) done.
    pub fn run(&mut self, log: &CheckpointLog, status: &SharedStatus, stop: &StopSignal) -> Result<()> {
        let (mut batch, mut start, mut replay, mut watermark) = match self.resume(log)? {
            Resume::Replay(n, offsets) => {
                let wm = offsets.watermark_ms;
                (n, offsets.start.clone(), Some(offsets), Watermark { last_ran: wm, next: wm })
            }
            Resume::Next(n, p, wm) => (n, p, None, wm),
        };
        self.restore_state(log)?;
        if let Trigger::Continuous(epoch) = self.trigger {
            if !self.source.is_bounded() {
                if let Some(offsets) = replay.take() {
                    // The epoch in flight at a crash is written again, on exactly its range.
                    status.set_active(format!("Writing epoch {batch} again"));
                    let mut retry = Retry::new(self.retry_timeout);
                    let BatchEnd::Committed(outcome) = self.run_batch_surely(batch, &offsets, log, stop, status, &mut retry)? else {
                        return Ok(()); // aborted (a shared source never replays)
                    };
                    log.write_commit(batch, &outcome.commit())?;
                    start = offsets.end;
                    batch += 1;
                }
                return self.run_continuous(batch, start, epoch, log, status, stop);
            }
        }
        if replay.is_none() && batch > 0 && self.source.is_exhausted(&start) && !self.closes_groups_at(watermark) {
            status.set_active("Nothing left to write: the checkpoint has it all");
            return Ok(());
        }
        status.set_active("Waiting for data");
        let mut last_batch_ms = now_ms();
        let mut retry = Retry::new(self.retry_timeout);
        let mut batch_failing = false;
        loop {
            if stop.is_set() && !self.source.is_bounded() {
                return Ok(());
            }
            let tick = Instant::now();
            let planned = match replay.take() {
                Some(offsets) => Some(offsets),
                None => match self.source.plan(&start) {
                    Ok(p) => {
                        if !batch_failing {
                            retry.reset(status); // the source answered: whatever failed before is over
                        }
                        let p = p.or_else(|| self.closes_groups_at(watermark).then(|| (start.clone(), start.clone())));
                        p.map(|(s, e)| BatchOffsets { start: s, end: e, timestamp_ms: now_ms() as i64, watermark_ms: watermark.next })
                    }
                    Err(e) if e.retriable => {
                        retry.wait(e, status, stop)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            match planned {
                None => {
                    if self.trigger == Trigger::Once {
                        return Ok(());
                    }
                    status.set_message("Waiting for data");
                    self.source.wait_for_data(self.trigger.idle_wait(), stop)?;
                    continue;
                }
                Some(offsets) => {
                    status.set_message(format!("Writing batch {batch}"));
                    log.write_offsets(batch, &offsets)?;
                    let began = Instant::now();
                    let outcome = match self.run_batch_surely(batch, &offsets, log, stop, status, &mut retry)? {
                        BatchEnd::Committed(outcome) => outcome,
                        BatchEnd::Aborted => return Ok(()),
                        BatchEnd::Superseded { failed } => {
                            // Failures go on counting until a batch commits, however well plans go.
                            batch_failing |= failed;
                            continue;
                        }
                    };
                    log.write_commit(batch, &outcome.commit())?;
                    batch_failing = false;
                    self.source.committed(&offsets.end, status);
                    let batch_ms = offsets.timestamp_ms as f64;
                    let since_last = (batch_ms - last_batch_ms) / 1000.0;
                    last_batch_ms = batch_ms;
                    let progress = BatchProgress {
                        rows_malformed: outcome.rows_malformed,
                        ..BatchProgress::new(batch, batch_ms, outcome.rows_in, outcome.rows_out, began.elapsed(), since_last)
                    };
                    status.record_batch(self.with_event_time(progress, &offsets, &outcome));
                    watermark = Watermark { last_ran: offsets.watermark_ms, next: outcome.next_watermark_ms };
                    let exhausted = self.source.is_exhausted(&offsets.end) && !self.closes_groups_at(watermark);
                    start = offsets.end;
                    batch += 1;
                    if exhausted || self.trigger == Trigger::Once {
                        return Ok(());
                    }
                    status.set_message("Waiting for the next trigger");
                }
            }
            if let Trigger::Interval(every) = self.trigger {
                let next = tick + every;
                let now = Instant::now();
                if next > now {
                    self.source.idle(next - now, stop)?;
                }
            }
        }
    }

    /// Continuous processing: records go to the sink as they arrive; every
    /// `epoch` the sink is flushed (or its transaction committed) and the
    /// positions reached are recorded. After a crash the epoch in flight is
    /// read again from where the last one ended: nothing is lost.
    fn run_continuous(
        &mut self,
        mut epoch_id: u64,
        mut position: Positions,
        epoch: Duration,
        log: &CheckpointLog,
        status: &SharedStatus,
        stop: &StopSignal,
    ) -> Result<()> {
        let epoch = epoch.max(Duration::from_millis(10));
        let mut retry = Retry::new(self.retry_timeout);
        status.set_active("Running continuously");
        while !stop.is_set() {
            let epoch_start = position.clone();
            let began = Instant::now();
            let timestamp_ms = now_ms() as i64;
            let (mut rows_in, mut rows_out) = (0u64, 0u64);
            // The epoch's records, then (if there were any) its range and the sink's commit.
            let mut run = || -> Result<Option<Positions>> {
                self.source.take_malformed(); // what an attempt that failed counted
                if let Some(t) = &mut self.transform {
                    t.begin_batch(timestamp_ms, 0)?;
                }
                self.sink.begin(epoch_id)?;
                let mut at = epoch_start.clone();
                while began.elapsed() < epoch && !stop.is_set() {
                    let wait = (epoch - began.elapsed().min(epoch)).min(Duration::from_millis(100));
                    let (sink, transform) = (&mut self.sink, &mut self.transform);
                    at = self.source.read_available(&at, wait, stop, &mut |chunk| {
                        rows_in += chunk.num_rows() as u64;
                        rows_out += pass_through(transform, sink, chunk, stop)?;
                        Ok(())
                    })?;
                }
                self.sink.flush(stop, status)?;
                if rows_in == 0 {
                    return Ok(None);
                }
                let offsets = BatchOffsets { start: epoch_start.clone(), end: at.clone(), timestamp_ms, watermark_ms: 0 };
                log.write_offsets(epoch_id, &offsets)?;
                self.sink.commit(epoch_id, &at, log)?;
                Ok(Some(at))
            };
            let reached = match run() {
                Ok(Some(at)) => at,
                Ok(None) => {
                    self.sink.abort()?; // an empty epoch: nothing to record
                    retry.reset(status);
                    continue;
                }
                Err(e) => {
                    if let Err(abort) = self.sink.abort() {
                        status.warn(format!("could not abort epoch {epoch_id}: {abort}"));
                    }
                    if e.is_aborted() {
                        return Ok(());
                    }
                    if !e.retriable {
                        return Err(e);
                    }
                    retry.wait(e, status, stop)?;
                    match log.latest_offsets::<BatchOffsets>()? {
                        Some((n, offsets)) if n == epoch_id && self.committed_meanwhile(epoch_id, log, &mut retry, status, stop)? => {
                            offsets.end
                        }
                        _ => continue, // read the epoch again from where it started
                    }
                }
            };
            retry.reset(status);
            log.write_commit(epoch_id, &BatchOutcome { rows_in, rows_out, ..Default::default() }.commit())?;
            self.source.committed(&reached, status);
            let took = began.elapsed();
            status.record_batch(BatchProgress {
                rows_malformed: self.source.take_malformed(),
                ..BatchProgress::new(epoch_id, timestamp_ms as f64, rows_in, rows_out, took, took.as_secs_f64())
            });
            position = reached;
            epoch_id += 1;
        }
        Ok(())
    }

    /// Batch `batch` on exactly `offsets` until the sink has committed it:
    /// after a retriable failure, from the last committed state again, unless
    /// the sink says the failed try committed after all. A shared source's
    /// batch is not run again: it is superseded, and planned anew.
    fn run_batch_surely(
        &mut self,
        batch: u64,
        offsets: &BatchOffsets,
        log: &CheckpointLog,
        stop: &StopSignal,
        status: &SharedStatus,
        retry: &mut Retry,
    ) -> Result<BatchEnd> {
        loop {
            match self.run_batch(batch, offsets, log, stop, status) {
                Ok(outcome) => {
                    retry.reset(status);
                    return Ok(BatchEnd::Committed(outcome));
                }
                Err(e) if e.is_aborted() => return Ok(BatchEnd::Aborted),
                Err(e) if e.kind == ErrorKind::Rebalanced => {
                    status.set_message(format!("Batch {batch} voided by a rebalance of the consumer group"));
                    self.source.rewind();
                    return Ok(BatchEnd::Superseded { failed: false });
                }
                Err(e) if e.retriable => {
                    retry.wait(e, status, stop)?;
                    if self.is_shared() {
                        self.source.rewind();
                        return Ok(BatchEnd::Superseded { failed: true });
                    }
                    if self.committed_meanwhile(batch, log, retry, status, stop)? {
                        // Its rows went out in the try that failed; the watermark it reached stands.
                        let next_watermark_ms = self.next_watermark(offsets);
                        return Ok(BatchEnd::Committed(BatchOutcome { next_watermark_ms, ..Default::default() }));
                    }
                    self.restore_state(log)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Did the sink commit `batch` in a try that then reported a failure?
    /// Asked again (within the retry bound) while Kafka can't say.
    fn committed_meanwhile(
        &mut self,
        batch: u64,
        log: &CheckpointLog,
        retry: &mut Retry,
        status: &SharedStatus,
        stop: &StopSignal,
    ) -> Result<bool> {
        loop {
            match self.sink.was_committed(batch, log) {
                Err(e) if e.retriable => retry.wait(e, status, stop)?,
                answer => return answer,
            }
        }
    }

    fn run_batch(
        &mut self,
        batch: u64,
        offsets: &BatchOffsets,
        log: &CheckpointLog,
        stop: &StopSignal,
        status: &SharedStatus,
    ) -> Result<BatchOutcome> {
        // First the tables it joins (a failure here leaves no transaction open), then the sink.
        if let Some(t) = &mut self.transform {
            t.begin_batch(offsets.timestamp_ms, offsets.watermark_ms)?;
        }
        self.sink.begin(batch)?;
        self.source.take_malformed(); // what an attempt that failed counted
        let written = self.write_batch(offsets, stop, status).and_then(|(rows_in, rows_out)| {
            if let Some(state) = self.transform.as_mut().map(|t| t.save_state()).transpose()?.flatten() {
                // Saved before the sink commits; it counts once commits/N exists.
                log.write_state(batch, &state)?;
            }
            self.sink.commit(batch, &offsets.end, log)?;
            let rows_dropped = self.transform.as_ref().map_or(0, |t| t.rows_dropped());
            let rows_malformed = self.source.take_malformed();
            Ok(BatchOutcome { rows_in, rows_out, rows_dropped, rows_malformed, next_watermark_ms: self.next_watermark(offsets) })
        });
        if written.is_err() {
            if let Err(e) = self.sink.abort() {
                status.warn(format!("could not abort batch {batch}: {e}"));
            }
        }
        written
    }

    fn write_batch(&mut self, offsets: &BatchOffsets, stop: &StopSignal, status: &SharedStatus) -> Result<(u64, u64)> {
        let (mut rows_in, mut rows_out) = (0u64, 0u64);
        let (sink, transform) = (&mut self.sink, &mut self.transform);
        self.source.read(&offsets.start, &offsets.end, stop, &mut |chunk| {
            rows_in += chunk.num_rows() as u64;
            rows_out += pass_through(transform, sink, chunk, stop)?;
            Ok(())
        })?;
        if let Some(t) = &mut self.transform {
            for result in t.finish_batch()? {
                rows_out += self.sink.write(&result, stop)?;
            }
        }
        self.sink.flush(stop, status)?;
        Ok((rows_in, rows_out))
    }
}

impl Query {
    /// The watermark after the batch on `offsets` (as it was without one).
    fn next_watermark(&self, offsets: &BatchOffsets) -> i64 {
        self.transform.as_ref().map_or(offsets.watermark_ms, |t| t.next_watermark())
    }

    /// Does the watermark's move wait for a batch to close groups?
    fn closes_groups_at(&self, watermark: Watermark) -> bool {
        watermark.next > watermark.last_ran && self.transform.as_ref().is_some_and(|t| t.closes_groups())
    }

    fn with_event_time(&self, progress: BatchProgress, offsets: &BatchOffsets, outcome: &BatchOutcome) -> BatchProgress {
        let Some(t) = self.transform.as_ref() else { return progress };
        BatchProgress {
            watermark_ms: t.has_watermark().then_some(offsets.watermark_ms),
            rows_dropped: outcome.rows_dropped,
            groups_held: t.groups_held(),
            ..progress
        }
    }
}

/// A chunk of input through the pipeline (if any) into the sink.
fn pass_through(
    transform: &mut Option<Transform>,
    sink: &mut Box<dyn Sink>,
    chunk: RecordBatch,
    stop: &StopSignal,
) -> Result<u64> {
    match transform {
        None => sink.write(&chunk, stop),
        Some(t) => t.process(chunk)?.iter().try_fold(0, |n, out| Ok(n + sink.write(out, stop)?)),
    }
}

/// Waiting out a failure that may cure itself, for a bounded time: 0.5 s,
/// doubling up to 10 s between tries, each one shown in the stream's status.
struct Retry {
    bound: Duration,
    tries: u32,
    /// When the current run of failures began (none since the last success).
    since: Option<Instant>,
}

impl Retry {
    fn new(bound: Duration) -> Self {
        Retry { bound, tries: 0, since: None }
    }

    /// Wait before the next try; or give up with `e`, which then fails the
    /// stream: when the bound has passed, or when the query is asked to stop
    /// (nobody waits for the next try, and the user learns what went wrong).
    fn wait(&mut self, e: Error, status: &SharedStatus, stop: &StopSignal) -> Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        self.tries += 1;
        let waited = since.elapsed();
        if waited >= self.bound {
            let mut e = e.context(format!(
                "gave up after {} tries over {:.1} s without progress (`retryTimeoutMs` is {})",
                self.tries,
                waited.as_secs_f64(),
                self.bound.as_millis()
            ));
            e.retriable = false;
            return Err(e);
        }
        if !stop.is_set() {
            let delay = Duration::from_millis((250u64 << self.tries.min(6)).min(10_000)).min(self.bound - waited);
            status.warn(format!("{e} (try {}, retrying)", self.tries));
            status.set_retrying(self.tries, waited, e.to_string());
            stop.wait(delay);
        }
        if stop.is_set() {
            return Err(e.context(format!("stopped while retrying (try {})", self.tries)));
        }
        Ok(())
    }

    fn reset(&mut self, status: &SharedStatus) {
        if self.since.take().is_some() {
            status.clear_retrying();
        }
        self.tries = 0;
    }
}
