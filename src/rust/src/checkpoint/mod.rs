//! The checkpoint directory: a query's memory, laid out like Spark's.
//!
//! ```text
//! <dir>/metadata       {"id": ..., "source": ..., "sink": ...}   written once
//! <dir>/sources/0      where the source started (e.g. "latest" resolved)
//! <dir>/sinks/0        what the sink settled once (a schema's id in a registry)
//! <dir>/offsets/<N>    v1 + what batch N will read               before batch N runs
//! <dir>/pending/<N>    v1 + how to ask the sink if N committed   exactly-once only, before the sink commits
//! <dir>/state/<N>      v1 + aggregation state after batch N      (Arrow IPC) before the sink commits
//! <dir>/commits/<N>    v1 + what batch N wrote                   after the sink acknowledged it
//! ```
//!
//! `state/<N>` counts only once `commits/<N>` exists: a restart resumes from
//! the state of the last committed batch.
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old state or the new one. A file
//! that does not parse is an error, never a silent restart from zero. Only
//! the last [`KEEP_BATCHES`] batches are kept.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// As Spark's `spark.sql.streaming.minBatchesToRetain`.
pub const KEEP_BATCHES: u64 = 100;
const VERSION_LINE: &str = "v1";

/// Who the query is: a checkpoint written by another query is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMetadata {
    pub id: String,
    /// A description of the source, without secrets (e.g. `kafka[subscribe=topic1]`).
    pub source: String,
    /// A description of the sink, without secrets.
    pub sink: String,
}

pub struct CheckpointLog {
    dir: PathBuf,
    /// `<dir>/.lock`, locked while the query runs: two live queries on one
    /// checkpoint would overwrite each other's batches. The operating system
    /// lets go of it when the process dies, however it dies.
    _lock: fs::File,
}

/// The checkpoint's lock if no other query holds it (`None` if one does).
fn try_lock(dir: &Path) -> Result<Option<fs::File>> {
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::checkpoint(format!("can't create `{}`: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(Error::checkpoint(format!("can't lock `{}`: {e}", path.display()))),
    }
}

fn in_use(dir: &Path) -> Error {
    Error::checkpoint(format!("checkpoint `{}` is in use by another running query", dir.display()))
        .with_hint("stop the other stream first (in this R session or another process), or give this one its own checkpoint")
}

/// Processes sharing an input (a consumer group) each take a member
/// directory; more than this many on one checkpoint is surely a mistake.
const MAX_MEMBERS: usize = 1024;

fn create_layout(dir: &Path) -> Result<()> {
    for sub in ["", "offsets", "commits", "sources", "sinks", "pending", "state"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| {
            Error::checkpoint(format!("can't create checkpoint directory `{}`: {e}", dir.join(sub).display()))
        })?;
    }
    Ok(())
}

impl CheckpointLog {
    /// Open (or create) the checkpoint of a query. A directory that already
    /// belongs to a query with another source or sink is an error.
    pub fn open(dir: &Path, source: &str, sink: &str) -> Result<(CheckpointLog, QueryMetadata)> {
        create_layout(dir)?;
        let lock = try_lock(dir)?.ok_or_else(|| in_use(dir))?;
        Self::open_locked(dir, lock, source, sink)
    }

    /// Open this process's member directory `<dir>/members/<name>` of a
    /// query whose processes share their input: `instance` if given (a
    /// static member of a consumer group), else the first one no running
    /// process holds. A process restarted after a crash takes its
    /// predecessor's directory, and with it its id (its transactional id,
    /// which fences what the dead process left open).
    pub fn open_member(dir: &Path, instance: Option<&str>, source: &str, sink: &str) -> Result<(CheckpointLog, QueryMetadata)> {
        let members = dir.join("members");
        if let Some(name) = instance {
            return Self::open(&members.join(name), source, sink);
        }
        for k in 0..MAX_MEMBERS {
            let member = members.join(k.to_string());
            create_layout(&member)?;
            if let Some(lock) = try_lock(&member)? {
                return Self::open_locked(&member, lock, source, sink);
            }
        }
        Err(in_use(dir).context(format!("all of its {MAX_MEMBERS} member directories are in use")))
    }

    fn open_locked(dir: &Path, lock: fs::File, source: &str, sink: &str) -> Result<(CheckpointLog, QueryMetadata)> {
        let log = CheckpointLog { dir: dir.to_path_buf(), _lock: lock };
        let metadata_path = dir.join("metadata");
        let metadata = if metadata_path.exists() {
            let found: QueryMetadata = log.read_json(&metadata_path)?;
            if found.source != source || found.sink != sink {
                return Err(Error::checkpoint(format!(
                    "checkpoint `{}` belongs to another query (source {}, sink {}), not this one (source {}, sink {})",
                    dir.display(),
                    found.source,
                    found.sink,
                    source,
                    sink
                ))
                .with_hint("use a new checkpoint directory for a different query"));
            }
            found
        } else {
            let fresh = QueryMetadata {
                id: uuid::Uuid::new_v4().to_string(),
                source: source.to_string(),
                sink: sink.to_string(),
            };
            log.write_json(&metadata_path, &fresh)?;
            fresh
        };
        Ok((log, metadata))
    }

    fn batch_path(&self, kind: &str, batch: u64) -> PathBuf {
        self.dir.join(kind).join(batch.to_string())
    }

    /// Batch numbers present under `offsets/` or `commits/`, ascending.
    fn batches(&self, kind: &str) -> Result<Vec<u64>> {
        let dir = self.dir.join(kind);
        let entries = fs::read_dir(&dir)
            .map_err(|e| Error::checkpoint(format!("can't list `{}`: {e}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::checkpoint(format!("can't list `{}`: {e}", dir.display())))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue; // our own temp files
            }
            match name.parse::<u64>() {
                Ok(n) => out.push(n),
                Err(_) => {
                    return Err(Error::checkpoint(format!(
                        "unexpected file `{}` in the checkpoint",
                        entry.path().display()
                    )))
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    pub fn latest_offsets<T: DeserializeOwned>(&self) -> Result<Option<(u64, T)>> {
        match self.batches("offsets")?.last() {
            None => Ok(None),
            Some(&n) => Ok(Some((n, self.read_json(&self.batch_path("offsets", n))?))),
        }
    }

    pub fn latest_commit<T: DeserializeOwned>(&self) -> Result<Option<(u64, T)>> {
        match self.batches("commits")?.last() {
            None => Ok(None),
            Some(&n) => Ok(Some((n, self.read_json(&self.batch_path("commits", n))?))),
        }
    }

    /// Where the source started, resolved once (so `startingOffsets = "latest"`
    /// means the same offsets after a restart).
    pub fn initial_positions<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.read_json_if_present(&self.dir.join("sources").join("0"))
    }

    pub fn write_initial_positions<T: Serialize>(&self, positions: &T) -> Result<()> {
        self.write_json(&self.dir.join("sources").join("0"), positions)
    }

    /// What the sink settled on its first run (see `Sink::settle`).
    pub fn sink_settings<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.read_json_if_present(&self.dir.join("sinks").join("0"))
    }

    pub fn write_sink_settings<T: Serialize>(&self, settings: &T) -> Result<()> {
        self.write_json(&self.dir.join("sinks").join("0"), settings)
    }

    /// Record what batch `batch` will read. Must happen before the sink sees
    /// a single row of it.
    pub fn write_offsets<T: Serialize>(&self, batch: u64, offsets: &T) -> Result<()> {
        self.write_json(&self.batch_path("offsets", batch), offsets)
    }

    /// Record that batch `batch` was acknowledged by the sink, then prune.
    pub fn write_commit<T: Serialize>(&self, batch: u64, commit: &T) -> Result<()> {
        self.write_json(&self.batch_path("commits", batch), commit)?;
        self.prune(batch)
    }

    /// What a two-phase sink needs to find out, after a crash, whether it
    /// committed batch `batch` (written just before it commits).
    pub fn write_pending<T: Serialize>(&self, batch: u64, marker: &T) -> Result<()> {
        self.write_json(&self.batch_path("pending", batch), marker)
    }

    pub fn pending<T: DeserializeOwned>(&self, batch: u64) -> Result<Option<T>> {
        let path = self.batch_path("pending", batch);
        if path.exists() {
            Ok(Some(self.read_json(&path)?))
        } else {
            Ok(None)
        }
    }

    /// The aggregation state after batch `batch` (opaque bytes: Arrow IPC).
    pub fn write_state(&self, batch: u64, bytes: &[u8]) -> Result<()> {
        let mut file = Vec::with_capacity(bytes.len() + 3);
        file.extend_from_slice(VERSION_LINE.as_bytes());
        file.push(b'\n');
        file.extend_from_slice(bytes);
        write_atomically(&self.batch_path("state", batch), &file)
    }

    pub fn state(&self, batch: u64) -> Result<Vec<u8>> {
        let path = self.batch_path("state", batch);
        let bytes = fs::read(&path).map_err(|e| {
            Error::checkpoint(format!("can't read the aggregation state `{}`: {e}", path.display()))
        })?;
        match bytes.strip_prefix(format!("{VERSION_LINE}\n").as_bytes()) {
            Some(body) => Ok(body.to_vec()),
            None => Err(Error::checkpoint(format!(
                "`{}` is damaged or of an unknown version (it should start with \"{VERSION_LINE}\")",
                path.display()
            ))),
        }
    }

    fn prune(&self, committed: u64) -> Result<()> {
        if committed < KEEP_BATCHES {
            return Ok(());
        }
        let oldest_kept = committed + 1 - KEEP_BATCHES;
        for kind in ["offsets", "commits", "pending", "state"] {
            for n in self.batches(kind)? {
                if n >= oldest_kept {
                    break;
                }
                let _ = fs::remove_file(self.batch_path(kind, n));
            }
        }
        Ok(())
    }

    fn read_json_if_present<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        if path.exists() {
            Ok(Some(self.read_json(path)?))
        } else {
            Ok(None)
        }
    }

    fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<T> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error::checkpoint(format!("can't read `{}`: {e}", path.display())))?;
        let body = text
            .strip_prefix(VERSION_LINE)
            .and_then(|rest| rest.strip_prefix('\n'))
            .ok_or_else(|| {
                Error::checkpoint(format!(
                    "`{}` is damaged or of an unknown version (it should start with \"{VERSION_LINE}\")",
                    path.display()
                ))
            })?;
        serde_json::from_str(body)
            .map_err(|e| Error::checkpoint(format!("`{}` is damaged: {e}", path.display())))
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let body = serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))?;
        write_atomically(path, format!("{VERSION_LINE}\n{body}\n").as_bytes())
    }
}

/// Temp file in the same directory, fsync, rename over the target, fsync the
/// directory: readers see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_and_place(path, bytes, |tmp, path| fs::rename(tmp, path))
        .map_err(|e| Error::checkpoint(format!("can't write `{}`: {e}", path.display())))
}

/// As [`write_atomically`], but only if `path` is not there yet (a hard
/// link does not replace): `AlreadyExists` otherwise. For logs whose
/// entries must never be overwritten by a second writer.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_and_place(path, bytes, |tmp, path| {
        let linked = fs::hard_link(tmp, path);
        let _ = fs::remove_file(tmp);
        linked
    })
}

/// `bytes` into a synced temp file beside `path`, `place`d at `path`, then
/// the directory synced.
fn write_and_place(
    path: &Path,
    bytes: &[u8],
    place: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path without a folder"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    place(&tmp, path)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_checkpoint_gets_an_id_that_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (_, m1) = CheckpointLog::open(dir.path(), "src", "sink").unwrap();
        let (_, m2) = CheckpointLog::open(dir.path(), "src", "sink").unwrap();
        assert_eq!(m1.id, m2.id);
        assert!(dir.path().join("metadata").exists());
    }

    #[test]
    fn another_query_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        CheckpointLog::open(dir.path(), "src", "sink").unwrap();
        let e = CheckpointLog::open(dir.path(), "src", "other-sink").err().unwrap();
        assert!(e.message.contains("another query"), "{e}");
    }

    #[test]
    fn members_take_the_first_free_directory_and_keep_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let (first, m0) = CheckpointLog::open_member(dir.path(), None, "s", "k").unwrap();
        let (second, m1) = CheckpointLog::open_member(dir.path(), None, "s", "k").unwrap();
        assert_ne!(m0.id, m1.id);
        assert!(dir.path().join("members/1/metadata").exists());
        drop(first); // its process died: a restart takes its place, and its id
        let (_again, again) = CheckpointLog::open_member(dir.path(), None, "s", "k").unwrap();
        assert_eq!(again.id, m0.id);
        let (_named, named) = CheckpointLog::open_member(dir.path(), Some("pod-a"), "s", "k").unwrap();
        assert!(dir.path().join("members/pod-a/metadata").exists() && named.id != m1.id);
        let e = CheckpointLog::open_member(dir.path(), Some("pod-a"), "s", "k").err().unwrap();
        assert_eq!(e.kind, crate::error::ErrorKind::Checkpoint);
        drop(second);
    }

    #[test]
    fn a_checkpoint_in_use_is_refused_until_its_query_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (running, _) = CheckpointLog::open(dir.path(), "s", "k").unwrap();
        let e = CheckpointLog::open(dir.path(), "s", "k").err().unwrap();
        assert!(e.message.contains("in use by another running query"), "{e}");
        assert_eq!(e.arg.as_deref(), Some("checkpoint"));
        drop(running);
        assert!(CheckpointLog::open(dir.path(), "s", "k").is_ok());
    }

    #[test]
    fn offsets_and_commits_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CheckpointLog::open(dir.path(), "s", "k").unwrap();
        assert!(log.latest_offsets::<serde_json::Value>().unwrap().is_none());
        log.write_offsets(0, &json!({"t": {"0": 5}})).unwrap();
        log.write_offsets(1, &json!({"t": {"0": 9}})).unwrap();
        log.write_commit(0, &json!({"rows": 5})).unwrap();
        let (n, o): (u64, serde_json::Value) = log.latest_offsets().unwrap().unwrap();
        assert_eq!((n, o), (1, json!({"t": {"0": 9}})));
        let (c, _): (u64, serde_json::Value) = log.latest_commit().unwrap().unwrap();
        assert_eq!(c, 0);
        let text = fs::read_to_string(dir.path().join("offsets/1")).unwrap();
        assert!(text.starts_with("v1\n"));
    }

    #[test]
    fn damaged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CheckpointLog::open(dir.path(), "s", "k").unwrap();
        log.write_offsets(0, &json!({"a": 1})).unwrap();
        fs::write(dir.path().join("offsets/0"), "v1\n{\"a\": ").unwrap();
        let e = log.latest_offsets::<serde_json::Value>().err().unwrap();
        assert!(e.message.contains("damaged"), "{e}");
        fs::write(dir.path().join("offsets/0"), "v7\n{}").unwrap();
        assert!(log.latest_offsets::<serde_json::Value>().is_err());
        fs::write(dir.path().join("commits/x"), "").unwrap();
        assert!(log.latest_commit::<serde_json::Value>().is_err());
        drop(log);
        fs::write(dir.path().join("metadata"), "garbage").unwrap();
        let e = CheckpointLog::open(dir.path(), "s", "k").err().unwrap();
        assert!(e.message.contains("damaged"), "{e}");
    }

    #[test]
    fn only_the_last_batches_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CheckpointLog::open(dir.path(), "s", "k").unwrap();
        for n in 0..(KEEP_BATCHES + 20) {
            log.write_offsets(n, &json!(n)).unwrap();
            log.write_commit(n, &json!(n)).unwrap();
        }
        let kept = log.batches("offsets").unwrap();
        assert_eq!(kept.len() as u64, KEEP_BATCHES);
        assert_eq!(kept[0], 20);
        assert_eq!(log.batches("commits").unwrap().len() as u64, KEEP_BATCHES);
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let e = CheckpointLog::open(Path::new("/proc/streamlyr-cannot-write-here"), "s", "k").err().unwrap();
        assert_eq!(e.arg.as_deref(), Some("checkpoint"));
        assert!(e.message.contains("can't create"), "{e}");
    }
}
