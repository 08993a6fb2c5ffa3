//! `stream_lag()`: a column's value a given number of rows back in the
//! stream, as `streamlyr_lag(id, column, offset, [time, max_ms]...)` in
//! the pipeline's SQL (R writes the call).
//!
//! The engine reads a micro-batch's chunks in order on one thread and
//! DataFusion keeps their order (one partition), so the function sees the
//! stream's rows in order, chunk after chunk. Each lag keeps the last
//! `offset` values it saw (and their times), so the first rows of a batch
//! get the last rows of the one before. That state is saved in the
//! checkpoint with each batch, as an aggregation's is: a restarted stream
//! goes on where the last committed batch left it. (sparklyr's lag starts
//! empty in every partition of every micro-batch.)
//!
//! With thresholds (sparklyr's `thresholds = c(time = "1 day")`), a value
//! from a row whose time is more than that before the current row's is NA;
//! times are compared in milliseconds (numbers are taken as milliseconds).
//! A missing time on either side makes it NA too: nothing says it is recent.
//!
//! Being volatile is not enough to keep DataFusion from moving filters
//! across it, merging it into the projection above (where a `CASE` would
//! evaluate it on some rows only) or swapping its projection with a filter:
//! a pipeline with a lag is planned without those rules
//! ([`without_reordering`]), so each chunk's rows reach it once, in order,
//! after every step written before it and before every step after it.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{new_empty_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt32Array};
use arrow::compute::kernels::cast::cast;
use arrow::compute::{concat, nullif, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::error::{Error, Result};

pub const LAG_FUNCTION: &str = "streamlyr_lag";

/// What every lag of a pipeline keeps between chunks, by lag id.
#[derive(Debug, Default)]
pub struct LagState {
    lags: Mutex<BTreeMap<String, Ring>>,
}

/// The last `offset` (or fewer) values a lag saw, with their times (one
/// array per threshold, in milliseconds).
#[derive(Debug, Clone)]
struct Ring {
    values: ArrayRef,
    times: Vec<Int64Array>,
}

impl LagState {
    pub fn function(self: &Arc<Self>) -> ScalarUDF {
        ScalarUDF::from(LagFunction { state: self.clone(), signature: Signature::variadic_any(Volatility::Volatile) })
    }

    fn lags(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Ring>> {
        self.lags.lock().unwrap_or_else(|p| p.into_inner())
    }


    /// Each lag's kept rows: `value`, then `time_0`, `time_1`, ...
    pub fn save(&self) -> Result<Vec<(String, RecordBatch)>> {
        self.lags()
            .iter()
            .map(|(id, ring)| {
                let mut fields = vec![Field::new("value", ring.values.data_type().clone(), true)];
                let mut columns = vec![ring.values.clone()];
                for (i, t) in ring.times.iter().enumerate() {
                    fields.push(Field::new(format!("time_{i}"), DataType::Int64, true));
                    columns.push(Arc::new(t.clone()));
                }
                Ok((id.clone(), RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?))
            })
            .collect()
    }

    pub fn restore(&self, saved: Vec<(String, RecordBatch)>) -> Result<()> {
        let mut lags = self.lags();
        lags.clear();
        for (id, batch) in saved {
            let times = batch.columns()[1..]
                .iter()
                .map(|c| c.as_primitive_opt::<Int64Type>().cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::checkpoint(format!("the saved state of lag `{id}` is damaged")))?;
            lags.insert(id, Ring { values: batch.column(0).clone(), times });
        }
        Ok(())
    }
}

#[derive(Debug)]
struct LagFunction {
    state: Arc<LagState>,
    signature: Signature,
}

impl PartialEq for LagFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}
impl Eq for LagFunction {}
impl Hash for LagFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.state), state)
    }
}

fn plan_error(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

fn scalar_argument<'a>(args: &'a [ColumnarValue], i: usize, what: &str) -> DfResult<&'a ScalarValue> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(s)) if !s.is_null() => Ok(s),
        _ => Err(plan_error(format!("{LAG_FUNCTION}(): argument {} ({what}) must be a constant", i + 1))),
    }
}

/// A time or a number as milliseconds (sparklyr's rule: numbers are
/// milliseconds since the epoch).
fn as_ms(column: &ArrayRef) -> DfResult<Int64Array> {
    let ms = match column.data_type() {
        DataType::Timestamp(_, tz) => cast(column, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))?,
        DataType::Date32 => {
            let days = cast(column, &DataType::Int64)?;
            let days = days.as_primitive::<Int64Type>();
            return Ok(days.unary(|d| d * 86_400_000));
        }
        DataType::Date64 => column.clone(),
        t if t.is_numeric() => column.clone(),
        other => return Err(plan_error(format!("`thresholds` columns must be times, dates or numbers, not {other}"))),
    };
    Ok(cast(&ms, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

impl ScalarUDFImpl for LagFunction {
    fn name(&self) -> &str {
        LAG_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if arg_types.len() < 3 || arg_types.len() % 2 == 0 {
            return Err(plan_error(format!("{LAG_FUNCTION}(id, column, offset, [time, max_ms]...): wrong number of arguments")));
        }
        for t in arg_types[3..].iter().step_by(2) {
            if !(t.is_temporal() || t.is_numeric() || t == &DataType::Null) {
                return Err(plan_error(format!("`thresholds` columns must be times, dates or numbers, not {t}")));
            }
        }
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let id = scalar_argument(&args.args, 0, "the lag's id")?.to_string();
        let offset = match scalar_argument(&args.args, 2, "the offset")?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(k)) if k >= 1 => k as usize,
            other => return Err(plan_error(format!("a lag's offset must be a positive integer, not {other}"))),
        };
        let values = args.args[1].to_array(n)?;
        let mut times = Vec::new();
        let mut limits = Vec::new();
        for pair in args.args[3..].chunks(2) {
            times.push(as_ms(&pair[0].to_array(n)?)?);
            limits.push(match &pair[1] {
                ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                    ScalarValue::Int64(Some(ms)) => ms,
                    other => return Err(plan_error(format!("a threshold must be a number of milliseconds, not {other}"))),
                },
                ColumnarValue::Array(_) => return Err(plan_error("a threshold must be a constant".into())),
            });
        }

        let mut lags = self.state.lags();
        let ring = lags.entry(id).or_insert_with(|| Ring {
            values: new_empty_array(values.data_type()),
            times: times.iter().map(|_| Int64Array::from(Vec::<i64>::new())).collect(),
        });
        if ring.values.data_type() != values.data_type() || ring.times.len() != times.len() {
            return Err(DataFusionError::Execution("a lag's kept rows do not match its column (was the pipeline changed?)".into()));
        }
        // Earlier rows, then this chunk's: row i's value is `offset` rows back.
        let kept = ring.values.len();
        let all_values = concat(&[ring.values.as_ref(), values.as_ref()])?;
        let back: UInt32Array = (0..n).map(|i| (i + kept).checked_sub(offset).map(|j| j as u32)).collect();
        let mut lagged = take(&all_values, &back, None)?;
        let mut all_times = Vec::with_capacity(times.len());
        for ((now, before), limit) in times.iter().zip(&ring.times).zip(&limits) {
            let all = concat(&[before as &dyn Array, now as &dyn Array])?.as_primitive::<Int64Type>().clone();
            let too_old: BooleanArray = (0..n)
                .map(|i| {
                    let recent = back.is_valid(i)
                        && now.is_valid(i)
                        && all.is_valid(back.value(i) as usize)
                        && now.value(i).saturating_sub(all.value(back.value(i) as usize)) <= *limit;
                    Some(!recent)
                })
                .collect();
            lagged = nullif(&lagged, &too_old)?;
            all_times.push(all);
        }
        let keep_from = all_values.len().saturating_sub(offset);
        let keep = all_values.len() - keep_from;
        ring.values = all_values.slice(keep_from, keep);
        ring.times = all_times.iter().map(|t| t.slice(keep_from, keep)).collect();
        Ok(ColumnarValue::Array(lagged))
    }
}

/// Optimizer rules (DataFusion's names) that move or copy expressions across
/// the projection that holds a lag.
const REORDERING_RULES: &[&str] = &["push_down_filter", "optimize_projections", "FilterPushdown", "FilterPushdown(Post)", "ProjectionPushdown"];

/// `state` without the rules that could move a filter across a lag or
/// evaluate it twice (see the module docs); the others stay.
pub fn without_reordering(state: datafusion::execution::context::SessionState) -> datafusion::execution::context::SessionState {
    let logical = datafusion::optimizer::Optimizer::new().rules.into_iter().filter(|r| !REORDERING_RULES.contains(&r.name())).collect();
    let physical = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| !REORDERING_RULES.contains(&r.name()))
        .collect();
    datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(logical)
        .with_physical_optimizer_rules(physical)
        .build()
}

/// A lag runs on the stream's rows, in the order they are read: not on an
/// aggregation's result (the whole table again at every batch) nor after a
/// join (whose output order is the join's).
pub fn check_placement(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut problem = None;
    let _ = plan.apply(|node| {
        if node_has_lag(node) {
            let mut below = None;
            for input in node.inputs() {
                let _ = input.apply(|n| {
                    below = match n {
                        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => Some("an aggregation"),
                        LogicalPlan::Join(_) => Some("a join"),
                        _ => return Ok(TreeNodeRecursion::Continue),
                    };
                    Ok(TreeNodeRecursion::Stop)
                });
            }
            if below.is_some() {
                problem = below;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match problem {
        None => Ok(()),
        Some(what) => Err(Error::config("x", format!("`stream_lag()` can't come after {what}: it lags the stream's rows in the order they are read"))
            .with_hint("call stream_lag() before summarise(), count() or a join")),
    }
}

fn node_has_lag(node: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = node.apply_expressions(|e| {
        e.apply(|e| {
            if matches!(e, datafusion::logical_expr::Expr::ScalarFunction(f) if f.func.name() == LAG_FUNCTION) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    found
}

/// Does the plan call `stream_lag()`'s function?
pub fn has_lag(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = node_has_lag(node);
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};

    fn call(state: &Arc<LagState>, values: ArrayRef, offset: i64, thresholds: Vec<(ArrayRef, i64)>) -> ArrayRef {
        let f = state.function();
        let n = values.len();
        let mut args = vec![
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("lag".into()))),
            ColumnarValue::Array(values),
            ColumnarValue::Scalar(ScalarValue::Int64(Some(offset))),
        ];
        for (t, ms) in thresholds {
            args.push(ColumnarValue::Array(t));
            args.push(ColumnarValue::Scalar(ScalarValue::Int64(Some(ms))));
        }
        let arg_fields = args.iter().map(|a| Arc::new(Field::new("a", a.data_type(), true))).collect();
        let return_field = Arc::new(Field::new("lag", args[1].data_type(), true));
        let out = f
            .invoke_with_args(ScalarFunctionArgs { args, arg_fields, number_rows: n, return_field, config_options: Default::default() })
            .unwrap();
        out.to_array(n).unwrap()
    }

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        a.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()
    }

    /// The lag of the whole input, however it is cut in chunks (and saved
    /// and restored between them), is the lag computed in one go.
    #[test]
    fn lag_carries_across_chunks_and_restores() {
        let input: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
        let expected: Vec<Option<String>> = (0..50).map(|i| if i >= 3 { Some(format!("v{}", i - 3)) } else { None }).collect();
        for cut in [1, 2, 3, 7, 50] {
            let mut state = Arc::new(LagState::default());
            let mut got = Vec::new();
            for (c, chunk) in input.chunks(cut).enumerate() {
                if c % 2 == 1 {
                    // As at a restart: a new state from the saved one.
                    let saved = state.save().unwrap();
                    state = Arc::new(LagState::default());
                    state.restore(saved).unwrap();
                }
                let values: ArrayRef = Arc::new(StringArray::from(chunk.to_vec()));
                got.extend(strings(&call(&state, values, 3, vec![])));
            }
            assert_eq!(got, expected, "chunks of {cut}");
        }
    }

    /// sparklyr's test: weekdays with `x` as the time and a threshold of 1.
    #[test]
    fn threshold_makes_old_values_na() {
        let state = Arc::new(LagState::default());
        let days: ArrayRef = Arc::new(StringArray::from(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]));
        let x: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 2, 3, 3, 3, 6]));
        let one = strings(&call(&state, days.clone(), 1, vec![(x.clone(), 1)]));
        let two = strings(&call(&Arc::new(LagState::default()), days, 2, vec![(x, 1)]));
        let s = |v: &[Option<&str>]| v.iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>();
        assert_eq!(one, s(&[None, Some("Mon"), Some("Tue"), Some("Wed"), Some("Thu"), Some("Fri"), None]));
        assert_eq!(two, s(&[None, None, Some("Mon"), None, Some("Wed"), Some("Thu"), None]));
    }

    #[test]
    fn times_compare_in_milliseconds_and_missing_times_give_na() {
        let state = Arc::new(LagState::default());
        let values: ArrayRef = Arc::new(Int64Array::from(vec![10, 20, 30, 40]));
        let t: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(0), Some(1000), None, Some(2500)]));
        let got = call(&state, values, 1, vec![(t, 1000)]);
        let got: Vec<Option<i64>> = got.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(got, vec![None, Some(10), None, None]);
    }
}
