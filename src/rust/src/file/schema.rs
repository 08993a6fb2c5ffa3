//! Column types by name: the vocabulary of `columns = c(x = "integer")` in
//! R, of Spark's simple type names, and of the schema a file source
//! records in its query description. One table, both ways.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::error::{Error, Result};

/// The time zone of every timestamp the engine makes (as the Kafka source's).
pub(crate) const UTC: &str = "+00:00";

pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// A type named in R or in Spark's DDL; `arg` is the R argument for the error.
pub(crate) fn parse_type(name: &str, column: &str, arg: &str) -> Result<DataType> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "character" | "string" | "varchar" | "text" => DataType::Utf8,
        "integer" | "int" | "int32" => DataType::Int32,
        "bigint" | "long" | "int64" | "integer64" => DataType::Int64,
        "smallint" | "short" => DataType::Int16,
        "tinyint" | "byte" => DataType::Int8,
        "double" | "numeric" | "float64" => DataType::Float64,
        "float" | "real" | "float32" => DataType::Float32,
        "logical" | "boolean" | "bool" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" | "posixct" | "datetime" => timestamp(),
        "raw" | "binary" => DataType::Binary,
        other => {
            return Err(Error::config(
                arg,
                format!(
                    "column `{column}` has type \"{other}\"; expected one of \"character\", \"integer\", \"bigint\", \
                     \"double\", \"logical\", \"date\", \"timestamp\", \"binary\" (or Spark's names for them)"
                ),
            ))
        }
    })
}

/// The name [`parse_type`] reads back as `data_type`, for a type files can hold.
pub(crate) fn type_name(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Int16 => "smallint",
        DataType::Int8 => "tinyint",
        DataType::Float64 => "double",
        DataType::Float32 => "float",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        _ => return None,
    })
}

/// A schema from `(name, type name)` pairs.
pub(crate) fn schema_of(columns: &[(String, String)], arg: &str) -> Result<Schema> {
    let fields: Result<Vec<Field>> =
        columns.iter().map(|(name, t)| Ok(Field::new(name, parse_type(t, name, arg)?, true))).collect();
    Ok(Schema::new(fields?))
}

/// `schema`'s fields not named in `names`, then those named (a file's own
/// columns, then its partition folders' columns: Spark's order).
pub(crate) fn split_fields(schema: &Schema, names: &[String]) -> (Vec<Field>, Vec<Field>) {
    schema.fields().iter().map(|f| f.as_ref().clone()).partition(|f| !names.contains(f.name()))
}

/// The wider of two inferred types: a whole number and a double are a
/// double, two different kinds are text.
pub(crate) fn wider_type(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        _ if a == b => a.clone(),
        (Null, t) | (t, Null) => t.clone(),
        (Int32, Int64) | (Int64, Int32) => Int64,
        (Int32 | Int64, Float64) | (Float64, Int32 | Int64) => Float64,
        _ => Utf8,
    }
}

/// The types a file source hands on: what [`type_name`] can name. Anything
/// else (say a nested JSON object) becomes a text column, whose values are
/// NA for now.
pub(crate) fn readable(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Timestamp(_, _) => timestamp(),
        DataType::Date64 => DataType::Date32,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Null => DataType::Utf8,
        t if type_name(t).is_some() => t.clone(),
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_type_reads_back_as_itself() {
        for t in [
            DataType::Utf8,
            DataType::Int32,
            DataType::Int64,
            DataType::Int16,
            DataType::Int8,
            DataType::Float64,
            DataType::Float32,
            DataType::Boolean,
            DataType::Date32,
            timestamp(),
            DataType::Binary,
        ] {
            let name = type_name(&t).unwrap();
            assert_eq!(parse_type(name, "x", "columns").unwrap(), t, "{name}");
        }
        let e = parse_type("complex", "z", "columns").unwrap_err();
        assert_eq!(e.arg.as_deref(), Some("columns"));
        assert!(e.message.contains("`z`"), "{e}");
    }
}
