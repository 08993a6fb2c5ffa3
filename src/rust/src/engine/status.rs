//! What a query is doing, shared between its thread (which writes) and R
//! (which reads through the handle). Plain data only: no R objects here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connecting, reading the checkpoint.
    Starting,
    /// Running batches, or waiting for the trigger or for data.
    Active,
    /// Stopped by `stream_stop()` or by running out of input.
    Stopped,
    /// Stopped by an error, kept in `error`.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Active => "active",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }
    pub fn is_terminated(self) -> bool {
        matches!(self, State::Stopped | State::Failed)
    }
}

/// One committed micro-batch, as Spark's `StreamingQueryProgress`.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    pub batch_id: u64,
    /// Milliseconds since the epoch when the batch was planned.
    pub timestamp_ms: f64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duration_ms: f64,
    /// Rows per second arriving since the previous batch.
    pub input_rows_per_second: f64,
    /// Rows per second the batch was processed at.
    pub processed_rows_per_second: f64,
    /// The watermark the batch ran with (ms since the epoch), if the
    /// pipeline has one.
    pub watermark_ms: Option<i64>,
    /// Rows dropped as too late for their window.
    pub rows_dropped: u64,
    /// Records whose key or value could not be decoded (read as NA).
    pub rows_malformed: u64,
    /// Groups held in the aggregation state after the batch.
    pub groups_held: Option<u64>,
}

impl BatchProgress {
    /// `took` is how long the batch ran; `arrived_over_secs` the time its
    /// input took to arrive (since the previous batch, or the epoch's length).
    pub fn new(batch_id: u64, timestamp_ms: f64, rows_in: u64, rows_out: u64, took: std::time::Duration, arrived_over_secs: f64) -> Self {
        let secs = took.as_secs_f64().max(1e-6);
        BatchProgress {
            batch_id,
            timestamp_ms,
            rows_in,
            rows_out,
            duration_ms: secs * 1000.0,
            input_rows_per_second: rows_in as f64 / arrived_over_secs.max(1e-3),
            processed_rows_per_second: rows_in as f64 / secs,
            watermark_ms: None,
            rows_dropped: 0,
            rows_malformed: 0,
            groups_held: None,
        }
    }
}

/// Where a Kafka source stands on one partition it reads (in a consumer
/// group: one this process owns), as of the last batch planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The offset the planned batch reads up to.
    pub offset: i64,
    /// Records after it, not yet planned.
    pub lag: i64,
}

#[derive(Debug, Clone)]
pub struct QueryStatus {
    pub state: State,
    /// What it is doing now, in words ("Waiting for data", "Writing batch 3").
    pub message: String,
    pub batches_committed: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows dropped as too late for their window, over all batches.
    pub rows_dropped: u64,
    /// Records whose key or value could not be decoded, over all batches.
    pub rows_malformed: u64,
    /// The watermark of the last batch, if the pipeline has one.
    pub watermark_ms: Option<i64>,
    pub error: Option<Error>,
    /// Failed before it started (the R call that defined it raises the
    /// error); a later failure is for `print()` and `stream_stop()`.
    pub failed_starting: bool,
    /// Since when (ms since the epoch) and how many times the query has
    /// been retrying without progress; `None` while all is well.
    pub retrying: Option<(f64, u32)>,
    /// Things that went wrong and were recovered from (e.g. a broker that went away).
    pub warnings: VecDeque<String>,
    pub recent: VecDeque<BatchProgress>,
    /// A Kafka source's partitions and lag.
    pub partitions: Vec<PartitionLag>,
}

const RECENT_BATCHES: usize = 1000;
const RECENT_WARNINGS: usize = 20;

pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[derive(Clone)]
pub struct SharedStatus(Arc<(Mutex<QueryStatus>, std::sync::Condvar)>);

impl Default for SharedStatus {
    fn default() -> Self {
        SharedStatus(Arc::new((
            Mutex::new(QueryStatus {
                state: State::Starting,
                message: "Starting".into(),
                batches_committed: 0,
                rows_in: 0,
                rows_out: 0,
                rows_dropped: 0,
                rows_malformed: 0,
                watermark_ms: None,
                error: None,
                failed_starting: false,
                retrying: None,
                warnings: VecDeque::new(),
                recent: VecDeque::new(),
                partitions: Vec::new(),
            }),
            std::sync::Condvar::new(),
        )))
    }
}

impl SharedStatus {
    fn lock(&self) -> MutexGuard<'_, QueryStatus> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> QueryStatus {
        self.lock().clone()
    }

    pub fn set_message(&self, message: impl Into<String>) {
        self.lock().message = message.into();
    }

    pub fn set_active(&self, message: impl Into<String>) {
        let mut s = self.lock();
        s.state = State::Active;
        s.message = message.into();
        drop(s);
        self.0 .1.notify_all();
    }

    pub fn warn(&self, warning: impl Into<String>) {
        let mut s = self.lock();
        if s.warnings.len() == RECENT_WARNINGS {
            s.warnings.pop_front();
        }
        s.warnings.push_back(warning.into());
    }

    /// Try `tries` failed; the query has made no progress for `waited`.
    pub fn set_retrying(&self, tries: u32, waited: std::time::Duration, why: String) {
        let mut s = self.lock();
        s.retrying = Some((now_ms() - waited.as_secs_f64() * 1000.0, tries));
        s.message = format!("Retrying (try {tries}, {:.0} s without progress): {why}", waited.as_secs_f64());
        // A query retrying while it starts has started, for R: the call that
        // defined it returns, and print() shows the retries.
        if s.state == State::Starting {
            s.state = State::Active;
            drop(s);
            self.0 .1.notify_all();
        }
    }

    pub fn set_partitions(&self, partitions: Vec<PartitionLag>) {
        self.lock().partitions = partitions;
    }

    pub fn clear_retrying(&self) {
        self.lock().retrying = None;
    }

    pub fn record_batch(&self, progress: BatchProgress) {
        let mut s = self.lock();
        s.batches_committed += 1;
        s.rows_in += progress.rows_in;
        s.rows_out += progress.rows_out;
        s.rows_dropped += progress.rows_dropped;
        s.rows_malformed += progress.rows_malformed;
        s.watermark_ms = progress.watermark_ms.or(s.watermark_ms);
        if s.recent.len() == RECENT_BATCHES {
            s.recent.pop_front();
        }
        s.recent.push_back(progress);
    }

    /// The query thread is over; wake everyone waiting for it.
    pub fn finish(&self, result: Result<(), Error>) {
        let mut s = self.lock();
        s.retrying = None;
        match result {
            Ok(()) => {
                s.state = State::Stopped;
                s.message = "Stopped".into();
            }
            Err(e) => {
                s.failed_starting = s.state == State::Starting;
                s.state = State::Failed;
                s.message = format!("Failed: {e}");
                s.error = Some(e);
            }
        }
        drop(s);
        self.0 .1.notify_all();
    }

    /// Wait up to `timeout` for the state to leave `Starting` (when
    /// `until_started`) or to terminate. Returns the state then.
    pub fn wait(&self, timeout: std::time::Duration, until_started: bool) -> State {
        let guard = self.lock();
        let (guard, _) = self
            .0
             .1
            .wait_timeout_while(guard, timeout, |s| {
                if until_started {
                    s.state == State::Starting
                } else {
                    !s.state.is_terminated()
                }
            })
            .unwrap_or_else(|p| p.into_inner());
        guard.state
    }
}
