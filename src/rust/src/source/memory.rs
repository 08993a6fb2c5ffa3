//! A data frame already converted to Arrow: a bounded source whose position
//! is the number of rows written.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{Positions, Source, CHUNK_ROWS};
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};

pub(crate) struct MemorySource {
    batch: RecordBatch,
}

impl MemorySource {
    pub(crate) fn new(batch: RecordBatch) -> Self {
        MemorySource { batch }
    }

    fn rows_of(&self, p: &Positions) -> Result<usize> {
        match p {
            Positions::Rows { rows } if *rows as usize <= self.batch.num_rows() => Ok(*rows as usize),
            other => Err(Error::checkpoint(format!("the checkpoint's position {other:?} does not fit this data frame"))),
        }
    }

    fn at(rows: usize) -> Positions {
        Positions::Rows { rows: rows as u64 }
    }
}

impl Source for MemorySource {
    fn describe(&self) -> String {
        self.identity()
    }

    fn identity(&self) -> String {
        let cols: Vec<&str> = self.batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        format!("data.frame[{} rows; {}]", self.batch.num_rows(), cols.join(", "))
    }

    fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    fn connect(&mut self, _status: &SharedStatus) -> Result<()> {
        Ok(())
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        Ok(Self::at(0))
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        let from = self.rows_of(start)?;
        if from >= self.batch.num_rows() {
            return Ok(None);
        }
        Ok(Some((start.clone(), Self::at(self.batch.num_rows()))))
    }

    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (mut at, end) = (self.rows_of(start)?, self.rows_of(end)?);
        while at < end {
            stop.check_abort()?;
            let len = CHUNK_ROWS.min(end - at);
            emit(self.batch.slice(at, len))?;
            at += len;
        }
        Ok(())
    }

    fn is_bounded(&self) -> bool {
        true
    }

    fn is_exhausted(&self, committed_end: &Positions) -> bool {
        self.rows_of(committed_end).map(|n| n >= self.batch.num_rows()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn the_identity_keeps_the_format_that_checkpoints_hold() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false), Field::new("m", DataType::Int32, false)]));
        let column = Arc::new(Int32Array::from(vec![1, 2]));
        let batch = RecordBatch::try_new(schema, vec![column.clone(), column]).unwrap();
        assert_eq!(MemorySource::new(batch).identity(), "data.frame[2 rows; n, m]");
    }
}
