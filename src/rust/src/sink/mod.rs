//! Sinks: where a micro-batch's rows go. The engine commits a batch only
//! after `flush` says every row written since the last flush is durable.

mod batch_produce;
pub(crate) mod encode;
pub(crate) mod json;
pub(crate) mod kafka;
pub(crate) mod memory;
pub(crate) mod partition;

use arrow::record_batch::RecordBatch;

use crate::checkpoint::CheckpointLog;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::Result;
use crate::source::Positions;

pub trait Sink: Send {
    /// Where the rows go, in words, without secrets: for `print()`.
    fn describe(&self) -> String;

    /// Who the sink is, stored in the checkpoint's metadata (see
    /// `Source::identity`: a frozen format, unlike `describe()`).
    fn identity(&self) -> String;

    /// Connect (bounded in time). The rows it will get were checked when
    /// the query was planned. `query_id` is stable across restarts.
    fn connect(&mut self, status: &SharedStatus, query_id: &str) -> Result<()>;

    /// After `connect`: settle what the sink decides once per query and
    /// keeps in `log` (the id of a schema in a registry), so a restart
    /// writes the same. Called again while its error is retriable.
    fn settle(&mut self, _log: &CheckpointLog) -> Result<()> {
        Ok(())
    }

    /// Micro-batch `batch` begins (a transactional sink gets ready for one;
    /// a file sink names its files after it).
    fn begin(&mut self, _batch: u64) -> Result<()> {
        Ok(())
    }

    /// Hand a chunk over; returns the number of records it became. Delivery
    /// may still be in progress when this returns.
    fn write(&mut self, chunk: &RecordBatch, stop: &StopSignal) -> Result<u64>;

    /// Wait until everything written so far is acknowledged.
    fn flush(&mut self, stop: &StopSignal, status: &SharedStatus) -> Result<()>;

    /// Make the flushed batch visible. A two-phase sink first records in
    /// `log` how to tell later whether this commit happened. `read` is how
    /// far the batch read its source (a transactional Kafka sink commits it
    /// with the batch, where Kafka's tools see the stream's lag).
    fn commit(&mut self, _batch: u64, _read: &Positions, _log: &CheckpointLog) -> Result<()> {
        Ok(())
    }

    /// Give up on the batch in flight (best effort).
    fn abort(&mut self) -> Result<()> {
        Ok(())
    }

    /// After a crash between the sink's commit and the checkpoint's: did the
    /// sink commit batch `batch`? Sinks that can't tell say no, and the batch
    /// is written again (at-least-once).
    fn was_committed(&mut self, _batch: u64, _log: &CheckpointLog) -> Result<bool> {
        Ok(false)
    }
}
