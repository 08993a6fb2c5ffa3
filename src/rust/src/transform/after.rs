//! What a pipeline does after its aggregation (`filter()` on a summary,
//! `mutate()`, `select()`, `arrange()`, `head()`), applied to the result
//! table each trigger. These steps are few and small, so they run as
//! DataFusion physical expressions over the batch, without a plan.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::{filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, create_physical_sort_exprs, PhysicalExpr, PhysicalSortExpr};

use super::{df_error, unsupported};
use crate::error::{Error, Result};

pub enum AfterStep {
    Project { exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef },
    Filter(Arc<dyn PhysicalExpr>),
    Sort { exprs: Vec<PhysicalSortExpr>, fetch: Option<usize> },
    Limit { skip: usize, fetch: Option<usize> },
}

impl AfterStep {
    /// The step for one plan node above the aggregation; `complete` says
    /// whether the whole result is written each time (only then do order
    /// and limits mean anything).
    pub fn new(node: &LogicalPlan, props: &ExecutionProps, complete: bool) -> Result<Option<AfterStep>> {
        let ctx = PhysicalPlanningContext::default();
        let input_schema = || node.inputs()[0].schema().clone();
        Ok(Some(match node {
            LogicalPlan::SubqueryAlias(_) => return Ok(None),
            LogicalPlan::Projection(p) => AfterStep::Project {
                exprs: p
                    .expr
                    .iter()
                    .map(|e| create_physical_expr(e, &input_schema(), props, &ctx))
                    .collect::<datafusion::error::Result<_>>()
                    .map_err(df_error)?,
                schema: Arc::new(p.schema.as_arrow().clone()),
            },
            LogicalPlan::Filter(f) if f.predicate.exists(|e| Ok(matches!(e, Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_)))).unwrap_or(true) => {
                return Err(unsupported("a join after an aggregation"))
            }
            LogicalPlan::Filter(f) => {
                AfterStep::Filter(create_physical_expr(&f.predicate, &input_schema(), props, &ctx).map_err(df_error)?)
            }
            LogicalPlan::Sort(s) if complete => AfterStep::Sort {
                exprs: create_physical_sort_exprs(&s.expr, &input_schema(), props, &ctx).map_err(df_error)?,
                fetch: s.fetch,
            },
            LogicalPlan::Limit(l) if complete => {
                let skip = match l.get_skip_type().map_err(df_error)? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => return Err(unsupported("a computed offset")),
                };
                let fetch = match l.get_fetch_type().map_err(df_error)? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => return Err(unsupported("a computed limit")),
                };
                AfterStep::Limit { skip, fetch }
            }
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => {
                return Err(Error::config(
                    "mode",
                    "`arrange()` and `head()` after an aggregation need `mode = \"complete\"`: in `update` mode only changed groups are written",
                ))
            }
            other => return Err(unsupported(&format!("`{}` after an aggregation", other.display()))),
        }))
    }

    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let eval = |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> {
            e.evaluate(&batch).and_then(|v| v.into_array(rows)).map_err(df_error)
        };
        let fail = |e: arrow::error::ArrowError| Error::config("x", e.to_string());
        match self {
            AfterStep::Project { exprs, schema } => {
                let columns = exprs.iter().map(eval).collect::<Result<Vec<_>>>()?;
                RecordBatch::try_new(schema.clone(), columns).map_err(fail)
            }
            AfterStep::Filter(predicate) => {
                let keep = eval(predicate)?;
                filter_record_batch(&batch, keep.as_boolean()).map_err(fail)
            }
            AfterStep::Sort { exprs, fetch } => {
                let columns = exprs
                    .iter()
                    .map(|s| Ok(SortColumn { values: eval(&s.expr)?, options: Some(s.options) }))
                    .collect::<Result<Vec<_>>>()?;
                let order = lexsort_to_indices(&columns, *fetch).map_err(fail)?;
                take_record_batch(&batch, &order).map_err(fail)
            }
            AfterStep::Limit { skip, fetch } => {
                let start = (*skip).min(rows);
                let len = fetch.map_or(rows - start, |f| f.min(rows - start));
                Ok(batch.slice(start, len))
            }
        }
    }
}
