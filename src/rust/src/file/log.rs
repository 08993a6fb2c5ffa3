//! Spark's compactible metadata log, the format of both a file sink's
//! `_spark_metadata/` and a file source's `sources/0/`:
//!
//! ```text
//! <dir>/<N>           v1 + one JSON entry per line: what batch N added
//! <dir>/<N>.compact   v1 + every live entry up to batch N    when (N + 1) % 10 == 0
//! ```
//!
//! Readers take the latest `.compact` and the batches after it. Batch ids
//! have no gaps, as Spark's readers expect. A batch's file is written aside,
//! synced and linked into place only if it is not there yet: a reader sees
//! it whole or not at all, and no writer replaces another's batch. Hidden
//! files (our temp files) are not part of the log.

use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::write_new;
use crate::error::{Error, Result};

/// Spark's `spark.sql.streaming.fileSink.log.compactInterval` and
/// `fileSource.log.compactInterval`.
pub(crate) const COMPACT_INTERVAL: u64 = 10;
const VERSION_LINE: &str = "v1";

/// One file a sink committed (Spark's `SinkFileStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SinkFileStatus {
    pub path: String,
    pub size: u64,
    pub is_dir: bool,
    pub modification_time: i64,
    pub block_replication: i32,
    pub block_size: i64,
    pub action: String,
}

/// One file a source batch read (Spark's `FileEntry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SourceFileEntry {
    pub path: String,
    pub timestamp: i64,
    pub batch_id: u64,
}

pub(crate) struct MetadataLog<T> {
    dir: PathBuf,
    _entries: PhantomData<T>,
}

pub(crate) fn is_compaction_batch(batch: u64) -> bool {
    (batch + 1) % COMPACT_INTERVAL == 0
}

impl<T: Serialize + DeserializeOwned> MetadataLog<T> {
    pub fn new(dir: PathBuf) -> Self {
        MetadataLog { dir, _entries: PhantomData }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| self.error(format!("can't create `{}`: {e}", self.dir.display())))
    }

    fn error(&self, message: String) -> Error {
        Error::execution(message)
    }

    /// The batches in the log, ascending, each with whether it is compacted.
    fn batches(&self) -> Result<Vec<(u64, bool)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(format!("can't list `{}`: {e}", self.dir.display()))),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.error(format!("can't list `{}`: {e}", self.dir.display())))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let (number, compact) = match name.strip_suffix(".compact") {
                Some(n) => (n, true),
                None => (name.as_ref(), false),
            };
            if let Ok(n) = number.parse::<u64>() {
                out.push((n, compact));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    pub fn latest(&self) -> Result<Option<u64>> {
        Ok(self.batches()?.last().map(|(n, _)| *n))
    }

    fn path(&self, batch: u64, compact: bool) -> PathBuf {
        self.dir.join(if compact { format!("{batch}.compact") } else { batch.to_string() })
    }

    fn read(&self, path: &Path) -> Result<Vec<T>> {
        let text = fs::read_to_string(path).map_err(|e| self.error(format!("can't read `{}`: {e}", path.display())))?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(VERSION_LINE) {
            return Err(self.error(format!(
                "`{}` is damaged or of an unknown version (it should start with \"{VERSION_LINE}\")",
                path.display()
            )));
        }
        lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.error(format!("`{}` is damaged: {e}", path.display()))))
            .collect()
    }

    /// Write `path` whole and only if it is not there: a batch of the log is
    /// never replaced, so a second writer fails instead of overwriting.
    fn publish(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        match write_new(path, bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::execution(format!(
                "`{}` is there already: another stream writes to this log",
                path.display()
            ))),
            Err(e) => Err(super::io_error("write", path, &e)),
        }
    }

    /// Every entry: the latest compaction and the batches after it.
    pub fn all(&self) -> Result<Vec<T>> {
        let batches = self.batches()?;
        let from = batches.iter().rposition(|(_, compact)| *compact).unwrap_or(0);
        let mut out = Vec::new();
        for &(n, compact) in &batches[from..] {
            out.extend(self.read(&self.path(n, compact))?);
        }
        Ok(out)
    }

    /// What batch `batch` itself added, if its own file is still there.
    pub fn batch(&self, batch: u64) -> Result<Option<Vec<T>>> {
        let path = self.path(batch, false);
        if path.exists() {
            self.read(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Record batch `batch`. A compaction batch's file holds everything
    /// before it too; older files are then removed, except the previous
    /// compaction's, so a reader in the middle of the log finds its files.
    pub fn add(&self, batch: u64, entries: Vec<T>) -> Result<()> {
        let compact = is_compaction_batch(batch);
        let entries = if compact {
            let mut all = self.all()?;
            all.extend(entries);
            all
        } else {
            entries
        };
        let mut text = format!("{VERSION_LINE}\n");
        for e in &entries {
            text.push_str(&serde_json::to_string(e).map_err(|e| Error::internal(e.to_string()))?);
            text.push('\n');
        }
        self.publish(&self.path(batch, compact), text.as_bytes())?;
        if compact && batch >= COMPACT_INTERVAL {
            let keep_from = batch - COMPACT_INTERVAL;
            for (n, c) in self.batches()? {
                if n < keep_from {
                    let _ = fs::remove_file(self.path(n, c));
                }
            }
        }
        Ok(())
    }
}

/// A local path as the URI Spark writes in its logs (`file:///a/b%20c`).
pub(crate) fn to_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for &b in path.to_string_lossy().as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~/=:@!$&'()*+,;".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The local path of a `file:` URI of a log (Spark's `file:/a` or `file:///a`).
pub(crate) fn from_uri(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file:")?;
    let path = format!("/{}", rest.trim_start_matches('/'));
    Some(PathBuf::from(percent_decode(&path)))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> SourceFileEntry {
        SourceFileEntry { path: format!("file:///in/{n}.csv"), timestamp: n as i64, batch_id: n }
    }

    #[test]
    fn every_tenth_batch_compacts_and_readers_see_every_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetadataLog::<SourceFileEntry>::new(dir.path().join("log"));
        assert_eq!(log.latest().unwrap(), None, "no folder yet: an empty log");
        log.create().unwrap();
        for n in 0..25 {
            log.add(n, vec![entry(n)]).unwrap();
            let all = log.all().unwrap();
            assert_eq!(all, (0..=n).map(entry).collect::<Vec<_>>(), "after batch {n}");
        }
        assert_eq!(log.latest().unwrap(), Some(24));
        assert!(dir.path().join("log/19.compact").exists());
        assert!(dir.path().join("log/9.compact").exists(), "the previous compaction stays");
        assert!(!dir.path().join("log/3").exists(), "files before it go");
        assert_eq!(log.batch(21).unwrap(), Some(vec![entry(21)]));
        assert_eq!(log.batch(3).unwrap(), None);
        let text = fs::read_to_string(dir.path().join("log/20")).unwrap();
        assert_eq!(text, "v1\n{\"path\":\"file:///in/20.csv\",\"timestamp\":20,\"batchId\":20}\n");
    }

    #[test]
    fn damaged_log_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetadataLog::<SinkFileStatus>::new(dir.path().to_path_buf());
        fs::write(dir.path().join("0"), "v9\n").unwrap();
        assert!(log.all().unwrap_err().message.contains("unknown version"));
        fs::write(dir.path().join("0"), "v1\n{\"path\":").unwrap();
        assert!(log.all().unwrap_err().message.contains("damaged"));
    }

    #[test]
    fn uris_round_trip() {
        let p = Path::new("/tmp/out dir/k=a%2Fb/part-0.csv");
        let uri = to_uri(p);
        assert_eq!(uri, "file:///tmp/out%20dir/k=a%252Fb/part-0.csv");
        assert_eq!(from_uri(&uri).unwrap(), p);
        assert_eq!(from_uri("file:/tmp/x").unwrap(), Path::new("/tmp/x"));
        assert_eq!(from_uri("hdfs://nn/x"), None);
    }
}
