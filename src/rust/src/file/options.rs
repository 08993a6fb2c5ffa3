//! The options of a file source or sink, parsed once into types. Option
//! names and defaults are Spark's; an option streamlyr does not know is an
//! error naming it (a typo would otherwise silently change nothing), and
//! Spark's options that mean nothing here are accepted and reported.

use std::path::{Path, PathBuf};

use super::format::Format;
use crate::error::{Error, Result};
use crate::kafka::config::{parse_bool, Options};

/// How the source picks new files each trigger (Spark's `FileStreamOptions`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListingOptions {
    pub max_files_per_trigger: Option<usize>,
    pub latest_first: bool,
    /// Files older than this, relative to the newest file seen, are ignored.
    pub max_file_age_ms: i64,
    /// Files are told apart by name only, not by their whole path.
    pub file_name_only: bool,
    pub clean_source: CleanSource,
}

/// What happens to a source file once the batch that read it committed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CleanSource {
    Off,
    /// Moved under this folder, keeping its own path below it.
    Archive(PathBuf),
    Delete,
}

pub(crate) struct FileSourceOptions {
    pub format: Format,
    pub listing: ListingOptions,
    /// Reported by R when the stream is defined.
    #[cfg_attr(not(feature = "r"), allow(dead_code))]
    pub ignored: Vec<String>,
}

pub(crate) struct FileSinkOptions {
    pub format: Format,
    /// Roll to a new file after this many rows (0 or absent: never).
    pub max_records_per_file: Option<u64>,
    pub ignored: Vec<String>,
}

/// Spark's options with no effect here: reading and writing need no Hadoop.
const SPARK_ONLY: &[&str] = &[
    "inferSchema",
    "dateFormat",
    "timestampFormat",
    "timestampNTZFormat",
    "locale",
    "mergeSchema",
    "pathGlobFilter",
    "recursiveFileLookup",
    "ignoreLeadingWhiteSpace",
    "ignoreTrailingWhiteSpace",
    "samplingRatio",
    "enforceSchema",
    "columnNameOfCorruptRecord",
    "maxCachedFiles",
    "discardCachedInputRatio",
    "checkpointLocation",
];

impl FileSourceOptions {
    pub fn parse(format: &str, options: &Options) -> Result<Self> {
        let mut options = options.clone();
        let format = Format::parse(format, &mut options, true)?;
        let listing = ListingOptions::parse(&mut options)?;
        let ignored = leftovers(options, format.name())?;
        Ok(FileSourceOptions { format, listing, ignored })
    }
}

impl FileSinkOptions {
    pub fn parse(format: &str, options: &Options) -> Result<Self> {
        let mut options = options.clone();
        let format = Format::parse(format, &mut options, false)?;
        let max_records_per_file = match options.remove("maxRecordsPerFile") {
            None => None,
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) if n > 0 => Some(n as u64),
                Ok(_) => None, // Spark: 0 or less means no limit
                Err(_) => return Err(Error::option("maxRecordsPerFile", format!("`maxRecordsPerFile` must be a whole number, not \"{s}\""))),
            },
        };
        let ignored = leftovers(options, format.name())?;
        Ok(FileSinkOptions { format, max_records_per_file, ignored })
    }
}

impl ListingOptions {
    fn parse(options: &mut Options) -> Result<Self> {
        let max_files_per_trigger = match options.get("maxFilesPerTrigger") {
            None => None,
            Some(s) => match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                // Spark's text.
                _ => {
                    return Err(Error::option(
                        "maxFilesPerTrigger",
                        format!("Invalid value '{s}' for option 'maxFilesPerTrigger', must be a positive integer"),
                    ))
                }
            },
        };
        let max_file_age_ms = match options.get("maxFileAge") {
            None => 7 * 86_400_000,
            Some(s) => match time_ms(s) {
                Ok(ms) if ms > 0 => ms,
                Ok(_) => return Err(Error::option("maxFileAge", format!("`maxFileAge` must be a positive duration, not \"{s}\""))),
                Err(m) => return Err(Error::option("maxFileAge", m)),
            },
        };
        let clean_source = match options.get("cleanSource").map(|s| s.trim().to_ascii_lowercase()) {
            None => CleanSource::Off,
            Some(s) if s == "off" => CleanSource::Off,
            Some(s) if s == "delete" => CleanSource::Delete,
            Some(s) if s == "archive" => match options.get("sourceArchiveDir") {
                Some(dir) => CleanSource::Archive(local_path(dir, "options").map_err(|e| Error { option: Some("sourceArchiveDir".into()), ..e })?),
                None => {
                    return Err(Error::option("cleanSource", "Archive mode must be used with 'sourceArchiveDir' option."))
                }
            },
            Some(s) => {
                return Err(Error::option(
                    "cleanSource",
                    format!("`cleanSource` must be \"off\", \"archive\" or \"delete\", not \"{s}\""),
                ))
            }
        };
        let latest_first = parse_bool(options, "latestFirst", false)?;
        // Spark's rule: taking the newest files first, a few at a time, forgets
        // no file by age (else an old file, once forgotten, would be new again).
        let max_file_age_ms = if latest_first && max_files_per_trigger.is_some() { i64::MAX } else { max_file_age_ms };
        let parsed = ListingOptions {
            max_files_per_trigger,
            latest_first,
            max_file_age_ms,
            file_name_only: parse_bool(options, "fileNameOnly", false)?,
            clean_source,
        };
        for key in ["maxFilesPerTrigger", "maxFileAge", "cleanSource", "sourceArchiveDir", "latestFirst", "fileNameOnly"] {
            options.remove(key);
        }
        Ok(parsed)
    }
}

/// Every option left after parsing must be one of Spark's without effect.
fn leftovers(options: Options, format: &str) -> Result<Vec<String>> {
    let mut ignored = Vec::new();
    for key in options.into_keys() {
        if SPARK_ONLY.contains(&key.as_str()) {
            ignored.push(key);
        } else {
            return Err(Error::option(&key, format!("`{key}` is not an option of the {format} files source or sink"))
                .with_hint("options are case-sensitive, as in Spark"));
        }
    }
    Ok(ignored)
}

/// Spark's time strings (`"7d"`, `"1h"`, `"500ms"`; a bare number is milliseconds).
pub(crate) fn time_ms(text: &str) -> std::result::Result<i64, String> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(ms as i64);
    }
    // Spark's "m" is minutes; the interval reader's words cover the rest.
    let t = t.strip_suffix('m').filter(|n| n.parse::<f64>().is_ok()).map(|n| format!("{n}min")).unwrap_or(t.to_string());
    crate::transform::event_time::parse_duration_us(&t).map(|us| us / 1000)
}

/// A local path from what a user may write: a plain path, or a `file:` URI
/// as sparklyr's examples write (`file.path("file://", getwd(), "in")`).
pub(crate) fn local_path(text: &str, arg: &str) -> Result<PathBuf> {
    let t = text.trim();
    let path = match super::log::from_uri(t) {
        Some(path) => path.to_string_lossy().into_owned(),
        None if t.contains("://") => {
            return Err(Error::config(arg, format!("`{arg}` must be a local folder; \"{t}\" is not (only `file:` URIs are)")))
        }
        None => t.to_string(),
    };
    if path.is_empty() {
        return Err(Error::config(arg, format!("`{arg}` must be a folder path, not an empty string")));
    }
    let path = Path::new(&path);
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().map(|d| d.join(path)).unwrap_or(path.to_path_buf()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kafka::config::options_of as opts;

    #[test]
    fn spark_listing_options_and_their_errors() {
        let o = FileSourceOptions::parse("csv", &opts(&[("maxFilesPerTrigger", "2"), ("latestFirst", "true"), ("maxFileAge", "1h")])).unwrap();
        assert_eq!(o.listing.max_files_per_trigger, Some(2));
        assert!(o.listing.latest_first);
        assert_eq!(o.listing.max_file_age_ms, i64::MAX, "latestFirst with maxFilesPerTrigger: no age limit");
        let o = FileSourceOptions::parse("csv", &opts(&[("latestFirst", "true"), ("maxFileAge", "1h")])).unwrap();
        assert_eq!(o.listing.max_file_age_ms, 3_600_000);
        let e = FileSourceOptions::parse("csv", &opts(&[("maxFilesPerTrigger", "0")])).err().unwrap();
        assert_eq!(e.message, "Invalid value '0' for option 'maxFilesPerTrigger', must be a positive integer");
        let e = FileSourceOptions::parse("json", &opts(&[("cleanSource", "archive")])).err().unwrap();
        assert_eq!(e.message, "Archive mode must be used with 'sourceArchiveDir' option.");
        let e = FileSourceOptions::parse("json", &opts(&[("maxFilesPerTriger", "1")])).err().unwrap();
        assert_eq!((e.arg.as_deref(), e.option.as_deref()), (Some("options"), Some("maxFilesPerTriger")));
        let o = FileSourceOptions::parse("parquet", &opts(&[("mergeSchema", "true")])).unwrap();
        assert_eq!(o.ignored, ["mergeSchema"]);
    }

    #[test]
    fn spark_time_strings() {
        assert_eq!(time_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(time_ms("5m"), Ok(300_000));
        assert_eq!(time_ms("250"), Ok(250));
        assert!(time_ms("soon").is_err());
    }

    #[test]
    fn file_uris_are_local_paths() {
        assert_eq!(local_path("file:////tmp/in", "path").unwrap(), PathBuf::from("/tmp/in"));
        assert_eq!(local_path("file:/tmp/in", "path").unwrap(), PathBuf::from("/tmp/in"));
        let e = local_path("hdfs://nn/in", "path").unwrap_err();
        assert_eq!(e.arg.as_deref(), Some("path"));
    }
}
