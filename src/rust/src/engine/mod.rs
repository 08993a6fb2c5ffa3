//! The engine: a tokio runtime that owns every query's thread, and the
//! registry that lets R find its queries again.
//!
//! A query runs as one blocking task on the runtime (its work is librdkafka
//! calls, which block). R never waits on it directly: it polls the query's
//! [`SharedStatus`] in short slices so that Ctrl-C keeps working. A panic in a
//! query is caught and becomes the query's error; it never reaches R.

pub mod plan;
pub(crate) mod query;
pub mod status;
pub mod stop;
pub mod trigger;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{panic_message, Error, Result};
use crate::file::sink::FileSink;
use crate::file::source::FileSource;
use crate::kafka::group::GroupLink;
use crate::socket::SocketSource;
use crate::sink::kafka::KafkaSink;
use crate::sink::memory::{ConsoleQueue, MemorySink, MemoryTable, Tables, Target};
use crate::sink::Sink;
use crate::source::kafka::KafkaSource;
use crate::source::memory::MemorySource;
use crate::source::Source;
pub use plan::{parse_spec, QueryPlan, QuerySpec};
use plan::{SinkPlan, SourcePlan};
use query::Query;
use status::SharedStatus;
use stop::StopSignal;
use trigger::Trigger;

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
    console: Option<Arc<ConsoleQueue>>,
}

impl QueryHandle {
    /// Console sink: the committed batches not printed yet, oldest first.
    pub fn take_console_batches(&self) -> Vec<(u64, Vec<RecordBatch>)> {
        match &self.console {
            Some(queue) => queue.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect(),
            None => Vec::new(),
        }
    }
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
    tables: Arc<Tables>,
}

impl Engine {
    /// Each query runs on a blocking thread of its own; the one async
    /// worker only drives timers (DataFusion's planning runs on the query's
    /// thread through `Handle::block_on`).
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(512)
            .thread_name("streamlyr")
            // Time for retries, I/O for the schema registry's HTTP client.
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("can't start the engine's threads: {e}")))?;
        Ok(Engine { runtime: Mutex::new(Some(runtime)), queries: Mutex::new(BTreeMap::new()), tables: Arc::default() })
    }

    /// Build the planned query's source and sink and start its thread.
    pub fn start(&self, plan: QueryPlan) -> Result<Arc<QueryHandle>> {
        let runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let runtime = runtime.as_ref().ok_or_else(|| Error::config("sc", "the connection is closed"))?;
        let id = uuid::Uuid::new_v4().to_string();
        // In a consumer group, a transactional sink commits the offsets with the group's metadata.
        let group = match &plan.source {
            SourcePlan::Kafka(options) if options.group.is_some() => Some(Arc::new(GroupLink::default())),
            _ => None,
        };
        let source: Box<dyn Source> = match plan.source {
            SourcePlan::Kafka(options) => Box::new(KafkaSource::new(options, &id, group.clone())),
            SourcePlan::DataFrame(batch) => Box::new(MemorySource::new(batch)),
            SourcePlan::File(files) => Box::new(FileSource::new(files)),
            SourcePlan::Socket(options) => Box::new(SocketSource::new(options)),
            SourcePlan::Delta(plan) => Box::new(crate::delta::source::DeltaSource::new(plan)),
        };
        let mut console = None;
        let sink: Box<dyn Sink> = match plan.sink {
            SinkPlan::Kafka { options, layout } => {
                let continuous = matches!(plan.trigger, Trigger::Continuous(_));
                Box::new(KafkaSink::new(options, layout, &plan.name, continuous, group))
            }
            SinkPlan::Memory { table, key_columns } => {
                let shared = Arc::new(MemoryTable::default());
                self.tables.insert(&table, shared.clone());
                let target = Target::Table { name: table, table: shared, mode: plan.mode, key_columns };
                Box::new(MemorySink::new(target, plan.output_schema.clone()))
            }
            SinkPlan::File(file) => Box::new(FileSink::new(file, plan.output_schema.clone())),
            SinkPlan::Delta(delta) => Box::new(crate::delta::sink::DeltaSink::new(delta, plan.output_schema.clone())),
            SinkPlan::Console => {
                let queue = Arc::new(ConsoleQueue::default());
                console = Some(queue.clone());
                Box::new(MemorySink::new(Target::Console(queue), plan.output_schema.clone()))
            }
        };
        let handle = Arc::new(QueryHandle {
            id: id.clone(),
            name: plan.name,
            describe_source: source.describe(),
            describe_sink: sink.describe(),
            checkpoint: plan.checkpoint.display().to_string(),
            trigger: plan.trigger,
            status: SharedStatus::default(),
            stop: StopSignal::default(),
            console,
        });
        let mut query = Query {
            source,
            transform: plan.transform,
            sink,
            trigger: plan.trigger,
            checkpoint: plan.checkpoint,
            retry_timeout: plan.retry_timeout,
            source_log: false,
        };
        let (status, stop) = (handle.status.clone(), handle.stop.clone());
        runtime.spawn_blocking(move || {
            let result = run_caught(|| {
                let log = query.start(&status, &stop)?;
                query.run(&log, &status, &stop)
            });
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

    /// The connection's tables: memory tables and those copied in from R.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Run `sql` over the connection's tables as they are now.
    pub fn query_memory(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        crate::transform::run_sql(sql, self.tables.snapshots())
    }

    pub fn drop_memory_table(&self, name: &str) {
        self.tables.remove(name);
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

/// Runs `f`, turning a panic into the query's error: a panic never reaches R.
fn run_caught(f: impl FnOnce() -> Result<()>) -> Result<()> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::internal(format!("the query panicked: {}", panic_message(&*payload)))),
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
