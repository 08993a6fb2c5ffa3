//! Sources: where rows come from. A source plans a micro-batch as a range of
//! positions (`start` -> `end`), which the engine records in the checkpoint
//! before anything is read, then reads exactly that range as a sequence of
//! Arrow chunks. Reading the same range twice gives the same rows, which is
//! what makes a restart lose nothing.

pub mod kafka;
pub mod memory;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::Result;

/// Source positions as stored in the checkpoint (source-specific JSON).
pub type Positions = Value;

/// Rows per Arrow chunk handed to the sink: big enough to amortise, small
/// enough that memory stays flat however large a micro-batch is.
pub const CHUNK_ROWS: usize = 32_768;

pub trait Source: Send {
    /// What the source reads, without secrets; stored in the checkpoint's
    /// metadata so a checkpoint is never reused by another query.
    fn describe(&self) -> String;

    fn schema(&self) -> SchemaRef;

    /// Connect and check that the source can be read (bounded in time);
    /// Kafka's complaints meanwhile go to `status`.
    fn connect(&mut self, status: &SharedStatus) -> Result<()>;

    /// Where a query without a checkpoint starts.
    fn initial_positions(&mut self) -> Result<Positions>;

    /// The next batch after `start`: `Some((start, end))` when there is new
    /// data (`start` may be adjusted, e.g. past deleted Kafka records),
    /// `None` when there is nothing new.
    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>>;

    /// Read exactly `start..end`, handing chunks to `emit`.
    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()>;

    /// Block up to `timeout` until new data may be there. Sources that can
    /// be woken by arriving data override it; the default just waits.
    fn wait_for_data(&mut self, timeout: std::time::Duration, stop: &StopSignal) -> Result<()> {
        stop.wait(timeout);
        Ok(())
    }

    /// Continuous processing: hand over whatever arrived after `position`
    /// (waiting up to `wait` for the first record) and return the new
    /// position. Sources without a faster way read the next planned batch.
    fn read_available(
        &mut self,
        position: &Positions,
        wait: std::time::Duration,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Positions> {
        match self.plan(position)? {
            Some((start, end)) => {
                self.read(&start, &end, stop, emit)?;
                Ok(end)
            }
            None => {
                self.wait_for_data(wait, stop)?;
                Ok(position.clone())
            }
        }
    }

    /// A bounded source (a data frame) is written whole even when asked to
    /// stop gracefully: all of it is the batch in flight.
    fn is_bounded(&self) -> bool {
        false
    }

    /// A bounded source (a data frame) is done once its last batch committed.
    fn is_exhausted(&self, _committed_end: &Positions) -> bool {
        false
    }
}
