//! Stream-static joins: a table of the connection (`copy_to()`, or a memory
//! table) that a pipeline joins its stream with. Each micro-batch joins its
//! new rows with the table as it is when the batch begins (Spark's rule);
//! `copy_to(..., overwrite = TRUE)` is seen from the next batch on.
//!
//! Spark's support matrix, stream on the left: inner, left outer, left semi
//! and left anti joins are stateless and supported; right and full outer
//! joins, and a stream on the right, are errors with Spark's wording.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, ExprSchemable, Join, LogicalPlan, Operator};

use super::batch_table::BatchTable;
use crate::error::{Error, Result};
use crate::sink::memory::Tables;

/// A table of the connection as one pipeline reads it.
pub struct StaticTable {
    name: String,
    /// The columns the pipeline was planned with.
    schema: SchemaRef,
    tables: Arc<Tables>,
    /// What the pipeline's SQL scans: the rows this batch joins with.
    rows: Arc<BatchTable>,
}

impl StaticTable {
    pub fn new(name: &str, schema: SchemaRef, tables: &Arc<Tables>) -> StaticTable {
        let rows = Arc::new(BatchTable::new(schema.clone()));
        StaticTable { name: name.to_string(), schema, tables: tables.clone(), rows }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider to register under the table's name.
    pub fn provider(&self) -> Arc<BatchTable> {
        self.rows.clone()
    }

    /// Take the table as it is now, for the batch that begins.
    pub fn refresh(&self) -> Result<()> {
        let table = self.tables.get(&self.name).ok_or_else(|| {
            Error::config("x", format!("the table `{}` the stream joins with is gone", self.name))
                .with_hint("copy it in again with `copy_to(sc, df, name, overwrite = TRUE)`, then restart the stream")
        })?;
        let (schema, rows) = table.snapshot();
        if schema.as_ref().is_some_and(|s| s.fields() != self.schema.fields()) {
            return Err(Error::config(
                "x",
                format!("the table `{}` the stream joins with has other columns or types than when the stream started", self.name),
            )
            .with_hint("replace it with a table of the same columns, or restart the stream"));
        }
        self.rows.replace(rows);
        Ok(())
    }
}

/// Does `plan` read the table named `name`?
/// Subqueries count: dbplyr writes `semi_join()` as `WHERE EXISTS (...)`.
pub fn reads_table(plan: &LogicalPlan, name: &str) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = matches!(node, LogicalPlan::TableScan(scan) if scan.table_name.table() == name);
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// A join is run on each micro-batch when it is in Spark's support matrix
/// for a stream and a static table, with keys of types that compare.
pub fn check_join(join: &Join, stream: &str) -> Result<()> {
    let (left, right) = (reads_table(&join.left, stream), reads_table(&join.right, stream));
    let spark = |message: &str| Err(Error::config("x", message.to_string()).with_hint(JOIN_HINT));
    if left && right {
        return spark("joins between two streams are not supported yet");
    }
    if right {
        return match join.join_type {
            JoinType::Inner | JoinType::Right => spark("a join with the stream on the right is not supported yet: put the stream on the left"),
            _ => spark("Left outer/semi/anti joins with a streaming DataFrame/Dataset on the right is not supported"),
        };
    }
    match join.join_type {
        JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => {}
        JoinType::Right => return spark("Right outer join with a streaming DataFrame/Dataset on the left is not supported"),
        JoinType::Full => return spark("Full outer joins with streaming DataFrames/Datasets are not supported"),
        other => return spark(&format!("a {other} join with a stream is not supported")),
    }
    // Keys the planner could not make an equi-join of (their types differ) stay in the filter.
    let compared = join.filter.iter().flat_map(split_conjunction).filter_map(|e| match e {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => Some((b.left.as_ref(), b.right.as_ref())),
        _ => None,
    });
    for (a, b) in join.on.iter().map(|(l, r)| (l, r)).chain(compared) {
        let (l, r) = if key_type(a, &join.left).is_some() { (a, b) } else { (b, a) };
        if let (Some(lt), Some(rt)) = (key_type(l, &join.left), key_type(r, &join.right)) {
            check_key_types(l, &lt, r, &rt)?;
        }
    }
    Ok(())
}

/// dbplyr writes `semi_join()` and `anti_join()` as `WHERE [NOT] EXISTS
/// (subquery)`: the same rules as a join, on the subquery (the table's
/// side) and on its comparisons with the stream's columns.
pub fn check_subquery_joins(predicate: &Expr, stream: &str) -> Result<()> {
    let mut subqueries = Vec::new();
    let _ = predicate.apply(|e| {
        match e {
            Expr::Exists(x) => subqueries.push(x.subquery.subquery.clone()),
            Expr::InSubquery(x) => subqueries.push(x.subquery.subquery.clone()),
            Expr::ScalarSubquery(x) => subqueries.push(x.subquery.clone()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    for plan in subqueries {
        if reads_table(&plan, stream) {
            return Err(Error::config("x", "Left outer/semi/anti joins with a streaming DataFrame/Dataset on the right is not supported")
                .with_hint(JOIN_HINT));
        }
        let mut failed = None;
        let _ = plan.apply(|node| {
            let Some(input) = node.inputs().first().map(|i| i.schema().clone()) else { return Ok(TreeNodeRecursion::Continue) };
            node.apply_expressions(|e| {
                for part in split_conjunction(e) {
                    let Expr::BinaryExpr(b) = part else { continue };
                    if b.op != Operator::Eq {
                        continue;
                    }
                    let (outer, inner) = match (key_without_casts(&b.left), key_without_casts(&b.right)) {
                        (Expr::OuterReferenceColumn(f, _), other) | (other, Expr::OuterReferenceColumn(f, _)) => (f.clone(), other),
                        _ => continue,
                    };
                    if let Ok(inner_type) = inner.get_type(&input) {
                        let outer_column = Expr::Column(Column::from_name(outer.name()));
                        if let Err(e) = check_key_types(&outer_column, outer.data_type(), inner, &inner_type) {
                            failed = Some(e);
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

fn check_key_types(l: &Expr, lt: &DataType, r: &Expr, rt: &DataType) -> Result<()> {
    if comparable(lt, rt) {
        return Ok(());
    }
    Err(Error::config("by", format!("can't join `{}` ({lt}) with `{}` ({rt}): the key types differ", key_name(l), key_name(r)))
        .with_hint("convert one side first, e.g. `mutate(id = as.character(key))` or `as.integer()`"))
}

const JOIN_HINT: &str = "a stream joins a table with inner_join(), left_join(), semi_join() or anti_join(), the stream on the left";

/// A key's type as the user wrote it, before the planner's casts; `None`
/// if it is not an expression over `side`.
fn key_type(key: &Expr, side: &LogicalPlan) -> Option<DataType> {
    let key = key_without_casts(key);
    let columns = key.column_refs();
    if columns.is_empty() || !columns.iter().all(|c| side.schema().has_column(c)) {
        return None;
    }
    key.get_type(side.schema()).ok()
}

fn key_without_casts(key: &Expr) -> &Expr {
    match key {
        Expr::Cast(c) => key_without_casts(&c.expr),
        Expr::TryCast(c) => key_without_casts(&c.expr),
        other => other,
    }
}

fn key_name(key: &Expr) -> String {
    match key_without_casts(key) {
        Expr::Column(c) => c.name.clone(),
        other => other.to_string(),
    }
}

fn comparable(a: &DataType, b: &DataType) -> bool {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        || matches!(t, DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8));
    a == b
        || (a.is_numeric() && b.is_numeric())
        || (text(a) && text(b))
        || (a.is_temporal() && b.is_temporal())
        || matches!(a, DataType::Null)
        || matches!(b, DataType::Null)
}
