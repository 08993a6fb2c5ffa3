//! A table a pipeline's SQL reads, whose rows are swapped under it: the
//! stream's (whatever chunk of the micro-batch is in hand) and each table
//! it joins (as it was when the batch began). The logical plan is made
//! once; only the physical plan is made again.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct BatchTable {
    schema: SchemaRef,
    current: Mutex<Vec<RecordBatch>>,
}

impl BatchTable {
    pub fn new(schema: SchemaRef) -> Self {
        BatchTable { schema, current: Mutex::new(Vec::new()) }
    }

    pub fn set(&self, chunk: RecordBatch) {
        self.replace(vec![chunk]);
    }

    pub fn replace(&self, rows: Vec<RecordBatch>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = rows;
    }

    pub fn clear(&self) {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[async_trait]
impl TableProvider for BatchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batches = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(MemorySourceConfig::try_new_exec(&[batches], self.schema.clone(), projection.cloned())?)
    }
}
