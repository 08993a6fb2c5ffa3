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

/// Spark's DDL for a flat schema, `"id INT, name STRING, at TIMESTAMP"`
/// (names may be back-quoted); the type names are [`parse_type`]'s. `arg`
/// and `option` name where the text came from, for errors.
pub(crate) fn schema_of_ddl(ddl: &str, option: &str) -> Result<Schema> {
    let fail = |why: String| Error::option(option, format!("`{option}` {why}"))
        .with_hint("for example \"id INT, name STRING, at TIMESTAMP\", or a named vector like c(id = \"integer\")");
    let mut columns: Vec<(String, String)> = Vec::new();
    for part in ddl.split(',').map(str::trim) {
        let (name, rest) = match part.strip_prefix('`') {
            Some(quoted) => match quoted.split_once('`') {
                Some((name, rest)) => (name.to_string(), rest),
                None => return Err(fail(format!("has an unclosed back quote in \"{part}\""))),
            },
            None => match part.split_once(|c: char| c.is_whitespace() || c == ':') {
                Some((name, rest)) => (name.to_string(), rest),
                None => return Err(fail(format!("must name a column and its type; \"{part}\" has no type"))),
            },
        };
        let type_name = rest.trim().trim_start_matches(':').trim();
        if name.is_empty() || type_name.is_empty() {
            return Err(fail(format!("must name a column and its type; \"{part}\" does not")));
        }
        if columns.iter().any(|(n, _)| *n == name) {
            return Err(fail(format!("names column `{name}` twice")));
        }
        parse_type(type_name, &name, "options").map_err(|e| Error::option(option, e.message))?;
        columns.push((name, type_name.to_string()));
    }
    schema_of(&columns, "options")
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

    #[test]
    fn ddl_names_columns_and_spark_types() {
        let s = schema_of_ddl("id INT, `the name` STRING,at timestamp , n: bigint", "value.schema").unwrap();
        let got: Vec<(String, DataType)> = s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(
            got,
            vec![
                ("id".into(), DataType::Int32),
                ("the name".into(), DataType::Utf8),
                ("at".into(), timestamp()),
                ("n".into(), DataType::Int64)
            ]
        );
        for bad in ["id", "id INT, id STRING", "id MAP<STRING,INT>", "`id INT", ", x INT"] {
            let e = schema_of_ddl(bad, "value.schema").unwrap_err();
            assert_eq!(e.option.as_deref(), Some("value.schema"), "{bad}");
        }
        let e = parse_type("complex", "z", "columns").unwrap_err();
        assert_eq!(e.arg.as_deref(), Some("columns"));
        assert!(e.message.contains("`z`"), "{e}");
    }
}
