//! Transform: the user's dplyr pipeline, rendered to SQL by dbplyr in R and
//! run here by DataFusion on each micro-batch.
//!
//! A pipeline has one of two shapes:
//! - row by row (`filter`, `mutate`, `select`, ...): the plan runs on each
//!   chunk as it is read and the rows go straight on (`append` mode);
//! - with one aggregation (`group_by` + `summarise`, `count`, `distinct`):
//!   the part below the aggregation runs on each chunk in DataFusion's
//!   `Partial` mode and is merged into per-group state ([`grouped`]); at the
//!   end of a batch the result table (`complete`) or its changed groups
//!   (`update`) go through the steps after the aggregation ([`after`]).
//!   The state is saved in the checkpoint with every committed batch.
//!
//! Event time ([`event_time`]): `window()` and `stream_watermark()` make an
//! aggregation's groups close; closed groups are emitted once (`append`) or
//! forgotten (`update`), and rows too late for them are dropped.

mod after;
mod avro;
mod batch_table;
pub mod event_time;
mod grouped;
pub mod lag;
mod static_table;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Aggregate, Distinct, Expr, LogicalPlan};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};
use crate::sink::memory::Tables;
use after::AfterStep;
use batch_table::BatchTable;
use event_time::{Clock, EventKey};
use grouped::GroupedState;
use lag::LagState;
use static_table::StaticTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Each input row gives its output rows once.
    Append,
    /// The whole result table, every trigger.
    Complete,
    /// The groups that changed in this trigger.
    Update,
}

impl OutputMode {
    pub fn parse(mode: &str) -> Result<Self> {
        match mode {
            "append" => Ok(OutputMode::Append),
            "complete" => Ok(OutputMode::Complete),
            "update" => Ok(OutputMode::Update),
            other => Err(Error::config("mode", format!("`mode` must be \"append\", \"complete\" or \"update\", not \"{other}\""))),
        }
    }
}

/// A pipeline ready to run on micro-batches.
pub struct Transform {
    state: SessionState,
    table: Arc<BatchTable>,
    shape: Shape,
    output_schema: SchemaRef,
    mode: OutputMode,
    clock: Arc<Clock>,
    /// `stream_watermark()`'s delay, if the pipeline has one.
    watermark_delay_ms: Option<i64>,
    /// The watermark in effect for the batch being run.
    watermark_ms: i64,
    /// Rows of this batch dropped as too late for their (closed) window.
    rows_dropped: u64,
    /// The connection's tables the pipeline joins with.
    statics: Vec<StaticTable>,
    /// `stream_lag()`'s rows from earlier chunks, when the pipeline has one.
    lags: Option<Arc<LagState>>,
}

enum Shape {
    Rows(LogicalPlan),
    Grouped(Box<Grouped>),
}

struct Grouped {
    /// The aggregation over the (optimized) part of the plan below it.
    aggregate: LogicalPlan,
    groups: GroupedState,
    after: Vec<AfterStep>,
    mode: OutputMode,
    /// Names of the group columns that reach the output (for Kafka keys).
    key_columns: Vec<String>,
    /// The group key on event time, when the watermark closes groups (not
    /// in `complete` mode, which keeps every group). The partial aggregation
    /// then carries a last, hidden column: each partial row's input rows.
    closing: Option<EventKey>,
}

/// DataFusion's error as ours, its kind decided by the variant: a query
/// DataFusion can't plan is the user's to fix (`x`, the pipeline); a failure
/// while running on data is an execution error; DataFusion's own bugs are
/// internal.
pub(crate) fn df_error(e: DataFusionError) -> Error {
    let e = e.find_root();
    if let DataFusionError::External(inner) = e {
        if let Some(ours) = inner.downcast_ref::<Error>() {
            return ours.clone();
        }
    }
    let message = e.strip_backtrace();
    match e {
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => match unknown_function(e) {
            Some(f) => Error::config("x", format!("`{f}()` can't be used in a stream pipeline: the SQL engine has no such function"))
                .with_hint("use another function, or do this step in R after collect()"),
            None => Error::config("x", message),
        },
        DataFusionError::Internal(_) => Error::internal(format!("the SQL engine failed: {message}")),
        _ => Error::execution(format!("the pipeline failed on the data: {message}")),
    }
}

/// The function a plan error is about, when DataFusion did not know it.
/// DataFusion reports it only in the message (`Invalid function 'f'`), so
/// the name is read from there; the error's kind never depends on it.
fn unknown_function(e: &DataFusionError) -> Option<String> {
    let DataFusionError::Plan(text) = e else { return None };
    let rest = text.strip_prefix("Invalid function '")?;
    rest.split('\'').next().map(str::to_string)
}

pub(crate) fn unsupported(what: &str) -> Error {
    Error::config("x", format!("{what} is not supported on a stream"))
        .with_hint("streams support filter(), mutate(), select(), joins with a table, and one group_by() + summarise()")
}

/// Run an async call (DataFusion's planning and execution, delta-rs) to its
/// end: the engine's threads are blocking threads of its tokio runtime,
/// R's main thread has none.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    static PLANNER: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(future),
        Err(_) => PLANNER
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime")
            })
            .block_on(future),
    }
}

impl Transform {
    /// Plan `sql` over a table named `table` with rows of `input`. Every
    /// error a user can make (unknown function, wrong mode) shows here.
    /// Without a `mode`, an aggregation is `Complete` and the rest `Append`.
    pub fn plan(
        sql: &str,
        table: &str,
        input: SchemaRef,
        mode: Option<OutputMode>,
        continuous: bool,
        tables: &Arc<Tables>,
    ) -> Result<Transform> {
        // One partition: micro-batches are small, and order within a chunk is kept.
        let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
        let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
        let table_provider = Arc::new(BatchTable::new(input));
        let ctx = datafusion::prelude::SessionContext::new_with_state(state);
        ctx.register_table(datafusion::common::TableReference::bare(table), table_provider.clone())
            .map_err(df_error)?;
        let mut statics = Vec::new();
        for (name, schema) in tables.schemas().into_iter().filter(|(name, _)| name != table) {
            let table = StaticTable::new(&name, schema, tables);
            ctx.register_table(datafusion::common::TableReference::bare(name), table.provider()).map_err(df_error)?;
            statics.push(table);
        }
        let clock = Clock::new();
        for function in event_time::functions(&clock) {
            ctx.register_udf(function);
        }
        for function in avro::functions() {
            ctx.register_udf(function);
        }
        let lags = Arc::new(LagState::default());
        ctx.register_udf(lags.function());
        let state = ctx.state();
        let plan = block_on(state.create_logical_plan(sql)).map_err(df_error)?;
        let plan = state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {}).map_err(df_error)?;
        let plan = event_time::expand_sliding_windows(plan)?;
        let watermark_delay_ms = event_time::watermark_delay(&plan)?;
        statics.retain(|s| static_table::reads_table(&plan, s.name()));
        let lags = lag::has_lag(&plan).then_some(lags);
        let state = match &lags {
            None => state,
            Some(_) => {
                if continuous {
                    return Err(Error::config("trigger", "a continuous trigger can't run `stream_lag()`")
                        .with_hint("use stream_trigger_interval(): the lag's rows are saved with each micro-batch"));
                }
                lag::check_placement(&plan)?;
                lag::without_reordering(state)
            }
        };

        // Walk down from the top to the aggregation, if there is one.
        let mut above = Vec::new();
        let mut node = &plan;
        let aggregate = loop {
            match node {
                LogicalPlan::Aggregate(a) => break Some(a.clone()),
                LogicalPlan::Distinct(Distinct::All(input)) => {
                    let columns = input.schema().columns().into_iter().map(Expr::Column).collect();
                    break Some(Aggregate::try_new(input.clone(), columns, vec![]).map_err(df_error)?);
                }
                LogicalPlan::Distinct(Distinct::On(_)) => return Err(unsupported("`distinct()` keeping other columns")),
                LogicalPlan::TableScan(_) => break None,
                LogicalPlan::Join(join) if aggregates_stream(&join.left, table) => {
                    return Err(unsupported("a join after an aggregation"))
                }
                // A join with a table, row by row (`check_row_by_row` has its rules).
                LogicalPlan::Join(_) => break None,
                _ => {
                    let inputs = node.inputs();
                    if inputs.len() != 1 {
                        return Err(unsupported(&format!("`{}`", node.display())));
                    }
                    above.push(node);
                    node = inputs[0];
                }
            }
        };

        let output_schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let mode = mode.unwrap_or(if aggregate.is_some() { OutputMode::Complete } else { OutputMode::Append });
        let shape = match aggregate {
            None => {
                if mode != OutputMode::Append {
                    return Err(needs_aggregation(mode));
                }
                check_row_by_row(&plan, table)?;
                Shape::Rows(state.optimize(&plan).map_err(df_error)?)
            }
            Some(aggregate) => {
                let event_key = watermark_delay_ms.and_then(|_| event_time::event_key(&aggregate.group_expr, &aggregate.input));
                if mode == OutputMode::Append && event_key.is_none() {
                    return Err(Error::config(
                        "mode",
                        "Append output mode not supported when there are streaming aggregations on streaming DataFrames/DataSets without watermark",
                    )
                    .with_hint("group by `window()` of a column given to `stream_watermark()` (each window is written once, when it closes), or use `mode = \"update\"` or `mode = \"complete\"`"));
                }
                if continuous {
                    return Err(Error::config("trigger", "a continuous trigger can't run an aggregation")
                        .with_hint("use stream_trigger_interval()"));
                }
                if aggregate.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                    return Err(unsupported("grouping sets"));
                }
                check_row_by_row(&aggregate.input, table)?;
                let closing = event_key.filter(|_| mode != OutputMode::Complete);
                Shape::Grouped(Box::new(Grouped::plan(&state, aggregate, &above, mode, &output_schema, closing)?))
            }
        };
        Ok(Transform {
            state,
            table: table_provider,
            shape,
            output_schema,
            mode,
            clock,
            watermark_delay_ms,
            watermark_ms: 0,
            rows_dropped: 0,
            statics,
            lags,
        })
    }

    /// A batch begins: its time (what `now()` gives) and the watermark in
    /// effect, both as recorded for it in the checkpoint.
    /// The tables it joins with are taken as they are now, for the batch.
    pub fn begin_batch(&mut self, timestamp_ms: i64, watermark_ms: i64) -> Result<()> {
        self.clock.set_batch_time(timestamp_ms);
        self.clock.forget_event_times();
        self.watermark_ms = watermark_ms;
        self.rows_dropped = 0;
        self.statics.iter().try_for_each(|s| s.refresh())
    }

    /// The watermark for the next batch: the largest event time this batch
    /// saw minus the delay, if that is later than the current one.
    pub fn next_watermark(&self) -> i64 {
        match (self.watermark_delay_ms, self.clock.max_event_ms()) {
            (Some(delay), Some(max)) => self.watermark_ms.max(max.saturating_sub(delay)),
            _ => self.watermark_ms,
        }
    }

    pub fn has_watermark(&self) -> bool {
        self.watermark_delay_ms.is_some()
    }

    /// Would a batch without new rows emit or forget groups once the
    /// watermark has moved? (Spark's no-data batches.)
    pub fn closes_groups(&self) -> bool {
        matches!(&self.shape, Shape::Grouped(g) if g.closing.is_some())
    }

    pub fn rows_dropped(&self) -> u64 {
        self.rows_dropped
    }

    /// Groups held in the aggregation state.
    pub fn groups_held(&self) -> Option<u64> {
        match &self.shape {
            Shape::Rows(_) => None,
            Shape::Grouped(g) => Some(g.groups.groups() as u64),
        }
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Output columns that hold the group values (the default Kafka key of
    /// an aggregation); empty for a row-by-row pipeline.
    pub fn key_columns(&self) -> &[String] {
        match &self.shape {
            Shape::Rows(_) => &[],
            Shape::Grouped(g) => &g.key_columns,
        }
    }

    pub fn is_aggregation(&self) -> bool {
        matches!(self.shape, Shape::Grouped(_))
    }

    /// Does the pipeline keep anything from batch to batch (an aggregation's
    /// groups, `stream_lag()`'s rows), saved in the checkpoint?
    pub fn has_state(&self) -> bool {
        self.is_aggregation() || self.lags.is_some()
    }

    /// One chunk of the micro-batch in; rows to write now out (none for an
    /// aggregation, which writes at the end of the batch).
    pub fn process(&mut self, chunk: RecordBatch) -> Result<Vec<RecordBatch>> {
        self.table.set(chunk);
        let result = match &mut self.shape {
            Shape::Rows(plan) => run(&self.state, plan),
            Shape::Grouped(g) => {
                let partial = block_on(async {
                    let physical = self.state.query_planner().create_physical_plan(&g.aggregate, &self.state).await?;
                    let partial = partial_aggregate(&physical)?;
                    datafusion::physical_plan::collect(partial, self.state.task_ctx()).await
                })
                .map_err(df_error);
                partial
                    .and_then(|batches| {
                        batches.iter().try_for_each(|b| {
                            let b = g.without_late_rows(b, self.watermark_ms, &mut self.rows_dropped)?;
                            g.groups.merge(&b, true)
                        })
                    })
                    .map(|_| Vec::new())
            }
        };
        self.table.clear();
        result
    }

    /// The end of a micro-batch: an aggregation's result, as its mode says.
    pub fn finish_batch(&mut self) -> Result<Vec<RecordBatch>> {
        let Shape::Grouped(g) = &mut self.shape else { return Ok(Vec::new()) };
        let mut result = match g.mode {
            // Only what the watermark closed, once (an append aggregation always has a closing key).
            OutputMode::Append => {
                let closed = g.take_closed(self.watermark_ms)?;
                g.groups.finalize(&closed)?
            }
            mode => {
                let result = g.groups.emit(mode == OutputMode::Update)?;
                g.take_closed(self.watermark_ms)?;
                result
            }
        };
        for step in &g.after {
            result = step.apply(result)?;
        }
        Ok(vec![result])
    }

    /// The state to keep in the checkpoint, if any: the aggregation's
    /// groups (Arrow IPC, with the watermark the batch reached) and each
    /// lag's rows (see `state_sections`).
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>> {
        let mut sections = Vec::new();
        if let Shape::Grouped(g) = &mut self.shape {
            let snapshot = g.groups.snapshot()?;
            // The watermark this batch reached goes with its state: a restart that finds the sink
            // committed the batch but not the checkpoint learns it here.
            let metadata = [(WATERMARK_KEY.to_string(), self.next_watermark().to_string())].into_iter().collect();
            let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(snapshot.schema().fields().clone(), metadata));
            let snapshot = snapshot.with_schema(schema).map_err(|e| Error::internal(format!("aggregation state: {e}")))?;
            sections.push((AGGREGATION_SECTION.to_string(), ipc_bytes(&snapshot)?));
        }
        if let Some(lags) = &self.lags {
            for (id, rows) in lags.save()? {
                sections.push((format!("{LAG_SECTION}{id}"), ipc_bytes(&rows)?));
            }
        }
        Ok(match sections.len() {
            0 if self.lags.is_none() => None,
            // An aggregation alone: plain IPC, as checkpoints have always had it.
            1 if sections[0].0 == AGGREGATION_SECTION => sections.pop().map(|(_, bytes)| bytes),
            _ => Some(state_sections::encode(&sections)),
        })
    }

    /// The watermark a saved state's batch reached (see `save_state`).
    pub fn saved_watermark(saved: &[u8]) -> Option<i64> {
        let sections = state_sections::decode(saved).ok()?;
        let (_, bytes) = sections.into_iter().find(|(name, _)| name == AGGREGATION_SECTION)?;
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).ok()?;
        reader.schema().metadata().get(WATERMARK_KEY)?.parse().ok()
    }

    /// Go back to a saved state (`None`: no batch committed yet).
    pub fn restore_state(&mut self, saved: Option<&[u8]>) -> Result<()> {
        let sections = saved.map(state_sections::decode).transpose()?.unwrap_or_default();
        let damaged = |e: arrow::error::ArrowError| Error::checkpoint(format!("the saved pipeline state is damaged: {e}"));
        if let Some(lags) = &self.lags {
            let mut rows = Vec::new();
            for (name, bytes) in &sections {
                if let Some(id) = name.strip_prefix(LAG_SECTION) {
                    let reader = StreamReader::try_new(std::io::Cursor::new(*bytes), None).map_err(damaged)?;
                    for batch in reader {
                        rows.push((id.to_string(), batch.map_err(damaged)?));
                    }
                }
            }
            lags.restore(rows)?;
        }
        let Shape::Grouped(g) = &mut self.shape else { return Ok(()) };
        g.groups.clear()?;
        let Some((_, bytes)) = sections.into_iter().find(|(name, _)| name == AGGREGATION_SECTION) else { return Ok(()) };
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(damaged)?;
        if reader.schema().fields().len() != g.groups.partial_schema().fields().len()
            || reader.schema().fields().iter().zip(g.groups.partial_schema().fields()).any(|(a, b)| a.data_type() != b.data_type())
        {
            return Err(Error::checkpoint("the saved aggregation state belongs to another pipeline")
                .with_hint("use a new checkpoint directory for a changed pipeline"));
        }
        for batch in reader {
            g.groups.merge(&batch.map_err(damaged)?, false)?;
        }
        Ok(())
    }
}

const AGGREGATION_SECTION: &str = "aggregation";
const LAG_SECTION: &str = "lag/";

fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let fail = |e: arrow::error::ArrowError| Error::internal(format!("can't encode the pipeline state: {e}"));
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(fail)?;
    writer.write(batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    drop(writer);
    Ok(bytes)
}

/// A saved state of several parts: a header line, then for each part its
/// name and its bytes, each after its length (little-endian u32 and u64).
/// A state that is one Arrow IPC stream (it starts with IPC's 0xFFFFFFFF
/// marker, never with the header) is an aggregation's, as saved before
/// there were other parts.
mod state_sections {
    use crate::error::{Error, Result};

    const HEADER: &[u8] = b"streamlyr-state-sections\n";

    pub fn encode(sections: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for (name, bytes) in sections {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    pub fn decode(saved: &[u8]) -> Result<Vec<(String, &[u8])>> {
        let Some(mut rest) = saved.strip_prefix(HEADER) else {
            return Ok(vec![(super::AGGREGATION_SECTION.to_string(), saved)]);
        };
        let damaged = || Error::checkpoint("the saved pipeline state is damaged (cut short)");
        let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>> {
            if rest.len() < n {
                return Err(damaged());
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head.to_vec())
        };
        let mut sections = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(take(4, &mut rest)?.try_into().expect("4 bytes")) as usize;
            let name = String::from_utf8(take(len, &mut rest)?).map_err(|_| damaged())?;
            let len = u64::from_le_bytes(take(8, &mut rest)?.try_into().expect("8 bytes")) as usize;
            if rest.len() < len {
                return Err(damaged());
            }
            let (bytes, tail) = rest.split_at(len);
            rest = tail;
            sections.push((name, bytes));
        }
        Ok(sections)
    }
}

/// One SQL query over named tables of rows (the memory tables), at once.
pub fn run_sql(sql: &str, tables: Vec<(String, SchemaRef, Vec<RecordBatch>)>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = datafusion::prelude::SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    for (name, schema, rows) in tables {
        let table = datafusion::datasource::MemTable::try_new(schema, vec![rows]).map_err(df_error)?;
        ctx.register_table(datafusion::common::TableReference::bare(name), Arc::new(table)).map_err(df_error)?;
    }
    block_on(async {
        let frame = ctx.sql(sql).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        Ok((schema, frame.collect().await?))
    })
    .map_err(df_error)
}

/// `complete` or `update` asked of rows without an aggregation.
pub fn needs_aggregation(mode: OutputMode) -> Error {
    Error::config("mode", format!("`mode = \"{}\"` needs an aggregation (group_by() + summarise()) in `x`", mode_name(mode)))
        .with_hint("use `mode = \"append\"` to write rows as they are")
}

fn mode_name(mode: OutputMode) -> &'static str {
    match mode {
        OutputMode::Append => "append",
        OutputMode::Complete => "complete",
        OutputMode::Update => "update",
    }
}

/// What runs on each chunk must give each row's output from that row alone
/// (and the tables it joins with): no windows, sorts or limits over an
/// endless stream. `stream` is the stream's table.
fn check_row_by_row(plan: &LogicalPlan, stream: &str) -> Result<()> {
    let what = match plan {
        LogicalPlan::Join(join) => {
            // The static side may be anything; the stream's side goes on row by row.
            static_table::check_join(join, stream)?;
            return check_row_by_row(&join.left, stream);
        }
        LogicalPlan::Filter(filter) => {
            static_table::check_subquery_joins(&filter.predicate, stream)?;
            None
        }
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::TableScan(_) => None,
        // A sliding window's rows, one per window (see `event_time`).
        LogicalPlan::Unnest(_) => None,
        LogicalPlan::Window(_) => Some("a window function (e.g. a grouped mutate(), lag() or row_number())"),
        LogicalPlan::Sort(_) => Some("`arrange()` before an aggregation or without one"),
        LogicalPlan::Limit(_) => Some("`head()` before an aggregation or without one"),
        LogicalPlan::Union(_) => Some("`union()`"),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => Some("an aggregation over an aggregation"),
        _ => Some("this step"),
    };
    if let Some(what) = what {
        if matches!(plan, LogicalPlan::Window(_)) {
            return Err(unsupported(what).with_hint("for a value from an earlier row, use stream_lag(): it carries across micro-batches"));
        }
        return Err(unsupported(what));
    }
    plan.inputs().into_iter().try_for_each(|input| check_row_by_row(input, stream))
}

/// Is there an aggregation of the stream's rows in `plan`?
fn aggregates_stream(plan: &LogicalPlan, stream: &str) -> bool {
    match plan {
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => static_table::reads_table(plan, stream),
        other => other.inputs().into_iter().any(|input| aggregates_stream(input, stream)),
    }
}

fn run(state: &SessionState, plan: &LogicalPlan) -> Result<Vec<RecordBatch>> {
    block_on(async {
        let physical = state.query_planner().create_physical_plan(plan, state).await?;
        datafusion::physical_plan::collect(physical, state.task_ctx()).await
    })
    .map_err(df_error)
}

/// The `Partial` half of the physical aggregation, made from whatever mode
/// the planner chose.
fn partial_aggregate(plan: &Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
        match agg.mode() {
            AggregateMode::Partial => return Ok(plan.clone()),
            AggregateMode::Single | AggregateMode::SinglePartitioned => {
                return Ok(Arc::new(AggregateExec::try_new(
                    AggregateMode::Partial,
                    agg.group_expr().clone(),
                    agg.aggr_expr().to_vec(),
                    agg.filter_expr().to_vec(),
                    agg.input().clone(),
                    agg.input_schema(),
                )?))
            }
            _ => {}
        }
    }
    match plan.children().first() {
        Some(child) => partial_aggregate(child),
        None => Err(DataFusionError::Internal("no aggregation in the physical plan".into())),
    }
}

impl Grouped {
    fn plan(
        state: &SessionState,
        aggregate: Aggregate,
        above: &[&LogicalPlan],
        mode: OutputMode,
        output_schema: &SchemaRef,
        closing: Option<EventKey>,
    ) -> Result<Grouped> {
        let input = state.optimize(&aggregate.input).map_err(df_error)?;
        let aggregate_output = Arc::new(aggregate.schema.as_arrow().clone());
        let key_count = aggregate.group_expr.len();
        let group_names: Vec<String> = aggregate.schema.fields()[..key_count].iter().map(|f| f.name().clone()).collect();
        let mut aggr_expr = aggregate.aggr_expr;
        if closing.is_some() {
            aggr_expr.push(datafusion::functions_aggregate::expr_fn::count(datafusion::prelude::lit(1)).alias(ROWS_COLUMN));
        }
        let plan = LogicalPlan::Aggregate(
            Aggregate::try_new(Arc::new(input), aggregate.group_expr, aggr_expr).map_err(df_error)?,
        );
        let physical = block_on(state.query_planner().create_physical_plan(&plan, state)).map_err(df_error)?;
        let partial = partial_aggregate(&physical).map_err(df_error)?;
        let partial_exec = partial
            .downcast_ref::<AggregateExec>()
            .ok_or_else(|| Error::internal("the partial aggregation is not an AggregateExec"))?;
        let mut partial_schema = partial.schema();
        let mut aggregates = partial_exec.aggr_expr().to_vec();
        if closing.is_some() {
            // The hidden row count is read and dropped before the state sees a partial row.
            aggregates.pop();
            let fields = &partial_schema.fields()[..partial_schema.fields().len() - 1];
            partial_schema = Arc::new(arrow::datatypes::Schema::new(fields.to_vec()));
        }
        let groups = GroupedState::new(partial_schema, aggregate_output, key_count, aggregates)?;
        let props = state.execution_props();
        let mut after = Vec::new();
        for node in above.iter().rev() {
            if let Some(step) = AfterStep::new(node, props, mode == OutputMode::Complete)? {
                after.push(step);
            }
        }
        let key_columns =
            group_names.into_iter().filter(|n| output_schema.field_with_name(n).is_ok()).collect();
        Ok(Grouped { aggregate: plan, groups, after, mode, key_columns, closing })
    }

    /// The partial state of the groups the watermark has closed, taken out
    /// of the state (none without a closing key).
    fn take_closed(&mut self, watermark_ms: i64) -> Result<RecordBatch> {
        match self.closing {
            Some(key) => self.groups.split_off(|keys| key.closed(&keys[key.index()], watermark_ms)),
            None => Ok(RecordBatch::new_empty(self.groups.partial_schema().clone())),
        }
    }

    /// A chunk's partial rows without those of groups the watermark has
    /// closed (their input rows counted in `dropped`) and without the
    /// hidden row count; as they are when nothing closes.
    fn without_late_rows(&self, partial: &RecordBatch, watermark_ms: i64, dropped: &mut u64) -> Result<RecordBatch> {
        let Some(key) = self.closing else { return Ok(partial.clone()) };
        let fail = |e: arrow::error::ArrowError| Error::internal(format!("dropping late rows: {e}"));
        let rows = partial.column(partial.num_columns() - 1);
        let rows = rows.as_primitive_opt::<arrow::datatypes::Int64Type>().ok_or_else(|| Error::internal("the row count is not Int64"))?;
        let late = key.closed(partial.column(key.index()), watermark_ms)?;
        let bounds = key.bound_us(partial.column(key.index()))?;
        *dropped += late.iter().zip(rows.iter()).filter(|(l, _)| *l == Some(true)).map(|(_, n)| n.unwrap_or(0) as u64).sum::<u64>();
        // Rows with no event time have no window (Spark filters them out): not late, just gone.
        let windowed = matches!(key, EventKey::Window(_));
        let keep: arrow::array::BooleanArray =
            late.iter().zip(bounds.iter()).map(|(l, b)| Some(l != Some(true) && (b.is_some() || !windowed))).collect();
        let kept = arrow::compute::filter_record_batch(partial, &keep).map_err(fail)?;
        kept.project(&(0..kept.num_columns() - 1).collect::<Vec<_>>()).map_err(fail)
    }
}

/// Where a saved state keeps the watermark its batch reached (Spark's name).
const WATERMARK_KEY: &str = "nextBatchWatermarkMs";

/// The hidden partial column that counts a group's input rows in a chunk.
const ROWS_COLUMN: &str = "__streamlyr_rows";

#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
