//! Event time, as Spark has it: `window()` groups rows by time, the
//! watermark (`stream_watermark()`) says which windows are closed.
//!
//! - `window(ts, width[, slide[, start]])` is a SQL function giving each row
//!   its window `struct<start, end>`, `[start, end)` aligned to the epoch
//!   plus `start`. A sliding window (slide < width) gives a list of the
//!   windows that cover the row, and the plan unnests it: one row per window
//!   ([`expand_sliding_windows`]).
//! - `stream_watermark()` in R marks its column with
//!   `streamlyr_watermark(ts, delay_ms)`, which passes the column through
//!   and keeps the largest event time seen ([`Clock`]). At the end of a batch
//!   the next watermark is that maximum minus the delay, never lower than
//!   the current one; the batch after uses it (Spark's rule).
//! - `now()` / `current_timestamp` is the batch's time, so a batch run again
//!   after a crash sees the time it had the first time.
//!
//! An aggregation whose group key is a window on the watermarked column, or
//! that column itself, has an event-time key ([`EventKey`]): rows for
//! windows the watermark has passed are dropped as late, and closed groups
//! are emitted (`append`) or forgotten (`update`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, StructArray, TimestampMicrosecondArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit, TimestampMicrosecondType};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ExprSchema, ScalarValue, UnnestOptions};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

use crate::error::{Error, Result};

pub const WATERMARK_FUNCTION: &str = "streamlyr_watermark";
const WINDOW_FUNCTION: &str = "window";

/// No event time seen yet.
const NONE_SEEN: i64 = i64::MIN;

/// What the SQL functions of a query share with its engine: the batch's
/// time, and the largest event time seen by the watermark's column.
#[derive(Debug)]
pub struct Clock {
    batch_time_ms: AtomicI64,
    max_event_us: AtomicI64,
}

impl Clock {
    pub fn new() -> Arc<Clock> {
        Arc::new(Clock { batch_time_ms: AtomicI64::new(0), max_event_us: AtomicI64::new(NONE_SEEN) })
    }

    pub fn set_batch_time(&self, ms: i64) {
        self.batch_time_ms.store(ms, Ordering::Relaxed);
    }

    /// The largest event time seen (ms), if any.
    pub fn max_event_ms(&self) -> Option<i64> {
        let us = self.max_event_us.load(Ordering::Relaxed);
        (us != NONE_SEEN).then(|| us.div_euclid(1000))
    }

    pub fn forget_event_times(&self) {
        self.max_event_us.store(NONE_SEEN, Ordering::Relaxed);
    }
}

/// The functions a stream pipeline's SQL gets on top of DataFusion's.
pub fn functions(clock: &Arc<Clock>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(WindowFunction::new()),
        ScalarUDF::from(SessionWindowFunction::new()),
        ScalarUDF::from(WatermarkFunction { clock: clock.clone(), signature: Signature::any(2, Volatility::Volatile) }),
        ScalarUDF::from(BatchTimeFunction {
            clock: clock.clone(),
            signature: Signature::nullary(Volatility::Volatile),
            aliases: vec!["current_timestamp".to_string()],
        }),
    ]
}

// ---------------------------------------------------------------------------
// Durations

/// A Spark interval string ("10 minutes", "1 hour 30 minutes", "interval 5
/// seconds", "250 milliseconds") in microseconds. Months and years have no
/// fixed length, so they are refused.
pub fn parse_duration_us(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("can't read \"{text}\" as a duration: expected e.g. \"10 seconds\", \"5 minutes\" or \"1 hour\"");
    let mut words = text.split_whitespace().peekable();
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("interval")) {
        words.next();
    }
    let mut total: f64 = 0.0;
    let mut parts = 0;
    while let Some(number) = words.next() {
        // "10minutes" as well as "10 minutes"
        let split = number.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(number.len());
        let (amount, glued_unit) = number.split_at(split);
        let amount: f64 = amount.parse().map_err(|_| bad())?;
        let unit = if glued_unit.is_empty() { words.next().ok_or_else(bad)? } else { glued_unit };
        let unit = unit.to_ascii_lowercase();
        let micros = match unit.as_str() {
            "us" | "microsecond" | "microseconds" => 1.0,
            "ms" | "millisecond" | "milliseconds" => 1e3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
            "min" | "mins" | "minute" | "minutes" => 60e6,
            "h" | "hour" | "hours" => 3600e6,
            "d" | "day" | "days" => 86_400e6,
            "week" | "weeks" => 7.0 * 86_400e6,
            "month" | "months" | "year" | "years" => {
                return Err(format!("\"{text}\": months and years have no fixed length; use days"))
            }
            _ => return Err(bad()),
        };
        total += amount * micros;
        parts += 1;
    }
    if parts == 0 || !total.is_finite() || total.abs() >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as i64)
}

// ---------------------------------------------------------------------------
// window()

/// The shape of one `window()` call, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WindowSpec {
    width: i64,
    slide: i64,
    start: i64,
}

impl WindowSpec {
    fn from_arguments(arguments: &[Option<&ScalarValue>]) -> DfResult<WindowSpec> {
        if !(2..=4).contains(&arguments.len()) {
            return plan_error("`window()` takes a time column, a width, and optionally a slide and a start offset");
        }
        let duration = |i: usize, what: &str| -> DfResult<Option<i64>> {
            let Some(value) = arguments.get(i) else { return Ok(None) };
            let text = match value {
                Some(ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t)) | ScalarValue::Utf8View(Some(t))) => t,
                _ => return plan_error(&format!("`window()`'s {what} must be a text constant such as '5 minutes'")),
            };
            parse_duration_us(text).map(Some).map_err(|e| DataFusionError::Plan(format!("`window()`'s {what}: {e}")))
        };
        let width = duration(1, "width")?.unwrap_or_default();
        let slide = duration(2, "slide")?.unwrap_or(width);
        let start = duration(3, "start")?.unwrap_or(0);
        if width <= 0 {
            return plan_error("The window duration must be greater than 0");
        }
        if slide <= 0 {
            return plan_error("The slide duration must be greater than 0");
        }
        if slide > width {
            return plan_error(&format!(
                "The slide duration ({slide} us) must be less than or equal to the windowDuration ({width} us)"
            ));
        }
        if start.abs() >= slide {
            return plan_error(&format!(
                "The absolute value of start time ({start} us) must be less than the slideDuration ({slide} us)"
            ));
        }
        Ok(WindowSpec { width, slide, start })
    }

    fn is_sliding(&self) -> bool {
        self.slide < self.width
    }

    /// The starts of the windows that hold `ts`, earliest first.
    fn starts(&self, ts: i64) -> impl Iterator<Item = i64> + '_ {
        let last = ts - (ts - self.start).rem_euclid(self.slide);
        let most = (self.width + self.slide - 1) / self.slide;
        (0..most).rev().map(move |k| last - k * self.slide).filter(move |s| s + self.width > ts)
    }
}

fn plan_error<T>(message: &str) -> DfResult<T> {
    Err(DataFusionError::Plan(message.to_string()))
}

fn window_struct_fields(tz: Option<Arc<str>>) -> Fields {
    let time = DataType::Timestamp(TimeUnit::Microsecond, tz);
    Fields::from(vec![Field::new("start", time.clone(), true), Field::new("end", time, true)])
}

/// The time column as microseconds, whatever its unit.
fn as_micros(array: &ArrayRef) -> DfResult<TimestampMicrosecondArray> {
    match array.data_type() {
        DataType::Timestamp(_, _) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok(micros.as_primitive::<TimestampMicrosecondType>().clone())
        }
        other => plan_error(&format!("`window()` needs a timestamp column, not {other}")),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFunction {
    signature: Signature,
}

impl WindowFunction {
    fn new() -> Self {
        WindowFunction { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for WindowFunction {

    fn name(&self) -> &str {
        WINDOW_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal("window()'s type comes from return_field_from_args".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let spec = WindowSpec::from_arguments(args.scalar_arguments)?;
        // A time without a zone is UTC's, as the engine reads it everywhere.
        let tz = match args.arg_fields[0].data_type() {
            DataType::Timestamp(_, tz) => tz.clone().or_else(|| Some("UTC".into())),
            DataType::Null => Some("UTC".into()),
            other => {
                return plan_error(&format!(
                    "`window()` needs a timestamp column, but `{}` is of type {other}",
                    args.arg_fields[0].name()
                ))
            }
        };
        let window = DataType::Struct(window_struct_fields(tz));
        let data_type = if spec.is_sliding() { DataType::new_list(window, true) } else { window };
        Ok(Arc::new(Field::new(self.name(), data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arguments: Vec<Option<ScalarValue>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s.clone()),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let spec = WindowSpec::from_arguments(&arguments.iter().map(Option::as_ref).collect::<Vec<_>>())?;
        let times = as_micros(&args.args[0].to_array(args.number_rows)?)?;
        let fields = match args.return_field.data_type() {
            DataType::Struct(f) => f.clone(),
            DataType::List(item) => match item.data_type() {
                DataType::Struct(f) => f.clone(),
                _ => return Err(DataFusionError::Internal("window(): list of what?".into())),
            },
            _ => return Err(DataFusionError::Internal("window(): unexpected return type".into())),
        };
        let tz = match fields[0].data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let (mut starts, mut ends) = (Vec::with_capacity(times.len()), Vec::with_capacity(times.len()));
        let column: ArrayRef = if spec.is_sliding() {
            let mut offsets = Vec::with_capacity(times.len() + 1);
            offsets.push(0i32);
            for i in 0..times.len() {
                if times.is_valid(i) {
                    for s in spec.starts(times.value(i)) {
                        starts.push(s);
                        ends.push(s + spec.width);
                    }
                }
                offsets.push(starts.len() as i32);
            }
            let windows = window_structs(&fields, tz, starts, ends, None)?;
            let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
            Arc::new(ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(windows), times.nulls().cloned())?)
        } else {
            for i in 0..times.len() {
                let s = spec.starts(times.value(i)).next().unwrap_or_default();
                starts.push(s);
                ends.push(s + spec.width);
            }
            Arc::new(window_structs(&fields, tz, starts, ends, times.nulls().cloned())?)
        };
        Ok(ColumnarValue::Array(column))
    }
}

fn window_structs(fields: &Fields, tz: Option<Arc<str>>, starts: Vec<i64>, ends: Vec<i64>, nulls: Option<NullBuffer>) -> DfResult<StructArray> {
    let start = TimestampMicrosecondArray::from(starts).with_timezone_opt(tz.clone());
    let end = TimestampMicrosecondArray::from(ends).with_timezone_opt(tz);
    Ok(StructArray::try_new(fields.clone(), vec![Arc::new(start), Arc::new(end)], nulls)?)
}

/// `session_window()` parses, so that using it is a clear error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionWindowFunction {
    signature: Signature,
}

impl SessionWindowFunction {
    fn new() -> Self {
        SessionWindowFunction { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SessionWindowFunction {
    fn name(&self) -> &str {
        "session_window"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::NotImplemented(
            "`session_window()` is not supported on a stream yet: use `window()` (tumbling or sliding)".into(),
        ))
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.return_type(&[]).map(|_| unreachable!())
    }
}

// ---------------------------------------------------------------------------
// The watermark's column and the batch's time

macro_rules! clock_identity {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.clock, &other.clock)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                std::ptr::hash(Arc::as_ptr(&self.clock), state)
            }
        }
    };
}

/// `streamlyr_watermark(ts, delay_ms)`: `ts` as it is, its maximum kept.
#[derive(Debug)]
struct WatermarkFunction {
    clock: Arc<Clock>,
    signature: Signature,
}
clock_identity!(WatermarkFunction);

impl ScalarUDFImpl for WatermarkFunction {
    fn name(&self) -> &str {
        WATERMARK_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let column = args.args[0].to_array(args.number_rows)?;
        if let Some(max) = arrow::compute::max(&as_micros(&column)?) {
            self.clock.max_event_us.fetch_max(max, Ordering::Relaxed);
        }
        Ok(args.args[0].clone())
    }
}

/// `now()` and `current_timestamp`: the batch's time (Spark's `batchTimestampMs`).
#[derive(Debug)]
struct BatchTimeFunction {
    clock: Arc<Clock>,
    signature: Signature,
    aliases: Vec<String>,
}
clock_identity!(BatchTimeFunction);

impl ScalarUDFImpl for BatchTimeFunction {
    fn name(&self) -> &str {
        "now"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let us = self.clock.batch_time_ms.load(Ordering::Relaxed) * 1000;
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into()))))
    }
}

// ---------------------------------------------------------------------------
// The plan

/// A call of `name`, under aliases and casts to another time unit (a cast
/// to anything else, `as.Date(ts)`, is another value).
fn call_named<'a>(expr: &'a Expr, name: &str) -> Option<&'a ScalarFunction> {
    match expr {
        Expr::ScalarFunction(f) if f.func.name() == name => Some(f),
        Expr::Alias(a) => call_named(&a.expr, name),
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => call_named(&c.expr, name),
        Expr::TryCast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => call_named(&c.expr, name),
        _ => None,
    }
}

/// A sliding `window()` gives each row a list of windows; below whatever
/// reads it, one row per window. Only a sliding window of its own in a
/// projection (`mutate(w = window(...))`, `group_by(window(...))`) can be
/// unnested; elsewhere it is an error, as is more than one (Spark's rule).
pub fn expand_sliding_windows(plan: LogicalPlan) -> Result<LogicalPlan> {
    let of_its_own = "a sliding `window()` must be a column of its own: `mutate(w = window(ts, '10 minutes', '5 minutes'))`";
    let rewritten = plan.transform_up(|node| {
        let LogicalPlan::Projection(projection) = &node else {
            let mut sliding = false;
            if let Some(input) = node.inputs().first() {
                node.apply_expressions(|e| {
                    sliding |= contains_sliding_window(e, input.schema())?;
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })?;
            }
            if sliding {
                return plan_error(of_its_own);
            }
            return Ok(Transformed::yes(node.recompute_schema()?));
        };
        let mut lists = Vec::new();
        for (expr, field) in projection.expr.iter().zip(projection.schema.columns()) {
            let sliding = call_named(expr, WINDOW_FUNCTION).is_some()
                && matches!(projection.schema.field_from_column(&field)?.data_type(), DataType::List(_));
            if sliding {
                lists.push(field);
            } else if contains_sliding_window(expr, projection.input.schema())? {
                return plan_error(of_its_own);
            }
        }
        if lists.len() > 1 {
            return plan_error("Multiple time/session window expressions would result in a cartesian product of rows, therefore they are currently not supported.");
        }
        if lists.is_empty() {
            // Its input's columns may have changed type (a list unnested below).
            return Ok(Transformed::yes(node.recompute_schema()?));
        }
        let options = UnnestOptions::new().with_preserve_nulls(false);
        let unnested = LogicalPlanBuilder::from(node).unnest_columns_with_options(lists, options)?.build()?;
        Ok(Transformed::yes(unnested))
    });
    rewritten.map(|t| t.data).map_err(super::df_error)
}

fn contains_sliding_window(expr: &Expr, schema: &datafusion::common::DFSchema) -> DfResult<bool> {
    let mut found = false;
    expr.apply(|e| {
        if let Expr::ScalarFunction(f) = e {
            if f.func.name() == WINDOW_FUNCTION && matches!(e.get_type(schema)?, DataType::List(_)) {
                found = true;
                return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// The watermark a pipeline sets: its delay in milliseconds, from the one
/// `streamlyr_watermark()` call in the plan (none: no watermark).
pub fn watermark_delay(plan: &LogicalPlan) -> Result<Option<i64>> {
    let mut found: Vec<(i64, String, DataType)> = Vec::new();
    let mut failed: Option<Error> = None;
    plan.apply(|node| {
        let schema = node.inputs().first().map(|i| i.schema().clone());
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some(call) = call_named(e, WATERMARK_FUNCTION).filter(|_| matches!(e, Expr::ScalarFunction(_))) {
                    let delay = match call.args.get(1) {
                        Some(Expr::Literal(ScalarValue::Int64(Some(d)), _)) => *d,
                        Some(Expr::Literal(ScalarValue::Float64(Some(d)), _)) => *d as i64,
                        Some(Expr::Literal(ScalarValue::Int32(Some(d)), _)) => *d as i64,
                        _ => {
                            failed = Some(Error::internal("streamlyr_watermark() without a constant delay"));
                            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
                        }
                    };
                    let data_type = match &schema {
                        Some(s) => call.args[0].get_type(s)?,
                        None => DataType::Null,
                    };
                    let column = match &call.args[0] {
                        Expr::Column(c) => c.name.clone(),
                        other => other.schema_name().to_string(),
                    };
                    found.push((delay, column, data_type));
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(super::df_error)?;
    if let Some(e) = failed {
        return Err(e);
    }
    found.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    match found.as_slice() {
        [] => Ok(None),
        [(delay, column, data_type)] => match data_type {
            DataType::Timestamp(_, _) => Ok(Some(*delay)),
            other => Err(Error::config(
                "column",
                format!("Event time must be defined on a window or a timestamp, but {column} is of type {other}"),
            )
            .with_hint("convert it first, e.g. `mutate(ts = as.POSIXct(ts))` before `stream_watermark()`")),
        },
        _ => Err(Error::config("x", "a pipeline can have one `stream_watermark()`, not several")),
    }
}

/// How a group key of an aggregation relates to event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey {
    /// A `window()` on the watermarked column: closed when its end passes.
    Window(usize),
    /// The watermarked column itself: closed when the value passes.
    Time(usize),
}

impl EventKey {
    pub fn index(self) -> usize {
        match self {
            EventKey::Window(i) | EventKey::Time(i) => i,
        }
    }

    /// The key's upper bound in microseconds (a window's end, a time
    /// itself); null where the key is null.
    pub fn bound_us(self, key: &ArrayRef) -> Result<Int64Array> {
        let time = match self {
            EventKey::Window(_) => key
                .as_struct_opt()
                .and_then(|s| s.column_by_name("end").cloned())
                .ok_or_else(|| Error::internal("a window key without an end"))?,
            EventKey::Time(_) => key.clone(),
        };
        let micros = as_micros(&time).map_err(super::df_error)?;
        Ok(Int64Array::new(micros.values().clone(), micros.nulls().cloned().or_else(|| key.logical_nulls())))
    }

    /// Which rows' keys the watermark `wm_ms` has passed (Spark: `key <= wm`).
    pub fn closed(self, key: &ArrayRef, wm_ms: i64) -> Result<BooleanArray> {
        let bound = self.bound_us(key)?;
        let wm = wm_ms.saturating_mul(1000);
        Ok(bound.iter().map(|b| Some(b.is_some_and(|b| b <= wm))).collect())
    }
}

/// The group key that is on event time, if any: traced down through the
/// projections and joins below the aggregation to a `window()` of the
/// watermark's column or to the column itself. dbplyr's `group_by(w =
/// window(ts, ...))` aliases the window in a projection first; the trace
/// follows it.
pub fn event_key(group_exprs: &[Expr], input: &LogicalPlan) -> Option<EventKey> {
    group_exprs.iter().enumerate().find_map(|(i, e)| {
        let origin = origin(e, input)?;
        if let Some(window) = call_named(&origin, WINDOW_FUNCTION) {
            return window.args.first().and_then(|a| call_named(a, WATERMARK_FUNCTION)).map(|_| EventKey::Window(i));
        }
        call_named(&origin, WATERMARK_FUNCTION).map(|_| EventKey::Time(i))
    })
}

/// What `expr` (over `plan`'s output) is in terms of the nodes below:
/// columns replaced by the expressions that made them.
fn origin(expr: &Expr, plan: &LogicalPlan) -> Option<Expr> {
    let expr = match expr {
        Expr::Alias(a) => a.expr.as_ref().clone(),
        e => e.clone(),
    };
    let Expr::Column(column) = &expr else {
        // An expression: its columns traced one by one.
        return expr
            .transform_up(|e| match &e {
                Expr::Column(_) => Ok(Transformed::yes(origin(&e, plan).unwrap_or(e))),
                _ => Ok(Transformed::no(e)),
            })
            .ok()
            .map(|t| t.data);
    };
    let index = plan.schema().index_of_column(column).ok()?;
    let the_column = |input: &LogicalPlan, i: usize| Expr::Column(Column::from(input.schema().qualified_field(i)));
    match plan {
        LogicalPlan::Projection(p) => origin(&p.expr[index], &p.input),
        // The same columns as the input.
        LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::SubqueryAlias(_) => {
            let input = plan.inputs()[0];
            origin(&the_column(input, index), input)
        }
        // The left side's columns, then (unless a semi or anti join) the right side's.
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            if index < left {
                origin(&the_column(&j.left, index), &j.left)
            } else {
                origin(&the_column(&j.right, index - left), &j.right)
            }
        }
        // An unnested column keeps its qualifier and name; the others pass through.
        LogicalPlan::Unnest(u) => {
            let found = u.input.schema().index_of_column(column).ok()?;
            origin(&the_column(&u.input, found), &u.input)
        }
        _ => Some(expr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_spark_writes_them() {
        assert_eq!(parse_duration_us("10 minutes"), Ok(600_000_000));
        assert_eq!(parse_duration_us("1 hour"), Ok(3_600_000_000));
        assert_eq!(parse_duration_us("interval 5 seconds"), Ok(5_000_000));
        assert_eq!(parse_duration_us("1 hour 30 minutes"), Ok(5_400_000_000));
        assert_eq!(parse_duration_us("250 milliseconds"), Ok(250_000));
        assert_eq!(parse_duration_us("1.5 seconds"), Ok(1_500_000));
        assert_eq!(parse_duration_us("2 days"), Ok(172_800_000_000));
        assert_eq!(parse_duration_us("10min"), Ok(600_000_000));
        assert_eq!(parse_duration_us("100ms"), Ok(100_000));
        assert!(parse_duration_us("ten minutes").is_err());
        assert!(parse_duration_us("10 fortnights").is_err());
        assert!(parse_duration_us("").is_err());
        assert!(parse_duration_us("1 month").unwrap_err().contains("no fixed length"));
    }

    fn spec(width: i64, slide: i64, start: i64) -> WindowSpec {
        WindowSpec { width, slide, start }
    }

    #[test]
    fn tumbling_windows_hold_each_time_once() {
        let w = spec(10, 10, 0);
        assert_eq!(w.starts(0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(9).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(10).collect::<Vec<_>>(), vec![10]);
        assert_eq!(w.starts(-1).collect::<Vec<_>>(), vec![-10]);
        assert_eq!(spec(10, 10, 3).starts(2).collect::<Vec<_>>(), vec![-7]);
    }

    #[test]
    fn sliding_windows_are_every_window_that_covers_a_time() {
        // Brute force over a range of times: the windows [s, s + width) with s = start + k * slide.
        for (width, slide, start) in [(10, 5, 0), (10, 3, 1), (7, 7, 0), (12, 4, -3), (5, 1, 0)] {
            let w = spec(width, slide, start);
            for ts in -40..40 {
                let expected: Vec<i64> =
                    (-100..100).map(|k| start + k * slide).filter(|s| *s <= ts && ts < s + width).collect();
                assert_eq!(w.starts(ts).collect::<Vec<_>>(), expected, "width {width} slide {slide} start {start} ts {ts}");
            }
        }
    }
}
