//! A Delta table as a stream: its files in the order its versions added
//! them (see the module docs for Spark's rules kept here).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake_core::kernel::Action;
use deltalake_core::logstore::LogStore as _;
use deltalake_core::DeltaTable;
use serde::{Deserialize, Serialize};

use super::{delta_error, open, table_schema};
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::file::options::local_path;
use crate::file::schema::readable;
use crate::kafka::config::{parse_bool, parse_positive, Options};
use crate::source::{Positions, Source};
use crate::transform::block_on;

/// Spark's `DeltaSourceOffset`: the last file read, as (version, index in
/// that version's files); `isStartingVersion` when the file belongs to the
/// table as it was at the start (a snapshot), not to a version's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaOffset {
    pub source_version: u32,
    pub reservoir_id: String,
    pub reservoir_version: i64,
    pub index: i64,
    pub is_starting_version: bool,
}

impl DeltaOffset {
    fn order(&self) -> (i64, bool, i64) {
        // A snapshot's files come before the changes of its own version's successors.
        (self.reservoir_version, !self.is_starting_version, self.index)
    }
}

/// What a version that removes data does to the stream (Spark's options).
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnRemove {
    Fail,
    /// `ignoreDeletes`: versions that only remove are skipped.
    IgnoreDeletes,
    /// `ignoreChanges`: removes are ignored, rewritten files read again.
    IgnoreChanges,
    /// `skipChangeCommits`: versions that remove anything are skipped whole.
    SkipChangeCommits,
}

#[derive(Debug, Clone, PartialEq)]
enum Start {
    /// The table as it is when the query starts, then its changes.
    Snapshot,
    /// Changes from this version on.
    Version(i64),
    /// Changes after the version the query starts at.
    Latest,
}

#[derive(Debug, Clone)]
pub(crate) struct DeltaSourceOptions {
    start: Start,
    max_files_per_trigger: usize,
    max_bytes_per_trigger: Option<u64>,
    on_remove: OnRemove,
}

impl DeltaSourceOptions {
    fn parse(options: &Options) -> Result<Self> {
        let mut on_remove = OnRemove::Fail;
        if parse_bool(options, "ignoreDeletes", false)? {
            on_remove = OnRemove::IgnoreDeletes;
        }
        if parse_bool(options, "ignoreChanges", false)? {
            on_remove = OnRemove::IgnoreChanges;
        }
        if parse_bool(options, "skipChangeCommits", false)? {
            on_remove = OnRemove::SkipChangeCommits;
        }
        let start = match options.get("startingVersion").map(|v| v.trim()) {
            None => Start::Snapshot,
            Some(v) if v.eq_ignore_ascii_case("latest") => Start::Latest,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Start::Version(n),
                _ => return Err(Error::option("startingVersion", format!("`startingVersion` must be a version number or \"latest\", not \"{v}\""))),
            },
        };
        for key in options.keys() {
            let known = ["ignoreDeletes", "ignoreChanges", "skipChangeCommits", "startingVersion", "maxFilesPerTrigger", "maxBytesPerTrigger"];
            if !known.contains(&key.as_str()) {
                return Err(Error::option(key, format!("`{key}` is not an option of the Delta source"))
                    .with_hint(format!("the Delta source takes {}", known.map(|k| format!("`{k}`")).join(", "))));
            }
        }
        let max_bytes_per_trigger = options.get("maxBytesPerTrigger").map(|b| parse_bytes(b)).transpose()?;
        // Spark's default of 1000 files applies only without a byte limit.
        let default_files = if max_bytes_per_trigger.is_some() { usize::MAX } else { 1000 };
        Ok(DeltaSourceOptions {
            start,
            max_files_per_trigger: parse_positive(options, "maxFilesPerTrigger")?.map_or(default_files, |n| n as usize),
            max_bytes_per_trigger,
            on_remove,
        })
    }
}

/// `1048576`, `512k`, `10m`, `1g` (Spark's byte strings).
fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && scale > 0 => Ok(n.saturating_mul(scale)),
        _ => Err(Error::option("maxBytesPerTrigger", format!("`maxBytesPerTrigger` must be a size such as \"10m\" or \"1g\", not \"{text}\""))),
    }
}

/// A Delta source as planned: the table's columns read, nothing else.
pub(crate) struct DeltaSourcePlan {
    pub dir: PathBuf,
    options: DeltaSourceOptions,
    pub schema: SchemaRef,
    partitions: Vec<String>,
}

impl DeltaSourcePlan {
    pub fn new(path: &str, options: &Options) -> Result<Self> {
        let options = DeltaSourceOptions::parse(options)?;
        let dir = local_path(path, "path")?;
        let table = open(&dir, None)?.ok_or_else(|| not_a_table(&dir))?;
        let (schema, partitions) = table_schema(&table)?;
        // The engine's types (times as UTC instants, as every source gives them).
        let fields: Vec<Field> = schema.fields().iter().map(|f| Field::new(f.name(), readable(f.data_type()), true)).collect();
        Ok(DeltaSourcePlan { dir, options, schema: Arc::new(Schema::new(fields)), partitions })
    }
}

fn not_a_table(dir: &std::path::Path) -> Error {
    Error::config("path", format!("`{}` is not a Delta table.", dir.display()))
        .with_hint("a Delta table is a folder with a `_delta_log` folder, e.g. written by stream_write_delta()")
}

/// A data file a version added (or the starting snapshot has).
#[derive(Debug, Clone)]
struct DataFile {
    /// Decoded, relative to the table's folder (or absolute).
    path: String,
    size: i64,
    partition_values: HashMap<String, Option<String>>,
}

pub(crate) struct DeltaSource {
    dir: PathBuf,
    options: DeltaSourceOptions,
    schema: SchemaRef,
    /// The columns the data files hold (all but the partition columns).
    file_schema: SchemaRef,
    partitions: Vec<String>,
    table: Option<DeltaTable>,
    reservoir_id: String,
    /// The files of a starting snapshot, by version.
    snapshots: BTreeMap<i64, Arc<Vec<DataFile>>>,
    /// The files each version added (after `on_remove`); versions never change.
    versions: BTreeMap<i64, Arc<Vec<DataFile>>>,
}

impl DeltaSource {
    pub fn new(plan: DeltaSourcePlan) -> Self {
        let fields: Vec<_> = plan.schema.fields().iter().filter(|f| !plan.partitions.contains(f.name())).cloned().collect();
        DeltaSource {
            dir: plan.dir,
            options: plan.options,
            file_schema: Arc::new(Schema::new(fields)),
            schema: plan.schema,
            partitions: plan.partitions,
            table: None,
            reservoir_id: String::new(),
            snapshots: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    fn table(&mut self) -> Result<&mut DeltaTable> {
        self.table.as_mut().ok_or_else(|| Error::internal("the Delta source is not connected"))
    }

    /// The table's latest version, from a listing of its log (no state loaded).
    fn latest_version(&mut self) -> Result<i64> {
        let table = self.table()?;
        Ok(block_on(table.get_latest_version()).map_err(delta_error)? as i64)
    }

    fn offset(&self, version: i64, index: i64, starting: bool) -> DeltaOffset {
        DeltaOffset { source_version: 1, reservoir_id: self.reservoir_id.clone(), reservoir_version: version, index, is_starting_version: starting }
    }

    fn snapshot_files(&mut self, version: i64) -> Result<Arc<Vec<DataFile>>> {
        if let Some(files) = self.snapshots.get(&version) {
            return Ok(files.clone());
        }
        let table = open(&self.dir, Some(version))?.ok_or_else(|| not_a_table(&self.dir))?;
        let snapshot = table.snapshot().map_err(delta_error)?;
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return Err(deletion_vectors(version));
            }
            let file = DataFile { path: f.path().into_owned(), size: f.size(), partition_values: f.partition_values_map() };
            files.push((f.modification_time(), file));
        }
        // Spark's order for a snapshot: by modification time, then path.
        files.sort_by(|a, b| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)));
        let files = Arc::new(files.into_iter().map(|(_, f)| f).collect::<Vec<_>>());
        self.snapshots.insert(version, files.clone());
        Ok(files)
    }

    /// The files version `version` added with new data, by Spark's rules for removes.
    fn version_files(&mut self, version: i64) -> Result<Arc<Vec<DataFile>>> {
        if let Some(files) = self.versions.get(&version) {
            return Ok(files.clone());
        }
        let log_store = self.table()?.log_store();
        let bytes = block_on(log_store.read_commit_entry(version as u64)).map_err(delta_error)?.ok_or_else(|| {
            Error::execution(format!("version {version} of the Delta table is gone from its log (cleaned up?); the stream can't go on from there"))
                .with_hint("restart the stream with a new checkpoint (and `startingVersion`)")
        })?;
        let actions = deltalake_core::logstore::get_actions(version as u64, &bytes).map_err(delta_error)?;
        let mut added = Vec::new();
        let mut removed = None;
        for action in actions {
            match action {
                Action::Add(add) if add.data_change => {
                    if add.deletion_vector.is_some() {
                        return Err(deletion_vectors(version));
                    }
                    // delta-rs decodes the log's paths as it reads them.
                    added.push(DataFile { path: add.path, size: add.size, partition_values: add.partition_values });
                }
                Action::Remove(remove) if remove.data_change => removed = removed.or(Some(remove.path)),
                Action::Metadata(metadata) => {
                    let changed = metadata
                        .parse_schema()
                        .ok()
                        .and_then(|s| {
                            let arrow: std::result::Result<arrow::datatypes::Schema, _> = (&s).try_into_arrow();
                            arrow.ok()
                        })
                        .is_none_or(|s| {
                            s.fields().len() != self.schema.fields().len()
                                || s.fields().iter().zip(self.schema.fields()).any(|(a, b)| a.name() != b.name() || &readable(a.data_type()) != b.data_type())
                        });
                    if changed {
                        return Err(Error::execution(format!("the Delta table's columns changed at version {version}"))
                            .with_hint("restart the stream (a new checkpoint) to read the table with its new columns"));
                    }
                }
                _ => {}
            }
        }
        let files = match (removed, self.options.on_remove) {
            (None, _) | (Some(_), OnRemove::IgnoreChanges) => added,
            (Some(_), OnRemove::SkipChangeCommits) => Vec::new(),
            (Some(_), OnRemove::IgnoreDeletes) if added.is_empty() => Vec::new(),
            (Some(path), OnRemove::IgnoreDeletes) => {
                return Err(Error::execution(format!(
                    "Detected a data update (for example {path}) in the source table at version {version}. This is currently not supported."
                ))
                .with_hint("set the option `skipChangeCommits` to \"true\" to skip such versions, or `ignoreChanges` to read their new files (rows may come again)"))
            }
            (Some(path), OnRemove::Fail) => {
                let what = if added.is_empty() { "deleted data" } else { "a data update" };
                return Err(Error::execution(format!(
                    "Detected {what} (for example {path}) in the source table at version {version}. This is currently not supported."
                ))
                .with_hint("set the option `ignoreDeletes` (versions that only delete), `skipChangeCommits` or `ignoreChanges` to \"true\""));
            }
        };
        let files = Arc::new(files);
        self.versions.insert(version, files.clone());
        Ok(files)
    }

    /// The files after `start`, in order, up to `until` (included) or, without
    /// it, up to the trigger's limits.
    fn files_after(&mut self, start: &DeltaOffset, until: Option<&DeltaOffset>) -> Result<Vec<(DeltaOffset, DataFile)>> {
        let latest = match until {
            Some(end) => end.reservoir_version,
            None => self.latest_version()?,
        };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let full = |out: &Vec<(DeltaOffset, DataFile)>, bytes: u64, options: &DeltaSourceOptions| {
            until.is_none()
                && (out.len() >= options.max_files_per_trigger || options.max_bytes_per_trigger.is_some_and(|max| bytes >= max))
        };
        let take = |offset: DeltaOffset, file: &DataFile, out: &mut Vec<(DeltaOffset, DataFile)>, bytes: &mut u64| -> bool {
            if offset.order() <= start.order() {
                return true;
            }
            if until.is_some_and(|end| offset.order() > end.order()) {
                return false;
            }
            *bytes += file.size.max(0) as u64;
            out.push((offset, file.clone()));
            true
        };
        let mut version = start.reservoir_version;
        if start.is_starting_version {
            for (i, file) in self.snapshot_files(version)?.iter().enumerate() {
                if full(&out, bytes, &self.options) || !take(self.offset(version, i as i64, true), file, &mut out, &mut bytes) {
                    return Ok(out);
                }
            }
            version += 1;
        }
        while version <= latest {
            for (i, file) in self.version_files(version)?.iter().enumerate() {
                if full(&out, bytes, &self.options) || !take(self.offset(version, i as i64, false), file, &mut out, &mut bytes) {
                    return Ok(out);
                }
            }
            version += 1;
        }
        Ok(out)
    }

    fn delta_offset(p: &Positions) -> Result<&DeltaOffset> {
        match p {
            Positions::Delta(offset) => Ok(offset),
            other => Err(Error::checkpoint(format!("the checkpoint's position {other:?} is not a Delta source's"))),
        }
    }

    /// One data file's rows: the file's columns, then the partition values
    /// its log entry gives, in the table's column order.
    fn read_file(&self, file: &DataFile, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let path = if file.path.starts_with('/') { PathBuf::from(&file.path) } else { self.dir.join(&file.path) };
        crate::file::format::read_parquet(&path, &self.file_schema, &mut |data| {
            let n = data.num_rows();
            let columns = self
                .schema
                .fields()
                .iter()
                .map(|f| {
                    if !self.partitions.contains(f.name()) {
                        return Ok(data.column_by_name(f.name()).cloned().expect("the file schema has it"));
                    }
                    let value = file.partition_values.get(f.name()).cloned().flatten();
                    let text: ArrayRef = Arc::new(StringArray::from(vec![value; n]));
                    Ok(match f.data_type() {
                        arrow::datatypes::DataType::Utf8 => text,
                        t if n > 0 => cast(&text, t)?,
                        t => new_null_array(t, 0),
                    })
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            emit(RecordBatch::try_new(self.schema.clone(), columns)?)
        })?;
        Ok(())
    }
}

/// Spark's `END_INDEX`: past every file of a version.
const END_INDEX: i64 = i64::MAX;

fn deletion_vectors(version: i64) -> Error {
    Error::execution(format!("version {version} of the Delta table has deletion vectors, which streamlyr can't read yet"))
}

impl Source for DeltaSource {
    fn describe(&self) -> String {
        format!("Delta table {}", self.dir.display())
    }

    fn identity(&self) -> String {
        format!("delta[{}]", self.dir.display())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn connect(&mut self, _status: &SharedStatus) -> Result<()> {
        let table = open(&self.dir, None)?.ok_or_else(|| not_a_table(&self.dir))?;
        self.reservoir_id = table.snapshot().map_err(delta_error)?.metadata().id().to_string();
        self.table = Some(table);
        Ok(())
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        let latest = self.latest_version()?;
        let offset = match self.options.start.clone() {
            Start::Snapshot => self.offset(latest, -1, true),
            Start::Latest => self.offset(latest + 1, -1, false),
            Start::Version(v) if v <= latest => self.offset(v, -1, false),
            Start::Version(v) => {
                return Err(Error::option(
                    "startingVersion",
                    format!("Cannot time travel Delta table to version {v}. Available versions: [0, {latest}]."),
                ))
            }
        };
        Ok(Positions::Delta(offset))
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        let from = Self::delta_offset(start)?.clone();
        if !self.reservoir_id.is_empty() && from.reservoir_id != self.reservoir_id {
            return Err(Error::checkpoint(format!(
                "the checkpoint was written for another Delta table (id {}; this one is {})",
                from.reservoir_id, self.reservoir_id
            )));
        }
        let files = self.files_after(&from, None)?;
        if let Some((end, _)) = files.last() {
            return Ok(Some((start.clone(), Positions::Delta(end.clone()))));
        }
        // Whole versions without new data (compactions, skipped changes,
        // metadata): past them with an empty batch, as Spark does, so that
        // a restart does not read them again (nor find them cleaned up).
        let latest = self.latest_version()?;
        if latest > from.reservoir_version {
            return Ok(Some((start.clone(), Positions::Delta(self.offset(latest, END_INDEX, false)))));
        }
        Ok(None)
    }

    fn committed(&mut self, end: &Positions, _status: &SharedStatus) {
        // What no later batch reads again.
        if let Positions::Delta(end) = end {
            let done = if end.is_starting_version { end.reservoir_version - 1 } else { end.reservoir_version };
            self.versions.retain(|v, _| *v >= done);
            self.snapshots.retain(|v, _| *v >= end.reservoir_version && end.is_starting_version);
        }
    }

    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (from, to) = (Self::delta_offset(start)?.clone(), Self::delta_offset(end)?.clone());
        for (_, file) in self.files_after(&from, Some(&to))? {
            stop.check_abort()?;
            self.read_file(&file, emit)?;
        }
        Ok(())
    }
}
