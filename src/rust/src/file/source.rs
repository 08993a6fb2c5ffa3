//! A folder as a stream: each batch reads the files that appeared since
//! the last one (see the module docs of `file` for the log that makes a
//! restart read each file once).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::listing::{self, FoundFile};
use super::log::{from_uri, to_uri, MetadataLog, SourceFileEntry};
use super::options::{local_path, CleanSource, FileSourceOptions, ListingOptions};
use super::schema::{schema_of, split_fields, type_name};
use super::Format;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::kafka::config::Options;
use crate::source::{Positions, Source};

/// A file source as planned: everything checked, nothing read yet.
pub(crate) struct FileSourcePlan {
    pub dir: PathBuf,
    pub options: FileSourceOptions,
    /// The data columns, then the partition columns.
    pub schema: SchemaRef,
    pub partitions: Vec<Field>,
}

impl FileSourcePlan {
    /// `columns` as R recorded them when the stream table was made
    /// (`(name, type)`; the partition columns among them named in `partitions`).
    pub fn new(format: &str, path: &str, options: &Options, columns: &[(String, String)], partitions: &[String]) -> Result<Self> {
        let options = FileSourceOptions::parse(format, options)?;
        let dir = local_path(path, "path")?;
        let (schema, partitions) = partitions_last(&schema_of(columns, "columns")?, partitions);
        Ok(FileSourcePlan { dir, options, schema: Arc::new(schema), partitions })
    }
}

/// The columns of a folder's files, as `stream_read_*()` fixes them when
/// called: `columns` when given, else inferred from the files there now
/// (Spark's rules and errors). Returns the schema (data columns, then the
/// partition columns) and the partition columns' names.
#[cfg_attr(not(feature = "r"), allow(dead_code))] // R's `stream_read_*()` (and tests) call it
pub(crate) fn resolve_schema(format: &Format, dir: &Path, columns: Option<&[(String, String)]>) -> Result<(Schema, Vec<String>)> {
    check_folder(dir)?;
    let files = listing::list(dir)?;
    let partitions = listing::infer_partitions(dir, &files);
    if let Some(columns) = columns {
        let schema = schema_of(columns, "columns")?;
        let names: Vec<String> = partitions.iter().map(|p| p.name().clone()).filter(|p| schema.field_with_name(p).is_ok()).collect();
        return Ok((partitions_last(&schema, &names).0, names));
    }
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let cannot = || {
        Error::config("path", format!("Unable to infer schema for {}. It must be specified manually.", format.name().to_uppercase()))
            .with_hint(format!("`{}` holds no data files yet: give `columns`, e.g. c(x = \"integer\")", dir.display()))
    };
    if paths.is_empty() && !matches!(format, Format::Text { .. }) {
        return Err(cannot());
    }
    let data = format.infer_schema(&paths)?.ok_or_else(cannot)?;
    let names: Vec<String> = partitions.iter().map(|p| p.name().clone()).collect();
    let (mut fields, _) = split_fields(&data, &names);
    fields.extend(partitions);
    Ok((Schema::new(fields), names))
}

/// `schema` with the columns named in `partitions` moved to the end (the
/// order in which the source builds its rows), and those columns.
fn partitions_last(schema: &Schema, partitions: &[String]) -> (Schema, Vec<Field>) {
    let (mut fields, partitions) = split_fields(schema, partitions);
    fields.extend(partitions.iter().cloned());
    (Schema::new(fields), partitions)
}

fn check_folder(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::config("path", format!("Path does not exist: {}", to_uri(dir)))
        .with_hint("the folder must exist when the stream is defined, as in sparklyr"))
}

/// The schema as `(name, type name)` pairs, for R and the query description.
#[cfg_attr(not(feature = "r"), allow(dead_code))]
pub(crate) fn column_types(schema: &Schema) -> Vec<(String, String)> {
    schema.fields().iter().map(|f| (f.name().clone(), type_name(f.data_type()).unwrap_or("string").to_string())).collect()
}

/// Files seen so far: Spark's `SeenFilesMap`.
struct SeenFiles {
    /// Path (or file name, with `fileNameOnly`) to modification time.
    files: HashMap<String, i64>,
    newest_ms: i64,
    /// Files older than this are ignored (`maxFileAge` behind the newest).
    forget_before_ms: i64,
}

impl SeenFiles {
    fn new() -> Self {
        SeenFiles { files: HashMap::new(), newest_ms: 0, forget_before_ms: i64::MIN }
    }

    fn add(&mut self, key: String, mtime_ms: i64) {
        self.newest_ms = self.newest_ms.max(mtime_ms);
        self.files.insert(key, mtime_ms);
    }

    fn is_new(&self, key: &str, mtime_ms: i64) -> bool {
        mtime_ms >= self.forget_before_ms && !self.files.contains_key(key)
    }

    fn purge(&mut self, max_age_ms: i64) {
        self.forget_before_ms = self.newest_ms.saturating_sub(max_age_ms);
        let before = self.forget_before_ms;
        self.files.retain(|_, t| *t >= before);
    }
}

pub(crate) struct FileSource {
    dir: PathBuf,
    format: Format,
    listing: ListingOptions,
    schema: SchemaRef,
    data_schema: SchemaRef,
    partitions: Vec<Field>,
    log: Option<MetadataLog<SourceFileEntry>>,
    seen: SeenFiles,
    /// The last batch of the log (written by `plan`, maybe not yet run).
    latest: i64,
    /// Batches up to this one have had `cleanSource` applied.
    cleaned: i64,
    /// Rows with a field that did not parse, since the last warning.
    malformed: u64,
}

impl FileSource {
    pub fn new(plan: FileSourcePlan) -> Self {
        let names: Vec<String> = plan.partitions.iter().map(|p| p.name().clone()).collect();
        let (data, _) = split_fields(&plan.schema, &names);
        FileSource {
            dir: plan.dir,
            format: plan.options.format,
            listing: plan.options.listing,
            data_schema: Arc::new(Schema::new(data)),
            schema: plan.schema,
            partitions: plan.partitions,
            log: None,
            seen: SeenFiles::new(),
            latest: -1,
            cleaned: -1,
            malformed: 0,
        }
    }

    fn log(&self) -> Result<&MetadataLog<SourceFileEntry>> {
        self.log.as_ref().ok_or_else(|| Error::internal("the file source's log is not open"))
    }

    fn seen_key(&self, path: &Path) -> String {
        if self.listing.file_name_only {
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            path.to_string_lossy().into_owned()
        }
    }

    /// The files of batch `batch`, in the order it reads them.
    fn files_of(&self, batch: u64) -> Result<Vec<PathBuf>> {
        let log = self.log()?;
        let entries = match log.batch(batch)? {
            Some(entries) => entries,
            None => log.all()?.into_iter().filter(|e| e.batch_id == batch).collect(),
        };
        entries
            .iter()
            .map(|e| from_uri(&e.path).ok_or_else(|| Error::checkpoint(format!("the source log names `{}`, not a local file", e.path))))
            .collect()
    }

    fn log_offset(p: &Positions) -> Result<i64> {
        match p {
            Positions::Files { log_offset } => Ok(*log_offset),
            other => Err(Error::checkpoint(format!("the checkpoint's position {other:?} is not a file source's"))),
        }
    }

    /// New files in the order a batch takes them (Spark's rule).
    fn new_files(&self) -> Result<Vec<FoundFile>> {
        let mut files: Vec<FoundFile> =
            listing::list(&self.dir)?.into_iter().filter(|f| self.seen.is_new(&self.seen_key(&f.path), f.mtime_ms)).collect();
        files.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
        // Known by name (`fileNameOnly`): two new files of one name are one file, the older.
        let mut keys = std::collections::HashSet::new();
        files.retain(|f| keys.insert(self.seen_key(&f.path)));
        if self.listing.latest_first {
            files.reverse();
        }
        if let Some(n) = self.listing.max_files_per_trigger {
            files.truncate(n);
        }
        Ok(files)
    }

    fn clean(&self, file: &Path) -> std::io::Result<()> {
        match &self.listing.clean_source {
            CleanSource::Off => Ok(()),
            CleanSource::Delete => fs::remove_file(file),
            CleanSource::Archive(archive) => {
                let target = archive.join(file.strip_prefix("/").unwrap_or(file));
                if target.exists() {
                    // As Hadoop's rename: an archived file is never replaced.
                    return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("`{}` is archived already", target.display())));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::rename(file, &target)
            }
        }
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("{} files in {}", self.format.name(), self.dir.display())
    }

    /// Not the columns: a script run again infers them again from the files
    /// there then, and must still find its checkpoint its own.
    fn identity(&self) -> String {
        format!("files[{}:{}]", self.format.name(), self.dir.display())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open_log(&mut self, checkpoint: &Path) -> Result<bool> {
        let dir = checkpoint.join("sources").join("0");
        if dir.is_file() {
            return Err(Error::checkpoint(format!("checkpoint `{}` was written by a stream of another source", checkpoint.display())));
        }
        let log = MetadataLog::<SourceFileEntry>::new(dir);
        log.create().map_err(|e| Error::checkpoint(e.message))?;
        let entries = log.all().map_err(|e| Error::checkpoint(e.message))?;
        for e in &entries {
            if let Some(path) = from_uri(&e.path) {
                let key = self.seen_key(&path);
                self.seen.add(key, e.timestamp);
            }
        }
        self.seen.purge(self.listing.max_file_age_ms);
        self.latest = log.latest().map_err(|e| Error::checkpoint(e.message))?.map_or(-1, |n| n as i64);
        self.log = Some(log);
        Ok(true)
    }

    fn connect(&mut self, _status: &SharedStatus) -> Result<()> {
        if self.listing.clean_source != CleanSource::Off && listing::has_sink_log(&self.dir) {
            return Err(Error::option(
                "cleanSource",
                format!("`cleanSource` can't be used on `{}`: it is the output of a file sink (it has `_spark_metadata`)", self.dir.display()),
            ));
        }
        if let CleanSource::Archive(archive) = &self.listing.clean_source {
            if archive.starts_with(&self.dir) {
                return Err(Error::option("sourceArchiveDir", "`sourceArchiveDir` must not be inside the source folder"));
            }
        }
        check_folder(&self.dir)
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        Ok(Positions::Files { log_offset: -1 })
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        let from = Self::log_offset(start)?;
        if from > self.latest {
            return Err(Error::checkpoint(format!(
                "the checkpoint's offsets name batch {from} of the file source's log, which has {} (is `sources/0` missing?)",
                if self.latest < 0 { "none".to_string() } else { format!("batches up to {}", self.latest) }
            )));
        }
        let next = from + 1;
        if self.latest >= next {
            // Logged before a crash, never run: that batch, with those files.
            return Ok(Some((start.clone(), Positions::Files { log_offset: next })));
        }
        let files = self.new_files()?;
        if files.is_empty() {
            return Ok(None);
        }
        let entries: Vec<SourceFileEntry> = files
            .iter()
            .map(|f| SourceFileEntry { path: to_uri(&f.path), timestamp: f.mtime_ms, batch_id: next as u64 })
            .collect();
        self.log()?.add(next as u64, entries).map_err(|e| Error::checkpoint(e.message))?;
        for f in &files {
            let key = self.seen_key(&f.path);
            self.seen.add(key, f.mtime_ms);
        }
        self.seen.purge(self.listing.max_file_age_ms);
        self.latest = next;
        Ok(Some((start.clone(), Positions::Files { log_offset: next })))
    }

    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (from, to) = (Self::log_offset(start)?, Self::log_offset(end)?);
        for batch in (from + 1)..=to {
            for file in self.files_of(batch as u64)? {
                stop.check_abort()?;
                let (dir, partitions, schema) = (&self.dir, &self.partitions, &self.schema);
                let counts = self.format.read(&file, &self.data_schema, &mut |data| {
                    let mut columns = data.columns().to_vec();
                    columns.extend(listing::partition_columns(dir, &file, partitions, data.num_rows())?);
                    emit(RecordBatch::try_new(schema.clone(), columns)?)
                })?;
                self.malformed += counts.malformed;
            }
        }
        Ok(())
    }

    fn committed(&mut self, end: &Positions, status: &SharedStatus) {
        if self.malformed > 0 {
            status.warn(format!(
                "{} malformed {} file rows: fields that did not parse as their column's type (`mode` option)",
                std::mem::take(&mut self.malformed),
                self.format.name()
            ));
        }
        if self.listing.clean_source == CleanSource::Off {
            return;
        }
        let Ok(to) = Self::log_offset(end) else { return };
        // The batches committed since the last call (after a restart, only
        // this one: what a crash kept from cleaning stays, as in Spark).
        let from = if self.cleaned < 0 { to } else { self.cleaned + 1 };
        for batch in from.max(0)..=to {
            let files = match self.files_of(batch as u64) {
                Ok(files) => files,
                Err(e) => return status.warn(format!("cleanSource: {e}")),
            };
            for file in files {
                match self.clean(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        status.warn(format!("cleanSource: can't clean `{}`: {e}", file.display()))
                    }
                    _ => {}
                }
            }
        }
        self.cleaned = to;
    }
}
