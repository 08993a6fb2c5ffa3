//! Aggregation state across micro-batches: one row of partial aggregate
//! state per group, so memory grows with the number of groups, never with
//! the number of rows.
//!
//! DataFusion aggregates each chunk in `Partial` mode (group keys + state
//! columns, e.g. sum and count for `mean()`); those rows are merged here into
//! DataFusion's own accumulators. The same partial-state layout is what the
//! checkpoint stores, so restoring is merging a saved batch.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::kernels::boolean::not;
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::GroupsAccumulatorAdapter;

use super::df_error;
use crate::error::{Error, Result};

pub struct GroupedState {
    /// Group keys first, then each aggregate's state columns.
    partial_schema: SchemaRef,
    /// The aggregation's output: group keys, then each aggregate's value.
    output_schema: SchemaRef,
    key_count: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    state_widths: Vec<usize>,
    converter: RowConverter,
    keys: Rows,
    index: HashMap<Vec<u8>, usize>,
    /// `summarise()` without `group_by()`: one group, no keys.
    global_group: bool,
    /// Groups touched since the last emit, in first-touch order.
    changed: Vec<usize>,
    is_changed: Vec<bool>,
}

fn new_accumulator(aggregate: &Arc<AggregateFunctionExpr>) -> Result<Box<dyn GroupsAccumulator>> {
    if aggregate.groups_accumulator_supported() {
        aggregate.create_groups_accumulator().map_err(df_error)
    } else {
        let aggregate = aggregate.clone();
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || aggregate.create_accumulator())))
    }
}

impl GroupedState {
    pub fn new(
        partial_schema: SchemaRef,
        output_schema: SchemaRef,
        key_count: usize,
        aggregates: Vec<Arc<AggregateFunctionExpr>>,
    ) -> Result<Self> {
        let fields = partial_schema.fields()[..key_count]
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(|e| Error::config("x", format!("can't group by these columns: {e}")))?;
        let keys = converter.empty_rows(0, 0);
        let mut state_widths = Vec::new();
        let mut accumulators = Vec::new();
        for a in &aggregates {
            state_widths.push(a.state_fields().map_err(df_error)?.len());
            accumulators.push(new_accumulator(a)?);
        }
        Ok(GroupedState {
            partial_schema,
            output_schema,
            key_count,
            aggregates,
            accumulators,
            state_widths,
            converter,
            keys,
            index: HashMap::new(),
            global_group: false,
            changed: Vec::new(),
            is_changed: Vec::new(),
        })
    }

    pub fn partial_schema(&self) -> &SchemaRef {
        &self.partial_schema
    }

    pub fn groups(&self) -> usize {
        if self.key_count == 0 {
            self.global_group as usize
        } else {
            self.keys.num_rows()
        }
    }

    /// The group of each row of `keys`, new groups added.
    fn group_rows(&mut self, keys: &[ArrayRef], num_rows: usize) -> Result<Vec<usize>> {
        if self.key_count == 0 {
            if !self.global_group {
                self.global_group = true;
                self.is_changed.push(false);
            }
            return Ok(vec![0; num_rows]);
        }
        let rows = self.converter.convert_columns(keys).map_err(|e| Error::internal(format!("group keys: {e}")))?;
        let mut group_of_row = Vec::with_capacity(rows.num_rows());
        for row in rows.iter() {
            let group = match self.index.get(row.as_ref()) {
                Some(g) => *g,
                None => {
                    let g = self.keys.num_rows();
                    self.keys.push(row);
                    self.index.insert(row.as_ref().to_vec(), g);
                    self.is_changed.push(false);
                    g
                }
            };
            group_of_row.push(group);
        }
        Ok(group_of_row)
    }

    /// Merge rows of partial state (from a chunk, or from the checkpoint).
    pub fn merge(&mut self, partial: &RecordBatch, mark_changed: bool) -> Result<()> {
        if partial.num_rows() == 0 {
            return Ok(());
        }
        if partial.num_columns() != self.partial_schema.fields().len() {
            return Err(Error::checkpoint("the saved aggregation state does not fit this query"));
        }
        let group_of_row = self.group_rows(&partial.columns()[..self.key_count], partial.num_rows())?;
        if mark_changed {
            for &group in &group_of_row {
                if !self.is_changed[group] {
                    self.is_changed[group] = true;
                    self.changed.push(group);
                }
            }
        }
        let total = self.groups();
        let mut column = self.key_count;
        for (acc, width) in self.accumulators.iter_mut().zip(&self.state_widths) {
            acc.merge_batch(&partial.columns()[column..column + width], &group_of_row, total)
                .map_err(df_error)?;
            column += width;
        }
        Ok(())
    }

    /// Every group's partial state (what the checkpoint stores), leaving the
    /// accumulators as they were.
    pub fn snapshot(&mut self) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..self.groups()).collect();
        let mut columns = self.key_columns()?;
        for acc in &mut self.accumulators {
            // `state()` hands the state over and resets: merge it straight back.
            let state = acc.state(EmitTo::All).map_err(df_error)?;
            acc.merge_batch(&state, &all, all.len()).map_err(df_error)?;
            columns.extend(state);
        }
        RecordBatch::try_new(self.partial_schema.clone(), columns)
            .map_err(|e| Error::internal(format!("aggregation state: {e}")))
    }

    /// Final values: of every group (`complete`), or of the groups changed
    /// since the last emit (`update`).
    pub fn emit(&mut self, only_changed: bool) -> Result<RecordBatch> {
        let snapshot = self.snapshot()?;
        let chosen = if only_changed {
            let mut picked = std::mem::take(&mut self.changed);
            picked.sort_unstable();
            let indices = UInt32Array::from_iter_values(picked.iter().map(|g| *g as u32));
            let columns = snapshot
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::internal(e.to_string()))?;
            RecordBatch::try_new(snapshot.schema(), columns).map_err(|e| Error::internal(e.to_string()))?
        } else {
            self.changed.clear();
            snapshot
        };
        self.is_changed.iter_mut().for_each(|c| *c = false);
        self.finalize(&chosen)
    }

    /// The final values of some groups' partial state (rows of a snapshot).
    pub fn finalize(&self, chosen: &RecordBatch) -> Result<RecordBatch> {
        let n = chosen.num_rows();
        let positions: Vec<usize> = (0..n).collect();
        let mut columns: Vec<ArrayRef> = chosen.columns()[..self.key_count].to_vec();
        let mut column = self.key_count;
        for (aggregate, width) in self.aggregates.iter().zip(&self.state_widths) {
            let mut fresh = new_accumulator(aggregate)?;
            fresh.merge_batch(&chosen.columns()[column..column + width], &positions, n).map_err(df_error)?;
            columns.push(fresh.evaluate(EmitTo::All).map_err(df_error)?);
            column += width;
        }
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| Error::internal(format!("aggregation result: {e}")))
    }

    /// Take out the groups `pick` chooses from the group keys: their partial
    /// state is returned, and the state keeps the others. Accumulators can
    /// only hand groups over from the front, so a split rebuilds the state,
    /// only when something is picked. Which groups changed is forgotten:
    /// call it after `emit`.
    pub fn split_off(&mut self, pick: impl Fn(&[ArrayRef]) -> Result<BooleanArray>) -> Result<RecordBatch> {
        let picked = pick(&self.key_columns()?)?;
        if picked.true_count() == 0 {
            return Ok(RecordBatch::new_empty(self.partial_schema.clone()));
        }
        let snapshot = self.snapshot()?;
        let fail = |e: arrow::error::ArrowError| Error::internal(format!("splitting the aggregation state: {e}"));
        let taken = filter_record_batch(&snapshot, &picked).map_err(fail)?;
        let kept = filter_record_batch(&snapshot, &not(&picked).map_err(fail)?).map_err(fail)?;
        self.clear()?;
        self.merge(&kept, false)?;
        Ok(taken)
    }

    fn key_columns(&self) -> Result<Vec<ArrayRef>> {
        if self.key_count == 0 {
            return Ok(Vec::new());
        }
        self.converter.convert_rows(self.keys.iter()).map_err(|e| Error::internal(format!("group keys: {e}")))
    }

    /// Forget every group (before restoring a checkpointed state).
    pub fn clear(&mut self) -> Result<()> {
        self.keys = self.converter.empty_rows(0, 0);
        self.index.clear();
        self.global_group = false;
        self.changed.clear();
        self.is_changed.clear();
        self.accumulators = self.aggregates.iter().map(new_accumulator).collect::<Result<_>>()?;
        Ok(())
    }
}
