//! Rows of an Arrow batch -> Kafka records, following Spark's column names:
//! `value` (text or bytes), `key`, `topic`, `partition`, `headers`. Without
//! a `value` column, each row's other columns become one value: a JSON
//! object (what Spark users write by hand as `to_json(struct(*))`, nulls
//! left out as Spark does), or CSV or Avro as `value.format` says
//! (`message::ValueEncoding`).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, GenericListArray, LargeBinaryArray, LargeStringArray,
    StringArray, StringViewArray,
};
use arrow::datatypes::{DataType, FieldRef, Float64Type, Int32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;

use super::json::encode_rows;
use crate::error::{Error, Result};
use crate::message::{EncodedRows, ValueEncoding};

/// Columns the Kafka sink treats as record metadata rather than data.
const META_COLUMNS: [&str; 5] = ["value", "key", "topic", "partition", "headers"];

/// Which column plays which part, decided once from the schema.
#[derive(Debug, Clone)]
pub struct RecordLayout {
    value: Option<usize>,
    key: Option<usize>,
    topic: Option<usize>,
    partition: Option<usize>,
    headers: Option<usize>,
    /// Columns serialised as the value when there is no `value` column.
    value_columns: Vec<usize>,
    /// How they are serialised (the `value.format` option; JSON by default).
    value_encoding: ValueEncoding,
    fixed_topic: Option<String>,
    /// Without a `key` column: the key is made of these (an aggregation's groups).
    key_from: Vec<usize>,
    /// `partition_by`: the partition is murmur2 of these columns' key.
    partition_by: Vec<usize>,
}

fn is_bytes_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
    )
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

fn column_error(column: &str, expected: &str, found: &DataType) -> Error {
    Error::config("x", format!("column `{column}` must be {expected} to be written to Kafka, not {}", describe_type(found)))
}

/// Arrow types in the words an R user knows.
pub fn describe_type(t: &DataType) -> String {
    match t {
        DataType::Float64 => "numeric".into(),
        DataType::Int32 => "integer".into(),
        DataType::Boolean => "logical".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "character".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "raw".into(),
        DataType::List(_) | DataType::LargeList(_) => "a list".into(),
        other => format!("{other}"),
    }
}

impl RecordLayout {
    pub fn new(schema: &Schema, fixed_topic: Option<String>) -> Result<Self> {
        let find = |name: &str| schema.index_of(name).ok();
        let (value, key, topic, partition, headers) =
            (find("value"), find("key"), find("topic"), find("partition"), find("headers"));
        for (idx, name) in [(value, "value"), (key, "key")] {
            if let Some(i) = idx {
                let t = schema.field(i).data_type();
                if !is_bytes_like(t) {
                    return Err(column_error(name, "character or raw", t)
                        .with_hint(format!("convert it first, e.g. `mutate({name} = as.character({name}))`")));
                }
            }
        }
        if let Some(i) = topic {
            let t = schema.field(i).data_type();
            if !is_text(t) {
                return Err(column_error("topic", "character", t));
            }
        }
        if let Some(i) = partition {
            let t = schema.field(i).data_type();
            if !matches!(t, DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Null) {
                return Err(column_error("partition", "integer", t));
            }
        }
        if let Some(i) = headers {
            let t = schema.field(i).data_type();
            let ok = match t {
                DataType::List(item) => match item.data_type() {
                    DataType::Struct(fs) => {
                        fs.len() == 2 && is_text(fs[0].data_type()) && is_bytes_like(fs[1].data_type())
                    }
                    _ => false,
                },
                DataType::Null => true,
                _ => false,
            };
            if !ok {
                return Err(column_error("headers", "a list of (key, value) pairs as read by stream_read_kafka()", t));
            }
        }
        if fixed_topic.is_none() && topic.is_none() {
            return Err(Error::config("options", "there is no `topic` option and no `topic` column: where should the records go?")
                .with_hint("add `topic = \"name\"` to `options`"));
        }
        let value_columns = if value.is_none() {
            (0..schema.fields().len()).filter(|i| !META_COLUMNS.contains(&schema.field(*i).name().as_str())).collect()
        } else {
            Vec::new()
        };
        if value.is_none() && value_columns.is_empty() {
            return Err(Error::config("x", "there is nothing to write: no `value` column and no other data column"));
        }
        Ok(RecordLayout {
            value,
            key,
            topic,
            partition,
            headers,
            value_columns,
            value_encoding: ValueEncoding::Json,
            fixed_topic,
            key_from: Vec::new(),
            partition_by: Vec::new(),
        })
    }

    /// Keys from columns: `key_columns` make the key of rows without a `key`
    /// column; rows with equal `partition_by` values go to one partition.
    pub fn with_keys(mut self, schema: &Schema, key_columns: &[String], partition_by: &[String]) -> Result<Self> {
        if self.key.is_none() {
            self.key_from = key_columns.iter().filter_map(|c| schema.index_of(c).ok()).collect();
            // A key that can't be made fails here, in R's call, not at the first batch.
            key_bytes(&RecordBatch::new_empty(std::sync::Arc::new(schema.clone())), &self.key_from)?;
        }
        if !partition_by.is_empty() && self.partition.is_some() {
            return Err(Error::config("partition_by", "`x` has a `partition` column: drop it or `partition_by`, not both"));
        }
        self.partition_by = partition_by
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| {
                    Error::config("partition_by", format!("`partition_by` names `{c}`, which is not a column of `x`"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Values written as `encoding` says (the sink's `value.format`), made
    /// of the columns other than `key`, `topic`, `partition` and `headers`.
    pub fn with_value_encoding(mut self, encoding: Option<ValueEncoding>, schema: &Schema) -> Result<Self> {
        let Some(encoding) = encoding else { return Ok(self) };
        if self.value.is_some() {
            return Err(Error::option(
                "value.format",
                "`value.format` makes each value of the columns other than `key`, `topic`, `partition` and `headers`, but `x` has a `value` column",
            )
            .with_hint("rename `value`, or drop the option to write `value` as it is"));
        }
        // Columns that don't fit `value.schema` fail here, in R's call.
        encoding.check_columns(&self.value_fields(schema))?;
        self.value_encoding = encoding;
        Ok(self)
    }

    /// The columns that make each value.
    fn value_fields(&self, schema: &Schema) -> Vec<FieldRef> {
        self.value_columns.iter().map(|i| schema.fields()[*i].clone()).collect()
    }

    pub fn value_encoding(&self) -> &ValueEncoding {
        &self.value_encoding
    }

    /// Are values made from columns (not taken from a `value` column)?
    pub fn encodes_values(&self) -> bool {
        self.value.is_none()
    }

    /// Without a `value` column: each row of `batch` as a value.
    pub fn encoded_values(&self, batch: &RecordBatch) -> Result<Option<EncodedRows>> {
        if !self.encodes_values() {
            return Ok(None);
        }
        let fields = self.value_fields(batch.schema_ref());
        let arrays: Vec<ArrayRef> = self.value_columns.iter().map(|i| batch.column(*i).clone()).collect();
        self.value_encoding.encode(&fields, &arrays, batch.num_rows()).map(Some)
    }
}

/// A text or binary column, read as bytes.
enum Bytes<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Binary(&'a BinaryArray),
    LargeBinary(&'a LargeBinaryArray),
    BinaryView(&'a BinaryViewArray),
    Null,
}

impl<'a> Bytes<'a> {
    fn new(array: &'a dyn Array) -> Self {
        match array.data_type() {
            DataType::Utf8 => Bytes::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Bytes::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Bytes::Utf8View(array.as_string_view()),
            DataType::Binary => Bytes::Binary(array.as_binary::<i32>()),
            DataType::LargeBinary => Bytes::LargeBinary(array.as_binary::<i64>()),
            DataType::BinaryView => Bytes::BinaryView(array.as_binary_view()),
            _ => Bytes::Null,
        }
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        macro_rules! pick {
            ($a:expr, $conv:expr) => {
                if $a.is_null(i) {
                    None
                } else {
                    Some($conv($a.value(i)))
                }
            };
        }
        match self {
            Bytes::Utf8(a) => pick!(a, str::as_bytes),
            Bytes::LargeUtf8(a) => pick!(a, str::as_bytes),
            Bytes::Utf8View(a) => pick!(a, str::as_bytes),
            Bytes::Binary(a) => pick!(a, |v| v),
            Bytes::LargeBinary(a) => pick!(a, |v| v),
            Bytes::BinaryView(a) => pick!(a, |v| v),
            Bytes::Null => None,
        }
    }
}

enum Partition<'a> {
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    Null,
}

impl Partition<'_> {
    fn get(&self, row: usize) -> Result<Option<i32>> {
        let v = match self {
            Partition::I32(a) => (!a.is_null(row)).then(|| a.value(row) as f64),
            Partition::I64(a) => (!a.is_null(row)).then(|| a.value(row) as f64),
            Partition::F64(a) => (!a.is_null(row)).then(|| a.value(row)),
            Partition::Null => None,
        };
        match v {
            None => Ok(None),
            Some(p) if p >= 0.0 && p.fract() == 0.0 && p <= i32::MAX as f64 => Ok(Some(p as i32)),
            Some(p) => Err(Error::config("x", format!("row {}: `partition` {p} is not a partition number", row + 1))),
        }
    }
}

/// One Kafka record, borrowing from the batch (or from the encoded values).
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub partition: Option<i32>,
    /// With `partition_by`: the bytes whose murmur2 hash picks the partition.
    pub partition_key: Option<&'a [u8]>,
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

/// A chunk's records, ready to send: encoded values and derived keys are made
/// once for the whole chunk, so every record can borrow from them at once
/// (the Kafka sink hands a whole run of records to librdkafka in one call).
pub struct ChunkRecords<'a> {
    layout: &'a RecordLayout,
    rows: usize,
    /// Numbers rows in error messages (0-based position of row 0 in the micro-batch).
    first_row: u64,
    value: Option<Bytes<'a>>,
    key: Option<Bytes<'a>>,
    topic: Option<Bytes<'a>>,
    partition: Option<Partition<'a>>,
    headers: Option<&'a GenericListArray<i32>>,
    encoded: Option<EncodedRows>,
    derived_key: Option<BinaryArray>,
    partition_keys: Option<BinaryArray>,
}

impl<'a> ChunkRecords<'a> {
    pub fn new(layout: &'a RecordLayout, batch: &'a RecordBatch, first_row: u64) -> Result<Self> {
        Self::with_values(layout, batch, first_row, layout.encoded_values(batch)?)
    }

    /// With the values already made by [`RecordLayout::encoded_values`].
    pub fn with_values(layout: &'a RecordLayout, batch: &'a RecordBatch, first_row: u64, encoded: Option<EncodedRows>) -> Result<Self> {
        let col = |i: Option<usize>| i.map(|i| batch.column(i).as_ref());
        Ok(ChunkRecords {
            layout,
            rows: batch.num_rows(),
            first_row,
            value: col(layout.value).map(Bytes::new),
            key: col(layout.key).map(Bytes::new),
            topic: col(layout.topic).map(Bytes::new),
            partition: col(layout.partition).map(|a| match a.data_type() {
                DataType::Int32 => Partition::I32(a.as_primitive()),
                DataType::Int64 => Partition::I64(a.as_primitive()),
                DataType::Float64 => Partition::F64(a.as_primitive()),
                _ => Partition::Null,
            }),
            headers: col(layout.headers).and_then(|a| a.as_list_opt::<i32>()),
            encoded,
            derived_key: if layout.key_from.is_empty() { None } else { Some(key_bytes(batch, &layout.key_from)?) },
            partition_keys: if layout.partition_by.is_empty() { None } else { Some(key_bytes(batch, &layout.partition_by)?) },
        })
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn record(&self, row: usize) -> Result<Record<'_>> {
        let topic = match &self.layout.fixed_topic {
            Some(t) => t.as_str(),
            None => match self.topic.as_ref().and_then(|t| t.get(row)).filter(|b| !b.is_empty()) {
                // Topic columns are text columns, so this is valid UTF-8.
                Some(b) => std::str::from_utf8(b).map_err(|_| Error::config("x", "`topic` is not valid UTF-8"))?,
                None => {
                    return Err(Error::config(
                        "x",
                        format!("row {} has no topic: its `topic` is NA and there is no `topic` option", self.first_row + row as u64 + 1),
                    ))
                }
            },
        };
        let headers = match self.headers {
            Some(h) if !h.is_null(row) => {
                let entries = h.value(row);
                let entries = entries.as_struct();
                let keys = Bytes::new(entries.column(0).as_ref());
                let values = Bytes::new(entries.column(1).as_ref());
                Some(
                    (0..entries.len())
                        .map(|j| {
                            let k = keys.get(j).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                            (k, values.get(j).map(<[u8]>::to_vec))
                        })
                        .collect(),
                )
            }
            _ => None,
        };
        Ok(Record {
            topic,
            key: match (&self.key, &self.derived_key) {
                (Some(k), _) => k.get(row),
                (None, Some(d)) => Some(d.value(row)),
                (None, None) => None,
            },
            value: match &self.encoded {
                Some(rows) => Some(rows.row(row)),
                None => self.value.as_ref().and_then(|v| v.get(row)),
            },
            partition: match &self.partition {
                Some(p) => p.get(row)?,
                None => None,
            },
            partition_key: self.partition_keys.as_ref().map(|p| p.value(row)),
            // Headers are part of the record only with includeHeaders = "true" (checked by the sink).
            headers,
        })
    }
}

/// The key made of some columns of each row: one column's value as text
/// (bytes stay bytes), several columns as a JSON object.
pub fn key_bytes(batch: &RecordBatch, columns: &[usize]) -> Result<BinaryArray> {
    let fail = |e: arrow::error::ArrowError| Error::config("x", format!("can't make a key of these columns: {e}"));
    // One plain column is its text; a nested one (a window) or several are a JSON object.
    let nested = matches!(
        columns.first().map(|i| batch.column(*i).data_type()),
        Some(DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _))
    );
    if let (false, [only]) = (nested, columns) {
        let array = batch.column(*only);
        let as_binary = if is_bytes_like(array.data_type()) {
            arrow::compute::cast(array, &DataType::Binary)
        } else {
            arrow::compute::cast(array, &DataType::Utf8).and_then(|a| arrow::compute::cast(&a, &DataType::Binary))
        }
        .map_err(fail)?;
        return Ok(as_binary.as_binary::<i32>().clone());
    }
    let fields: Vec<FieldRef> = columns.iter().map(|i| batch.schema_ref().fields()[*i].clone()).collect();
    let arrays: Vec<ArrayRef> = columns.iter().map(|i| batch.column(*i).clone()).collect();
    let rows = encode_rows(&fields, &arrays, batch.num_rows())?;
    Ok((0..batch.num_rows()).map(|i| Some(rows.row(i))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_key_alone_is_a_json_object() {
        let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        use arrow::datatypes::Field;
        let fields = arrow::datatypes::Fields::from(vec![Field::new("start", time.clone(), true), Field::new("end", time, true)]);
        let window = arrow::array::StructArray::new(
            fields.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
                Arc::new(TimestampMicrosecondArray::from(vec![10_000_000]).with_timezone("UTC")),
            ],
            None,
        );
        let schema = Arc::new(Schema::new(vec![Field::new("w", DataType::Struct(fields), true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(window)]).unwrap();
        let keys = key_bytes(&batch, &[0]).unwrap();
        assert_eq!(std::str::from_utf8(keys.value(0)).unwrap(), r#"{"w":{"start":"1970-01-01T00:00:00Z","end":"1970-01-01T00:00:10Z"}}"#);
    }
    use std::sync::Arc;
    use arrow::array::{BooleanArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::TimeUnit;

    fn collect(layout: &RecordLayout, batch: &RecordBatch) -> Result<Vec<(String, Option<String>, Option<String>, Option<i32>)>> {
        let records = ChunkRecords::new(layout, batch, 0)?;
        (0..records.len())
            .map(|row| {
                let r = records.record(row)?;
                Ok((
                    r.topic.to_string(),
                    r.key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    r.partition,
                ))
            })
            .collect()
    }

    #[test]
    fn value_key_topic_partition_columns_are_used() {
        let batch = RecordBatch::try_from_iter(vec![
            ("value", Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef),
            ("key", Arc::new(StringArray::from(vec![None, Some("k")])) as ArrayRef),
            ("topic", Arc::new(StringArray::from(vec!["t1", "t2"])) as ArrayRef),
            ("partition", Arc::new(Int32Array::from(vec![Some(3), None])) as ArrayRef),
        ])
        .unwrap();
        let layout = RecordLayout::new(&batch.schema(), None).unwrap();
        let got = collect(&layout, &batch).unwrap();
        assert_eq!(got[0], ("t1".into(), None, Some("a".into()), Some(3)));
        assert_eq!(got[1], ("t2".into(), Some("k".into()), None, None));
        // The topic option wins over the column.
        let layout = RecordLayout::new(&batch.schema(), Some("fixed".into())).unwrap();
        assert!(collect(&layout, &batch).unwrap().iter().all(|r| r.0 == "fixed"));
    }

    #[test]
    fn rows_without_value_become_json_without_nulls() {
        let batch = RecordBatch::try_from_iter(vec![
            ("x", Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec![Some("é\"q"), Some("b")])) as ArrayRef),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), None])) as ArrayRef),
            ("key", Arc::new(StringArray::from(vec!["k1", "k2"])) as ArrayRef),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_000_000), None]).with_timezone("+00:00")) as ArrayRef,
            ),
        ])
        .unwrap();
        let layout = RecordLayout::new(&batch.schema(), Some("out".into())).unwrap();
        let got = collect(&layout, &batch).unwrap();
        let first: serde_json::Value = serde_json::from_str(got[0].2.as_deref().unwrap()).unwrap();
        assert_eq!(first["x"], 1.5);
        assert_eq!(first["s"], "é\"q");
        assert_eq!(first["b"], true);
        assert!(first["t"].as_str().unwrap().starts_with("1970-01-01T00:00:01"));
        assert!(first.get("key").is_none(), "key is record metadata, not data");
        assert_eq!(got[0].1.as_deref(), Some("k1"));
        let second: serde_json::Value = serde_json::from_str(got[1].2.as_deref().unwrap()).unwrap();
        assert_eq!(second, serde_json::json!({"s": "b"}));
    }

    #[test]
    fn missing_topic_is_an_error_naming_the_row() {
        let batch = RecordBatch::try_from_iter(vec![
            ("value", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
            ("topic", Arc::new(StringArray::from(vec![Some("t"), None])) as ArrayRef),
        ])
        .unwrap();
        let layout = RecordLayout::new(&batch.schema(), None).unwrap();
        let e = collect(&layout, &batch).unwrap_err();
        assert!(e.message.contains("row 2 has no topic"), "{e}");
        let no_topic = RecordBatch::try_from_iter(vec![("value", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)]).unwrap();
        let e = RecordLayout::new(&no_topic.schema(), None).unwrap_err();
        assert!(e.message.contains("no `topic` option and no `topic` column"), "{e}");
    }

    #[test]
    fn unsupported_value_type_is_an_error() {
        let batch = RecordBatch::try_from_iter(vec![("value", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)]).unwrap();
        let e = RecordLayout::new(&batch.schema(), Some("t".into())).unwrap_err();
        assert!(e.message.contains("`value` must be character or raw"), "{e}");
        let _ = TimeUnit::Microsecond;
    }
}
