//! Delta tables (through delta-rs, `deltalake-core`): a table as a stream
//! source, and a table as a stream sink.
//!
//! The runtime model:
//! - **Sink** ([`sink::DeltaSink`]). A micro-batch's rows are written as
//!   parquet files by delta-rs's writer (partitioned by the table's
//!   partition columns), and the batch is one Delta commit (operation
//!   `STREAMING UPDATE`, as Spark's) that adds them together with a
//!   transaction identifier: `txn` with the query id as `appId` and the
//!   batch id as `version`. The table's log is the record: a batch replayed
//!   after a crash finds its `txn` there and writes nothing twice, and
//!   a crash before the commit leaves files no reader sees (Delta's
//!   `VACUUM` removes them). `mode = "complete"` commits each batch's
//!   result with the removal of every file the table had. A table that
//!   does not exist is created with the stream's columns and `partition_by`.
//! - **Source** ([`source::DeltaSource`]). Spark's Delta source: the first
//!   batch reads the table as it is (a snapshot of its latest version, or
//!   from `startingVersion` on), then each trigger reads the files that the
//!   versions committed since added, up to `maxFilesPerTrigger` at a time.
//!   A position is Spark's `{"reservoirVersion": v, "index": i,
//!   "isStartingVersion": b}`: the last file read, which a version's log
//!   fixes for good, so a batch run again reads the same files. A version
//!   that removes data fails the stream unless `ignoreDeletes`,
//!   `ignoreChanges` or `skipChangeCommits` says what to do (Spark's rule).
//!   Files are read by the engine's parquet reader; tables that need more
//!   to be read right (column mapping, deletion vectors) are refused with
//!   an error that says so.
//!
//! delta-rs is async; the engine's query threads are blocking threads of
//! its tokio runtime, so each call is run to its end there
//! ([`crate::transform::block_on`]).

pub(crate) mod sink;
pub(crate) mod source;
#[cfg(test)]
mod tests;

use std::path::Path;

use deltalake_core::kernel::transaction::TransactionError;
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use crate::error::{Error, Result};
use crate::transform::block_on;

/// `path` as the URL delta-rs opens.
fn table_url(dir: &Path) -> Result<url::Url> {
    url::Url::from_directory_path(dir)
        .map_err(|_| Error::config("path", format!("`{}` is not an absolute local path", dir.display())))
}

/// The table at `dir` (at `version`, or its latest), or `None` when there is no table there.
pub(crate) fn open(dir: &Path, version: Option<i64>) -> Result<Option<DeltaTable>> {
    if !dir.join("_delta_log").is_dir() {
        return Ok(None);
    }
    let mut builder = DeltaTableBuilder::from_url(table_url(dir)?).map_err(delta_error)?;
    if let Some(v) = version {
        builder = builder.with_version(v as u64);
    }
    match block_on(builder.load()) {
        Ok(table) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(delta_error(e)),
    }
}

/// delta-rs's error as ours, by its variant: a missing or unusable table
/// is the user's to fix (`path`); storage hiccups and commit races are
/// retried; the rest fails the stream.
pub(crate) fn delta_error(e: DeltaTableError) -> Error {
    use deltalake_core::ObjectStoreError as Store;
    let message = format!("Delta: {e}");
    // Only the store's own failures (I/O, a busy disk) can pass with time.
    let retriable_store = |s: &Store| matches!(s, Store::Generic { .. });
    match &e {
        DeltaTableError::NotATable(_)
        | DeltaTableError::InvalidTableLocation(_)
        | DeltaTableError::UnsupportedColumnMapping { .. }
        | DeltaTableError::MissingFeature { .. }
        | DeltaTableError::NoSchema => Error::config("path", message),
        DeltaTableError::SchemaMismatch { .. } => Error::config("x", message),
        DeltaTableError::ObjectStore { source } if retriable_store(source) => Error::execution(message).retriable(),
        DeltaTableError::Io { source } => crate::file::io_error("use", Path::new("the Delta table"), source),
        DeltaTableError::VersionAlreadyExists(_) => Error::execution(message).retriable(),
        DeltaTableError::Transaction { source } => match source {
            TransactionError::VersionAlreadyExists(_)
            | TransactionError::CommitConflict(_)
            | TransactionError::MaxCommitAttempts(_) => Error::execution(message).retriable(),
            TransactionError::ObjectStore { source } if retriable_store(source) => Error::execution(message).retriable(),
            _ => Error::execution(message),
        },
        _ => Error::execution(message),
    }
}

/// The table's columns (Arrow) and partition columns. Refuses what the
/// engine can't read right: column mapping (the files hold other names).
fn table_schema(table: &DeltaTable) -> Result<(arrow::datatypes::SchemaRef, Vec<String>)> {
    let snapshot = table.snapshot().map_err(delta_error)?;
    let mapping = snapshot.metadata().configuration().get("delta.columnMapping.mode");
    if mapping.is_some_and(|m| !m.eq_ignore_ascii_case("none")) {
        return Err(Error::config("path", "this Delta table uses column mapping, which streamlyr can't read yet"));
    }
    let partitions = snapshot.metadata().partition_columns().to_vec();
    Ok((snapshot.snapshot().arrow_schema(), partitions))
}
