//! Sinks that keep rows in this process: a named in-memory table that R
//! reads with `collect()` while the stream runs (`stream_write_memory()`),
//! and the console (`stream_write_console()`), whose batches wait in a queue
//! until R's main thread prints them. Rows become visible when their batch
//! commits, never half a batch.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use arrow::array::{make_array, Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::NullBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::encode::key_bytes;
use super::Sink;
use crate::checkpoint::CheckpointLog;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::transform::OutputMode;

/// A table R can query while streams write it, or one R copied in
/// (`copy_to()`) to join streams with.
#[derive(Debug, Default)]
pub(crate) struct MemoryTable {
    rows: Mutex<(Option<SchemaRef>, Vec<RecordBatch>)>,
}

/// The connection's tables by name: what `stream_write_memory()` writes,
/// what `copy_to()` copies, what `tbl(sc, name)` and joins read.
#[derive(Debug, Default)]
pub struct Tables(Mutex<BTreeMap<String, Arc<MemoryTable>>>);

impl Tables {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<MemoryTable>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<MemoryTable>> {
        self.lock().get(name).cloned()
    }

    pub(crate) fn insert(&self, name: &str, table: Arc<MemoryTable>) {
        self.lock().insert(name.to_string(), table);
    }

    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// `copy_to()`: `rows` under `name`, replacing a table of that name only
    /// when asked to. Running streams that join it see the new rows from
    /// their next batch.
    pub fn copy_in(&self, name: &str, rows: RecordBatch, overwrite: bool) -> Result<()> {
        let mut tables = self.lock();
        if tables.contains_key(name) && !overwrite {
            return Err(Error::config("name", format!("table {name} already exists (pass overwrite = TRUE to overwrite)")));
        }
        let table = MemoryTable { rows: Mutex::new((Some(rows.schema()), vec![rows])) };
        tables.insert(name.to_string(), Arc::new(table));
        Ok(())
    }

    /// The name and columns (as R sees them) of every table that has columns.
    pub(crate) fn schemas(&self) -> Vec<(String, SchemaRef)> {
        let tables = self.lock();
        tables.iter().filter_map(|(name, t)| t.schema().map(|s| (name.clone(), s))).collect()
    }

    /// Every table with rows or a schema, as R sees them now.
    pub(crate) fn snapshots(&self) -> Vec<(String, SchemaRef, Vec<RecordBatch>)> {
        let tables = self.lock();
        tables
            .iter()
            .filter_map(|(name, t)| match t.snapshot() {
                (Some(schema), rows) => Some((name.clone(), schema, rows)),
                (None, _) => None,
            })
            .collect()
    }
}

impl MemoryTable {
    fn schema(&self) -> Option<SchemaRef> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).0.as_ref().map(flat_schema)
    }

    /// The committed rows, as R sees them ([`flatten_structs`]).
    pub fn snapshot(&self) -> (Option<SchemaRef>, Vec<RecordBatch>) {
        let (schema, rows) = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (schema.as_ref().map(flat_schema), rows.iter().map(flatten_structs).collect())
    }
}

/// Rows as R sees them: R has no struct columns, so a struct column `w`
/// becomes one column per field, `w_start` and `w_end` for a `window()`.
pub(crate) fn flatten_structs(batch: &RecordBatch) -> RecordBatch {
    if !batch.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Struct(_))) {
        return batch.clone();
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        flatten_into(field.name(), field, column, &mut fields, &mut columns);
    }
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, columns).expect("flattening keeps the row count")
}

fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    let empty = RecordBatch::new_empty(schema.clone());
    flatten_structs(&empty).schema()
}

fn flatten_into(name: &str, field: &Field, column: &ArrayRef, fields: &mut Vec<Field>, columns: &mut Vec<ArrayRef>) {
    match column.as_struct_opt() {
        Some(parts) => {
            for (child, values) in parts.fields().iter().zip(parts.columns()) {
                // A null struct's fields are null too.
                let values = match parts.nulls() {
                    Some(nulls) => {
                        let merged = NullBuffer::union(Some(nulls), values.nulls());
                        make_array(values.to_data().into_builder().nulls(merged).build().expect("same length"))
                    }
                    None => values.clone(),
                };
                flatten_into(&format!("{name}_{}", child.name()), child, &values, fields, columns);
            }
        }
        None => {
            fields.push(Field::new(name, field.data_type().clone(), true));
            columns.push(column.clone());
        }
    }
}

/// Committed batches waiting to be printed: (batch id, rows).
pub(crate) type ConsoleQueue = Mutex<VecDeque<(u64, Vec<RecordBatch>)>>;

pub(crate) enum Target {
    Table { name: String, table: Arc<MemoryTable>, mode: OutputMode, key_columns: Vec<String> },
    Console(Arc<ConsoleQueue>),
}

pub(crate) struct MemorySink {
    target: Target,
    /// The rows it gets (the pipeline's output), known when the query was planned.
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
}

impl MemorySink {
    pub(crate) fn new(target: Target, schema: SchemaRef) -> Self {
        MemorySink { target, schema, pending: Vec::new() }
    }
}

/// Rows of `table` whose key is not among `replaced`'s keys.
fn without_keys(table: &[RecordBatch], replaced: &[RecordBatch], keys: &[usize]) -> Result<Vec<RecordBatch>> {
    let mut new_keys = HashSet::new();
    for b in replaced {
        let k = key_bytes(b, keys)?;
        new_keys.extend(k.iter().map(|v| v.map(<[u8]>::to_vec)));
    }
    table
        .iter()
        .map(|b| {
            let k = key_bytes(b, keys)?;
            let keep: BooleanArray = k.iter().map(|v| Some(!new_keys.contains(&v.map(<[u8]>::to_vec)))).collect();
            filter_record_batch(b, &keep).map_err(|e| Error::internal(e.to_string()))
        })
        .collect()
}

impl Sink for MemorySink {
    fn describe(&self) -> String {
        self.identity()
    }

    fn identity(&self) -> String {
        match &self.target {
            Target::Table { name, .. } => format!("memory[{name}]"),
            Target::Console(_) => "console".to_string(),
        }
    }

    fn connect(&mut self, _status: &SharedStatus, _query_id: &str) -> Result<()> {
        if let Target::Table { table, .. } = &self.target {
            let mut rows = table.rows.lock().unwrap_or_else(|p| p.into_inner());
            *rows = (Some(self.schema.clone()), Vec::new());
        }
        Ok(())
    }

    fn begin(&mut self, _batch: u64) -> Result<()> {
        self.pending.clear();
        Ok(())
    }

    fn write(&mut self, chunk: &RecordBatch, _stop: &StopSignal) -> Result<u64> {
        self.pending.push(chunk.clone());
        Ok(chunk.num_rows() as u64)
    }

    fn flush(&mut self, _stop: &StopSignal, _status: &SharedStatus) -> Result<()> {
        Ok(())
    }

    fn commit(&mut self, batch: u64, _read: &crate::source::Positions, _log: &CheckpointLog) -> Result<()> {
        let fresh = std::mem::take(&mut self.pending);
        match &self.target {
            Target::Console(queue) => queue.lock().unwrap_or_else(|p| p.into_inner()).push_back((batch, fresh)),
            Target::Table { table, mode, key_columns, .. } => {
                let mut rows = table.rows.lock().unwrap_or_else(|p| p.into_inner());
                match mode {
                    OutputMode::Append => rows.1.extend(fresh),
                    OutputMode::Complete => rows.1 = fresh,
                    OutputMode::Update => {
                        let keys: Vec<usize> = key_columns.iter().filter_map(|c| self.schema.index_of(c).ok()).collect();
                        let mut kept = if keys.is_empty() { Vec::new() } else { without_keys(&rows.1, &fresh, &keys)? };
                        kept.extend(fresh);
                        rows.1 = kept;
                    }
                }
            }
        }
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        self.pending.clear();
        Ok(())
    }
}
