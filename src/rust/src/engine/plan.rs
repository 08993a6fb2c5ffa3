//! One validating pass: the query as R describes it ([`QuerySpec`], plain
//! JSON) becomes a [`QueryPlan`], every option parsed once into its type,
//! the pipeline planned, the output mode decided and the Kafka record
//! layout built. Every rule about a query that needs no network is checked
//! here and fails with an error naming the R argument (and the option in
//! it); `Engine::start` then only builds and spawns. R checks only what its
//! own calls need first (argument types, `match.arg(mode)`, a trigger
//! constructor's argument) so that the error names the user's call.

use std::sync::Arc;
use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::trigger::Trigger;
use crate::error::{Error, Result};
use crate::delta::sink::DeltaSinkPlan;
use crate::delta::source::DeltaSourcePlan;
use crate::file::sink::FileSinkPlan;
use crate::file::source::FileSourcePlan;
use crate::socket::{socket_schema, SocketOptions};
use crate::kafka::config::{KafkaSinkOptions, KafkaSourceOptions, Options};
use crate::sink::encode::RecordLayout;
use crate::sink::memory::Tables;
use crate::transform::{needs_aggregation, OutputMode, Transform};

/// A query as R describes it (sent as JSON: plain data, no R objects).
#[derive(Debug, Clone, Deserialize)]
pub struct QuerySpec {
    pub name: String,
    pub source: SourceSpec,
    pub sink: SinkSpec,
    pub trigger: TriggerSpec,
    pub checkpoint: String,
    /// `append`, `complete` or `update`; absent (a one-off `collect()`):
    /// whatever the pipeline needs.
    #[serde(default)]
    pub mode: Option<String>,
    /// The writer's `options`.
    #[serde(default)]
    pub options: Options,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    Kafka { options: Options },
    /// The rows come with the call, already converted to Arrow.
    DataFrame,
    /// A folder of `format` files; `columns` (name, type) as fixed when
    /// R defined the stream, `partitions` the ones from `key=value` folders.
    File { format: String, path: String, options: Options, columns: Vec<(String, String)>, partitions: Vec<String> },
    /// Lines from a TCP server.
    Socket { options: Options },
    /// A Delta table's new files.
    Delta { path: String, options: Options },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkSpec {
    Kafka,
    /// A table R reads with collect() (`stream_write_memory()`).
    Memory { table: String },
    Console,
    /// A folder of `format` files; the writer's `options` configure them.
    File { format: String, path: String },
    /// A Delta table, one commit per batch.
    Delta { path: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerSpec {
    Interval { interval_ms: f64 },
    Continuous { checkpoint_ms: f64 },
    Once,
}

pub fn parse_spec(json: &str) -> Result<QuerySpec> {
    serde_json::from_str(json).map_err(|e| Error::internal(format!("bad query description from R: {e}")))
}

/// Writer options that are about the query, whatever the sink.
const RETRY_TIMEOUT: &str = "retryTimeoutMs";

/// How long a query keeps trying while it makes no progress (Kafka Streams'
/// `task.timeout.ms` has the same default).
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) enum SourcePlan {
    Kafka(KafkaSourceOptions),
    DataFrame(RecordBatch),
    File(FileSourcePlan),
    Socket(SocketOptions),
    Delta(DeltaSourcePlan),
}

pub(crate) enum SinkPlan {
    Kafka { options: KafkaSinkOptions, layout: RecordLayout },
    Memory { table: String, key_columns: Vec<String> },
    Console,
    File(FileSinkPlan),
    Delta(DeltaSinkPlan),
}

/// A query ready to start: [`Engine::start`](super::Engine::start) only builds and spawns it.
pub struct QueryPlan {
    pub(crate) name: String,
    pub(crate) source: SourcePlan,
    pub(crate) transform: Option<Transform>,
    pub(crate) sink: SinkPlan,
    /// The rows the sink gets: the pipeline's output, or the source's rows.
    pub(crate) output_schema: SchemaRef,
    pub(crate) mode: OutputMode,
    pub(crate) trigger: Trigger,
    pub(crate) checkpoint: PathBuf,
    /// A retriable failure that lasts longer than this fails the stream.
    pub(crate) retry_timeout: Duration,
    /// Writer options accepted for sparklyr's sake that have no effect here.
    pub ignored: Vec<String>,
}

impl QueryPlan {
    /// Check `spec` and plan it; `rows` is the data frame of a data-frame source.
    /// `tables` are the connection's, which the pipeline may join with.
    pub fn new(spec: QuerySpec, rows: Option<RecordBatch>, tables: &Arc<Tables>) -> Result<QueryPlan> {
        let trigger = trigger(&spec.trigger)?;
        let requested = spec.mode.as_deref().map(OutputMode::parse).transpose()?;
        let checkpoint = spec.checkpoint.trim();
        if checkpoint.is_empty() {
            return Err(Error::config("checkpoint", "`checkpoint` must be a directory path"));
        }
        let continuous = matches!(trigger, Trigger::Continuous(_));
        match &spec.sink {
            SinkSpec::File { format, .. } => check_file_sink_mode(format, requested, continuous)?,
            SinkSpec::Delta { .. } if continuous => return Err(continuous_unsupported("delta")),
            _ => {}
        }
        let (source, input_schema) = match (spec.source, rows) {
            (SourceSpec::Kafka { options }, _) => {
                let options = KafkaSourceOptions::parse(&options)?;
                let schema = options.schema.clone();
                (SourcePlan::Kafka(options), schema)
            }
            (SourceSpec::DataFrame, Some(batch)) => {
                let schema = batch.schema();
                (SourcePlan::DataFrame(batch), schema)
            }
            (SourceSpec::DataFrame, None) => return Err(Error::internal("a data frame source without its rows")),
            (SourceSpec::File { format, path, options, columns, partitions }, _) => {
                if continuous {
                    return Err(continuous_unsupported(&format));
                }
                let plan = FileSourcePlan::new(&format, &path, &options, &columns, &partitions)?;
                let schema = plan.schema.clone();
                (SourcePlan::File(plan), schema)
            }
            (SourceSpec::Delta { path, options }, _) => {
                if continuous {
                    return Err(continuous_unsupported("delta"));
                }
                let plan = DeltaSourcePlan::new(&path, &options)?;
                let schema = plan.schema.clone();
                (SourcePlan::Delta(plan), schema)
            }
            (SourceSpec::Socket { options }, _) => {
                let options = SocketOptions::parse(&options)?;
                let schema = socket_schema(options.include_timestamp);
                (SourcePlan::Socket(options), schema)
            }
        };
        let transform = match &spec.sql {
            Some(sql) => Some(Transform::plan(&sql.sql, &sql.table, input_schema.clone(), requested, continuous, tables)?),
            None => match requested {
                Some(m) if m != OutputMode::Append => return Err(needs_aggregation(m)),
                _ => None,
            },
        };
        let mode = transform.as_ref().map_or(OutputMode::Append, |t| t.mode());
        let key_columns = transform.as_ref().map(|t| t.key_columns().to_vec()).unwrap_or_default();
        let output_schema = transform.as_ref().map_or(input_schema, |t| t.output_schema());

        let mut writer_options = spec.options;
        let retry_timeout = match writer_options.remove(RETRY_TIMEOUT) {
            None => DEFAULT_RETRY_TIMEOUT,
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_millis(n),
                _ => {
                    return Err(Error::option(
                        RETRY_TIMEOUT,
                        format!("`{RETRY_TIMEOUT}` must be a positive whole number of milliseconds, not \"{ms}\""),
                    ))
                }
            },
        };
        if matches!(&source, SourcePlan::Kafka(o) if o.group.is_some()) {
            check_scale_out(&trigger, transform.as_ref(), &spec.sink)?;
        }
        let (sink, ignored) = match spec.sink {
            SinkSpec::Kafka => {
                let options = KafkaSinkOptions::parse(&writer_options)?;
                // Column checks need no broker: a wrong `value` type fails here, in R's call.
                let layout = RecordLayout::new(&output_schema, options.topic.clone())?
                    .with_keys(&output_schema, &key_columns, &spec.partition_by)?
                    .with_value_encoding(options.value_encoding.clone(), &output_schema)?;
                let ignored = options.ignored.clone();
                (SinkPlan::Kafka { options, layout }, ignored)
            }
            SinkSpec::Memory { table } => (SinkPlan::Memory { table, key_columns }, writer_options.into_keys().collect()),
            SinkSpec::Console => (SinkPlan::Console, writer_options.into_keys().collect()),
            SinkSpec::File { format, path } => {
                let plan = FileSinkPlan::new(&format, &path, &writer_options, &output_schema, &spec.partition_by)?;
                let ignored = plan.options.ignored.clone();
                (SinkPlan::File(plan), ignored)
            }
            SinkSpec::Delta { path } => {
                let plan = DeltaSinkPlan::new(&path, &writer_options, &output_schema, &spec.partition_by, mode)?;
                let ignored = plan.ignored.clone();
                (SinkPlan::Delta(plan), ignored)
            }
        };
        Ok(QueryPlan {
            name: spec.name,
            source,
            transform,
            sink,
            output_schema,
            mode,
            trigger,
            checkpoint: PathBuf::from(checkpoint),
            retry_timeout,
            ignored,
        })
    }
}

/// What `scaleOut = "group"` runs today: stateless pipelines in
/// micro-batches into Kafka (exactly-once or at-least-once), memory or the
/// console. File and Delta sinks keep a log per checkpoint, which processes
/// can't share.
fn check_scale_out(trigger: &Trigger, transform: Option<&Transform>, sink: &SinkSpec) -> Result<()> {
    if matches!(trigger, Trigger::Continuous(_) | Trigger::Once) {
        // Once: the group assigns partitions only after the first poll, so one batch would read nothing.
        return Err(Error::config("trigger", "`scaleOut = \"group\"` runs in micro-batches on an interval, not once or continuously")
            .with_hint("use `stream_trigger_interval()`"));
    }
    if transform.is_some_and(Transform::has_state) {
        return Err(Error::config(
            "x",
            "`scaleOut = \"group\"` runs pipelines without state across batches (filter, mutate, select, joins with tables); this one keeps state (an aggregation or `stream_lag()`)",
        )
        .with_hint("run it in one process (without `scaleOut`), or aggregate downstream of the scaled-out stream"));
    }
    match sink {
        SinkSpec::Kafka | SinkSpec::Memory { .. } | SinkSpec::Console => Ok(()),
        SinkSpec::File { format, .. } => Err(scale_out_sink(format)),
        SinkSpec::Delta { .. } => Err(scale_out_sink("delta")),
    }
}

fn scale_out_sink(format: &str) -> Error {
    Error::config("x", format!("`scaleOut = \"group\"` can't write to a {format} sink: its commit log belongs to one process"))
        .with_hint("write to Kafka (`stream_write_kafka()`), memory or the console")
}

/// Spark's text, for the sources and sinks that run in micro-batches only.
fn continuous_unsupported(format: &str) -> Error {
    Error::config("trigger", format!("Data source {format} does not support continuous processing."))
}

/// File sinks append (Spark's rule and text), and only in micro-batches.
fn check_file_sink_mode(format: &str, mode: Option<OutputMode>, continuous: bool) -> Result<()> {
    if continuous {
        return Err(continuous_unsupported(format));
    }
    match mode {
        Some(m @ (OutputMode::Complete | OutputMode::Update)) => {
            let name = if m == OutputMode::Complete { "Complete" } else { "Update" };
            Err(Error::config("mode", format!("Data source {format} does not support {name} output mode."))
                .with_hint("file sinks only append: use `mode = \"append\"` (with a watermark for an aggregation)"))
        }
        _ => Ok(()),
    }
}

fn trigger(spec: &TriggerSpec) -> Result<Trigger> {
    let ms = |v: f64, arg: &str, positive: bool| {
        let valid = v > 0.0 || (!positive && v == 0.0);
        match Duration::try_from_secs_f64(v / 1000.0) {
            Ok(d) if valid => Ok(d),
            _ => {
                let what = if positive { "a positive" } else { "a non-negative" };
                Err(Error::config("trigger", format!("`{arg}` must be {what} number of milliseconds, not {v}")))
            }
        }
    };
    Ok(match spec {
        TriggerSpec::Interval { interval_ms } => Trigger::Interval(ms(*interval_ms, "interval", false)?),
        TriggerSpec::Continuous { checkpoint_ms } => Trigger::Continuous(ms(*checkpoint_ms, "checkpoint", true)?),
        TriggerSpec::Once => Trigger::Once,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> QuerySpec {
        parse_spec(json).unwrap()
    }

    const KAFKA_TO_KAFKA: &str = r#"{"name":"q","checkpoint":"/tmp/cp","trigger":{"kind":"once"},
        "source":{"kind":"kafka","options":{"kafka.bootstrap.servers":"h:1","subscribe":"t"}},
        "sink":{"kind":"kafka"},"options":{"kafka.bootstrap.servers":"h:1","topic":"out"}}"#;

    #[test]
    fn a_valid_spec_is_planned_once_with_typed_parts() {
        let plan = QueryPlan::new(spec(KAFKA_TO_KAFKA), None, &Arc::default()).unwrap();
        assert!(matches!(plan.source, SourcePlan::Kafka(_)));
        assert!(matches!(plan.sink, SinkPlan::Kafka { .. }));
        assert_eq!(plan.mode, OutputMode::Append);
        assert_eq!(plan.retry_timeout, DEFAULT_RETRY_TIMEOUT);
    }

    #[test]
    fn the_retry_bound_is_a_writer_option() {
        let json = KAFKA_TO_KAFKA.replace(r#""topic":"out"}"#, r#""topic":"out","retryTimeoutMs":"1500"}"#);
        assert_eq!(QueryPlan::new(spec(&json), None, &Arc::default()).unwrap().retry_timeout, Duration::from_millis(1500));
        let json = KAFKA_TO_KAFKA.replace(r#""topic":"out"}"#, r#""topic":"out","retryTimeoutMs":"soon"}"#);
        let e = QueryPlan::new(spec(&json), None, &Arc::default()).err().unwrap();
        assert_eq!((e.arg.as_deref(), e.option.as_deref()), (Some("options"), Some("retryTimeoutMs")));
    }

    #[test]
    fn triggers_are_checked() {
        for (trigger, arg) in [
            (r#"{"kind":"interval","interval_ms":-5}"#, "`interval`"),
            (r#"{"kind":"continuous","checkpoint_ms":0}"#, "`checkpoint`"),
            (r#"{"kind":"interval","interval_ms":1e300}"#, "`interval`"),
        ] {
            let json = KAFKA_TO_KAFKA.replace(r#"{"kind":"once"}"#, trigger);
            let e = QueryPlan::new(spec(&json), None, &Arc::default()).err().unwrap();
            assert_eq!(e.arg.as_deref(), Some("trigger"));
            assert!(e.message.contains(arg), "{e}");
        }
    }

    #[test]
    fn scale_out_runs_stateless_micro_batches_into_sinks_it_can_share() {
        let once = KAFKA_TO_KAFKA.replace(r#""subscribe":"t"}"#, r#""subscribe":"t","scaleOut":"group","kafka.group.id":"g"}"#);
        assert_eq!(QueryPlan::new(spec(&once), None, &Arc::default()).err().unwrap().arg.as_deref(), Some("trigger"));
        let grouped = once.replace(r#"{"kind":"once"}"#, r#"{"kind":"interval","interval_ms":100}"#);
        assert!(QueryPlan::new(spec(&grouped), None, &Arc::default()).is_ok());
        let continuous = grouped.replace(r#"{"kind":"interval","interval_ms":100}"#, r#"{"kind":"continuous","checkpoint_ms":1000}"#);
        assert_eq!(QueryPlan::new(spec(&continuous), None, &Arc::default()).err().unwrap().arg.as_deref(), Some("trigger"));
        let into_files = grouped.replace(r#""sink":{"kind":"kafka"}"#, r#""sink":{"kind":"file","format":"parquet","path":"/tmp/out"}"#);
        let e = QueryPlan::new(spec(&into_files), None, &Arc::default()).err().unwrap();
        assert!(e.arg.as_deref() == Some("x") && e.message.contains("parquet"), "{e}");
        let counting = grouped.replace(
            r#""sink":{"kind":"kafka"}"#,
            r#""sink":{"kind":"kafka"},"mode":"update","sql":{"sql":"SELECT topic, COUNT(*) AS n FROM s GROUP BY topic","table":"s"}"#,
        );
        let e = QueryPlan::new(spec(&counting), None, &Arc::default()).err().unwrap();
        assert!(e.arg.as_deref() == Some("x") && e.message.contains("state"), "{e}");
    }

    #[test]
    fn complete_mode_needs_an_aggregation() {
        let json = KAFKA_TO_KAFKA.replace(r#""checkpoint""#, r#""mode":"complete","checkpoint""#);
        let e = QueryPlan::new(spec(&json), None, &Arc::default()).err().unwrap();
        assert_eq!(e.arg.as_deref(), Some("mode"));
    }
}
