//! Avro values: each the binary body of one record, without a schema id
//! (what Spark's `from_avro`/`to_avro` read and write), through arrow-avro.
//!
//! arrow-avro's decoder only reads framed records, so each body is given a
//! Confluent frame (a zero byte and schema id 0) before it is decoded; the
//! schema store holds the one schema under that id, as writer and reader.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_avro::reader::ReaderBuilder;
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore, SCHEMA_METADATA_KEY};
use arrow_avro::writer::format::AvroBinaryFormat;
use arrow_avro::writer::WriterBuilder;

use super::EncodedRows;
use crate::error::{Error, Result};
use crate::file::schema::schema_of_ddl;

/// The frame arrow-avro's decoder needs: Confluent's magic byte and schema id 0.
const FRAME: [u8; 5] = [0, 0, 0, 0, 0];

/// An Avro record schema, and the columns arrow-avro reads it into.
#[derive(Debug, Clone)]
pub(crate) struct AvroShape {
    pub(crate) avro: AvroSchema,
    pub(crate) columns: SchemaRef,
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
        let avro = if text.trim_start().starts_with('{') {
            AvroSchema::new(text.to_string())
        } else {
            let columns = schema_of_ddl(text, option)?;
            AvroSchema::try_from(&columns).map_err(|e| Error::option(option, format!("`{option}` has no Avro form: {e}")))?
        };
        let decoder = decoder_for(&avro).map_err(|e| {
            Error::option(option, format!("`{option}` is not an Avro record schema that streamlyr can read: {e}"))
                .with_hint("for example {\"type\": \"record\", \"name\": \"order\", \"fields\": [{\"name\": \"id\", \"type\": \"int\"}]}")
        })?;
        // Every column may be NA: tombstones and malformed records are rows of nulls.
        let columns = decoder.schema();
        let fields: Vec<FieldRef> =
            columns.fields().iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
        Ok(AvroShape { avro, columns: Arc::new(Schema::new(fields)) })
    }

    /// Each of `values` as one row; an error if one is not exactly one record.
    pub(crate) fn parse_all(&self, values: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
        let mut decoder = decoder_for(&self.avro).map_err(|e| e.to_string())?;
        let mut framed = Vec::with_capacity(FRAME.len() + values.iter().map(|v| v.len()).max().unwrap_or(0));
        let mut batches = Vec::new();
        for value in values {
            framed.clear();
            framed.extend_from_slice(&FRAME);
            framed.extend_from_slice(value);
            if decoder.batch_is_full() {
                batches.extend(decoder.flush().map_err(|e| e.to_string())?);
            }
            let room = decoder.capacity();
            let read = decoder.decode(&framed).map_err(|e| e.to_string())?;
            // One value, one whole record: bytes left over, or short, would shift every row after it.
            if read != framed.len() || decoder.capacity() + 1 != room {
                return Err("not exactly one Avro record".into());
            }
        }
        batches.extend(decoder.flush().map_err(|e| e.to_string())?);
        let batch = arrow::compute::concat_batches(&decoder.schema(), &batches).map_err(|e| e.to_string())?;
        // The same columns, all nullable (see `parse`).
        RecordBatch::try_new(self.columns.clone(), batch.columns().to_vec()).map_err(|e| e.to_string())
    }
}

fn decoder_for(avro: &AvroSchema) -> std::result::Result<arrow_avro::reader::Decoder, arrow::error::ArrowError> {
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store.set(Fingerprint::Id(0), avro.clone())?;
    ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_active_fingerprint(Fingerprint::Id(0))
        .with_reader_schema(avro.clone())
        .with_batch_size(8192)
        .build_decoder()
}

/// Each row of `columns` (named by `fields`) as the body of one Avro
/// record of `shape`'s schema (or, without one, of the schema arrow-avro
/// derives from the columns).
pub(crate) fn encode(shape: Option<&AvroShape>, fields: &[FieldRef], columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
    let mut metadata = HashMap::new();
    if let Some(shape) = shape {
        metadata.insert(SCHEMA_METADATA_KEY.to_string(), shape.avro.json_string.clone());
    }
    let schema = Schema::new_with_metadata(fields.to_vec(), metadata);
    let fail = |e: arrow_avro::errors::AvroError| Error::config("x", format!("can't write these columns as Avro: {e}"));
    let mut encoder = WriterBuilder::new(schema.clone()).build_encoder::<AvroBinaryFormat>().map_err(fail)?;
    let batch = RecordBatch::try_new(Arc::new(schema), columns.to_vec())?;
    encoder.encode(&batch).map_err(fail)?;
    let encoded = encoder.flush();
    if encoded.len() != rows {
        return Err(Error::internal(format!("arrow-avro wrote {} records for {rows} rows", encoded.len())));
    }
    Ok(EncodedRows { bytes: encoded.bytes().to_vec(), offsets: encoded.offsets().to_vec() })
}
