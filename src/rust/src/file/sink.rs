//! A folder as a stream's output, exactly once: see the module docs of
//! `file` for the files of a batch and the `_spark_metadata` log that
//! commits them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::format::{check_text_schema, FileWriter};
use super::io_error;
use super::listing::{escape_path_name, mtime_ms, NULL_PARTITION, SINK_LOG};
use super::log::{to_uri, MetadataLog, SinkFileStatus};
use super::options::{local_path, FileSinkOptions};
use super::schema::split_fields;
use super::Format;
use crate::checkpoint::CheckpointLog;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::kafka::config::Options;
use crate::sink::Sink;
use crate::source::Positions;

/// Which query writes a folder, kept beside its log (hidden from Spark's
/// readers, which only read files named by a batch number).
const OWNER_FILE: &str = ".streamlyr-query";

pub(crate) struct FileSinkPlan {
    pub dir: PathBuf,
    pub options: FileSinkOptions,
    pub partition_by: Vec<String>,
}

impl FileSinkPlan {
    /// Check what the sink will get (`schema`, the pipeline's output) against Spark's rules.
    pub fn new(format: &str, path: &str, options: &Options, schema: &Schema, partition_by: &[String]) -> Result<Self> {
        let options = FileSinkOptions::parse(format, options)?;
        let dir = local_path(path, "path")?;
        for p in partition_by {
            if schema.field_with_name(p).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::config("partition_by", format!("Partition column `{p}` not found in schema ({})", names.join(", "))));
            }
        }
        for p in partition_by {
            let t = schema.field_with_name(p).map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
            if matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) || super::schema::type_name(&t).is_none() {
                return Err(Error::config("partition_by", format!("Cannot use {t} for partition column `{p}`")));
            }
        }
        let data = data_schema(schema, partition_by);
        if data.fields().is_empty() {
            return Err(Error::config("partition_by", "Cannot use all columns for partition columns"));
        }
        if let Format::Text { .. } = options.format {
            check_text_schema(&data)?;
        }
        for f in data.fields() {
            let nested = matches!(f.data_type(), DataType::Struct(_) | DataType::List(_) | DataType::Map(_, _));
            if nested && matches!(options.format, Format::Csv(_)) {
                return Err(Error::config("x", format!("CSV data source does not support {} data type (column `{}`).", f.data_type(), f.name())));
            }
            if matches!(options.format, Format::Orc { .. }) && super::format::orc_type(f.data_type()).is_none() {
                return Err(super::format::orc_unsupported(f));
            }
        }
        Ok(FileSinkPlan { dir, options, partition_by: partition_by.to_vec() })
    }
}

fn data_schema(schema: &Schema, partition_by: &[String]) -> Schema {
    Schema::new(split_fields(schema, partition_by).0)
}

struct OpenFile {
    split: usize,
    /// Spark's `c000`, `c001`, ...: the file's place among those of its split.
    part: u32,
    rows: u64,
    tmp: PathBuf,
    writer: Box<dyn FileWriter>,
}

pub(crate) struct FileSink {
    dir: PathBuf,
    format: Format,
    schema: SchemaRef,
    data_schema: SchemaRef,
    partition_by: Vec<String>,
    max_records_per_file: Option<u64>,
    log: MetadataLog<SinkFileStatus>,
    /// The query id: every file name of this query is made from it.
    query_bits: (u64, u64),
    batch: u64,
    /// The batch's open files, by partition folder (`""` without partitions).
    open: BTreeMap<String, OpenFile>,
    /// Each folder's split number and the part its next file gets (a
    /// folder rolled at `maxRecordsPerFile` keeps its split).
    splits: BTreeMap<String, (usize, u32)>,
    /// Files finished, not yet synced and renamed: (tmp, final).
    finished: Vec<(PathBuf, PathBuf)>,
    /// Files in place, waiting for the batch's commit.
    entries: Vec<SinkFileStatus>,
    placed: Vec<PathBuf>,
    /// The log has this batch already: it is written again for nothing.
    skip: bool,
}

impl FileSink {
    pub fn new(plan: FileSinkPlan, schema: SchemaRef) -> Self {
        let data_schema = Arc::new(data_schema(&schema, &plan.partition_by));
        FileSink {
            log: MetadataLog::new(plan.dir.join(SINK_LOG)),
            dir: plan.dir,
            format: plan.options.format,
            schema,
            data_schema,
            partition_by: plan.partition_by,
            max_records_per_file: plan.options.max_records_per_file,
            query_bits: (0, 0),
            batch: 0,
            open: BTreeMap::new(),
            splits: BTreeMap::new(),
            finished: Vec::new(),
            entries: Vec::new(),
            placed: Vec::new(),
            skip: false,
        }
    }

    /// Spark's name: `part-<split>-<uuid>.c<part><ext>`, the uuid made of
    /// the query id (its first half, by which a restart finds this query's
    /// leftovers), the batch and the split.
    fn file_name(&self, split: usize, part: u32) -> String {
        let (high, low) = self.query_bits;
        let uuid = uuid::Uuid::from_u64_pair(high, low ^ ((self.batch << 32) | (split as u64 & 0xFFFF_FFFF)));
        format!("part-{split:05}-{uuid}.c{part:03}{}", self.format.extension())
    }

    /// Each row's partition folder (`k1=v1/k2=v2`).
    fn folders(&self, chunk: &RecordBatch) -> Result<Vec<String>> {
        let mut folders = vec![String::new(); chunk.num_rows()];
        for name in &self.partition_by {
            let values = cast(chunk.column_by_name(name).expect("checked at plan time"), &DataType::Utf8)?;
            let values = values.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
            for (i, folder) in folders.iter_mut().enumerate() {
                let value = if values.is_null(i) || values.value(i).is_empty() { NULL_PARTITION.to_string() } else { escape_path_name(values.value(i)) };
                if !folder.is_empty() {
                    folder.push('/');
                }
                folder.push_str(&format!("{}={value}", escape_path_name(name)));
            }
        }
        Ok(folders)
    }

    fn write_rows(&mut self, folder: &str, mut rows: RecordBatch) -> Result<()> {
        while rows.num_rows() > 0 {
            if !self.open.contains_key(folder) {
                let next_split = self.splits.len();
                let (split, next_part) = self.splits.entry(folder.to_string()).or_insert((next_split, 0));
                let (split, part) = (*split, *next_part);
                *next_part += 1;
                let dir = self.dir.join(folder);
                fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
                let tmp = dir.join(format!(".{}.tmp", self.file_name(split, part)));
                let file = File::create(&tmp).map_err(|e| io_error("create", &tmp, &e))?;
                let writer = self.format.writer(file, &self.data_schema)?;
                self.open.insert(folder.to_string(), OpenFile { split, part, rows: 0, tmp, writer });
            }
            let open = self.open.get_mut(folder).expect("opened above");
            let room = self.max_records_per_file.map_or(u64::MAX, |m| m - open.rows) as usize;
            let n = room.min(rows.num_rows());
            open.writer.write(&rows.slice(0, n))?;
            open.rows += n as u64;
            rows = rows.slice(n, rows.num_rows() - n);
            if self.max_records_per_file.is_some_and(|m| open.rows >= m) {
                self.finish(folder)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, folder: &str) -> Result<()> {
        let Some(open) = self.open.remove(folder) else { return Ok(()) };
        let file = open.writer.finish()?;
        file.sync_all().map_err(|e| io_error("sync", &open.tmp, &e))?;
        let name = self.file_name(open.split, open.part);
        let target = open.tmp.with_file_name(name);
        self.finished.push((open.tmp, target));
        Ok(())
    }

    /// Take the folder for this query (atomically: of two new streams only
    /// one can), or say which stream has it.
    fn claim(&self, query_id: &str) -> Result<()> {
        let owner_path = self.log.dir().join(OWNER_FILE);
        let latest = self.log.latest()?;
        let claimed = latest.is_none()
            && fs::OpenOptions::new().write(true).create_new(true).open(&owner_path).and_then(|mut f| {
                use std::io::Write;
                f.write_all(query_id.as_bytes())?;
                f.sync_all()
            })
            .is_ok();
        let owner = fs::read_to_string(&owner_path).ok().map(|s| s.trim().to_string());
        if claimed || owner.as_deref() == Some(query_id) {
            return Ok(());
        }
        Err(Error::config(
            "path",
            format!(
                "`{}` holds the output of another stream (its `{SINK_LOG}` log is at batch {}); two streams can't share one output folder",
                self.dir.display(),
                latest.map_or("-".to_string(), |n| n.to_string())
            ),
        )
        .with_hint("write to a new folder, or resume the stream that wrote it with its own `checkpoint`"))
    }

    /// What a batch in flight at a crash left of this query's files (hidden
    /// ones, and named ones its log does not name), so that readers that
    /// ignore the log find the folder as the log says.
    fn remove_leftovers(&self) -> Result<()> {
        let ours = uuid::Uuid::from_u64_pair(self.query_bits.0, 0).to_string()[..18].to_string();
        let committed: std::collections::HashSet<PathBuf> =
            super::listing::committed_files(&self.dir)?.into_iter().map(|f| f.path).collect();
        let mut folders = vec![self.dir.clone()];
        while let Some(dir) = folders.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if path.is_dir() {
                    if name.contains('=') && !name.starts_with(['.', '_']) {
                        folders.push(path);
                    }
                } else if name.contains(&ours) {
                    let hidden = name.starts_with(".part-") && name.ends_with(".tmp");
                    if hidden || (name.starts_with("part-") && !committed.contains(&path)) {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Ok(())
    }

    fn forget_batch(&mut self) {
        self.open.clear();
        self.splits.clear();
        self.finished.clear();
        self.entries.clear();
        self.placed.clear();
    }
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("{} files in {}", self.format.name(), self.dir.display())
    }

    fn identity(&self) -> String {
        format!("files[{}:{}]", self.format.name(), self.dir.display())
    }

    fn connect(&mut self, _status: &SharedStatus, query_id: &str) -> Result<()> {
        self.query_bits = uuid::Uuid::parse_str(query_id).map(|u| u.as_u64_pair()).unwrap_or((0, 0));
        self.log.create().map_err(|e| e.with_arg("path"))?;
        self.claim(query_id)?;
        self.remove_leftovers()
    }

    fn begin(&mut self, batch: u64) -> Result<()> {
        self.forget_batch();
        self.batch = batch;
        // Spark's "Skipping already committed batch": write nothing twice.
        self.skip = self.log.latest()?.is_some_and(|n| n >= batch);
        Ok(())
    }

    fn write(&mut self, chunk: &RecordBatch, _stop: &StopSignal) -> Result<u64> {
        let rows = chunk.num_rows() as u64;
        if rows == 0 || self.skip {
            return Ok(rows);
        }
        if self.partition_by.is_empty() {
            let data = RecordBatch::try_new(self.data_schema.clone(), chunk.columns().to_vec())?;
            self.write_rows("", data)?;
            return Ok(rows);
        }
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, folder) in self.folders(chunk)?.into_iter().enumerate() {
            groups.entry(folder).or_default().push(i as u32);
        }
        let data_columns: Vec<usize> =
            self.schema.fields().iter().enumerate().filter(|(_, f)| !self.partition_by.contains(f.name())).map(|(i, _)| i).collect();
        let data = chunk.project(&data_columns)?;
        let data = RecordBatch::try_new(self.data_schema.clone(), data.columns().to_vec())?;
        for (folder, indices) in groups {
            let rows = take_record_batch(&data, &UInt32Array::from(indices))?;
            self.write_rows(&folder, rows)?;
        }
        Ok(rows)
    }

    fn flush(&mut self, _stop: &StopSignal, _status: &SharedStatus) -> Result<()> {
        let folders: Vec<String> = self.open.keys().cloned().collect();
        for folder in folders {
            self.finish(&folder)?;
        }
        let mut dirs = BTreeSet::new();
        for (tmp, target) in std::mem::take(&mut self.finished) {
            fs::rename(&tmp, &target).map_err(|e| io_error("rename", &tmp, &e))?;
            let meta = fs::metadata(&target).map_err(|e| io_error("read", &target, &e))?;
            self.entries.push(SinkFileStatus {
                path: to_uri(&target),
                size: meta.len(),
                is_dir: false,
                modification_time: mtime_ms(&meta),
                block_replication: 1,
                block_size: 33_554_432,
                action: "add".into(),
            });
            if let Some(parent) = target.parent() {
                dirs.insert(parent.to_path_buf());
            }
            self.placed.push(target);
        }
        // The renames are durable before the log names the files.
        for dir in dirs {
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn commit(&mut self, batch: u64, _read: &Positions, _log: &CheckpointLog) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        // Spark's readers expect every batch from 0: a folder new to a
        // resumed stream gets empty entries for the batches it never saw.
        let next = self.log.latest()?.map_or(0, |n| n + 1);
        for missing in next..batch {
            self.log.add(missing, Vec::new())?;
        }
        self.log.add(batch, std::mem::take(&mut self.entries))?;
        self.placed.clear();
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        let tmps: Vec<PathBuf> = self.open.values().map(|o| o.tmp.clone()).chain(self.finished.iter().map(|(t, _)| t.clone())).collect();
        for path in tmps.iter().chain(self.placed.iter()) {
            let _ = fs::remove_file(path);
        }
        self.forget_batch();
        Ok(())
    }

    fn was_committed(&mut self, batch: u64, _log: &CheckpointLog) -> Result<bool> {
        Ok(self.log.latest()?.is_some_and(|n| n >= batch))
    }
}
