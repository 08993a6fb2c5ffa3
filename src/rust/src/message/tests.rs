use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Float64Type, Int32Type, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::kafka::config::options_of;
use crate::source::kafka::kafka_schema;

/// A chunk as the Kafka source makes it, with these values (None: a tombstone).
fn records(values: &[Option<&str>]) -> RecordBatch {
    let n = values.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(BinaryArray::from(vec![None::<&[u8]>; n])),
        Arc::new(BinaryArray::from(values.iter().map(|v| v.map(str::as_bytes)).collect::<Vec<_>>())),
        Arc::new(StringArray::from(vec!["orders"; n])),
        Arc::new(Int32Array::from(vec![2; n])),
        Arc::new(Int64Array::from((100..100 + n as i64).collect::<Vec<_>>())),
        Arc::new(TimestampMillisecondArray::from(vec![Some(0); n]).with_timezone("+00:00")),
        Arc::new(Int32Array::from(vec![0; n])),
    ];
    RecordBatch::try_new(kafka_schema(false), columns).unwrap()
}

fn decoding(pairs: &[(&str, &str)]) -> (MessageDecoding, SchemaRef) {
    let d = MessageDecoding::parse(&options_of(pairs)).unwrap().unwrap();
    let schema = d.output_schema(&kafka_schema(false)).unwrap();
    (d, schema)
}

fn names(schema: &Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

#[test]
fn json_values_become_typed_columns_in_place_of_value() {
    let (d, schema) = decoding(&[("value.format", "json"), ("value.schema", "id INT, amount DOUBLE, name STRING")]);
    assert_eq!(names(&schema), ["key", "id", "amount", "name", "topic", "partition", "offset", "timestamp", "timestampType"]);
    let (rows, malformed) = d
        .decode(records(&[Some(r#"{"id":1,"amount":2.5,"name":"a","extra":true}"#), None, Some(r#"{"name":7}"#)]), &schema)
        .unwrap();
    assert_eq!(malformed, 0);
    let id = rows.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert_eq!(id.iter().collect::<Vec<_>>(), [Some(1), None, None]);
    let amount = rows.column_by_name("amount").unwrap().as_primitive::<Float64Type>();
    assert_eq!(amount.iter().collect::<Vec<_>>(), [Some(2.5), None, None]);
    // Spark reads a number as text where the schema says text.
    let name = rows.column_by_name("name").unwrap().as_string::<i32>();
    assert_eq!(name.iter().collect::<Vec<_>>(), [Some("a"), None, Some("7")]);
}

#[test]
fn malformed_json_is_null_and_counted_when_permissive_and_an_error_naming_the_record_when_failfast() {
    let values = [Some(r#"{"id":1}"#), Some("{\"id\":"), Some(r#"{"id":"x"}"#), Some(r#"{"id":4}{"id":5}"#), Some(""), Some(r#"{"id":6}"#)];
    let (d, schema) = decoding(&[("value.format", "json"), ("value.schema", "id INT")]);
    let (rows, malformed) = d.decode(records(&values), &schema).unwrap();
    assert_eq!(malformed, 4);
    let id = rows.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert_eq!(id.iter().collect::<Vec<_>>(), [Some(1), None, None, None, None, Some(6)]);
    assert_eq!(rows.column_by_name("offset").unwrap().as_primitive::<arrow::datatypes::Int64Type>().value(5), 105);

    let (d, schema) = decoding(&[("value.format", "json"), ("value.schema", "id INT"), ("mode", "FAILFAST")]);
    let e = d.decode(records(&values), &schema).unwrap_err();
    assert_eq!(e.kind, crate::error::ErrorKind::Execution);
    assert!(e.message.starts_with("Malformed records are detected in record parsing. Parse Mode: FAILFAST."), "{e}");
    assert!(e.message.contains("topic orders, partition 2, offset 101"), "{e}");
}

#[test]
fn csv_values_one_record_each() {
    let (d, schema) = decoding(&[("value.format", "csv"), ("value.schema", "id INT, word STRING, at TIMESTAMP")]);
    let values = [
        Some("1,hello,2024-01-02T03:04:05Z"),
        Some("2,\"two\nlines\",\r\n"),
        Some("3,\"open"),
        Some("4,a\n5,b"),
        None,
        Some("6,x,2024-01-02T03:04:05.5Z\n"),
        Some("7"),
    ];
    let (rows, malformed) = d.decode(records(&values), &schema).unwrap();
    assert_eq!(malformed, 3);
    let id = rows.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert_eq!(id.iter().collect::<Vec<_>>(), [Some(1), Some(2), None, None, None, Some(6), None]);
    let word = rows.column_by_name("word").unwrap().as_string::<i32>();
    assert_eq!(word.value(1), "two\nlines");
    let at = rows.column_by_name("at").unwrap();
    assert!(at.is_null(1) && !at.is_null(5));
}

#[test]
fn keys_decode_too_and_names_may_not_collide() {
    let (d, schema) = decoding(&[("key.format", "csv"), ("key.schema", "region STRING"), ("value.format", "json"), ("value.schema", "n INT")]);
    assert_eq!(names(&schema)[..2], ["region", "n"]);
    let mut batch = records(&[Some(r#"{"n":3}"#)]);
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(BinaryArray::from(vec![Some("eu".as_bytes())]));
    batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let (rows, _) = d.decode(batch, &schema).unwrap();
    assert_eq!(rows.column(0).as_string::<i32>().value(0), "eu");

    let d = MessageDecoding::parse(&options_of(&[("value.format", "json"), ("value.schema", "topic STRING")])).unwrap().unwrap();
    let e = d.output_schema(&kafka_schema(false)).unwrap_err();
    assert_eq!(e.option.as_deref(), Some("value.schema"));
}

#[test]
fn options_are_checked_with_errors_naming_them() {
    let fails = |pairs: &[(&str, &str)], option: &str| {
        let e = MessageDecoding::parse(&options_of(pairs)).unwrap_err();
        assert_eq!(e.option.as_deref(), Some(option), "{pairs:?}: {e}");
    };
    fails(&[("value.format", "xml"), ("value.schema", "a INT")], "value.format");
    fails(&[("value.format", "json")], "value.schema");
    fails(&[("value.schema", "a INT")], "value.format");
    fails(&[("value.format", "json"), ("value.schema", "a INT"), ("mode", "DROPMALFORMED")], "mode");
    fails(&[("mode", "FAILFAST")], "mode");
    assert!(MessageDecoding::parse(&options_of(&[])).unwrap().is_none());
}

#[test]
fn csv_values_written_one_record_a_row_read_back_the_same() {
    let (d, schema) = decoding(&[("value.format", "csv"), ("value.schema", "id INT, word STRING")]);
    let fields = schema.fields()[1..3].to_vec();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
        Arc::new(StringArray::from(vec![Some("plain"), Some("a \"quoted\",\nline"), None])),
    ];
    let encoded = csv::encode(&fields, &columns, 3).unwrap();
    let values: Vec<Option<&str>> = (0..3).map(|i| Some(std::str::from_utf8(encoded.row(i)).unwrap())).collect();
    assert_eq!(values[0], Some("1,plain"));
    let (rows, malformed) = d.decode(records(&values), &schema).unwrap();
    assert_eq!(malformed, 0);
    assert_eq!(rows.column(1).as_ref(), columns[0].as_ref());
    let words = rows.column(2).as_string::<i32>();
    assert_eq!(words.value(1), "a \"quoted\",\nline");
    assert!(words.is_null(2) || words.value(2).is_empty());
}

const ORDER_AVRO: &str = r#"{"type": "record", "name": "order", "fields": [
  {"name": "id", "type": "int"},
  {"name": "item", "type": ["null", "string"], "default": null},
  {"name": "amount", "type": "double"}
]}"#;

#[test]
fn avro_bodies_written_by_the_sink_are_read_back_by_the_source() {
    let (d, schema) = decoding(&[("value.format", "avro"), ("value.schema", ORDER_AVRO)]);
    assert_eq!(names(&schema)[1..4], ["id", "item", "amount"]);
    let encoding = ValueEncoding::parse(&options_of(&[("value.format", "avro"), ("value.schema", ORDER_AVRO)])).unwrap().unwrap();
    let fields = vec![
        Arc::new(arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int32, false)),
        Arc::new(arrow::datatypes::Field::new("item", arrow::datatypes::DataType::Utf8, true)),
        Arc::new(arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Float64, false)),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2, 3])),
        Arc::new(StringArray::from(vec![Some("tea"), None, Some("\u{e9}clair")])),
        Arc::new(arrow::array::Float64Array::from(vec![2.5, 100.0, -1.0])),
    ];
    let encoded = encoding.encode(&fields, &columns, 3).unwrap();
    // A record's body: zigzag varint 1 (0x02), union branch 1 (0x02), "tea", then the double.
    assert_eq!(&encoded.row(0)[..6], &[0x02, 0x02, 0x06, b't', b'e', b'a']);
    let batch = records_bytes(&[Some(encoded.row(0)), Some(&[0x02]), Some(encoded.row(1)), None, Some(encoded.row(2))]);
    let (rows, malformed) = d.decode(batch, &schema).unwrap();
    assert_eq!(malformed, 1, "a truncated body");
    let id = rows.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert_eq!(id.iter().collect::<Vec<_>>(), [Some(1), None, Some(2), None, Some(3)]);
    let item = rows.column_by_name("item").unwrap().as_string::<i32>();
    assert_eq!(item.iter().collect::<Vec<_>>(), [Some("tea"), None, None, None, Some("\u{e9}clair")]);

    // Two records in one value is one too many.
    let two = [encoded.row(0), encoded.row(1)].concat();
    let (_, malformed) = d.decode(records_bytes(&[Some(&two), Some(encoded.row(2))]), &schema).unwrap();
    assert_eq!(malformed, 1);
}

#[test]
fn avro_schemas_are_checked_naming_the_option() {
    let e = MessageDecoding::parse(&options_of(&[("value.format", "avro"), ("value.schema", "{\"type\": \"nonsense\"}")])).unwrap_err();
    assert_eq!(e.option.as_deref(), Some("value.schema"), "{e}");
    // DDL becomes a record of nullable fields.
    let (_, schema) = decoding(&[("value.format", "avro"), ("value.schema", "id INT, name STRING")]);
    assert_eq!(names(&schema)[1..3], ["id", "name"]);
    let e = ValueEncoding::parse(&options_of(&[("value.format", "csv"), ("value.schema", "id INT")])).unwrap_err();
    assert_eq!(e.option.as_deref(), Some("value.schema"));
}

fn records_bytes(values: &[Option<&[u8]>]) -> RecordBatch {
    let batch = records(&vec![None; values.len()]);
    let mut cols = batch.columns().to_vec();
    cols[1] = Arc::new(BinaryArray::from(values.to_vec()));
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

#[test]
fn chunks_of_only_tombstones_or_only_malformed_values_are_rows_of_na() {
    let (d, schema) = decoding(&[("value.format", "avro"), ("value.schema", ORDER_AVRO)]);
    let (rows, malformed) = d.decode(records(&[None, None]), &schema).unwrap();
    assert_eq!((rows.num_rows(), malformed, rows.column_by_name("id").unwrap().null_count()), (2, 0, 2));
    let (rows, malformed) = d.decode(records_bytes(&[Some(&[0x02]), Some(b"")]), &schema).unwrap();
    assert_eq!((rows.num_rows(), malformed, rows.column_by_name("amount").unwrap().null_count()), (2, 2, 2));
}

#[test]
fn avro_values_are_written_in_the_schema_s_types_not_the_columns() {
    let encoding = ValueEncoding::parse(&options_of(&[("value.format", "avro"), ("value.schema", ORDER_AVRO)])).unwrap().unwrap();
    // R's doubles for an `int` field, integers for a `double` one.
    let field = |n: &str, t: arrow::datatypes::DataType| Arc::new(arrow::datatypes::Field::new(n, t, true));
    let fields = vec![
        field("amount", arrow::datatypes::DataType::Int32),
        field("id", arrow::datatypes::DataType::Float64),
        field("item", arrow::datatypes::DataType::Utf8),
    ];
    encoding.check_columns(&fields).unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![7, 8])),
        Arc::new(arrow::array::Float64Array::from(vec![1.0, 2.0])),
        Arc::new(StringArray::from(vec![Some("tea"), None])),
    ];
    let encoded = encoding.encode(&fields, &columns, 2).unwrap();
    let (d, schema) = decoding(&[("value.format", "avro"), ("value.schema", ORDER_AVRO)]);
    let (rows, malformed) = d.decode(records_bytes(&[Some(encoded.row(0)), Some(encoded.row(1))]), &schema).unwrap();
    assert_eq!(malformed, 0);
    assert_eq!(rows.column_by_name("id").unwrap().as_primitive::<Int32Type>().values().to_vec(), [1, 2]);
    assert_eq!(rows.column_by_name("amount").unwrap().as_primitive::<Float64Type>().values().to_vec(), [7.0, 8.0]);

    // NA where the schema has no null, a fraction for an int: errors, not wrong bytes.
    let with_na: Vec<ArrayRef> =
        vec![columns[0].clone(), Arc::new(arrow::array::Float64Array::from(vec![Some(1.0), None])), columns[2].clone()];
    let e = encoding.encode(&fields, &with_na, 2).unwrap_err();
    assert!(e.message.contains("row 2 has NA in column `id`"), "{e}");
    let fraction: Vec<ArrayRef> = vec![columns[0].clone(), Arc::new(arrow::array::Float64Array::from(vec![1.5, 2.0])), columns[2].clone()];
    assert!(encoding.encode(&fields, &fraction, 2).is_err());
    // Columns and fields must match by name.
    let e = encoding.check_columns(&fields[..2]).unwrap_err();
    assert_eq!(e.option.as_deref(), Some("value.schema"));
    let mut extra = fields.clone();
    extra.push(field("other", arrow::datatypes::DataType::Utf8));
    assert!(encoding.check_columns(&extra).unwrap_err().message.contains("`other` is not a field"));
}

#[test]
fn spark_schemas_of_nested_columns_write_values_that_read_back_equal() {
    use arrow::array::{Date32Array, ListArray, StructArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Fields, Int32Type as I32};
    let list = ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![])]);
    let inner = StructArray::from(vec![(Arc::new(Field::new("x", DataType::Utf8, true)), Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef)]);
    let fields = Fields::from(vec![
        Field::new("l", list.data_type().clone(), true),
        Field::new("d", DataType::Date32, true),
        Field::new("t", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("s", inner.data_type().clone(), false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(list),
        Arc::new(Date32Array::from(vec![Some(20_000), None, Some(1)])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), Some(0), None]).with_timezone("UTC")),
        Arc::new(inner),
    ];
    // Row 1 of the struct column is null: a null value, not a record.
    let rows = StructArray::try_new(fields, columns, Some(vec![true, false, true].into())).unwrap();
    let column: ArrayRef = Arc::new(rows);
    let shape = avro::ValueShape::of_column(&Field::new("r", column.data_type().clone(), true), "x").unwrap();
    let written = shape.encode(&column).unwrap();
    assert!(written.is_null(1) && written.is_valid(0) && written.is_valid(2));
    let read = shape.decode(written.as_binary::<i32>()).unwrap();
    let (read, column) = (read.as_struct(), column.as_struct());
    assert!(read.is_null(1));
    for (name, expected) in column.column_names().iter().zip(column.columns()) {
        let got = read.column_by_name(name).unwrap();
        for row in [0, 2] {
            let cast = arrow::compute::cast(&got.slice(row, 1), expected.data_type()).unwrap();
            assert_eq!(cast.to_data(), expected.slice(row, 1).to_data(), "field {name}, row {row}");
        }
    }
    // A chunk of only nulls, and a type Avro has no form for here.
    let nulls = arrow::array::new_null_array(column.data_type(), 2);
    assert_eq!(shape.encode(&nulls).unwrap().null_count(), 2);
    let e = avro::ValueShape::of_column(&Field::new("m", DataType::Decimal128(10, 2), true), "x").unwrap_err();
    assert!(e.message.contains("`m` can't be written as Avro"), "{}", e.message);
}
