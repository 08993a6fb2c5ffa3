//! Rows as JSON objects, Spark's `to_json(struct(*))`: one object per row,
//! null fields left out, the whole chunk written into one buffer.
//!
//! The column types a data frame or a pipeline usually carries (integers,
//! doubles, logicals, text, factors, UTC date-times, dates) are written here
//! directly; arrow-json's row encoder formats date-times through `fmt` and
//! chrono, which made JSON the largest cost of P1 (bench/README.md). Other
//! types, and dates outside years 0-9999, go through arrow-json's own
//! encoder, so the output is arrow-json's either way (a test compares them).

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, FieldRef, Int32Type, TimeUnit};
use arrow::json::writer::{make_encoder, EncoderOptions, NullableEncoder};

use crate::error::{Error, Result};
use crate::message::EncodedRows;

/// Each row of `columns` (named by `fields`) as one JSON object.
pub fn encode_rows(fields: &[FieldRef], columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
    let fail = |e: arrow::error::ArrowError| Error::config("x", format!("can't write these columns as JSON: {e}"));
    let options = EncoderOptions::default();
    let mut writers = fields
        .iter()
        .zip(columns)
        .map(|(f, c)| ColumnWriter::new(f, c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0);
    for row in 0..rows {
        if row == 1 {
            // Rows are usually alike: room for all of them at once, not a doubling per megabyte.
            bytes.reserve(rows * (bytes.len() + bytes.len() / 4 + 8));
        }
        bytes.push(b'{');
        let mut first = true;
        for w in writers.iter_mut() {
            if w.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                continue;
            }
            if !first {
                bytes.push(b',');
            }
            first = false;
            bytes.extend_from_slice(&w.name);
            w.value.write(row, &mut bytes);
        }
        bytes.push(b'}');
        offsets.push(bytes.len());
    }
    Ok(EncodedRows { bytes, offsets })
}

struct ColumnWriter<'a> {
    /// `"name":`, escaped once.
    name: Vec<u8>,
    nulls: Option<NullBuffer>,
    value: Value<'a>,
}

enum Value<'a> {
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    Float64(&'a [f64]),
    Boolean(&'a BooleanArray),
    Text(&'a dyn TextColumn),
    /// A factor: codes into text levels.
    Dictionary { keys: &'a [i32], levels: &'a StringArray },
    /// Instants in UTC, as `seconds * per_second + fraction` in the column's unit.
    UtcTimestamp { values: &'a [i64], per_second: i64, fallback: NullableEncoder<'a> },
    Date32 { days: &'a [i32], fallback: NullableEncoder<'a> },
    /// Anything else: arrow-json's encoder.
    Other(NullableEncoder<'a>),
}

trait TextColumn {
    fn text(&self, i: usize) -> &str;
}

impl<O: arrow::array::OffsetSizeTrait> TextColumn for arrow::array::GenericStringArray<O> {
    fn text(&self, i: usize) -> &str {
        self.value(i)
    }
}

impl TextColumn for arrow::array::StringViewArray {
    fn text(&self, i: usize) -> &str {
        self.value(i)
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "+00:00" | "UTC" | "Z")
}

impl<'a> ColumnWriter<'a> {
    fn new(
        field: &'a FieldRef,
        array: &'a dyn Array,
        options: &'a EncoderOptions,
    ) -> std::result::Result<Self, arrow::error::ArrowError> {
        let mut name = Vec::with_capacity(field.name().len() + 3);
        write_string(field.name(), &mut name);
        name.push(b':');
        let value = match array.data_type() {
            DataType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Value::Int64(array.as_primitive::<arrow::datatypes::Int64Type>().values()),
            DataType::Float64 => Value::Float64(array.as_primitive::<arrow::datatypes::Float64Type>().values()),
            DataType::Boolean => Value::Boolean(array.as_boolean()),
            DataType::Utf8 => Value::Text(array.as_string::<i32>()),
            DataType::LargeUtf8 => Value::Text(array.as_string::<i64>()),
            DataType::Utf8View => Value::Text(array.as_string_view()),
            DataType::Dictionary(k, v)
                if **k == DataType::Int32 && **v == DataType::Utf8 && array.as_dictionary::<Int32Type>().values().null_count() == 0 =>
            {
                let dict = array.as_dictionary::<Int32Type>();
                Value::Dictionary { keys: dict.keys().values(), levels: dict.values().as_string::<i32>() }
            }
            DataType::Timestamp(unit, Some(tz)) if is_utc(tz) => {
                let per_second = match unit {
                    TimeUnit::Second => 1,
                    TimeUnit::Millisecond => 1_000,
                    TimeUnit::Microsecond => 1_000_000,
                    TimeUnit::Nanosecond => 1_000_000_000,
                };
                let values = match unit {
                    TimeUnit::Second => array.as_primitive::<arrow::datatypes::TimestampSecondType>().values(),
                    TimeUnit::Millisecond => array.as_primitive::<arrow::datatypes::TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => array.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => array.as_primitive::<arrow::datatypes::TimestampNanosecondType>().values(),
                };
                Value::UtcTimestamp { values, per_second, fallback: make_encoder(field, array, options)? }
            }
            DataType::Date32 => Value::Date32 {
                days: array.as_primitive::<arrow::datatypes::Date32Type>().values(),
                fallback: make_encoder(field, array, options)?,
            },
            _ => Value::Other(make_encoder(field, array, options)?),
        };
        let nulls = match &value {
            // arrow-json writes a null inside an unusual column itself; only leave out what is null at the top.
            Value::Other(_) => array.nulls().cloned(),
            _ => array.logical_nulls(),
        };
        Ok(ColumnWriter { name, nulls, value })
    }
}

impl Value<'_> {
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        match self {
            Value::Int32(v) => out.extend_from_slice(itoa::Buffer::new().format(v[row]).as_bytes()),
            Value::Int64(v) => out.extend_from_slice(itoa::Buffer::new().format(v[row]).as_bytes()),
            Value::Float64(v) => {
                let x = v[row];
                if x.is_finite() {
                    out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            Value::Boolean(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Value::Text(a) => write_string(a.text(row), out),
            Value::Dictionary { keys, levels } => write_string(levels.value(keys[row] as usize), out),
            Value::UtcTimestamp { values, per_second, fallback } => {
                let (secs, fraction) = (values[row].div_euclid(*per_second), values[row].rem_euclid(*per_second));
                let nanos = fraction * (1_000_000_000 / *per_second);
                if !write_utc(secs, nanos, out) {
                    fallback.encode(row, out);
                }
            }
            Value::Date32 { days, fallback } => {
                let (y, m, d) = civil_from_days(days[row] as i64);
                if (0..=9999).contains(&y) {
                    out.push(b'"');
                    write_date(y, m, d, out);
                    out.push(b'"');
                } else {
                    fallback.encode(row, out);
                }
            }
            Value::Other(e) => e.encode(row, out),
        }
    }
}

/// JSON string escaping as serde_json does it: quotes, backslashes and
/// control characters; everything else (UTF-8 included) as is.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn push_digits(value: u64, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + width, b'0');
    let mut v = value;
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn write_date(y: i64, m: u32, d: u32, out: &mut Vec<u8>) {
    push_digits(y as u64, 4, out);
    out.push(b'-');
    push_digits(m as u64, 2, out);
    out.push(b'-');
    push_digits(d as u64, 2, out);
}

/// RFC 3339 in UTC with as many fraction digits as needed (0, 3, 6 or 9:
/// chrono's `AutoSi`, which arrow-json uses). False outside years 0-9999.
fn write_utc(secs: i64, nanos: i64, out: &mut Vec<u8>) -> bool {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return false;
    }
    let second_of_day = secs.rem_euclid(86_400) as u64;
    out.push(b'"');
    write_date(y, m, d, out);
    out.push(b'T');
    push_digits(second_of_day / 3600, 2, out);
    out.push(b':');
    push_digits(second_of_day / 60 % 60, 2, out);
    out.push(b':');
    push_digits(second_of_day % 60, 2, out);
    let nanos = nanos as u64;
    if nanos != 0 {
        out.push(b'.');
        if nanos % 1_000_000 == 0 {
            push_digits(nanos / 1_000_000, 3, out);
        } else if nanos % 1_000 == 0 {
            push_digits(nanos / 1_000, 6, out);
        } else {
            push_digits(nanos, 9, out);
        }
    }
    out.extend_from_slice(b"Z\"");
    true
}

/// arrow-json's encoding of one row of a struct of `columns`: the reference
/// the fast paths above are tested against.
#[cfg(test)]
pub fn arrow_json_row(fields: &[FieldRef], columns: &[ArrayRef], row: usize) -> Vec<u8> {
    use arrow::datatypes::Field;
    use std::sync::Arc;
    let fields: arrow::datatypes::Fields = fields.iter().cloned().collect();
    let rows = arrow::array::StructArray::try_new(fields.clone(), columns.to_vec(), None).unwrap();
    let field = Arc::new(Field::new("row", DataType::Struct(fields), false));
    let options = EncoderOptions::default();
    let mut encoder = make_encoder(&field, &rows, &options).unwrap();
    let mut out = Vec::new();
    encoder.encode(row, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;
    use arrow::array::{
        Date32Array, DictionaryArray, Float64Array, Int32Array, Int64Array, LargeStringArray, ListArray,
        StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };
    use proptest::prelude::*;

    fn check_against_arrow_json(columns: Vec<(&str, ArrayRef)>) {
        let fields: Vec<FieldRef> =
            columns.iter().map(|(n, a)| Arc::new(Field::new(*n, a.data_type().clone(), true))).collect();
        let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
        let rows = arrays[0].len();
        let ours = encode_rows(&fields, &arrays, rows).unwrap();
        for row in 0..rows {
            let theirs = arrow_json_row(&fields, &arrays, row);
            let (a, b) = (String::from_utf8_lossy(ours.row(row)), String::from_utf8_lossy(&theirs));
            let parsed: serde_json::Value = serde_json::from_str(&a).unwrap_or_else(|e| panic!("{a}: {e}"));
            assert_eq!(parsed, serde_json::from_str::<serde_json::Value>(&b).unwrap(), "row {row}: ours {a}, arrow-json {b}");
            // Same text apart from how floats are spelt.
            if !a.contains('.') && !a.contains('e') {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn common_types_match_arrow_json() {
        let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("é\"b"), Some("a"), Some("z")].into_iter().collect();
        check_against_arrow_json(vec![
            ("i", Arc::new(Int32Array::from(vec![Some(1), None, Some(-7), Some(i32::MAX), Some(0)]))),
            ("l", Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(2), None, Some(0), Some(9)]))),
            ("x", Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN), None, Some(1e300), Some(-0.0)]))),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true), None]))),
            ("s", Arc::new(StringArray::from(vec![Some("a\"b\\c\n\t\u{1}\u{7f}"), None, Some(""), Some("日本"), Some("/")]))),
            ("ls", Arc::new(LargeStringArray::from(vec![Some("x"), None, Some("y"), Some("z"), Some("\r")]))),
            ("vs", Arc::new(StringViewArray::from(vec![Some("a long string view value here"), None, Some("y"), Some("z"), Some("")]))),
            ("f", Arc::new(dict)),
            ("d", Arc::new(Date32Array::from(vec![Some(0), Some(-1), Some(20_454), None, Some(3_000_000)]))),
            (
                "t",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(0), Some(-1), Some(1_500_000), None, Some(1_767_225_600_000_123)])
                        .with_timezone("+00:00"),
                ),
            ),
            ("ts", Arc::new(TimestampSecondArray::from(vec![Some(1), Some(-86_401), None, Some(0), Some(400_000_000_000)]).with_timezone("UTC"))),
            ("tm", Arc::new(TimestampMillisecondArray::from(vec![Some(1), Some(1_001), None, Some(-1), Some(7)]).with_timezone("+00:00"))),
            ("tn", Arc::new(TimestampNanosecondArray::from(vec![Some(1), Some(1_000), None, Some(-1), Some(5_000_000)]).with_timezone("+00:00"))),
            ("local", Arc::new(TimestampMicrosecondArray::from(vec![Some(0), None, Some(1), Some(2), Some(3)]).with_timezone("+02:00"))),
            (
                "list",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)]), None, Some(vec![]), Some(vec![None]), Some(vec![Some(2), Some(3)])])),
            ),
        ]);
    }

    proptest! {
        #[test]
        fn timestamps_and_text_match_arrow_json(
            micros in proptest::collection::vec(proptest::option::of(-62_000_000_000_000_000i64..253_000_000_000_000_000), 1..20),
            days in proptest::collection::vec(-800_000i32..3_000_000, 1..20),
            text in proptest::collection::vec("\\PC*", 1..20),
        ) {
            let n = micros.len().min(days.len()).min(text.len());
            check_against_arrow_json(vec![
                ("t", Arc::new(TimestampMicrosecondArray::from(micros[..n].to_vec()).with_timezone("+00:00"))),
                ("d", Arc::new(Date32Array::from(days[..n].to_vec()))),
                ("s", Arc::new(StringArray::from(text[..n].to_vec()))),
            ]);
        }
    }
}
