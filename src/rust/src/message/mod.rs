//! Message formats: the bytes of Kafka keys and values as typed columns,
//! and rows as the bytes of values.
//!
//! Runtime model: decoding happens in the Kafka source, on each chunk of
//! records it hands on (up to `CHUNK_ROWS`), so a pipeline sees the fields
//! of `value.schema` as columns where `value` was (and those of `key.schema`
//! where `key` was). A chunk's values go through one arrow decoder, which
//! must make exactly one row of each value. Only when it fails is each value
//! decoded alone, to find the malformed ones: with `mode = "PERMISSIVE"`
//! (Spark's default) their fields become nulls and they are counted in the
//! batch's progress; with `"FAILFAST"` the stream fails, naming the record's
//! topic, partition and offset. A null value (a tombstone) is a row of
//! nulls, never malformed. Encoding happens in the Kafka sink
//! (`sink::encode`), which turns each row's data columns into one value.

pub(crate) mod avro;
pub(crate) mod csv;
pub(crate) mod json;
mod registry;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, UInt32Builder};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use self::avro::{AvroShape, ConfluentEncoding, ConfluentShape};
pub use self::avro::RegisteredSchema;
use self::registry::Registry;
use crate::error::{Error, Result};
use crate::file::schema::schema_of_ddl;
use crate::kafka::config::Options;

/// The options that set message formats, on a Kafka source.
pub(crate) const SOURCE_OPTIONS: [&str; 9] = [
    "key.format", "key.schema", "key.subject", "value.format", "value.schema", "value.subject", "mode",
    "schema.registry.url", "schema.registry.basic.auth.user.info",
];

/// The options that set message formats, on a Kafka sink.
pub(crate) const SINK_OPTIONS: [&str; 5] =
    ["value.format", "value.schema", "value.subject", "schema.registry.url", "schema.registry.basic.auth.user.info"];

/// How a key or a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
    /// The binary body of one Avro record, without a schema id.
    Avro,
    /// Confluent's frame (zero byte, 4-byte schema id) then an Avro body.
    AvroConfluent,
}

impl Format {
    /// The format option `option` (`value.format`, `key.format`), if given.
    fn parse(options: &Options, option: &str) -> Result<Option<Format>> {
        match options.get(option).map(|s| s.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(f) if f == "json" => Ok(Some(Format::Json)),
            Some(f) if f == "csv" => Ok(Some(Format::Csv)),
            Some(f) if f == "avro" => Ok(Some(Format::Avro)),
            Some(f) if f == "avro-confluent" => Ok(Some(Format::AvroConfluent)),
            Some(f) => Err(Error::option(
                option,
                format!("`{option}` must be \"json\", \"csv\", \"avro\" or \"avro-confluent\", not \"{f}\""),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Avro => "avro",
            Format::AvroConfluent => "avro-confluent",
        }
    }
}

/// A format with its schema: what reads one key or value into columns.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Text(Format, SchemaRef),
    Avro(AvroShape),
    Confluent(Arc<ConfluentShape>),
}

impl Shape {
    fn parse(format: Format, schema: &str, option: &str) -> Result<Self> {
        if format == Format::Avro {
            return AvroShape::parse(schema, option).map(Shape::Avro);
        }
        // Every field may be missing from a record, so every column may be NA.
        let columns = schema_of_ddl(schema, option)?;
        let fields: Vec<Field> = columns.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        Ok(Shape::Text(format, Arc::new(Schema::new(fields))))
    }

    fn format(&self) -> Format {
        match self {
            Shape::Text(format, _) => *format,
            Shape::Avro(_) => Format::Avro,
            Shape::Confluent(_) => Format::AvroConfluent,
        }
    }

    fn columns(&self) -> &SchemaRef {
        match self {
            Shape::Text(_, columns) => columns,
            Shape::Avro(shape) => &shape.columns,
            Shape::Confluent(shape) => &shape.reader.columns,
        }
    }

    /// What a decode needs first from elsewhere (the writer schemas of new
    /// ids): an error here is the stream's, not a malformed record.
    fn prepare(&self, values: &[&[u8]]) -> Result<()> {
        match self {
            Shape::Confluent(shape) => shape.prepare(values),
            _ => Ok(()),
        }
    }

    /// Each of `values` as one row; an error if any is not exactly one
    /// well-formed record.
    fn parse_all(&self, values: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
        match self {
            Shape::Text(Format::Csv, columns) => csv::parse_all(columns, values),
            Shape::Text(_, columns) => json::parse_all(columns, values),
            Shape::Avro(shape) => shape.parse_all(values),
            Shape::Confluent(shape) => shape.parse_all(values),
        }
    }
}

/// How a Kafka sink writes the values it makes of columns (`value.format`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueEncoding {
    /// Spark's `to_json(struct(*))`, the default (`sink::json`).
    Json,
    Csv,
    /// The schema of `value.schema`, or without it the one arrow-avro derives.
    Avro(Option<AvroShape>),
    /// As `Avro`, framed with the schema's id under `value.subject` in the registry.
    Confluent(Arc<ConfluentEncoding>),
}

impl ValueEncoding {
    /// A Kafka sink's `value.format` and `value.schema`; `None` without them.
    /// The Confluent format's schema is registered when the query starts
    /// ([`Self::settle`]), not when the stream is defined.
    pub(crate) fn parse(options: &Options) -> Result<Option<Self>> {
        let schema = options.get("value.schema");
        let format = Format::parse(options, "value.format")?;
        let confluent: &[&str] = if format == Some(Format::AvroConfluent) { &["value"] } else { &[] };
        check_registry_options(options, &["value"], confluent)?;
        Ok(match (format, schema) {
            (None, None) => None,
            (Some(Format::AvroConfluent), schema) => {
                let Some(schema) = schema else {
                    return Err(Error::option("value.schema", "`value.format = \"avro-confluent\"` needs `value.schema`, the Avro schema to register and write")
                        .with_hint("Avro schema JSON, or Spark's DDL such as \"id INT, name STRING\""));
                };
                let shape = AvroShape::parse(schema, "value.schema")?;
                let registry = Registry::from_options(options, "value.format")?;
                let subject = match (options.get("value.subject"), options.get("topic")) {
                    (Some(s), _) => s.clone(),
                    (None, Some(topic)) => subject_of(topic, "value"),
                    (None, None) => {
                        return Err(Error::option("value.subject", "`value.format = \"avro-confluent\"` without a `topic` option needs `value.subject`"))
                    }
                };
                Some(ValueEncoding::Confluent(Arc::new(ConfluentEncoding::new(shape, registry, subject))))
            }
            (Some(Format::Avro), Some(s)) => Some(ValueEncoding::Avro(Some(AvroShape::parse(s, "value.schema")?))),
            (Some(Format::Avro), None) => Some(ValueEncoding::Avro(None)),
            (Some(Format::Json), None) => Some(ValueEncoding::Json),
            (Some(Format::Csv), None) => Some(ValueEncoding::Csv),
            (_, Some(_)) => {
                return Err(Error::option("value.schema", "`value.schema` is for `value.format = \"avro\"` when writing: JSON and CSV values take the columns as they are"))
            }
        })
    }

    /// Can columns named by `fields` be written so? Checked when the stream is defined.
    pub(crate) fn check_columns(&self, fields: &[FieldRef]) -> Result<()> {
        match self {
            ValueEncoding::Avro(Some(shape)) => avro::check_columns(shape, fields),
            ValueEncoding::Confluent(confluent) => avro::check_columns(&confluent.shape, fields),
            _ => Ok(()),
        }
    }

    /// What the encoding settles once per query: the registry's id of an
    /// `avro-confluent` schema (see [`ConfluentEncoding::settle`]).
    pub(crate) fn settle(&self, saved: Option<RegisteredSchema>) -> Result<Option<RegisteredSchema>> {
        match self {
            ValueEncoding::Confluent(confluent) => confluent.settle(saved).map(Some),
            _ => Ok(None),
        }
    }

    /// Each row of `columns` (named by `fields`) as one value.
    pub(crate) fn encode(&self, fields: &[FieldRef], columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
        match self {
            ValueEncoding::Json => crate::sink::json::encode_rows(fields, columns, rows),
            ValueEncoding::Csv => csv::encode(fields, columns, rows),
            ValueEncoding::Avro(shape) => avro::encode(shape.as_ref(), None, fields, columns, rows),
            ValueEncoding::Confluent(confluent) => avro::encode(Some(&confluent.shape), Some(confluent.id()?), fields, columns, rows),
        }
    }
}

/// Options only `avro-confluent` reads are an error without it (an option
/// that does nothing hides a mistake): `<column>.subject` for each of
/// `columns` not in `confluent`, and the registry's without any.
fn check_registry_options(options: &Options, columns: &[&str], confluent: &[&str]) -> Result<()> {
    for column in columns.iter().filter(|c| !confluent.contains(c)) {
        let subject = format!("{column}.subject");
        if options.contains_key(&subject) {
            return Err(Error::option(&subject, format!("`{subject}` names a schema registry subject, for `{column}.format = \"avro-confluent\"`")));
        }
    }
    if confluent.is_empty() {
        for option in [registry::URL_OPTION, registry::AUTH_OPTION] {
            if options.contains_key(option) {
                let formats = columns.iter().map(|c| format!("`{c}.format`")).collect::<Vec<_>>().join(" or ");
                return Err(Error::option(option, format!("`{option}` is for the schema registry of {formats} = \"avro-confluent\"")));
            }
        }
    }
    Ok(())
}

/// Confluent's TopicNameStrategy: the subject of a topic's keys or values.
fn subject_of(topic: &str, column: &str) -> String {
    format!("{}-{column}", topic.trim())
}

/// What to do with a value its format can't read (Spark's `from_json` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    Permissive,
    FailFast,
}

/// How one of a record's byte columns (`key` or `value`) becomes columns.
#[derive(Debug, Clone, PartialEq)]
struct ColumnDecoding {
    column: &'static str,
    shape: Shape,
}

/// A Kafka source's `key.format`/`value.format` and their schemas.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MessageDecoding {
    columns: Vec<ColumnDecoding>,
    mode: ParseMode,
}

impl MessageDecoding {
    /// From a Kafka source's options; `None` when neither the key nor the
    /// value has a format.
    pub(crate) fn parse(options: &Options) -> Result<Option<Self>> {
        let mut columns = Vec::new();
        for column in ["key", "value"] {
            let (format_option, schema_option) = (format!("{column}.format"), format!("{column}.schema"));
            match (Format::parse(options, &format_option)?, options.get(&schema_option)) {
                (Some(Format::AvroConfluent), schema) => {
                    let subject_option = format!("{column}.subject");
                    let subject = match (options.get(&subject_option), options.get("subscribe")) {
                        (Some(s), _) => Some(s.clone()),
                        (None, Some(topic)) if !topic.contains(',') => Some(subject_of(topic, column)),
                        _ => None,
                    };
                    let registry = Registry::from_options(options, &format_option)?;
                    let shape = ConfluentShape::new(registry, subject.as_deref(), schema.map(String::as_str), &schema_option, &subject_option)?;
                    columns.push(ColumnDecoding { column, shape: Shape::Confluent(Arc::new(shape)) });
                }
                (Some(format), Some(schema)) => {
                    columns.push(ColumnDecoding { column, shape: Shape::parse(format, schema, &schema_option)? });
                }
                (Some(_), None) => {
                    return Err(Error::option(&schema_option, format!("`{format_option}` needs `{schema_option}`: the columns to read"))
                        .with_hint(format!("for example `{schema_option} = \"id INT, name STRING\"`")))
                }
                (None, Some(_)) => {
                    return Err(Error::option(&format_option, format!("`{schema_option}` needs `{format_option}`: how the {column} is written"))
                        .with_hint(format!("for example `{format_option} = \"json\"`")))
                }
                (None, None) => {}
            }
        }
        let mode = match options.get("mode").map(|m| m.trim().to_ascii_uppercase()) {
            None => ParseMode::Permissive,
            Some(m) if m == "PERMISSIVE" => ParseMode::Permissive,
            Some(m) if m == "FAILFAST" => ParseMode::FailFast,
            Some(m) if m == "DROPMALFORMED" => {
                return Err(Error::option("mode", "Kafka sources don't support the DROPMALFORMED mode. Acceptable modes are PERMISSIVE and FAILFAST."))
            }
            Some(m) => return Err(Error::option("mode", format!("`mode` must be \"PERMISSIVE\" or \"FAILFAST\", not \"{m}\""))),
        };
        let confluent: Vec<&str> =
            columns.iter().filter(|c| matches!(c.shape, Shape::Confluent(_))).map(|c| c.column).collect();
        check_registry_options(options, &["key", "value"], &confluent)?;
        if columns.is_empty() {
            if options.contains_key("mode") {
                return Err(Error::option("mode", "`mode` says what to do with malformed values, but there is no `value.format` or `key.format`"));
            }
            return Ok(None);
        }
        Ok(Some(MessageDecoding { columns, mode }))
    }

    /// The Kafka source's `schema` with each decoded column replaced by its fields.
    pub(crate) fn output_schema(&self, schema: &Schema) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = Vec::new();
        for f in schema.fields() {
            match self.columns.iter().find(|c| c.column == f.name()) {
                Some(c) => fields.extend(c.shape.columns().fields().iter().map(|f| f.as_ref().clone())),
                None => fields.push(f.as_ref().clone()),
            }
        }
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name() == f.name()) {
                let option = self.columns.iter().rev().find(|c| c.shape.columns().field_with_name(f.name()).is_ok()).map(|c| c.column);
                let option = format!("{}.schema", option.unwrap_or("value"));
                return Err(Error::option(&option, format!("`{option}` names column `{}`, which the stream already has", f.name()))
                    .with_hint("rename the field in the schema; a Kafka stream has `key`, `topic`, `partition`, `offset`, `timestamp` and `timestampType`"));
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// A chunk of the Kafka source's rows, decoded into `schema` (from
    /// [`Self::output_schema`]); also the number of malformed records.
    pub(crate) fn decode(&self, batch: RecordBatch, schema: &SchemaRef) -> Result<(RecordBatch, u64)> {
        let mut malformed = vec![false; batch.num_rows()];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (f, column) in batch.schema().fields().iter().zip(batch.columns()) {
            match self.columns.iter().find(|c| c.column == f.name()) {
                Some(c) => columns.extend(self.decode_column(c, &batch, column.as_binary::<i32>(), &mut malformed)?),
                None => columns.push(column.clone()),
            }
        }
        let bad = malformed.iter().filter(|m| **m).count() as u64;
        Ok((RecordBatch::try_new(schema.clone(), columns)?, bad))
    }

    fn decode_column(&self, c: &ColumnDecoding, batch: &RecordBatch, bytes: &BinaryArray, malformed: &mut [bool]) -> Result<Vec<ArrayRef>> {
        let present: Vec<usize> = (0..bytes.len()).filter(|i| bytes.is_valid(*i)).collect();
        let values: Vec<&[u8]> = present.iter().map(|i| bytes.value(*i)).collect();
        if values.is_empty() {
            return Ok(null_columns(c.shape.columns(), bytes.len()));
        }
        c.shape.prepare(&values)?;
        let (decoded, good) = match c.shape.parse_all(&values) {
            Ok(decoded) => (decoded, present),
            Err(_) => {
                // Alone, each value says whether it is the bad one.
                let mut good = Vec::with_capacity(present.len());
                for (i, value) in present.iter().zip(&values) {
                    match c.shape.parse_all(std::slice::from_ref(value)) {
                        Ok(_) => good.push(*i),
                        Err(why) if self.mode == ParseMode::FailFast => return Err(malformed_error(c, batch, *i, &why)),
                        Err(_) => malformed[*i] = true,
                    }
                }
                if good.is_empty() {
                    return Ok(null_columns(c.shape.columns(), bytes.len()));
                }
                let values: Vec<&[u8]> = good.iter().map(|i| bytes.value(*i)).collect();
                let decoded = c.shape.parse_all(&values).map_err(|e| {
                    Error::internal(format!("{} values that decode one by one failed together: {e}", c.column))
                })?;
                (decoded, good)
            }
        };
        spread_rows(&decoded, &good, bytes.len())
    }
}

/// The columns of `decoded`, whose rows are those numbered `good` of
/// `rows` rows, with nulls in the other rows.
pub(crate) fn spread_rows(decoded: &RecordBatch, good: &[usize], rows: usize) -> Result<Vec<ArrayRef>> {
    if good.len() == rows {
        return Ok(decoded.columns().to_vec());
    }
    let mut take = UInt32Builder::with_capacity(rows);
    let mut next = 0;
    for i in 0..rows {
        if good.get(next) == Some(&i) {
            take.append_value(next as u32);
            next += 1;
        } else {
            take.append_null();
        }
    }
    let take = take.finish();
    Ok(decoded.columns().iter().map(|col| arrow::compute::take(col, &take, None)).collect::<std::result::Result<_, _>>()?)
}

/// `rows` rows of nulls of each of `schema`'s columns.
fn null_columns(schema: &SchemaRef, rows: usize) -> Vec<ArrayRef> {
    schema.fields().iter().map(|f| arrow::array::new_null_array(f.data_type(), rows)).collect()
}

/// Spark's FAILFAST text, and where the record is.
fn malformed_error(c: &ColumnDecoding, batch: &RecordBatch, row: usize, why: &str) -> Error {
    let at = |name: &str| batch.column_by_name(name);
    let topic = at("topic").map(|a| a.as_string::<i32>().value(row).to_string()).unwrap_or_default();
    let partition = at("partition").map(|a| a.as_primitive::<arrow::datatypes::Int32Type>().value(row)).unwrap_or(-1);
    let offset = at("offset").map(|a| a.as_primitive::<arrow::datatypes::Int64Type>().value(row)).unwrap_or(-1);
    let expected = match c.shape.format() {
        Format::AvroConfluent => "a Confluent-framed Avro record whose schema resolves into the reader schema".to_string(),
        format => format!("the {} of `{}.schema`", format.name(), c.column),
    };
    Error::execution(format!(
        "Malformed records are detected in record parsing. Parse Mode: FAILFAST. The {} of the record at topic {topic}, \
         partition {partition}, offset {offset} is not {expected}: {why}",
        c.column
    ))
    .with_hint("with `mode = \"PERMISSIVE\"` such records become rows of NA, counted by stream_stats()")
}

/// Rows of values, each `bytes[offsets[i]..offsets[i + 1]]`, as the Kafka sink sends them.
#[derive(Debug)]
pub struct EncodedRows {
    pub(crate) bytes: Vec<u8>,
    pub(crate) offsets: Vec<usize>,
}

impl EncodedRows {
    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets[i]..self.offsets[i + 1]]
    }
}

#[cfg(test)]
mod tests;
