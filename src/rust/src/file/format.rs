//! File formats: how one file becomes Arrow batches, and Arrow batches one
//! file. Nothing here knows about folders, logs or batches of the stream.
//!
//! Reading follows Spark's parse modes: `PERMISSIVE` (the default: a field
//! that does not parse as its column's type becomes NA), `DROPMALFORMED`
//! (the row is left out) and `FAILFAST` (the stream fails, naming the file
//! and the line). CSV is read as text and cast to the column types, which
//! is how a bad field is found without failing the whole file.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StringArray};
use arrow::compute::kernels::boolean::{and, not, or};
use arrow::compute::{cast, cast_with_options, concat_batches, filter_record_batch, is_not_null, is_null, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use orc_rust::compression::CompressionType as OrcCompression;
use parquet::file::properties::WriterProperties;
use regex::Regex;

use super::schema::{readable, wider_type, UTC};
use crate::error::{Error, Result};
use crate::kafka::config::{parse_bool, Options};
use crate::source::CHUNK_ROWS;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    Csv(Csv),
    Json { mode: ParseMode },
    /// One row per line in column `line` (sparklyr's name); `wholetext`: one per file.
    Text { whole_text: bool },
    Parquet { compression: Compression },
    Orc { compression: OrcCodec },
}

/// ORC's compressions (orc-rust's type has no equality).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OrcCodec {
    None,
    Snappy,
    Zlib,
    Lz4,
    Zstd,
}

impl OrcCodec {
    fn compression(self) -> Option<OrcCompression> {
        match self {
            OrcCodec::None => None,
            OrcCodec::Snappy => Some(OrcCompression::Snappy),
            OrcCodec::Zlib => Some(OrcCompression::Zlib),
            OrcCodec::Lz4 => Some(OrcCompression::Lz4),
            OrcCodec::Zstd => Some(OrcCompression::Zstd),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Csv {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    pub null_value: String,
    pub comment: Option<u8>,
    pub mode: ParseMode,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ParseMode {
    Permissive,
    DropMalformed,
    FailFast,
}

/// What reading a file found besides its rows.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ReadCounts {
    /// Rows with a field that did not parse (NA, or dropped).
    pub malformed: u64,
}

/// An open output file of a batch.
pub(crate) trait FileWriter: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Finish the file (a parquet footer) and give it back, to be synced.
    fn finish(self: Box<Self>) -> Result<File>;
}

fn one_byte(options: &Options, key: &str, alias: Option<&str>, default: u8) -> Result<u8> {
    let value = options.get(key).or_else(|| alias.and_then(|a| options.get(a)));
    match value.map(|s| s.as_str()) {
        None => Ok(default),
        Some("") if key == "quote" => Ok(0), // Spark: an empty quote turns quoting off
        Some("\\t") => Ok(b'\t'),
        Some(s) if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        Some(s) => Err(Error::option(key, format!("`{key}` must be a single ASCII character, not \"{s}\""))),
    }
}

impl Format {
    /// The format `name` with its options for reading (`read`) or writing,
    /// taking the ones it knows out of `options`.
    pub fn parse(name: &str, options: &mut Options, read: bool) -> Result<Format> {
        let mode = || -> Result<ParseMode> {
            match options.get("mode").map(|m| m.trim().to_ascii_uppercase()) {
                None => Ok(ParseMode::Permissive),
                Some(m) if m == "PERMISSIVE" => Ok(ParseMode::Permissive),
                Some(m) if m == "DROPMALFORMED" => Ok(ParseMode::DropMalformed),
                Some(m) if m == "FAILFAST" => Ok(ParseMode::FailFast),
                Some(m) => Err(Error::option("mode", format!("`mode` must be \"PERMISSIVE\", \"DROPMALFORMED\" or \"FAILFAST\", not \"{m}\""))),
            }
        };
        let charset = options.get("charset").or_else(|| options.get("encoding"));
        if let Some(c) = charset.filter(|c| !matches!(c.to_ascii_uppercase().replace('-', "").as_str(), "UTF8" | "")) {
            return Err(Error::option("charset", format!("only UTF-8 files can be read or written, not \"{c}\"")));
        }
        // Spark's default for both columnar formats is snappy.
        let compression = options.get("compression").filter(|_| !read).map(|c| c.to_ascii_lowercase());
        let compression = compression.as_deref().unwrap_or(if matches!(name, "parquet" | "orc") { "snappy" } else { "none" });
        let (parquet_compression, orc_compression) = match (name, compression) {
            (_, "none" | "uncompressed") => (Compression::UNCOMPRESSED, OrcCodec::None),
            ("parquet", "snappy") => (Compression::SNAPPY, OrcCodec::None),
            ("orc", "snappy") => (Compression::UNCOMPRESSED, OrcCodec::Snappy),
            ("orc", "zlib") => (Compression::UNCOMPRESSED, OrcCodec::Zlib),
            ("orc", "lz4") => (Compression::UNCOMPRESSED, OrcCodec::Lz4),
            ("orc", "zstd") => (Compression::UNCOMPRESSED, OrcCodec::Zstd),
            (_, c) => {
                let expected = match name {
                    "parquet" => "\"snappy\" or \"none\"",
                    "orc" => "\"snappy\", \"zlib\", \"lz4\", \"zstd\" or \"none\"",
                    _ => "\"none\"",
                };
                return Err(Error::option("compression", format!("`compression` of {name} files must be {expected}, not \"{c}\"")));
            }
        };
        let format = match name {
            "csv" => Format::Csv(Csv {
                header: parse_bool(options, "header", false)?,
                delimiter: one_byte(options, "delimiter", Some("sep"), b',')?,
                quote: one_byte(options, "quote", None, b'"')?,
                escape: one_byte(options, "escape", None, b'\\')?,
                null_value: options.get("nullValue").cloned().unwrap_or_default(),
                comment: options.get("comment").map(|_| one_byte(options, "comment", None, b'#')).transpose()?,
                mode: mode()?,
            }),
            "json" => {
                if read && parse_bool(options, "multiLine", false)? {
                    return Err(Error::option("multiLine", "JSON files are read one object per line; `multiLine = \"true\"` is not supported"));
                }
                Format::Json { mode: mode()? }
            }
            "text" => Format::Text { whole_text: parse_bool(options, "wholetext", false)? },
            "parquet" => Format::Parquet { compression: parquet_compression },
            "orc" => Format::Orc { compression: orc_compression },
            other => return Err(Error::internal(format!("unknown file format `{other}`"))),
        };
        // The options this format has, for this side; any other is left for
        // the caller to report.
        let known: &[&str] = match (name, read) {
            ("csv", true) => &["header", "delimiter", "sep", "quote", "escape", "nullValue", "comment", "mode", "multiLine"],
            ("csv", false) => &["header", "delimiter", "sep", "quote", "escape", "nullValue", "compression"],
            ("json", true) => &["mode", "multiLine"],
            ("text", true) => &["wholetext"],
            (_, false) => &["compression"],
            _ => &[],
        };
        for key in known.iter().chain(&["charset", "encoding"]) {
            options.remove(*key);
        }
        Ok(format)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Csv(_) => "csv",
            Format::Json { .. } => "json",
            Format::Text { .. } => "text",
            Format::Parquet { .. } => "parquet",
            Format::Orc { .. } => "orc",
        }
    }

    /// The end of Spark's file names for this format.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Csv(_) => ".csv",
            Format::Json { .. } => ".json",
            Format::Text { .. } => ".txt",
            Format::Parquet { compression: Compression::SNAPPY } => ".snappy.parquet",
            Format::Parquet { .. } => ".parquet",
            Format::Orc { compression: OrcCodec::None } => ".orc",
            Format::Orc { compression: OrcCodec::Snappy } => ".snappy.orc",
            Format::Orc { compression: OrcCodec::Zlib } => ".zlib.orc",
            Format::Orc { compression: OrcCodec::Lz4 } => ".lz4.orc",
            Format::Orc { compression: OrcCodec::Zstd } => ".zstd.orc",
        }
    }

    /// The schema of these files (not of their partition folders), as
    /// Spark infers it; `None` when there is nothing to infer from.
    pub fn infer_schema(&self, files: &[&Path]) -> Result<Option<Schema>> {
        if let Format::Text { .. } = self {
            return Ok(Some(Schema::new(vec![Field::new("line", DataType::Utf8, true)])));
        }
        let mut merged: Option<Schema> = None;
        for path in files {
            let found = match self {
                Format::Csv(csv) => csv.infer(path)?,
                Format::Json { .. } => {
                    let (schema, _) = arrow::json::reader::infer_json_schema(BufReader::new(open(path)?), Some(INFER_ROWS))
                        .map_err(|e| read_error(path, e))?;
                    schema
                }
                Format::Parquet { .. } => {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?).map_err(|e| read_error(path, e))?;
                    builder.schema().as_ref().clone()
                }
                Format::Orc { .. } => {
                    let builder = orc_rust::arrow_reader::ArrowReaderBuilder::try_new(open(path)?).map_err(|e| read_error(path, e))?;
                    builder.schema().as_ref().clone()
                }
                Format::Text { .. } => unreachable!("text has a fixed schema"),
            };
            if found.fields().is_empty() {
                continue;
            }
            merged = Some(match merged {
                None => found,
                Some(m) => merge(&m, &found, matches!(self, Format::Csv(_))),
            });
            if matches!(self, Format::Parquet { .. } | Format::Orc { .. }) {
                break; // Spark reads one footer unless `mergeSchema`
            }
        }
        let Some(schema) = merged else { return Ok(None) };
        let fields: Vec<Field> =
            schema.fields().iter().map(|f| Field::new(f.name(), readable(f.data_type()), true)).collect();
        Ok(Some(Schema::new(fields)))
    }

    /// Read `path` as rows of `schema`, handing chunks to `emit`.
    pub fn read(&self, path: &Path, schema: &SchemaRef, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
        match self {
            Format::Csv(csv) => csv.read(path, schema, emit),
            Format::Json { mode } => read_json(path, schema, *mode, emit),
            Format::Text { whole_text } => read_text(path, schema, *whole_text, emit),
            Format::Parquet { .. } => read_parquet(path, schema, emit),
            Format::Orc { .. } => read_orc(path, schema, emit),
        }
    }

    /// A writer of `schema`'s rows into `file`.
    pub fn writer(&self, file: File, schema: &SchemaRef) -> Result<Box<dyn FileWriter>> {
        Ok(match self {
            Format::Csv(csv) => {
                let builder = arrow::csv::WriterBuilder::new()
                    .with_header(csv.header)
                    .with_delimiter(csv.delimiter)
                    .with_quote(csv.quote)
                    .with_null(csv.null_value.clone())
                    .with_timestamp_tz_format(TIMESTAMP_FORMAT.into())
                    .with_date_format("%Y-%m-%d".into());
                // Spark escapes a quote with `escape` (`\"`); an escape equal to the quote doubles it ("").
                let builder = if csv.quote == 0 {
                    builder.with_quote_style(arrow::csv::QuoteStyle::Never)
                } else if csv.escape == csv.quote {
                    builder.with_double_quote(true)
                } else {
                    builder.with_escape(csv.escape).with_double_quote(false)
                };
                Box::new(CsvWriter(builder.build(BufWriter::new(file))))
            }
            Format::Json { .. } => {
                let writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(false) // Spark leaves NA fields out
                    .with_timestamp_tz_format(TIMESTAMP_FORMAT.into())
                    .build::<_, arrow::json::writer::LineDelimited>(BufWriter::new(file));
                Box::new(JsonWriter(writer))
            }
            Format::Text { .. } => Box::new(TextWriter(BufWriter::new(file))),
            Format::Parquet { compression } => {
                let props = WriterProperties::builder().set_compression(*compression).build();
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(write_error)?;
                Box::new(ParquetWriter(writer))
            }
            Format::Orc { compression } => Box::new(OrcWriter::new(file, schema, compression.compression())?),
        })
    }
}

/// Rows of each file that CSV and JSON types are inferred from. Spark reads
/// every row; a sample (as DataFusion and DuckDB take) keeps defining a
/// stream over a large folder quick. A later value that does not fit its
/// column's type is a malformed field (see the parse modes).
const INFER_ROWS: usize = 10_000;

/// Spark's default (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`); times are written in UTC.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| super::io_error("read", path, &e))
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::execution(format!("can't read `{}`: {e}", path.display()))
}

fn write_error(e: impl std::fmt::Display) -> Error {
    Error::execution(format!("can't write a file: {e}"))
}

/// Two inferred schemas as one: CSV columns by position, others by name, a
/// column of two types as the wider.
fn merge(a: &Schema, b: &Schema, by_position: bool) -> Schema {
    let mut fields: Vec<Field> = a.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, f) in b.fields().iter().enumerate() {
        let at = if by_position { (i < fields.len()).then_some(i) } else { fields.iter().position(|g| g.name() == f.name()) };
        match at {
            Some(j) => fields[j] = Field::new(fields[j].name(), wider_type(fields[j].data_type(), f.data_type()), true),
            None => fields.push(f.as_ref().clone()),
        }
    }
    Schema::new(fields)
}

/// Cast `column` to `to`; fields that don't fit become null and are marked in the mask.
fn cast_marking(column: &ArrayRef, to: &DataType) -> Result<(ArrayRef, Option<BooleanArray>)> {
    if column.data_type() == to {
        return Ok((column.clone(), None));
    }
    let options = CastOptions { safe: true, ..Default::default() };
    let out = cast_with_options(column, to, &options)?;
    let bad = and(&is_not_null(column)?, &is_null(&out)?)?;
    Ok((out, (bad.true_count() > 0).then_some(bad)))
}

/// Apply the parse mode to a chunk whose bad rows are `bad`.
fn apply_mode(batch: RecordBatch, bad: Option<BooleanArray>, mode: ParseMode, path: &Path, first_line: u64) -> Result<(RecordBatch, u64)> {
    let Some(bad) = bad else { return Ok((batch, 0)) };
    let count = bad.true_count() as u64;
    match mode {
        ParseMode::Permissive => Ok((batch, count)),
        ParseMode::DropMalformed => Ok((filter_record_batch(&batch, &not(&bad)?)?, count)),
        ParseMode::FailFast => {
            let row = (0..bad.len()).find(|&i| bad.value(i)).unwrap_or(0) as u64;
            Err(Error::execution(format!(
                "malformed record in `{}` at line {} (mode FAILFAST): a field does not parse as its column's type",
                path.display(),
                first_line + row
            )))
        }
    }
}

impl Csv {
    fn null_regex(&self) -> Result<Regex> {
        Regex::new(&format!("^{}$", regex::escape(&self.null_value))).map_err(|e| Error::option("nullValue", e.to_string()))
    }

    /// The columns of one file, inferred from its first [`INFER_ROWS`] rows.
    fn infer(&self, path: &Path) -> Result<Schema> {
        let mut format = arrow::csv::reader::Format::default()
            .with_header(self.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_escape(self.escape)
            .with_null_regex(self.null_regex()?)
            .with_truncated_rows(true);
        if let Some(c) = self.comment {
            format = format.with_comment(c);
        }
        let (inferred, _) = format.infer_schema(open(path)?, Some(INFER_ROWS)).map_err(|e| read_error(path, e))?;
        // Spark names headerless columns _c0, _c1, ...
        let mut fields: Vec<Field> = inferred
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = if self.header { f.name().clone() } else { format!("_c{i}") };
                Field::new(name, f.data_type().clone(), true)
            })
            .collect();
        // Spark infers `integer` where every value fits, `bigint` otherwise.
        let wide: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].data_type() == &DataType::Int64).collect();
        if !wide.is_empty() {
            let schema = Arc::new(Schema::new(fields.clone()));
            let mut fits = vec![true; fields.len()];
            self.read_rows(path, &schema, Some(INFER_ROWS), &mut |batch| {
                for &i in &wide {
                    let column = batch.column(i);
                    let narrowed = cast_with_options(column, &DataType::Int32, &CastOptions { safe: true, ..Default::default() })?;
                    fits[i] &= narrowed.null_count() == column.null_count();
                }
                Ok(())
            })?;
            for i in wide {
                if fits[i] {
                    fields[i] = Field::new(fields[i].name(), DataType::Int32, true);
                }
            }
        }
        Ok(Schema::new(fields))
    }

    fn read(&self, path: &Path, schema: &SchemaRef, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
        self.read_rows(path, schema, None, emit)
    }

    /// The file's rows (the first `limit` of them).
    fn read_rows(
        &self,
        path: &Path,
        schema: &SchemaRef,
        limit: Option<usize>,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<ReadCounts> {
        let text_schema = Arc::new(Schema::new(
            schema.fields().iter().map(|f| Field::new(f.name(), DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let mut builder = arrow::csv::ReaderBuilder::new(text_schema)
            .with_header(self.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_escape(self.escape)
            .with_null_regex(self.null_regex()?)
            .with_truncated_rows(self.mode != ParseMode::FailFast)
            .with_batch_size(CHUNK_ROWS);
        if let Some(c) = self.comment {
            builder = builder.with_comment(c);
        }
        if let Some(n) = limit {
            builder = builder.with_bounds(0, n);
        }
        let reader = builder.build(open(path)?).map_err(|e| read_error(path, e))?;
        let mut counts = ReadCounts::default();
        let mut line = 1 + self.header as u64;
        for text in reader {
            let text = text.map_err(|e| read_error(path, e))?;
            let rows = text.num_rows() as u64;
            let mut bad: Option<BooleanArray> = None;
            let mut columns = Vec::with_capacity(schema.fields().len());
            for (column, field) in text.columns().iter().zip(schema.fields()) {
                let (typed, marked) = cast_marking(column, field.data_type())?;
                columns.push(typed);
                bad = match (bad, marked) {
                    (Some(a), Some(b)) => Some(or(&a, &b)?),
                    (a, b) => a.or(b),
                };
            }
            let typed = RecordBatch::try_new(schema.clone(), columns)?;
            let (kept, malformed) = apply_mode(typed, bad, self.mode, path, line)?;
            counts.malformed += malformed;
            line += rows;
            emit(kept)?;
        }
        Ok(counts)
    }
}

fn read_json(path: &Path, schema: &SchemaRef, mode: ParseMode, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
    let builder = || {
        arrow::json::ReaderBuilder::new(schema.clone())
            .with_strict_mode(false)
            .with_coerce_primitive(true)
            // PERMISSIVE: a field of another type is NA, not an error.
            .with_ignore_type_conflicts(mode == ParseMode::Permissive)
            .with_batch_size(CHUNK_ROWS)
    };
    // The fast way first; a file with a bad line is read again line by
    // line, only to find that line. Nothing is emitted before the file
    // read whole, so the retry can't emit a row twice.
    let whole: std::result::Result<Vec<RecordBatch>, _> =
        builder().build(BufReader::new(open(path)?)).map_err(|e| read_error(path, e))?.collect();
    if let Ok(batches) = whole {
        for b in batches {
            emit(b)?;
        }
        return Ok(ReadCounts::default());
    }
    let mut counts = ReadCounts::default();
    let mut rows: Vec<RecordBatch> = Vec::new();
    for (n, line) in BufReader::new(open(path)?).split(b'\n').enumerate() {
        let line = line.map_err(|e| read_error(path, e))?;
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            continue;
        }
        let mut decoder = builder().build_decoder()?;
        let parsed = decoder.decode(line.as_bytes()).and_then(|_| decoder.flush());
        match parsed {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => {}
            Err(e) => {
                counts.malformed += 1;
                match mode {
                    ParseMode::FailFast => {
                        return Err(Error::execution(format!(
                            "malformed record in `{}` at line {} (mode FAILFAST): {e}",
                            path.display(),
                            n + 1
                        )))
                    }
                    ParseMode::DropMalformed => {}
                    ParseMode::Permissive => {
                        let nulls: Vec<ArrayRef> = schema.fields().iter().map(|f| new_null_array(f.data_type(), 1)).collect();
                        rows.push(RecordBatch::try_new(schema.clone(), nulls)?);
                    }
                }
            }
        }
        if rows.len() >= CHUNK_ROWS {
            emit(concat_batches(schema, &rows)?)?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        emit(concat_batches(schema, &rows)?)?;
    }
    Ok(counts)
}

/// Bytes of text per chunk, besides the rows: one Arrow string array holds
/// at most 2 GiB, and memory stays flat however large the file.
const CHUNK_TEXT_BYTES: usize = 64 << 20;

fn read_text(path: &Path, schema: &SchemaRef, whole_text: bool, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
    let mut emit_lines = |lines: &mut Vec<String>| -> Result<()> {
        let column: ArrayRef = Arc::new(StringArray::from_iter_values(lines.drain(..)));
        emit(RecordBatch::try_new(schema.clone(), vec![column])?)
    };
    if whole_text {
        let mut bytes = Vec::new();
        open(path)?.read_to_end(&mut bytes).map_err(|e| read_error(path, e))?;
        return emit_lines(&mut vec![String::from_utf8_lossy(&bytes).into_owned()]).map(|_| ReadCounts::default());
    }
    let (mut lines, mut bytes) = (Vec::new(), 0);
    for line in BufReader::new(open(path)?).split(b'\n') {
        let mut line = line.map_err(|e| read_error(path, e))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        bytes += line.len();
        lines.push(String::from_utf8_lossy(&line).into_owned());
        if lines.len() >= CHUNK_ROWS || bytes >= CHUNK_TEXT_BYTES {
            emit_lines(&mut lines)?;
            bytes = 0;
        }
    }
    if !lines.is_empty() {
        emit_lines(&mut lines)?;
    }
    Ok(ReadCounts::default())
}

pub(crate) fn read_parquet(path: &Path, schema: &SchemaRef, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
        .and_then(|b| b.with_batch_size(CHUNK_ROWS).build())
        .map_err(|e| read_error(path, e))?;
    for batch in reader {
        emit(by_name(&batch.map_err(|e| read_error(path, e))?, schema, path)?)?;
    }
    Ok(ReadCounts::default())
}

fn read_orc(path: &Path, schema: &SchemaRef, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<ReadCounts> {
    let reader = orc_rust::arrow_reader::ArrowReaderBuilder::try_new(open(path)?)
        .map_err(|e| read_error(path, e))?
        .with_batch_size(CHUNK_ROWS)
        .build();
    for batch in reader {
        emit(by_name(&batch.map_err(|e| read_error(path, e))?, schema, path)?)?;
    }
    Ok(ReadCounts::default())
}

/// A columnar file's batch as rows of `schema`: columns found by name and
/// cast to their type, missing ones NA (a file written before a column was
/// added).
pub(crate) fn by_name(batch: &RecordBatch, schema: &SchemaRef, path: &Path) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()).map_err(|e| read_error(path, format!("column `{}`: {e}", f.name()))),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<_>>()?;
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// Timestamps in UTC, so that the writers' `Z` is true whatever zone a
/// pipeline gave them (the instants are the same; only the label changes).
pub(crate) fn in_utc(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() != UTC)) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if let DataType::Timestamp(unit, Some(_)) = f.data_type() {
            let to = DataType::Timestamp(*unit, Some(UTC.into()));
            columns.push(cast(c, &to)?);
            fields.push(Field::new(f.name(), to, true));
        } else {
            columns.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

struct CsvWriter(arrow::csv::Writer<BufWriter<File>>);
struct JsonWriter(arrow::json::Writer<BufWriter<File>, arrow::json::writer::LineDelimited>);
struct TextWriter(BufWriter<File>);
struct ParquetWriter(ArrowWriter<File>);

/// ORC's writer owns what it writes to: it gets a second handle on the file,
/// and the first is handed back to be synced.
struct OrcWriter {
    writer: orc_rust::arrow_writer::ArrowWriter<File>,
    file: File,
    schema: SchemaRef,
}

// SAFETY: orc-rust's writer holds its column encoders as `Box<dyn
// ColumnStripeEncoder>`, a trait without a `Send` bound, so the compiler
// can't see that it may move between threads. Every encoder orc-rust 0.9
// has (primitive, timestamp, boolean, binary/string, and the RLE and
// float encoders under them) owns only plain buffers (`Vec`, `BytesMut`)
// and Arrow arrays (`Arc`, Send and Sync): nothing tied to a thread. A file
// writer is used by one thread at a time (the query's); `Send` only lets
// the sink that owns it move into that thread. Its compressor
// (`Box<dyn CompressorVariant>`: snap's, flate2's, lz4_flex's and zstd's
// encoders) owns buffers and, for zstd, a context that zstd-safe declares
// `Send`. Cargo.toml pins orc-rust: a new release must be checked again.
unsafe impl Send for OrcWriter {}

impl OrcWriter {
    fn new(file: File, schema: &SchemaRef, compression: Option<OrcCompression>) -> Result<Self> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| Ok(Field::new(f.name(), orc_type(f.data_type()).ok_or_else(|| orc_unsupported(f))?, true)))
            .collect::<Result<_>>()?;
        let schema = Arc::new(Schema::new(fields));
        let handle = file.try_clone().map_err(write_error)?;
        let mut builder = orc_rust::arrow_writer::ArrowWriterBuilder::new(handle, schema.clone());
        if let Some(c) = compression {
            builder = builder.with_compression(c);
        }
        Ok(OrcWriter { writer: builder.try_build().map_err(write_error)?, file, schema })
    }
}

fn into_file(w: BufWriter<File>) -> Result<File> {
    w.into_inner().map_err(|e| write_error(e.error()))
}

impl FileWriter for CsvWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.write(&in_utc(batch)?).map_err(write_error)
    }
    fn finish(self: Box<Self>) -> Result<File> {
        into_file(self.0.into_inner())
    }
}

impl FileWriter for JsonWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.write(&in_utc(batch)?).map_err(write_error)
    }
    fn finish(mut self: Box<Self>) -> Result<File> {
        self.0.finish().map_err(write_error)?;
        into_file(self.0.into_inner())
    }
}

impl FileWriter for TextWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = cast(batch.column(0), &DataType::Utf8)?;
        let lines = column.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        for i in 0..lines.len() {
            let line = if lines.is_null(i) { "" } else { lines.value(i) };
            self.0.write_all(line.as_bytes()).and_then(|_| self.0.write_all(b"\n")).map_err(write_error)?;
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<File> {
        into_file(self.0)
    }
}

impl FileWriter for ParquetWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.write(batch).map_err(write_error)
    }
    fn finish(self: Box<Self>) -> Result<File> {
        self.0.into_inner().map_err(write_error)
    }
}

/// The type a column is written as in ORC (what orc-rust's writer takes),
/// or `None` when it can't be. Times become ORC's `timestamp` in UTC (the
/// writer's zone), as Spark writes them; the reader gets the same instants.
pub(crate) fn orc_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        DataType::Utf8View | DataType::Null => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::Float32
        | DataType::Float64
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Date32
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::Boolean => t.clone(),
        _ => return None,
    })
}

/// Spark's error for a column a format can't hold.
pub(crate) fn orc_unsupported(field: &Field) -> Error {
    Error::config("x", format!("ORC data source does not support {} data type (column `{}`).", field.data_type(), field.name()))
}

impl FileWriter for OrcWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
            .collect::<std::result::Result<_, _>>()?;
        self.writer.write(&RecordBatch::try_new(self.schema.clone(), columns)?).map_err(write_error)
    }
    fn finish(self: Box<Self>) -> Result<File> {
        self.writer.close().map_err(write_error)?;
        Ok(self.file)
    }
}

/// The one column a text file holds, or Spark's error.
pub(crate) fn check_text_schema(schema: &Schema) -> Result<()> {
    let n = schema.fields().len();
    if n != 1 {
        return Err(Error::config("x", format!("Text data source supports only a single column, and you have {n} columns.")));
    }
    let t = schema.field(0).data_type();
    if !matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        let name = super::schema::type_name(t).unwrap_or("this");
        return Err(Error::config("x", format!("Text data source does not support {name} data type."))
            .with_hint("make it text first, e.g. `mutate(value = as.character(value))`"));
    }
    Ok(())
}
