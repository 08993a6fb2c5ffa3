//! The extendr face: a few functions R calls through `.Call()`. They turn R
//! values into plain Rust data, call the engine, and give back either
//! `list(ok = value)` or `list(error = list(kind, arg, option, message, hint))`; the
//! R side raises classed conditions from the latter. No R object ever leaves
//! the R main thread; panics become R errors (extendr catches them).

mod from_arrow;
mod mock;
mod to_arrow;

use std::sync::Arc;
use std::time::Duration;

use extendr_api::prelude::*;

use crate::engine::plan::SourceSpec;
use crate::engine::{parse_spec, Engine, QueryHandle, QueryPlan};
use crate::error::Error;

type EnginePtr = ExternalPtr<Engine>;
type QueryPtr = ExternalPtr<Arc<QueryHandle>>;

fn ok(value: impl Into<Robj>) -> Robj {
    list!(ok = value.into()).into()
}

fn err(e: Error) -> Robj {
    list!(
        error = list!(
            kind = e.kind.as_str(),
            arg = e.arg.unwrap_or_default(),
            option = e.option.unwrap_or_default(),
            message = e.message,
            hint = e.hint.unwrap_or_default()
        )
    )
    .into()
}

fn query_ptr(handle: Arc<QueryHandle>) -> Robj {
    let mut ptr = QueryPtr::new(handle);
    let _ = ptr.set_attrib("class", "streamlyr_query_ptr");
    ptr.into()
}

/// A new engine (its queries each run on a thread of their own).
#[extendr]
fn engine_new() -> Robj {
    match Engine::new() {
        Ok(engine) => ok(EnginePtr::new(engine)),
        Err(e) => err(e),
    }
}

/// Stop every query of the engine and release its threads.
#[extendr]
fn engine_close(engine: EnginePtr) {
    engine.shutdown();
}

#[extendr]
fn engine_is_closed(engine: EnginePtr) -> bool {
    engine.is_closed()
}

/// Handles of the queries R still references.
#[extendr]
fn engine_queries(engine: EnginePtr) -> List {
    engine.queries().into_iter().map(query_ptr).collect::<List>()
}

#[extendr]
fn engine_find(engine: EnginePtr, id: &str) -> Robj {
    engine.find(id).map(query_ptr).unwrap_or_else(|| ().into())
}

/// Start a query described by `spec_json`; `data` is the data frame of a
/// data-frame source (NULL otherwise).
#[extendr]
fn query_start(engine: EnginePtr, spec_json: &str, data: Robj) -> Robj {
    let started = (|| {
        let spec = parse_spec(spec_json)?;
        let rows = match spec.source {
            SourceSpec::DataFrame => Some(to_arrow::data_frame_to_arrow(&data)?),
            _ => None,
        };
        let plan = QueryPlan::new(spec, rows, engine.tables())?;
        let ignored = plan.ignored.clone();
        let handle = engine.start(plan)?;
        Ok::<_, Error>((handle, ignored))
    })();
    match started {
        Ok((handle, ignored)) => list!(ok = query_ptr(handle), ignored = ignored).into(),
        Err(e) => err(e),
    }
}

/// Check the options of a Kafka source (JSON object of strings) without
/// connecting; returns its columns and the options accepted without effect.
#[extendr]
fn kafka_source_check(options_json: &str) -> Robj {
    let checked = serde_json::from_str::<crate::kafka::config::Options>(options_json)
        .map_err(|e| Error::internal(format!("bad options from R: {e}")))
        .and_then(|o| crate::kafka::config::KafkaSourceOptions::parse(&o));
    match checked {
        Ok(o) => {
            let columns: Vec<String> = o.schema.fields().iter().map(|f| f.name().clone()).collect();
            ok(list!(columns = columns, ignored = o.ignored))
        }
        Err(e) => err(e),
    }
}

/// Check the options of a socket source (Spark's messages) without
/// connecting; returns its columns and the options accepted without effect.
#[extendr]
fn socket_source_check(options_json: &str) -> Robj {
    let checked = serde_json::from_str::<crate::kafka::config::Options>(options_json)
        .map_err(|e| Error::internal(format!("bad options from R: {e}")))
        .and_then(|o| crate::socket::SocketOptions::parse(&o));
    match checked {
        Ok(o) => {
            let schema = crate::socket::socket_schema(o.include_timestamp);
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            ok(list!(columns = columns, ignored = o.ignored))
        }
        Err(e) => err(e),
    }
}

/// A folder of `format` files as `stream_read_*()` defines a stream over it:
/// the options checked, the columns fixed (`columns_json`: `[[name, type],
/// ...]`, or `null` to infer them from the files there now). Returns the
/// absolute path, the columns' names and types, the partition columns and
/// the options accepted without effect.
#[extendr]
fn file_source_check(format: &str, path: &str, options_json: &str, columns_json: &str) -> Robj {
    let checked = (|| {
        let options: crate::kafka::config::Options =
            serde_json::from_str(options_json).map_err(|e| Error::internal(format!("bad options from R: {e}")))?;
        let columns: Option<Vec<(String, String)>> =
            serde_json::from_str(columns_json).map_err(|e| Error::internal(format!("bad columns from R: {e}")))?;
        let parsed = crate::file::options::FileSourceOptions::parse(format, &options)?;
        let dir = crate::file::options::local_path(path, "path")?;
        let (schema, partitions) = crate::file::source::resolve_schema(&parsed.format, &dir, columns.as_deref())?;
        let (names, types): (Vec<String>, Vec<String>) = crate::file::source::column_types(&schema).into_iter().unzip();
        Ok::<_, Error>(list!(
            path = dir.display().to_string(),
            names = names,
            types = types,
            partitions = partitions,
            ignored = parsed.ignored
        ))
    })();
    match checked {
        Ok(value) => ok(value),
        Err(e) => err(e),
    }
}

/// `stream_read_delta()`'s check: the table there, its columns (names and
/// types) and the options, as the query will plan them.
#[extendr]
fn delta_source_check(path: &str, options_json: &str) -> Robj {
    let checked = (|| {
        let options: crate::kafka::config::Options =
            serde_json::from_str(options_json).map_err(|e| Error::internal(format!("bad options from R: {e}")))?;
        let plan = crate::delta::source::DeltaSourcePlan::new(path, &options)?;
        let (names, types): (Vec<String>, Vec<String>) = crate::file::source::column_types(&plan.schema).into_iter().unzip();
        Ok::<_, Error>(list!(path = plan.dir.display().to_string(), names = names, types = types))
    })();
    match checked {
        Ok(value) => ok(value),
        Err(e) => err(e),
    }
}

/// A Spark interval string ("10 minutes") in milliseconds, or the error
/// naming `arg`. The rule lives in `transform::event_time`; R asks it here
/// so that a bad `threshold` fails when `stream_watermark()` is called.
#[extendr]
fn duration_ms(text: &str, arg: &str) -> Robj {
    match crate::transform::event_time::parse_duration_us(text) {
        Ok(us) => ok(us as f64 / 1000.0),
        Err(message) => err(Error::config(arg, message)),
    }
}

/// Is `schema` an Avro schema `sdf_from_avro()` can read into column
/// `column`? The error names `cols`; the rule is `message::avro::ValueShape`'s.
#[extendr]
fn avro_schema_check(schema: &str, column: &str) -> Robj {
    match crate::message::avro::ValueShape::parse(schema, "cols", &format!("the schema of `{column}`")) {
        Ok(_) => ok(true),
        Err(e) => err(e),
    }
}

/// Wait up to `timeout_ms` for the query to have started (`until_started`)
/// or to have terminated. Returns its state. R calls it in short slices.
#[extendr]
fn query_wait(query: QueryPtr, timeout_ms: f64, until_started: bool) -> &'static str {
    let timeout = Duration::from_secs_f64(timeout_ms.clamp(0.0, 60_000.0) / 1000.0);
    query.status.wait(timeout, until_started).as_str()
}

/// Ask the query to stop: `abort = FALSE` lets the batch in flight finish.
#[extendr]
fn query_stop(query: QueryPtr, abort: bool) {
    if abort {
        query.stop.abort();
    } else {
        query.stop.stop();
    }
}

#[extendr]
fn query_status(query: QueryPtr) -> Robj {
    let s = query.status.snapshot();
    let error: Robj = match s.error {
        Some(e) => err(e),
        None => ().into(),
    };
    let warnings: Vec<String> = s.warnings.into_iter().collect();
    let retrying: Robj = match s.retrying {
        Some((since_ms, tries)) => list!(since_ms = since_ms, tries = tries as f64).into(),
        None => ().into(),
    };
    let partitions = list!(
        topic = s.partitions.iter().map(|p| p.topic.clone()).collect::<Vec<String>>(),
        partition = s.partitions.iter().map(|p| p.partition).collect::<Vec<i32>>(),
        offset = s.partitions.iter().map(|p| p.offset as f64).collect::<Vec<f64>>(),
        lag = s.partitions.iter().map(|p| p.lag as f64).collect::<Vec<f64>>()
    );
    list!(
        id = query.id.clone(),
        name = query.name.clone(),
        state = s.state.as_str(),
        message = s.message,
        source = query.describe_source.clone(),
        sink = query.describe_sink.clone(),
        checkpoint = query.checkpoint.clone(),
        trigger = query.trigger.to_string(),
        batches = s.batches_committed as f64,
        rows_in = s.rows_in as f64,
        rows_out = s.rows_out as f64,
        rows_dropped = s.rows_dropped as f64,
        rows_malformed = s.rows_malformed as f64,
        watermark_ms = s.watermark_ms.map(|w| w as f64),
        error = error,
        failed_starting = s.failed_starting,
        retrying = retrying,
        warnings = warnings,
        partitions = partitions
    )
    .into()
}

/// Recent committed batches, column-wise (R makes the data frame).
#[extendr]
fn query_progress(query: QueryPtr) -> Robj {
    let s = query.status.snapshot();
    let col = |f: &dyn Fn(&crate::engine::status::BatchProgress) -> f64| s.recent.iter().map(f).collect::<Vec<f64>>();
    list!(
        batch_id = col(&|b| b.batch_id as f64),
        timestamp_ms = col(&|b| b.timestamp_ms),
        rows_in = col(&|b| b.rows_in as f64),
        rows_out = col(&|b| b.rows_out as f64),
        duration_ms = col(&|b| b.duration_ms),
        input_rows_per_second = col(&|b| b.input_rows_per_second),
        processed_rows_per_second = col(&|b| b.processed_rows_per_second),
        watermark_ms = col(&|b| b.watermark_ms.map_or(f64::NAN, |w| w as f64)),
        rows_dropped = col(&|b| b.rows_dropped as f64),
        rows_malformed = col(&|b| b.rows_malformed as f64),
        groups_held = col(&|b| b.groups_held.map_or(f64::NAN, |g| g as f64))
    )
    .into()
}

/// Run `sql` over the memory tables; a data frame.
#[extendr]
fn engine_query_memory(engine: EnginePtr, sql: &str) -> Robj {
    match engine.query_memory(sql).and_then(|(schema, rows)| from_arrow::batches_to_data_frame(&schema, &rows)) {
        Ok(df) => ok(df),
        Err(e) => err(e),
    }
}

/// `copy_to()`: the data frame `df` as the connection's table `name`.
#[extendr]
fn engine_copy_to(engine: EnginePtr, name: &str, df: Robj, overwrite: bool) -> Robj {
    match to_arrow::data_frame_to_arrow(&df).and_then(|rows| engine.tables().copy_in(name, rows, overwrite)) {
        Ok(()) => ok(name),
        Err(e) => err(e),
    }
}

#[extendr]
fn engine_drop_memory(engine: EnginePtr, table: &str) {
    engine.drop_memory_table(table);
}

/// Console sink: the committed batches not printed yet, as
/// `list(list(batch = <id>, data = <data frame>), ...)`.
#[extendr]
fn query_console_take(query: QueryPtr) -> Robj {
    let waiting = query.take_console_batches();
    let mut out = Vec::with_capacity(waiting.len());
    for (batch, rows) in waiting {
        let rows: Vec<arrow::record_batch::RecordBatch> = rows.iter().map(crate::sink::memory::flatten_structs).collect();
        let schema = match rows.first() {
            Some(b) => b.schema(),
            None => continue,
        };
        match from_arrow::batches_to_data_frame(&schema, &rows) {
            Ok(df) => out.push(Robj::from(list!(batch = batch as f64, data = df))),
            Err(e) => return err(e),
        }
    }
    ok(List::from_values(out))
}

/// For tests of the panic boundary: panics inside Rust, must come back as an R error.
#[extendr]
fn rust_panic_for_test() {
    panic!("a deliberate panic from streamlyr's test suite");
}


extendr_module! {
    mod streamlyr;
    use mock;
    fn engine_new;
    fn engine_close;
    fn engine_is_closed;
    fn engine_queries;
    fn engine_find;
    fn query_start;
    fn kafka_source_check;
    fn file_source_check;
    fn socket_source_check;
    fn delta_source_check;
    fn duration_ms;
    fn avro_schema_check;
    fn query_wait;
    fn query_stop;
    fn query_status;
    fn query_progress;
    fn engine_query_memory;
    fn query_console_take;
    fn engine_drop_memory;
    fn engine_copy_to;
    fn rust_panic_for_test;
}
