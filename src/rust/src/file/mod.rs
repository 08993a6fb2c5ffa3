//! Files: a folder as a stream source, and a folder as a stream sink, laid
//! out as Spark's file source and sink lay them out.
//!
//! The runtime model:
//! - **Source** ([`source::FileSource`]). Each trigger lists the folder
//!   (and its `key=value` subfolders), keeps the files not seen before
//!   (Spark's rule: oldest first, `maxFilesPerTrigger`, `latestFirst`,
//!   `maxFileAge`, `fileNameOnly`) and records them in the checkpoint's
//!   `sources/0/<batch>` log *before* the batch's `offsets/<batch>` names
//!   that log entry (`{"logOffset": n}`). A batch reads exactly the files
//!   of its entries, so a batch run again after a crash reads the same
//!   files, and a restart never reads a file twice. A folder written by a
//!   file sink is read through its `_spark_metadata` log: only committed
//!   files. `cleanSource` archives or deletes a batch's files once the
//!   batch has committed.
//! - **Sink** ([`sink::FileSink`]). A batch's rows go to hidden files (one
//!   per `partition_by` folder, rolled at `maxRecordsPerFile`), which are
//!   synced and renamed to Spark's names (`part-<n>-<uuid>.c<k>.<ext>`) when
//!   the batch flushes; the batch is committed by writing
//!   `_spark_metadata/<batch>` (every 10th batch a `.compact` file with
//!   every live file); a batch the log has already is not written again.
//!   A reader that follows the log sees each row once. File names carry
//!   the query id, so a restarted sink removes what a batch in flight at a
//!   crash left, and a reader that ignores the log sees no leftovers.
//! - **Formats** ([`format::Format`]): a format only turns one file into
//!   Arrow batches and Arrow batches into one file. The logs, the listing
//!   and the commit know nothing of formats, so Delta and ORC plug in here.

pub(crate) mod format;
pub(crate) mod listing;
pub(crate) mod log;
pub(crate) mod options;
pub(crate) mod schema;
pub(crate) mod sink;
pub(crate) mod source;

pub(crate) use format::Format;

use std::path::Path;

use crate::error::Error;

/// An I/O failure on `path` while trying to `what`: retried (for the
/// query's bounded time) unless waiting can't cure it.
pub(crate) fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    let error = Error::execution(format!("can't {what} `{}`: {e}", path.display()));
    match e.kind() {
        PermissionDenied | NotFound | InvalidInput | InvalidData | Unsupported | AlreadyExists | IsADirectory
        | NotADirectory | ReadOnlyFilesystem => error,
        _ => error.retriable(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
