//! R data frame -> Arrow, column by column, in one pass each. NA becomes a
//! null; NaN stays NaN. Only the R main thread calls this.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{Field, Int32Type, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use extendr_api::prelude::*;

use crate::error::Error;

/// R's NA_real_ is a NaN whose low word is 1954.
fn is_na_real(x: f64) -> bool {
    x.is_nan() && (x.to_bits() & 0xFFFF_FFFF) == 1954
}

fn col_error(name: &str, what: &str) -> Error {
    Error::config("x", format!("column `{name}` {what}"))
}

/// A character vector as UTF-8 text. R already made it UTF-8 (`enc2utf8()`
/// in `stream_source()`); strings marked "bytes" are checked, not trusted.
fn strings(name: &str, robj: &Robj) -> std::result::Result<StringArray, Error> {
    use extendr_ffi::{R_NaString, LENGTH, R_CHAR, STRING_PTR_RO};
    if robj.rtype() != Rtype::Strings {
        return Err(col_error(name, "is not a character vector"));
    }
    const CE_BYTES: i32 = 3;
    #[allow(improper_ctypes)] // SEXP is an opaque pointer to C.
    extern "C" {
        fn Rf_getCharCE(x: extendr_ffi::SEXP) -> i32;
    }
    let n = robj.len();
    let mut out = arrow::array::StringBuilder::with_capacity(n, n * 8);
    // SAFETY: on R's main thread, reading a character vector R keeps alive
    // (it is an argument of the running .Call).
    unsafe {
        let elements = std::slice::from_raw_parts(STRING_PTR_RO(robj.get()), n);
        for &charsxp in elements {
            if charsxp == R_NaString {
                out.append_null();
                continue;
            }
            let bytes = std::slice::from_raw_parts(R_CHAR(charsxp).cast::<u8>(), LENGTH(charsxp) as usize);
            let text = if Rf_getCharCE(charsxp) == CE_BYTES {
                std::str::from_utf8(bytes).map_err(|_| col_error(name, "has strings marked \"bytes\" that are not UTF-8"))?
            } else {
                std::str::from_utf8_unchecked(bytes)
            };
            out.append_value(text);
        }
    }
    Ok(out.finish())
}

fn column_to_arrow(name: &str, col: &Robj) -> std::result::Result<ArrayRef, Error> {
    if col.inherits("factor") {
        let codes = col.as_integer_slice().ok_or_else(|| col_error(name, "is a damaged factor"))?;
        let levels = col.get_attrib("levels").ok_or_else(|| col_error(name, "is a factor without levels"))?;
        let levels = strings(name, &levels)?;
        let keys: Int32Array = codes.iter().map(|c| if *c == i32::MIN { None } else { Some(c - 1) }).collect();
        let dict = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(levels))
            .map_err(|e| col_error(name, &format!("is a damaged factor: {e}")))?;
        return Ok(Arc::new(dict));
    }
    if col.inherits("POSIXlt") {
        return Err(col_error(name, "is a POSIXlt date-time").with_hint("convert it with as.POSIXct()"));
    }
    if col.inherits("Date") {
        let days: Vec<Option<i32>> = match (col.as_real_slice(), col.as_integer_slice()) {
            (Some(r), _) => r.iter().map(|d| if d.is_finite() { Some(d.floor() as i32) } else { None }).collect(),
            (_, Some(i)) => i.iter().map(|d| if *d == i32::MIN { None } else { Some(*d) }).collect(),
            _ => return Err(col_error(name, "is a damaged Date")),
        };
        return Ok(Arc::new(Date32Array::from(days)));
    }
    if col.inherits("POSIXct") {
        let secs = col.as_real_slice().ok_or_else(|| col_error(name, "is a damaged POSIXct"))?;
        // Written as instants in UTC: unambiguous in JSON whatever the R time zone.
        let micros: TimestampMicrosecondArray = secs
            .iter()
            .map(|s| if s.is_finite() { Some((s * 1e6).round() as i64) } else { None })
            .collect();
        return Ok(Arc::new(micros.with_timezone("+00:00")));
    }
    if col.inherits("integer64") {
        let raw = col.as_real_slice().ok_or_else(|| col_error(name, "is a damaged integer64"))?;
        let v: Int64Array =
            raw.iter().map(|d| { let i = d.to_bits() as i64; if i == i64::MIN { None } else { Some(i) } }).collect();
        return Ok(Arc::new(v));
    }
    match col.rtype() {
        Rtype::Doubles => {
            let x = col.as_real_slice().unwrap_or(&[]);
            let nulls = NullBuffer::from_iter(x.iter().map(|v| !is_na_real(*v)));
            let values = Float64Array::new(x.to_vec().into(), (nulls.null_count() > 0).then_some(nulls));
            Ok(Arc::new(values))
        }
        Rtype::Integers => {
            let x = col.as_integer_slice().unwrap_or(&[]);
            let nulls = NullBuffer::from_iter(x.iter().map(|v| *v != i32::MIN));
            Ok(Arc::new(Int32Array::new(x.to_vec().into(), (nulls.null_count() > 0).then_some(nulls))))
        }
        Rtype::Logicals => {
            let x = col.as_logical_slice().unwrap_or(&[]);
            Ok(Arc::new(x.iter().map(|b| if b.is_na() { None } else { Some(b.is_true()) }).collect::<BooleanArray>()))
        }
        Rtype::Strings => Ok(Arc::new(strings(name, col)?)),
        Rtype::List => {
            let list = List::try_from(col.clone()).map_err(|_| col_error(name, "is a damaged list"))?;
            let mut out = BinaryBuilder::new();
            for item in list.values() {
                if item.is_null() {
                    out.append_null();
                } else if let Some(bytes) = item.as_raw_slice() {
                    out.append_value(bytes);
                } else {
                    return Err(col_error(
                        name,
                        &format!("is a list of {} values; only a list of raw vectors can be written", r_type_name(&item)),
                    )
                    .with_hint("turn it into text first, e.g. with jsonlite::toJSON() per row"));
                }
            }
            Ok(Arc::new(out.finish()))
        }
        _ => Err(col_error(name, &format!("is of type {}, which Kafka records can't carry", r_type_name(col)))),
    }
}

/// R's own name for an object's type, as `typeof()` says it.
fn r_type_name(robj: &Robj) -> &'static str {
    match robj.rtype() {
        Rtype::Doubles => "double",
        Rtype::Integers => "integer",
        Rtype::Logicals => "logical",
        Rtype::Strings => "character",
        Rtype::List => "list",
        Rtype::Raw => "raw",
        Rtype::Complexes => "complex",
        Rtype::Function => "closure",
        Rtype::Environment => "environment",
        _ => "an unsupported type",
    }
}

pub fn data_frame_to_arrow(df: &Robj) -> std::result::Result<RecordBatch, Error> {
    let list = List::try_from(df.clone()).map_err(|_| Error::config("x", "is not a data frame"))?;
    let names: Vec<String> = list.iter().map(|(n, _)| n.to_string()).collect();
    let rows = match list.values().next() {
        Some(first) => first.len(),
        None => 0,
    };
    let mut fields = Vec::with_capacity(names.len());
    let mut columns = Vec::with_capacity(names.len());
    for ((name, col), declared) in list.iter().zip(names.iter()) {
        let _ = name;
        let array = column_to_arrow(declared, &col)?;
        fields.push(Field::new(declared, array.data_type().clone(), true));
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).map_err(Error::from)
}
