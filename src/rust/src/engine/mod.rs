//! The engine: a tokio runtime that owns every query's thread, and the
//! registry that lets R find its queries again.
//!
//! A query runs as one blocking task on the runtime (its work is librdkafka
//! calls, which block). R never waits on it directly: it polls the query's
//! [`SharedStatus`] in short slices so that Ctrl-C keeps working. A panic in a
//! query is caught and becomes the query's error; it never reaches R.

pub mod query;
pub mod status;
pub mod stop;
pub mod trigger;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{panic_message, Error, Result};
use crate::options::{KafkaSinkOptions, KafkaSourceOptions, Options};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::sink::encode::RecordLayout;
use crate::sink::kafka::KafkaSink;
use crate::sink::memory::{ConsoleQueue, MemorySink, MemoryTable, Target};
use crate::transform::{needs_aggregation, OutputMode, Transform};
use crate::sink::Sink;
use crate::source::kafka::KafkaSource;
use crate::source::memory::MemorySource;
use crate::source::Source;
use query::Query;
use status::SharedStatus;
use stop::StopSignal;
use trigger::Trigger;

/// A query as R describes it (sent as JSON: plain data, no R objects).
#[derive(Debug, Clone, Deserialize)]
pub struct QuerySpec {
    pub name: String,
    pub source: SourceSpec,
    pub sink: SinkSpec,
    pub trigger: TriggerSpec,
    pub checkpoint: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The dplyr pipeline as SQL, over the table named in it.
    #[serde(default)]
    pub sql: Option<SqlSpec>,
    #[serde(default)]
    pub partition_by: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SqlSpec {
    pub sql: String,
    pub table: String,
}

fn default_mode() -> String {
    "append".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    Kafka { options: Options },
    /// The rows come with the call, already converted to Arrow.
    DataFrame,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkSpec {
    Kafka { options: Options },
    /// A table R reads with collect() (`stream_write_memory()`).
    Memory { table: String },
    Console,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerSpec {
    Interval { interval_ms: f64 },
    Continuous { checkpoint_ms: f64 },
    Once,
}

impl TriggerSpec {
    fn to_trigger(&self) -> Result<Trigger> {
        let ms = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(Duration::from_secs_f64(v / 1000.0))
            } else {
                Err(Error::config("trigger", format!("the {what} must be a non-negative number of milliseconds, not {v}")))
            }
        };
        Ok(match self {
            TriggerSpec::Interval { interval_ms } => Trigger::Interval(ms(*interval_ms, "interval")?),
            TriggerSpec::Continuous { checkpoint_ms } => Trigger::Continuous(ms(*checkpoint_ms, "checkpoint interval")?),
            TriggerSpec::Once => Trigger::Once,
        })
    }
}

pub fn parse_spec(json: &str) -> Result<QuerySpec> {
    serde_json::from_str(json).map_err(|e| Error::internal(format!("bad query description from R: {e}")))
}

/// Options that were accepted but have no effect, to tell the user.
pub fn ignored_options(spec: &QuerySpec) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let SourceSpec::Kafka { options } = &spec.source {
        out.extend(KafkaSourceOptions::parse(options)?.ignored);
    }
    if let SinkSpec::Kafka { options } = &spec.sink {
        out.extend(KafkaSinkOptions::parse(options)?.ignored);
    }
    Ok(out)
}

/// The part of a query R holds on to. Dropping the last handle stops the query.
pub struct QueryHandle {
    pub id: String,
    pub name: String,
    pub describe_source: String,
    pub describe_sink: String,
    pub checkpoint: String,
    pub trigger: Trigger,
    pub status: SharedStatus,
    pub stop: StopSignal,
    /// Console sink only: committed batches for R to print.
    pub console: Option<Arc<ConsoleQueue>>,
}

impl Drop for QueryHandle {
    fn drop(&mut self) {
        // Runs on R's main thread at garbage collection: signal, never block.
        self.stop.stop();
    }
}

pub struct Engine {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    queries: Mutex<BTreeMap<String, Weak<QueryHandle>>>,
    memory_tables: Mutex<BTreeMap<String, Arc<MemoryTable>>>,
    pub worker_threads: usize,
}

impl Engine {
    pub fn new(worker_threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .max_blocking_threads(512)
            .thread_name("streamlyr")
            .enable_time()
            .build()
            .map_err(|e| Error::internal(format!("can't start the engine's threads: {e}")))?;
        Ok(Engine { runtime: Mutex::new(Some(runtime)), queries: Mutex::new(BTreeMap::new()), memory_tables: Mutex::new(BTreeMap::new()), worker_threads })
    }

    /// Validate everything that can be checked without a network, then start
    /// the query's thread. `rows` is the data frame for a data-frame source.
    pub fn start(&self, spec: &QuerySpec, rows: Option<arrow::record_batch::RecordBatch>) -> Result<Arc<QueryHandle>> {
        let runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let runtime = runtime.as_ref().ok_or_else(|| Error::config("sc", "the connection is closed"))?;
        let trigger = spec.trigger.to_trigger()?;
        // "auto" (collect()): complete for an aggregation, append otherwise.
        let requested = if spec.mode == "auto" { None } else { Some(OutputMode::parse(&spec.mode)?) };
        let checkpoint = spec.checkpoint.trim();
        if checkpoint.is_empty() {
            return Err(Error::config("checkpoint", "`checkpoint` must be a directory path"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let source: Box<dyn Source> = match (&spec.source, rows) {
            (SourceSpec::Kafka { options }, _) => Box::new(KafkaSource::new(KafkaSourceOptions::parse(options)?, &id)?),
            (SourceSpec::DataFrame, Some(batch)) => Box::new(MemorySource::new(batch)),
            (SourceSpec::DataFrame, None) => return Err(Error::internal("a data frame source without its rows")),
        };
        let continuous = matches!(trigger, Trigger::Continuous(_));
        let transform = match &spec.sql {
            Some(sql) => Some(Transform::plan(&sql.sql, &sql.table, source.schema(), requested, continuous)?),
            None => match requested {
                Some(m) if m != OutputMode::Append => return Err(needs_aggregation(m)),
                _ => None,
            },
        };
        let mode = transform.as_ref().map_or(OutputMode::Append, |t| t.mode());
        let key_columns = transform.as_ref().map(|t| t.key_columns().to_vec()).unwrap_or_default();
        let output_schema = transform.as_ref().map(|t| t.output_schema()).unwrap_or_else(|| source.schema());
        let mut console = None;
        let sink: Box<dyn Sink> = match &spec.sink {
            SinkSpec::Kafka { options } => {
                let options = KafkaSinkOptions::parse(options)?;
                // Column checks need no broker: a wrong `value` type fails here, in R's call.
                RecordLayout::new(&output_schema, options.topic.clone())?.with_keys(
                    &output_schema,
                    &key_columns,
                    &spec.partition_by,
                )?;
                Box::new(KafkaSink::new(options, &spec.name, continuous).with_keys(key_columns, spec.partition_by.clone()))
            }
            SinkSpec::Memory { table } => {
                let shared = Arc::new(MemoryTable::default());
                self.memory_tables.lock().unwrap_or_else(|p| p.into_inner()).insert(table.clone(), shared.clone());
                Box::new(MemorySink::new(Target::Table { name: table.clone(), table: shared, mode, key_columns }))
            }
            SinkSpec::Console => {
                let queue = Arc::new(ConsoleQueue::default());
                console = Some(queue.clone());
                Box::new(MemorySink::new(Target::Console(queue)))
            }
        };
        let handle = Arc::new(QueryHandle {
            id: id.clone(),
            name: spec.name.clone(),
            describe_source: source.describe(),
            describe_sink: sink.describe(),
            checkpoint: checkpoint.to_string(),
            trigger,
            status: SharedStatus::default(),
            stop: StopSignal::default(),
            console,
        });
        let mut query = Query { source, transform, sink, trigger, checkpoint: PathBuf::from(checkpoint) };
        let (status, stop) = (handle.status.clone(), handle.stop.clone());
        runtime.spawn_blocking(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let log = query.start(&status)?;
                query.run(&log, &status, &stop)
            }));
            let result = match outcome {
                Ok(r) => r,
                Err(payload) => Err(Error::internal(format!("the query panicked: {}", panic_message(&*payload)))),
            };
            // Close Kafka clients before telling R the query is over.
            drop(query);
            status.finish(result);
        });
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.retain(|_, q| q.strong_count() > 0);
        queries.insert(id, Arc::downgrade(&handle));
        Ok(handle)
    }

    /// Queries that R still holds a handle to.
    pub fn queries(&self) -> Vec<Arc<QueryHandle>> {
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.values().filter_map(Weak::upgrade).collect()
    }

    /// Run `sql` over the memory tables (`stream_write_memory()`) as they are now.
    pub fn query_memory(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let snapshots = {
            let tables = self.memory_tables.lock().unwrap_or_else(|p| p.into_inner());
            tables
                .iter()
                .filter_map(|(name, t)| match t.snapshot() {
                    (Some(schema), rows) => Some((name.clone(), schema, rows)),
                    (None, _) => None,
                })
                .collect::<Vec<_>>()
        };
        crate::transform::run_sql(sql, snapshots)
    }

    pub fn drop_memory_table(&self, name: &str) {
        self.memory_tables.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    pub fn find(&self, id: &str) -> Option<Arc<QueryHandle>> {
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.get(id).and_then(Weak::upgrade)
    }

    /// Stop every query; the runtime goes down in the background.
    pub fn shutdown(&self) {
        for q in self.queries() {
            q.stop.stop();
        }
        if let Some(rt) = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
