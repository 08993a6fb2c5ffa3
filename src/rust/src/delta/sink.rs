//! A Delta table as a stream's output, one commit per micro-batch, exactly
//! once through the commit's transaction identifier (see the module docs).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, OutputMode as DeltaOutputMode, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter};
use deltalake_core::DeltaTable;

use super::{delta_error, open, table_schema};
use crate::checkpoint::CheckpointLog;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::file::options::local_path;
use crate::kafka::config::Options;
use crate::sink::Sink;
use crate::source::Positions;
use crate::transform::{block_on, OutputMode};

/// Spark's Delta writer options that change nothing here (accepted, with a warning).
const SPARK_ONLY: &[&str] = &["optimizeWrite", "checkpointLocation", "path"];

pub(crate) struct DeltaSinkPlan {
    pub dir: PathBuf,
    pub partition_by: Vec<String>,
    pub complete: bool,
    /// `userMetadata`: kept in each commit's `commitInfo`, as Spark keeps it.
    pub user_metadata: Option<String>,
    pub ignored: Vec<String>,
}

impl DeltaSinkPlan {
    pub fn new(path: &str, options: &Options, schema: &Schema, partition_by: &[String], mode: OutputMode) -> Result<Self> {
        if mode == OutputMode::Update {
            return Err(Error::config("mode", "Data source delta does not support Update output mode.")
                .with_hint("Delta tables take `mode = \"append\"` or `mode = \"complete\"` (the whole result each batch)"));
        }
        let dir = local_path(path, "path")?;
        let mut user_metadata = None;
        let mut ignored = Vec::new();
        for (key, value) in options {
            match key.as_str() {
                "userMetadata" => user_metadata = Some(value.clone()),
                "mergeSchema" | "overwriteSchema" if value.trim().eq_ignore_ascii_case("false") => {}
                "mergeSchema" | "overwriteSchema" => {
                    return Err(Error::option(key, format!("`{key} = \"{value}\"` is not supported yet: the stream's columns must be the table's")))
                }
                k if SPARK_ONLY.contains(&k) => ignored.push(key.clone()),
                _ => {
                    return Err(Error::option(key, format!("`{key}` is not an option of the Delta writer"))
                        .with_hint("the Delta writer takes `userMetadata`; the table's columns must match the stream's"))
                }
            }
        }
        for p in partition_by {
            if schema.field_with_name(p).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::config("partition_by", format!("Partition column `{p}` not found in schema ({})", names.join(", "))));
            }
        }
        if !partition_by.is_empty() && partition_by.len() == schema.fields().len() {
            return Err(Error::config("partition_by", "Cannot use all columns for partition columns"));
        }
        let kernel: std::result::Result<StructType, _> = delta_schema(schema).as_ref().try_into_kernel();
        if let Err(e) = kernel {
            return Err(Error::config("x", format!("the stream's columns can't be a Delta table's: {e}")));
        }
        Ok(DeltaSinkPlan { dir, partition_by: partition_by.to_vec(), complete: mode == OutputMode::Complete, user_metadata, ignored })
    }
}

/// The stream's columns as Delta stores them: times are UTC instants
/// (Delta's `timestamp`), labelled as delta-rs labels them.
fn delta_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Timestamp(_, Some(_)) => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Timestamp(_, None) => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                other => other.clone(),
            };
            arrow::datatypes::Field::new(f.name(), t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

pub(crate) struct DeltaSink {
    plan: DeltaSinkPlan,
    schema: SchemaRef,
    table: Option<DeltaTable>,
    /// The writer's columns (the table's, in its order).
    table_schema: SchemaRef,
    writer: Option<RecordBatchWriter>,
    /// The query id: the `appId` of every commit's `txn`.
    app_id: String,
    batch: u64,
    /// Files written and flushed, waiting for the batch's commit.
    adds: Vec<Add>,
    /// The table has this batch's `txn` already: it is written again for nothing.
    skip: bool,
}

impl DeltaSink {
    pub fn new(plan: DeltaSinkPlan, schema: SchemaRef) -> Self {
        DeltaSink {
            plan,
            table_schema: schema.clone(),
            schema,
            table: None,
            writer: None,
            app_id: String::new(),
            batch: 0,
            adds: Vec::new(),
            skip: false,
        }
    }

    fn table(&mut self) -> Result<&mut DeltaTable> {
        self.table.as_mut().ok_or_else(|| Error::internal("the Delta sink is not connected"))
    }

    /// The last batch of this query the table has, from its `txn`.
    fn committed_batch(&mut self) -> Result<Option<i64>> {
        let app_id = self.app_id.clone();
        let table = self.table()?;
        block_on(table.update_state()).map_err(delta_error)?;
        let snapshot = table.snapshot().map_err(delta_error)?;
        block_on(snapshot.transaction_version(table.log_store().as_ref(), app_id)).map_err(delta_error)
    }

    /// Create the table, or check that the stream fits the one there.
    fn open_or_create(&mut self) -> Result<DeltaTable> {
        let columns = delta_schema(&self.schema);
        if let Some(table) = open(&self.plan.dir, None)? {
            let (existing, partitions) = table_schema(&table)?;
            let theirs: Vec<(&str, &DataType)> = existing.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
            let mut ours: Vec<(&str, &DataType)> = columns.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
            let mut sorted = theirs.clone();
            sorted.sort();
            ours.sort();
            if sorted != ours {
                let show = |cols: &[(&str, &DataType)]| cols.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
                return Err(Error::config(
                    "x",
                    format!("the stream's columns ({}) are not those of the Delta table at `{}` ({})", show(&ours), self.plan.dir.display(), show(&theirs)),
                )
                .with_hint("write to a new path, or make the columns match (names and types)"));
            }
            if !self.plan.partition_by.is_empty() && self.plan.partition_by != partitions {
                return Err(Error::config(
                    "partition_by",
                    format!(
                        "the Delta table at `{}` is partitioned by ({}), not by ({})",
                        self.plan.dir.display(),
                        partitions.join(", "),
                        self.plan.partition_by.join(", ")
                    ),
                ));
            }
            // delta-rs without its SQL engine can't honour some writer features (constraints, generated columns).
            let snapshot = table.snapshot().map_err(delta_error)?;
            deltalake_core::kernel::transaction::PROTOCOL.can_write_to(snapshot).map_err(|e| {
                Error::config("path", format!("streamlyr can't write to the Delta table at `{}`: {e}", self.plan.dir.display()))
            })?;
            self.table_schema = existing;
            return Ok(table);
        }
        std::fs::create_dir_all(&self.plan.dir).map_err(|e| crate::file::io_error("create", &self.plan.dir, &e))?;
        let kernel: StructType = columns.as_ref().try_into_kernel().map_err(|e| delta_error(e.into()))?;
        let create = block_on(DeltaTable::try_from_url(super::table_url(&self.plan.dir)?))
            .map_err(delta_error)?
            .create()
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(self.plan.partition_by.clone())
            .with_save_mode(SaveMode::Ignore);
        block_on(async move { create.await }).map_err(delta_error)?;
        self.table_schema = columns;
        open(&self.plan.dir, None)?.ok_or_else(|| Error::execution(format!("the Delta table at `{}` vanished", self.plan.dir.display())))
    }

    /// Rows of the stream as the writer's: its column order, Delta's time labels.
    fn conform(&self, chunk: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .table_schema
            .fields()
            .iter()
            .map(|f| {
                let c = chunk.column_by_name(f.name()).ok_or_else(|| Error::internal(format!("column `{}` went missing", f.name())))?;
                Ok(if c.data_type() == f.data_type() { c.clone() } else { cast(c, f.data_type())? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.table_schema.clone(), columns)?)
    }
}

impl Sink for DeltaSink {
    fn describe(&self) -> String {
        format!("Delta table {}", self.plan.dir.display())
    }

    fn identity(&self) -> String {
        format!("delta[{}]", self.plan.dir.display())
    }

    fn connect(&mut self, _status: &SharedStatus, query_id: &str) -> Result<()> {
        self.app_id = query_id.to_string();
        let table = self.open_or_create()?;
        self.table = Some(table);
        Ok(())
    }

    fn begin(&mut self, batch: u64) -> Result<()> {
        self.batch = batch;
        self.adds.clear();
        // Spark's Delta sink: a batch whose `txn` the table has is skipped.
        self.skip = self.committed_batch()?.is_some_and(|n| n >= batch as i64);
        let table = self.table.as_ref().ok_or_else(|| Error::internal("the Delta sink is not connected"))?;
        self.writer = if self.skip { None } else { Some(RecordBatchWriter::for_table(table).map_err(delta_error)?) };
        if let Some(writer) = &self.writer {
            self.table_schema = writer.arrow_schema();
        }
        Ok(())
    }

    fn write(&mut self, chunk: &RecordBatch, _stop: &StopSignal) -> Result<u64> {
        let rows = chunk.num_rows() as u64;
        if rows == 0 || self.skip {
            return Ok(rows);
        }
        let batch = self.conform(chunk)?;
        let writer = self.writer.as_mut().ok_or_else(|| Error::internal("a Delta batch was written before it began"))?;
        block_on(writer.write(batch)).map_err(delta_error)?;
        Ok(rows)
    }

    fn flush(&mut self, _stop: &StopSignal, _status: &SharedStatus) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            let adds = block_on(writer.flush()).map_err(delta_error)?;
            self.adds.extend(adds);
        }
        Ok(())
    }

    fn commit(&mut self, batch: u64, _read: &Positions, _log: &CheckpointLog) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        let mut actions: Vec<Action> = std::mem::take(&mut self.adds).into_iter().map(Action::Add).collect();
        let table = self.table.as_ref().ok_or_else(|| Error::internal("the Delta sink is not connected"))?;
        let snapshot = table.snapshot().map_err(delta_error)?;
        if self.plan.complete {
            // The whole result replaces what the table had.
            actions.extend(snapshot.log_data().iter().map(|f| Action::Remove(f.remove_action(true))));
        }
        if actions.is_empty() {
            // An empty batch (a source moving past versions without data): no version for nothing.
            return Ok(());
        }
        let mut properties = CommitProperties::default().with_application_transaction(Transaction::new(&self.app_id, batch as i64));
        if let Some(m) = &self.plan.user_metadata {
            properties = properties.with_metadata([("userMetadata".to_string(), serde_json::Value::String(m.clone()))]);
        }
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: if self.plan.complete { DeltaOutputMode::Complete } else { DeltaOutputMode::Append },
            query_id: self.app_id.clone(),
            epoch_id: batch as i64,
        };
        let commit = CommitBuilder::from(properties).with_actions(actions).build(Some(snapshot), table.log_store(), operation);
        block_on(async move { commit.await }).map_err(delta_error)?;
        Ok(())
    }

    /// The batch's files stay: a commit that failed may still have landed
    /// (the batch is then found by its `txn`), and files no commit names are
    /// invisible to readers until Delta's `VACUUM` removes them.
    fn abort(&mut self) -> Result<()> {
        self.adds.clear();
        if let Some(writer) = self.writer.as_mut() {
            writer.reset();
        }
        Ok(())
    }

    fn was_committed(&mut self, batch: u64, _log: &CheckpointLog) -> Result<bool> {
        Ok(self.committed_batch()?.is_some_and(|n| n >= batch as i64))
    }
}
