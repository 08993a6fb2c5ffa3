//! JSON values: one object a record, read with arrow-json's decoder as
//! Spark's `from_json` reads them (fields not in the schema are ignored,
//! numbers and booleans are read as text where the schema says text).
//! Writing is `sink::json`'s.

use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;

/// Each of `values` as one row of `schema`; an error if one is not exactly
/// one JSON object of it.
pub(crate) fn parse_all(schema: &SchemaRef, values: &[&[u8]]) -> Result<RecordBatch, String> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(values.len() + 1)
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for (i, value) in values.iter().enumerate() {
        let mut rest: &[u8] = value;
        while !rest.is_empty() {
            let read = decoder.decode(rest).map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("more than one JSON value".into());
            }
            rest = &rest[read..];
        }
        // A value must close the one object it opened, and open no other.
        if decoder.has_partial_record() || decoder.len() != i + 1 {
            return Err(if decoder.len() <= i { "not a whole JSON object".into() } else { "more than one JSON object".into() });
        }
    }
    match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => Ok(batch),
        None => Ok(RecordBatch::new_empty(schema.clone())),
    }
}
