//! Sources: where rows come from. A source plans a micro-batch as a range of
//! positions (`start` -> `end`), which the engine records in the checkpoint
//! before anything is read, then reads exactly that range as a sequence of
//! Arrow chunks. Reading the same range twice gives the same rows, which is
//! what makes a restart lose nothing.

mod consume_batch;
pub(crate) mod kafka;
pub(crate) mod memory;

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::Result;
use crate::kafka::config::OffsetMap;

/// Where a source is, as stored in the checkpoint (`offsets/N`,
/// `sources/0`). The JSON shapes are Spark's and must not change: old
/// checkpoints are read with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Positions {
    /// A data frame: `{"rows": n}`, the rows written so far.
    Rows { rows: u64 },
    /// Files: `{"logOffset": n}`, the last batch of the source's file log
    /// (`sources/0/<n>`) read; -1 before the first.
    Files {
        #[serde(rename = "logOffset")]
        log_offset: i64,
    },
    /// Kafka: `{"topic": {"0": 23}}`, the next offset of each partition.
    Kafka(OffsetMap),
    /// A Delta table: Spark's `{"sourceVersion": 1, "reservoirId": ..,
    /// "reservoirVersion": v, "index": i, "isStartingVersion": b}`.
    Delta(crate::delta::source::DeltaOffset),
}

// By hand: serde's derived untagged enums can't read map keys that are
// numbers written as strings ("0"), as Kafka's partitions are.
impl<'de> Deserialize<'de> for Positions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let only = |key: &str| value.as_object().filter(|o| o.len() == 1).and_then(|o| o.get(key)).cloned();
        if let Some(rows) = only("rows").and_then(|r| r.as_u64()) {
            return Ok(Positions::Rows { rows });
        }
        if let Some(log_offset) = only("logOffset").and_then(|n| n.as_i64()) {
            return Ok(Positions::Files { log_offset });
        }
        if value.get("reservoirVersion").is_some() {
            return serde_json::from_value(value).map(Positions::Delta).map_err(serde::de::Error::custom);
        }
        serde_json::from_value(value).map(Positions::Kafka).map_err(serde::de::Error::custom)
    }
}

/// Rows per Arrow chunk handed to the sink: big enough to amortise, small
/// enough that memory stays flat however large a micro-batch is.
pub const CHUNK_ROWS: usize = 32_768;

/// Whose positions a source reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// All of its input: the checkpoint keeps where it stands, and a
    /// batch that failed runs again on its recorded range.
    Whole,
    /// A share of an input split between processes running the same query
    /// (a Kafka consumer group), which keeps the positions. The share can
    /// change between batches, so a failed batch is planned again, never
    /// replayed; the checkpoint only numbers this process's batches, in a
    /// member directory of its own (`instance` names it, else the first
    /// free one).
    Shared { instance: Option<String> },
}

pub trait Source: Send {
    /// What the source reads, in words, without secrets: for `print()`.
    fn describe(&self) -> String;

    /// Who the source is, stored in the checkpoint's metadata so that a
    /// checkpoint is never reused by another query. Its format is frozen
    /// (old checkpoints are compared with it); `describe()` is free to change.
    fn identity(&self) -> String;

    /// The rows it emits. The engine takes them from the query's plan
    /// (`engine::plan`); tests take them from here.
    #[cfg_attr(not(test), allow(dead_code))]
    fn schema(&self) -> SchemaRef;

    /// Connect and check that the source can be read (bounded in time);
    /// Kafka's complaints meanwhile go to `status`.
    fn connect(&mut self, status: &SharedStatus) -> Result<()>;

    /// Where a query without a checkpoint starts.
    fn initial_positions(&mut self) -> Result<Positions>;

    /// See [`Scope`].
    fn scope(&self) -> Scope {
        Scope::Whole
    }

    /// A shared source's batch failed or was voided: the next plan starts
    /// where the last committed batch ended, as the shared positions say.
    fn rewind(&mut self) {}

    /// Wait `timeout` between triggers. A source in a consumer group keeps
    /// polling meanwhile, or the group would count it as gone.
    fn idle(&mut self, timeout: std::time::Duration, stop: &StopSignal) -> Result<()> {
        stop.wait(timeout);
        Ok(())
    }

    /// A source that keeps a log of its own in the checkpoint (a file
    /// source: which files each batch reads, in `sources/0/` as Spark keeps
    /// it) opens it here, before `connect`, and says so: its start then
    /// needs no record of its own.
    fn open_log(&mut self, _checkpoint: &Path) -> Result<bool> {
        Ok(false)
    }

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

    /// How many records read since the last call could not be decoded
    /// (their key or value is not in its `*.format`): counted, and read as
    /// rows of NA. Counting starts again at each call.
    fn take_malformed(&mut self) -> u64 {
        0
    }

    /// Batch ending at `end` is committed: a source may now let go of what
    /// it read (a file source's `cleanSource`). Best effort: what fails is
    /// a warning in `status`.
    fn committed(&mut self, _end: &Positions, _status: &SharedStatus) {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_the_json_shapes_of_old_checkpoints() {
        let rows: Positions = serde_json::from_str(r#"{"rows":3}"#).unwrap();
        assert_eq!(rows, Positions::Rows { rows: 3 });
        let kafka: Positions = serde_json::from_str(r#"{"t":{"0":5,"1":7},"rows":{"0":1}}"#).unwrap();
        let Positions::Kafka(map) = &kafka else { panic!("{kafka:?}") };
        assert_eq!((map["t"][&1], map["rows"][&0]), (7, 1), "a topic named `rows` is still Kafka");
        assert_eq!(serde_json::to_string(&kafka).unwrap(), r#"{"rows":{"0":1},"t":{"0":5,"1":7}}"#);
        assert_eq!(serde_json::to_string(&rows).unwrap(), r#"{"rows":3}"#);
        let files: Positions = serde_json::from_str(r#"{"logOffset":-1}"#).unwrap();
        assert_eq!(files, Positions::Files { log_offset: -1 });
        assert_eq!(serde_json::to_string(&files).unwrap(), r#"{"logOffset":-1}"#);
        assert!(serde_json::from_str::<Positions>(r#"{"t":{"x":5}}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_checkpoint_text_is_a_position_or_an_error_and_positions_round_trip(
            text in "\\PC{0,60}",
            offsets in proptest::collection::btree_map("[a-z.]{1,8}", proptest::collection::btree_map(0i32..100, -2i64..1_000_000, 0..3), 0..3),
        ) {
            let _ = serde_json::from_str::<Positions>(&text);
            let kafka = Positions::Kafka(offsets);
            let back: Positions = serde_json::from_str(&serde_json::to_string(&kafka).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, kafka);
        }
    }
}
