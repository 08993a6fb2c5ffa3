//! CSV values: one record a value, no header, fields in the schema's order
//! (Spark's `from_csv`/`to_csv`): read with arrow-csv's decoder, written
//! with its writer, one row a value.

use arrow::array::ArrayRef;
use arrow::csv::{ReaderBuilder, WriterBuilder};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::EncodedRows;
use crate::error::{Error, Result};

/// Each of `values` as one row of `schema`; an error if one is not exactly
/// one CSV record of it.
pub(crate) fn parse_all(schema: &SchemaRef, values: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
    let mut decoder = ReaderBuilder::new(schema.clone()).with_header(false).with_batch_size(values.len() + 1).build_decoder();
    for value in values {
        let value = value.strip_suffix(b"\n").map(|v| v.strip_suffix(b"\r").unwrap_or(v)).unwrap_or(value);
        let before = decoder.capacity();
        for part in [value, b"\n".as_slice()] {
            let mut rest = part;
            while !rest.is_empty() {
                let read = decoder.decode(rest).map_err(|e| e.to_string())?;
                if read == 0 {
                    return Err("more than one CSV record".into());
                }
                rest = &rest[read..];
            }
        }
        // One value, one record: an open quote or a line break would shift every row after it.
        if decoder.capacity() + 1 != before {
            return Err("not exactly one CSV record".into());
        }
    }
    match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => Ok(batch),
        None => Ok(RecordBatch::new_empty(schema.clone())),
    }
}

/// Each row of `columns` (named by `fields`) as one CSV record, without its line end.
pub(crate) fn encode(fields: &[FieldRef], columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
    let batch = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields.to_vec())), columns.to_vec())?;
    let mut writer = WriterBuilder::new().with_header(false).build(Vec::new());
    writer.write(&batch).map_err(|e| Error::config("x", format!("can't write these columns as CSV: {e}")))?;
    let bytes = writer.into_inner();
    // Records end at a line break outside quotes (quotes inside a field are doubled).
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut ends = Vec::with_capacity(rows);
    offsets.push(0);
    let mut quoted = false;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => ends.push(i),
            _ => {}
        }
    }
    if ends.len() != rows {
        return Err(Error::internal(format!("arrow-csv wrote {} records for {rows} rows", ends.len())));
    }
    // Each row is bytes[start..end] with the line break left out.
    let mut out = Vec::with_capacity(bytes.len());
    let mut start = 0;
    for end in ends {
        out.extend_from_slice(&bytes[start..end]);
        offsets.push(out.len());
        start = end + 1;
    }
    Ok(EncodedRows { bytes: out, offsets })
}
