//! Avro values, through arrow-avro: `avro` is the binary body of one
//! record, without a schema id (what Spark's `from_avro`/`to_avro` read and
//! write); `avro-confluent` is Confluent's frame (a zero byte, the schema's
//! id in the registry as 4 bytes big-endian) then the body.
//!
//! arrow-avro's decoder only reads framed records, so a bare body is given
//! a frame with schema id 0, the one schema the store then holds. A
//! Confluent value's id is looked up in the registry the first time it is
//! seen (`registry`); the decoder reads every writer's schema into the
//! reader schema (Avro's schema resolution: fields added with a default,
//! promotions), so all rows have the same columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_avro::reader::ReaderBuilder;
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, FingerprintStrategy, SchemaStore, SCHEMA_METADATA_KEY};
use arrow_avro::writer::format::{AvroBinaryFormat, AvroSoeFormat};
use arrow_avro::writer::WriterBuilder;

use super::registry::{Lookup, Registry};
use super::EncodedRows;
use crate::error::{Error, Result};
use crate::file::schema::schema_of_ddl;

/// The frame arrow-avro's decoder needs: Confluent's magic byte and schema id 0.
const FRAME: [u8; 5] = [0, 0, 0, 0, 0];

/// An Avro record schema, and the columns arrow-avro reads it into.
#[derive(Debug, Clone)]
pub(crate) struct AvroShape {
    pub(crate) avro: AvroSchema,
    /// As read: every column nullable.
    pub(crate) columns: SchemaRef,
    /// As the schema has them (its non-null fields not nullable): what the sink writes.
    written: SchemaRef,
}

impl PartialEq for AvroShape {
    fn eq(&self, other: &Self) -> bool {
        self.avro.json_string == other.avro.json_string
    }
}

impl AvroShape {
    /// Option `option`: Avro schema JSON (`{"type": "record", ...}`), or
    /// Spark's DDL, whose columns arrow-avro turns into a record of
    /// nullable fields.
    pub(crate) fn parse(text: &str, option: &str) -> Result<Self> {
        if text.trim_start().starts_with('{') {
            return Self::from_json(text, option);
        }
        let columns = schema_of_ddl(text, option)?;
        let avro = AvroSchema::try_from(&columns).map_err(|e| Error::option(option, format!("`{option}` has no Avro form: {e}")))?;
        Self::new(avro, option)
    }

    /// Avro schema JSON (the user's, or a registry's).
    pub(crate) fn from_json(text: &str, option: &str) -> Result<Self> {
        Self::new(AvroSchema::new(text.to_string()), option)
    }

    fn new(avro: AvroSchema, option: &str) -> Result<Self> {
        Self::try_new(avro).map_err(|e| {
            Error::option(option, format!("`{option}` is not an Avro record schema that streamlyr can read: {e}"))
                .with_hint("for example {\"type\": \"record\", \"name\": \"order\", \"fields\": [{\"name\": \"id\", \"type\": \"int\"}]}")
        })
    }

    fn try_new(avro: AvroSchema) -> std::result::Result<Self, arrow::error::ArrowError> {
        let written = decoder_for(&avro)?.schema();
        // Read, every column may be NA: tombstones and malformed records are rows of nulls.
        let fields: Vec<FieldRef> =
            written.fields().iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
        Ok(AvroShape { avro, columns: Arc::new(Schema::new(fields)), written })
    }

    /// Columns named by `fields`, as the Arrow types of this schema's fields
    /// (a double column for an `int` field, microseconds for
    /// `timestamp-millis`): arrow-avro encodes by the Arrow type, so a
    /// column not cast first would be written in the wrong binary form.
    /// Without `columns`, only checks that they can be cast.
    fn conform(&self, fields: &[FieldRef], columns: Option<&[ArrayRef]>) -> Result<Vec<ArrayRef>> {
        let mut out = Vec::new();
        for f in fields {
            if self.written.field_with_name(f.name()).is_err() {
                return Err(Error::option("value.schema", format!("column `{}` is not a field of `value.schema`", f.name()))
                    .with_hint("select() the columns the schema has"));
            }
        }
        for target in self.written.fields() {
            let Some(i) = fields.iter().position(|f| f.name() == target.name()) else {
                return Err(Error::option("value.schema", format!("`value.schema` has field `{}`, which is not a column", target.name())));
            };
            if !arrow::compute::can_cast_types(fields[i].data_type(), target.data_type()) {
                return Err(Error::option(
                    "value.schema",
                    format!("column `{}` ({}) can't be written as the Avro field's {}", target.name(), fields[i].data_type(), target.data_type()),
                ));
            }
            let Some(columns) = columns else { continue };
            let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
            let cast = arrow::compute::cast_with_options(&columns[i], target.data_type(), &options)
                .map_err(|e| Error::execution(format!("column `{}` does not fit the Avro field: {e}", target.name())))?;
            if columns[i].data_type().is_floating() && target.data_type().is_integer() {
                // Casting truncates: a fraction (or a number out of range) must not be written as another number.
                let back = arrow::compute::cast(&cast, columns[i].data_type())?;
                let same = arrow::compute::kernels::cmp::eq(&back, &columns[i])?;
                if let Some(row) = (0..same.len()).find(|r| same.is_valid(*r) && !same.value(*r)) {
                    return Err(Error::execution(format!(
                        "row {} of column `{}` is not a whole number, but its Avro field is {}",
                        row + 1,
                        target.name(),
                        target.data_type()
                    )));
                }
            }
            if !target.is_nullable() && cast.null_count() > 0 {
                let row = (0..cast.len()).find(|r| cast.is_null(*r)).unwrap_or(0);
                return Err(Error::execution(format!(
                    "row {} has NA in column `{}`, whose Avro field can't be null",
                    row + 1,
                    target.name()
                ))
                .with_hint("make the field a union with \"null\", or filter() the rows out"));
            }
            out.push(cast);
        }
        Ok(out)
    }

    /// Each of `values` (bare bodies) as one row; an error if one is not
    /// exactly one record.
    pub(crate) fn parse_all(&self, values: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
        let store = bare_store(&self.avro).map_err(|e| e.to_string())?;
        let mut framed = Vec::with_capacity(values.iter().map(|v| v.len() + FRAME.len()).sum());
        let mut ends = Vec::with_capacity(values.len());
        for value in values {
            framed.extend_from_slice(&FRAME);
            framed.extend_from_slice(value);
            ends.push(framed.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        decode_framed(store, self, starts.zip(ends.iter().copied()).map(|(a, b)| &framed[a..b]))
    }
}

/// Rows a decoder holds before it is flushed.
const BATCH_ROWS: usize = 8192;

/// The one-schema store of bare records: `avro` under id 0, as in `FRAME`.
fn bare_store(avro: &AvroSchema) -> std::result::Result<SchemaStore, arrow::error::ArrowError> {
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store.set(Fingerprint::Id(0), avro.clone())?;
    Ok(store)
}

/// A decoder of bare records of `avro` (behind `FRAME`).
fn decoder_for(avro: &AvroSchema) -> std::result::Result<arrow_avro::reader::Decoder, arrow::error::ArrowError> {
    ReaderBuilder::new().with_writer_schema_store(bare_store(avro)?).with_reader_schema(avro.clone()).build_decoder()
}

/// `avro-confluent` values: framed records whose writer schemas are in a registry.
#[derive(Debug)]
pub(crate) struct ConfluentShape {
    pub(crate) reader: AvroShape,
    registry: Registry,
    /// Writer schemas by id, as the registry gave them. An id it did not
    /// have is asked for again with the next chunk (a registry follower
    /// may not have seen a new schema yet).
    writers: std::sync::Mutex<HashMap<u32, AvroSchema>>,
}

impl PartialEq for ConfluentShape {
    fn eq(&self, other: &Self) -> bool {
        self.reader == other.reader && self.registry == other.registry
    }
}

impl ConfluentShape {
    /// The reader schema is `schema` (option `option`) or else the latest
    /// of `subject` in the registry (`subject_option`, when it can't be derived).
    pub(crate) fn new(registry: Registry, subject: Option<&str>, schema: Option<&str>, option: &str, subject_option: &str) -> Result<Self> {
        let reader = match schema {
            Some(s) if !s.trim_start().starts_with('{') => {
                return Err(Error::option(option, format!("`{option}` must be Avro schema JSON with `avro-confluent` (the reader schema), or left out for the subject's latest")))
            }
            Some(s) => AvroShape::from_json(s, option)?,
            None => {
                let Some(subject) = subject else {
                    return Err(Error::option(subject_option, format!("without `{option}`, `{subject_option}` names the subject whose latest schema to read into (needed unless `subscribe` names one topic)")));
                };
                match registry.latest(subject)? {
                    Lookup::Found((_, s)) => AvroShape::from_json(&s, option)?,
                    Lookup::Missing => {
                        return Err(Error::option(option, format!("the schema registry has no subject `{subject}` to read its latest schema from"))
                            .with_hint(format!("give the reader schema in `{option}`, or the subject in `{subject_option}`")))
                    }
                }
            }
        };
        Ok(ConfluentShape { reader, registry, writers: Default::default() })
    }

    /// Looks up the writer schemas of `values` not seen before. Only what a
    /// retry can cure (the registry unreachable) is an error; a value
    /// without a frame, or with an id the registry doesn't have, is left to
    /// `parse_all` to call malformed.
    pub(crate) fn prepare(&self, values: &[&[u8]]) -> Result<()> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let unknown: std::collections::BTreeSet<u32> =
            values.iter().filter_map(|v| frame_id(v)).filter(|id| !writers.contains_key(id)).collect();
        for id in unknown {
            if let Lookup::Found(s) = self.registry.schema_by_id(id)? {
                writers.insert(id, AvroSchema::new(s));
            }
        }
        Ok(())
    }

    /// Each of `values` (after [`Self::prepare`]) as one row of the reader schema.
    pub(crate) fn parse_all(&self, values: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
        let writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids = std::collections::BTreeSet::new();
        for value in values {
            match frame_id(value) {
                None => return Err("not a Confluent-framed Avro record (a zero byte and a 4-byte schema id first)".into()),
                Some(id) if writers.contains_key(&id) => {
                    ids.insert(id);
                }
                Some(id) => return Err(format!("schema id {id} is not in the schema registry")),
            }
        }
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        for id in ids {
            if let Some(schema) = writers.get(&id) {
                store.set(Fingerprint::Id(id), schema.clone()).map_err(|e| e.to_string())?;
            }
        }
        decode_framed(store, &self.reader, values.iter().copied())
    }
}

/// An `avro-confluent` sink's schema: registered under `subject` when the
/// query starts, or its id found in the query's checkpoint, so that a
/// restart writes the same id even if the registry is down or the subject
/// has moved on. Each record is framed with the id.
#[derive(Debug)]
pub(crate) struct ConfluentEncoding {
    pub(crate) shape: AvroShape,
    registry: Registry,
    subject: String,
    id: std::sync::OnceLock<u32>,
}

impl PartialEq for ConfluentEncoding {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.registry == other.registry && self.subject == other.subject
    }
}

/// The schema an `avro-confluent` sink writes with, as its checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegisteredSchema {
    /// The registry's address (never with credentials: `Registry` refuses them).
    pub registry: String,
    pub subject: String,
    pub schema: String,
    pub id: u32,
}

impl ConfluentEncoding {
    pub(crate) fn new(shape: AvroShape, registry: Registry, subject: String) -> Self {
        ConfluentEncoding { shape, registry, subject, id: Default::default() }
    }

    /// The id to write with: `saved`'s (from the checkpoint) when it is for
    /// this registry, subject and schema, else the registry's now
    /// (registering the schema if it is new there). Returns what the
    /// checkpoint keeps.
    pub(crate) fn settle(&self, saved: Option<RegisteredSchema>) -> Result<RegisteredSchema> {
        let registered = match saved {
            Some(s) if s.registry == self.registry.url() && s.subject == self.subject && s.schema == self.shape.avro.json_string => s,
            _ => {
                let id = self
                    .registry
                    .register(&self.subject, &self.shape.avro.json_string)
                    .map_err(|e| e.context(format!("registering `value.schema` under subject `{}`", self.subject)))?;
                RegisteredSchema {
                    registry: self.registry.url().to_string(),
                    subject: self.subject.clone(),
                    schema: self.shape.avro.json_string.clone(),
                    id,
                }
            }
        };
        // Records already framed with one id must not be followed by another in the same query.
        if *self.id.get_or_init(|| registered.id) != registered.id {
            return Err(Error::internal("avro-confluent: the schema's id changed while the query ran"));
        }
        Ok(registered)
    }

    pub(crate) fn id(&self) -> Result<u32> {
        self.id.get().copied().ok_or_else(|| Error::internal("avro-confluent: a record to write before the schema's id was settled"))
    }
}

/// The schema id of a Confluent frame.
fn frame_id(value: &[u8]) -> Option<u32> {
    match value {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Framed records, each of which must be exactly one record, read into
/// `reader`'s columns.
fn decode_framed<'v>(store: SchemaStore, reader: &AvroShape, values: impl Iterator<Item = &'v [u8]>) -> std::result::Result<RecordBatch, String> {
    let mut values = values.peekable();
    if values.peek().is_none() {
        // arrow-avro wants at least one writer schema; there is nothing to read anyway.
        return Ok(RecordBatch::new_empty(reader.columns.clone()));
    }
    let mut decoder = ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_reader_schema(reader.avro.clone())
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut rows = 0;
    for value in values {
        let mut rest = value;
        while !rest.is_empty() {
            if decoder.batch_is_full() {
                batches.extend(decoder.flush().map_err(|e| e.to_string())?);
            }
            // A change of writer schema with rows buffered ends the batch
            // (the read stops after the frame); the body goes on after a flush.
            let read = decoder.decode(rest).map_err(|e| e.to_string())?;
            if read == 0 && !decoder.batch_is_full() {
                return Err("a truncated Avro record".into());
            }
            rest = &rest[read..];
        }
        rows += 1;
        // One value, one whole record: a second one in it would shift every row after it.
        let decoded = batches.iter().map(RecordBatch::num_rows).sum::<usize>() + BATCH_ROWS - decoder.capacity();
        if decoded != rows {
            return Err("not exactly one Avro record".into());
        }
    }
    batches.extend(decoder.flush().map_err(|e| e.to_string())?);
    let batch = arrow::compute::concat_batches(&decoder.schema(), &batches).map_err(|e| e.to_string())?;
    // The same columns, all nullable (see `AvroShape::parse`).
    RecordBatch::try_new(reader.columns.clone(), batch.columns().to_vec()).map_err(|e| e.to_string())
}

/// Each row of `columns` (named by `fields`) as the body of one Avro
/// record of `shape`'s schema (or, without one, of the schema arrow-avro
/// derives from the columns); with `id`, in Confluent's frame.
pub(crate) fn encode(shape: Option<&AvroShape>, id: Option<u32>, fields: &[FieldRef], columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
    let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = match shape {
        Some(shape) => (shape.written.fields().to_vec(), shape.conform(fields, Some(columns))?),
        None => (fields.to_vec(), columns.to_vec()),
    };
    let mut metadata = HashMap::new();
    if let Some(shape) = shape {
        metadata.insert(SCHEMA_METADATA_KEY.to_string(), shape.avro.json_string.clone());
    }
    let schema = Schema::new_with_metadata(fields, metadata);
    let fail = |e: arrow_avro::errors::AvroError| Error::config("x", format!("can't write these columns as Avro: {e}"));
    let builder = WriterBuilder::new(schema.clone());
    let mut encoder = match id {
        None => builder.build_encoder::<AvroBinaryFormat>(),
        Some(id) => builder.with_fingerprint_strategy(FingerprintStrategy::Id(id)).build_encoder::<AvroSoeFormat>(),
    }
    .map_err(fail)?;
    let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
    encoder.encode(&batch).map_err(fail)?;
    let encoded = encoder.flush();
    if encoded.len() != rows {
        return Err(Error::internal(format!("arrow-avro wrote {} records for {rows} rows", encoded.len())));
    }
    Ok(EncodedRows { bytes: encoded.bytes().to_vec(), offsets: encoded.offsets().to_vec() })
}

/// Can columns named by `fields` be written in `shape`'s schema? Checked
/// when the stream is defined.
pub(crate) fn check_columns(shape: &AvroShape, fields: &[FieldRef]) -> Result<()> {
    shape.conform(fields, None).map(|_| ())
}

/// One Avro value of any schema (a record, or a primitive such as
/// `"string"`), as Spark's `from_avro`/`to_avro` read and write a column.
/// It is handled as the only field of a wrapping record: a record's binary
/// form is its fields' one after another, so the bytes are the value's.
#[derive(Debug)]
pub(crate) struct ValueShape {
    wrapped: AvroShape,
}

/// The wrapping record's name: Spark names its own records `topLevelRecord`.
const WRAPPER: &str = "streamlyr_value";

impl ValueShape {
    /// A schema given as Avro JSON, or a bare primitive name (`string`, as
    /// sparklyr's documentation writes it); errors name argument `arg` and
    /// call the schema `what`.
    pub(crate) fn parse(text: &str, arg: &str, what: &str) -> Result<Self> {
        let schema: serde_json::Value = match serde_json::from_str(text) {
            Ok(schema) => schema,
            Err(_) if !text.trim().is_empty() && text.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') => {
                serde_json::Value::String(text.trim().to_string())
            }
            Err(e) => return Err(Error::config(arg, format!("{what} is not JSON: {e}"))),
        };
        Self::wrap(schema, arg, what)
    }

    /// Spark's Avro schema for a column of type `field` (its
    /// `SchemaConverters.toAvroType`): a nullable column is a union of the
    /// type and `"null"`, a struct a record named `topLevelRecord`. A
    /// struct is a bare record even when the column may be null (the
    /// engine calls every struct nullable, where Spark's `struct()` is
    /// not), so that `to_avro(named_struct(...))` gives Spark's bytes.
    pub(crate) fn of_column(field: &arrow::datatypes::Field, arg: &str) -> Result<Self> {
        let nullable = field.is_nullable() && !matches!(field.data_type(), arrow::datatypes::DataType::Struct(_));
        let schema = spark_avro_type(field.data_type(), nullable, "topLevelRecord", "")
            .map_err(|what| Error::config(arg, format!("`{}` can't be written as Avro: {what}", field.name())))?;
        Self::wrap(schema, arg, "Spark's Avro schema for this type")
    }

    fn wrap(schema: serde_json::Value, arg: &str, what: &str) -> Result<Self> {
        let wrapper = serde_json::json!({
            "type": "record", "name": WRAPPER, "namespace": "streamlyr",
            "fields": [{"name": "value", "type": schema}],
        });
        let wrapped = AvroShape::try_new(AvroSchema::new(wrapper.to_string()))
            .map_err(|e| Error::config(arg, format!("{what} is not an Avro schema streamlyr can read: {e}")))?;
        Ok(ValueShape { wrapped })
    }

    /// The type of the column a value is read into.
    pub(crate) fn data_type(&self) -> &arrow::datatypes::DataType {
        self.wrapped.columns.field(0).data_type()
    }

    /// Each non-null of `values` as one value; null stays null. A value that
    /// is not exactly one value of the schema fails, as Spark's FAILFAST.
    pub(crate) fn decode(&self, values: &arrow::array::BinaryArray) -> Result<ArrayRef> {
        let present: Vec<usize> = (0..values.len()).filter(|i| values.is_valid(*i)).collect();
        let bodies: Vec<&[u8]> = present.iter().map(|i| values.value(*i)).collect();
        if bodies.is_empty() {
            return Ok(arrow::array::new_null_array(self.data_type(), values.len()));
        }
        let decoded = self.wrapped.parse_all(&bodies).map_err(|why| {
            // Alone, each value says whether it is the bad one, and why.
            let why = bodies.iter().find_map(|body| self.wrapped.parse_all(std::slice::from_ref(body)).err()).unwrap_or(why);
            Error::execution(format!(
                "Malformed records are detected in record parsing. Current parse Mode: FAILFAST. \
                 A value is not one value of the Avro schema: {why}"
            ))
            .with_hint("`sdf_from_avro()` reads Spark's `to_avro()` bodies; Confluent-framed values are read with `value.format = \"avro-confluent\"`")
        })?;
        Ok(super::spread_rows(&decoded, &present, values.len())?.remove(0))
    }

    /// Each row of `column` as the binary body of one value, cast first to
    /// the schema's type; a null stays null (Spark's `to_avro` is null-safe).
    pub(crate) fn encode(&self, column: &ArrayRef) -> Result<ArrayRef> {
        let present: Vec<usize> = (0..column.len()).filter(|i| column.is_valid(*i)).collect();
        if present.is_empty() {
            return Ok(arrow::array::new_null_array(&arrow::datatypes::DataType::Binary, column.len()));
        }
        let written = if present.len() < column.len() {
            let rows = arrow::array::UInt32Array::from_iter_values(present.iter().map(|i| *i as u32));
            arrow::compute::take(column, &rows, None)?
        } else {
            column.clone()
        };
        let field: FieldRef = Arc::new(arrow::datatypes::Field::new("value", column.data_type().clone(), true));
        let rows = encode(Some(&self.wrapped), None, &[field], std::slice::from_ref(&written), written.len())?;
        let offsets = rows.offsets.iter().map(|o| i32::try_from(*o)).collect::<std::result::Result<Vec<i32>, _>>()
            .map_err(|_| Error::execution("`to_avro()`: a chunk's values exceed 2 GiB"))?;
        let bodies: ArrayRef =
            Arc::new(arrow::array::BinaryArray::new(arrow::buffer::OffsetBuffer::new(offsets.into()), rows.bytes.into(), None));
        if written.len() == column.len() {
            return Ok(bodies);
        }
        let bodies = RecordBatch::try_from_iter([("value", bodies)])?;
        Ok(super::spread_rows(&bodies, &present, column.len())?.remove(0))
    }
}

/// Spark's `toAvroType(type, nullable, recordName, nameSpace)`.
fn spark_avro_type(data_type: &arrow::datatypes::DataType, nullable: bool, name: &str, namespace: &str) -> std::result::Result<serde_json::Value, String> {
    use arrow::datatypes::DataType as T;
    use serde_json::json;
    let schema = match data_type {
        T::Null => return Ok(json!("null")),
        T::Boolean => json!("boolean"),
        T::Int8 | T::Int16 | T::Int32 | T::UInt8 | T::UInt16 => json!("int"),
        T::Int64 | T::UInt32 => json!("long"),
        T::Float16 | T::Float32 => json!("float"),
        T::Float64 => json!("double"),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => json!("string"),
        T::Dictionary(_, values) if matches!(values.as_ref(), T::Utf8 | T::LargeUtf8 | T::Utf8View) => json!("string"),
        T::Binary | T::LargeBinary | T::BinaryView => json!("bytes"),
        T::Date32 | T::Date64 => json!({"type": "int", "logicalType": "date"}),
        T::Timestamp(_, _) => json!({"type": "long", "logicalType": "timestamp-micros"}),
        T::List(item) | T::LargeList(item) => {
            json!({"type": "array", "items": spark_avro_type(item.data_type(), item.is_nullable(), name, namespace)?})
        }
        T::Struct(fields) => {
            let inner = if namespace.is_empty() { name.to_string() } else { format!("{namespace}.{name}") };
            let fields = fields
                .iter()
                .map(|f| Ok(json!({"name": f.name(), "type": spark_avro_type(f.data_type(), f.is_nullable(), f.name(), &inner)?})))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            json!({"type": "record", "name": name, "namespace": namespace, "fields": fields})
        }
        other => return Err(format!("Avro has no type for {other} here; cast it first (for example to a double or a string)")),
    };
    Ok(if nullable { json!([schema, "null"]) } else { schema })
}
