//! Sinks: where a micro-batch's rows go. The engine commits a batch only
//! after `flush` says every row written since the last flush is durable.

pub mod encode;
pub mod kafka;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::Result;

pub trait Sink: Send {
    /// Where the rows go, without secrets; stored in the checkpoint's metadata.
    fn describe(&self) -> String;

    /// Check that rows of `schema` can be written and connect (bounded in time).
    fn connect(&mut self, schema: &Schema, status: &SharedStatus) -> Result<()>;

    /// Hand a chunk over; returns the number of records it became. Delivery
    /// may still be in progress when this returns.
    fn write(&mut self, chunk: &RecordBatch, stop: &StopSignal) -> Result<u64>;

    /// Wait until everything written so far is acknowledged.
    fn flush(&mut self, stop: &StopSignal, status: &SharedStatus) -> Result<()>;
}
