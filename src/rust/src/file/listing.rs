//! What a folder holds, as Spark sees it: data files (names starting with
//! `_` or `.` are not), in the folder and its `key=value` subfolders, whose
//! names give partition columns. A folder written by a file sink is listed
//! from its `_spark_metadata` log instead: only committed files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use arrow::array::{new_null_array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};

use super::log::{from_uri, percent_decode, MetadataLog, SinkFileStatus};
use super::schema::wider_type;
use crate::error::{Error, Result};

/// Spark's name of a partition folder whose value is null or empty.
pub(crate) const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
pub(crate) const SINK_LOG: &str = "_spark_metadata";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FoundFile {
    pub path: PathBuf,
    pub mtime_ms: i64,
}

/// A file's modification time in milliseconds since the epoch, as the logs keep it.
pub(crate) fn mtime_ms(meta: &fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64)
}

/// Does a file sink's log say which files of `dir` count?
pub(crate) fn has_sink_log(dir: &Path) -> bool {
    dir.join(SINK_LOG).is_dir()
}

pub(crate) fn list(dir: &Path) -> Result<Vec<FoundFile>> {
    if has_sink_log(dir) {
        return committed_files(dir);
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

fn list_error(dir: &Path, e: std::io::Error) -> Error {
    super::io_error("list", dir, &e)
}

fn walk(dir: &Path, out: &mut Vec<FoundFile>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A folder (or partition) removed meanwhile holds nothing new.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(list_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| list_error(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        // Through symbolic links; sockets, pipes and the like are no data files.
        let Ok(meta) = fs::metadata(entry.path()) else { continue };
        if meta.is_dir() {
            if name.contains('=') {
                walk(&entry.path(), out)?;
            }
        } else if meta.is_file() {
            out.push(FoundFile { path: entry.path(), mtime_ms: mtime_ms(&meta) });
        }
    }
    Ok(())
}

/// The live files of a file sink's log.
pub(crate) fn committed_files(dir: &Path) -> Result<Vec<FoundFile>> {
    let entries = MetadataLog::<SinkFileStatus>::new(dir.join(SINK_LOG)).all()?;
    let deleted: std::collections::HashSet<&str> =
        entries.iter().filter(|e| e.action == "delete").map(|e| e.path.as_str()).collect();
    Ok(entries
        .iter()
        .filter(|e| e.action == "add" && !e.is_dir && !deleted.contains(e.path.as_str()))
        .filter_map(|e| Some(FoundFile { path: from_uri(&e.path)?, mtime_ms: e.modification_time }))
        .collect())
}

/// The `key=value` folders between `dir` and `file`: names and raw values
/// (`None` for Spark's null folder).
pub(crate) fn partition_values(dir: &Path, file: &Path) -> Vec<(String, Option<String>)> {
    let Ok(relative) = file.strip_prefix(dir) else { return Vec::new() };
    let mut parts: Vec<_> = relative.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    parts.pop(); // the file itself
    parts
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = percent_decode(v);
            Some((percent_decode(k), (v != NULL_PARTITION && !v.is_empty()).then_some(v)))
        })
        .collect()
}

/// Partition columns and their types, as Spark infers them from folder
/// names: whole numbers are integers (bigint when too large), numbers
/// doubles, anything else text.
pub(crate) fn infer_partitions(dir: &Path, files: &[FoundFile]) -> Vec<Field> {
    let mut columns: Vec<(String, DataType)> = Vec::new();
    for f in files {
        for (name, value) in partition_values(dir, &f.path) {
            let t = match value {
                None => DataType::Null,
                Some(v) if v.parse::<i32>().is_ok() => DataType::Int32,
                Some(v) if v.parse::<i64>().is_ok() => DataType::Int64,
                Some(v) if v.parse::<f64>().is_ok() => DataType::Float64,
                Some(_) => DataType::Utf8,
            };
            match columns.iter_mut().find(|(n, _)| *n == name) {
                None => columns.push((name, t)),
                Some((_, known)) => *known = wider_type(known, &t),
            }
        }
    }
    columns
        .into_iter()
        .map(|(n, t)| Field::new(n, if t == DataType::Null { DataType::Utf8 } else { t }, true))
        .collect()
}

/// The partition columns of rows read from `file`: each its folder's
/// value, `rows` times, in the column's type.
pub(crate) fn partition_columns(dir: &Path, file: &Path, fields: &[Field], rows: usize) -> Result<Vec<ArrayRef>> {
    let values = partition_values(dir, file);
    fields
        .iter()
        .map(|f| {
            let value = values.iter().find(|(k, _)| k == f.name()).and_then(|(_, v)| v.clone());
            match value {
                None => Ok(new_null_array(f.data_type(), rows)),
                Some(v) => {
                    let text: ArrayRef = std::sync::Arc::new(StringArray::from(vec![v.as_str(); rows]));
                    Ok(cast(&text, f.data_type())?)
                }
            }
        })
        .collect()
}

/// A value as a folder name, escaped as Spark escapes it (`a/b` -> `a%2Fb`).
pub(crate) fn escape_path_name(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escape = (c as u32) < 0x20
            || matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\x7F' | '{' | '[' | ']' | '^');
        if escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_files_are_skipped_and_partition_folders_walked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("day=2024-01-01/n=3")).unwrap();
        fs::create_dir_all(d.join("checkpoints/x")).unwrap();
        for f in ["a.csv", "_SUCCESS", ".a.csv.crc", "day=2024-01-01/n=3/b.csv", "checkpoints/x/c.csv"] {
            fs::write(d.join(f), "x\n").unwrap();
        }
        let mut names: Vec<_> = list(d).unwrap().into_iter().map(|f| f.path.strip_prefix(d).unwrap().to_path_buf()).collect();
        names.sort();
        assert_eq!(names, [PathBuf::from("a.csv"), PathBuf::from("day=2024-01-01/n=3/b.csv")]);
        let files = list(d).unwrap();
        let fields = infer_partitions(d, &files);
        assert_eq!(fields, [Field::new("day", DataType::Utf8, true), Field::new("n", DataType::Int32, true)]);
    }

    #[test]
    fn partition_values_are_escaped_as_spark_does() {
        for v in ["a/b", "x=1", "50%", "plain", "é:t"] {
            let escaped = escape_path_name(v);
            assert!(!escaped.contains('/') && !escaped.contains('='), "{escaped}");
            let file = PathBuf::from(format!("/out/k={escaped}/part-0.csv"));
            assert_eq!(partition_values(Path::new("/out"), &file), [("k".to_string(), Some(v.to_string()))]);
        }
        let file = PathBuf::from(format!("/out/k={NULL_PARTITION}/part-0.csv"));
        assert_eq!(partition_values(Path::new("/out"), &file), [("k".to_string(), None)]);
    }
}
