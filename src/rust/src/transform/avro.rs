//! Spark's `from_avro(data, jsonFormatSchema)` and `to_avro(data[,
//! jsonFormatSchema])`: a column of bare Avro bodies read into the schema's
//! column (a struct for a record), and a column written as the Avro bodies
//! of the schema given, or else of Spark's schema for its type. sparklyr's `sdf_from_avro()`/`sdf_to_avro()` call them, and
//! SQL ported from Spark can too. The bytes are those of
//! `message::avro::ValueShape`, which the Kafka formats share.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::error::Error;
use crate::message::avro::ValueShape;

pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(FromAvro::default()), ScalarUDF::from(ToAvro::default())]
}

/// Our errors keep their kind through DataFusion (`transform::df_error`).
fn wrap(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Shapes by schema text, parsed once per pipeline.
#[derive(Debug, Default)]
struct Shapes(Mutex<HashMap<String, Arc<ValueShape>>>);

impl Shapes {
    fn get(&self, key: &str, make: impl FnOnce() -> crate::error::Result<ValueShape>) -> DfResult<Arc<ValueShape>> {
        let mut shapes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shape) = shapes.get(key) {
            return Ok(shape.clone());
        }
        let shape = Arc::new(make().map_err(wrap)?);
        shapes.insert(key.to_string(), shape.clone());
        Ok(shape)
    }
}

macro_rules! same_by_name {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.name().hash(state)
            }
        }
    };
}

#[derive(Debug)]
struct FromAvro {
    signature: Signature,
    shapes: Shapes,
}

impl Default for FromAvro {
    fn default() -> Self {
        FromAvro { signature: Signature::any(2, Volatility::Immutable), shapes: Shapes::default() }
    }
}
same_by_name!(FromAvro);

impl FromAvro {
    fn shape(&self, schema: Option<&ScalarValue>) -> DfResult<Arc<ValueShape>> {
        let text = schema_text(schema, "from_avro(data, schema)")?;
        self.shapes.get(text, || ValueShape::parse(text, "x", "the schema given to `from_avro()`"))
    }
}

impl ScalarUDFImpl for FromAvro {
    fn name(&self) -> &str {
        "from_avro"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal("from_avro()'s type comes from return_field_from_args".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let data = &args.arg_fields[0];
        if !matches!(data.data_type(), DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null) {
            return Err(wrap(Error::config(
                "x",
                format!("`from_avro()` reads binary columns, but `{}` is {}", data.name(), data.data_type()),
            )));
        }
        let shape = self.shape(args.scalar_arguments[1])?;
        Ok(Arc::new(Field::new(self.name(), shape.data_type().clone(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let schema = match &args.args[1] {
            ColumnarValue::Scalar(s) => Some(s),
            ColumnarValue::Array(_) => None,
        };
        let shape = self.shape(schema)?;
        let data = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Binary)?;
        Ok(ColumnarValue::Array(shape.decode(data.as_binary::<i32>()).map_err(wrap)?))
    }
}

#[derive(Debug)]
struct ToAvro {
    signature: Signature,
    shapes: Shapes,
}

impl Default for ToAvro {
    fn default() -> Self {
        let signature = Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable);
        ToAvro { signature, shapes: Shapes::default() }
    }
}
same_by_name!(ToAvro);

impl ToAvro {
    /// The schema given (`to_avro(data, jsonFormatSchema)`), else Spark's
    /// for the argument's type and nullability.
    fn shape(&self, field: &Field, schema: Option<Option<&ScalarValue>>) -> DfResult<Arc<ValueShape>> {
        match schema {
            None => self.shapes.get(&format!("{}{:?}", field.is_nullable(), field.data_type()), || ValueShape::of_column(field, "x")),
            Some(schema) => {
                let text = schema_text(schema, "to_avro(data, schema)")?;
                self.shapes.get(text, || ValueShape::parse(text, "x", "the schema given to `to_avro()`"))
            }
        }
    }
}

impl ScalarUDFImpl for ToAvro {
    fn name(&self) -> &str {
        "to_avro"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let data = &args.arg_fields[0];
        self.shape(data, args.scalar_arguments.get(1).copied())?;
        // Null in, null out, as Spark's.
        Ok(Arc::new(Field::new(self.name(), DataType::Binary, data.is_nullable())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let schema = args.args.get(1).map(|a| match a {
            ColumnarValue::Scalar(s) => Some(s),
            ColumnarValue::Array(_) => None,
        });
        let shape = self.shape(&args.arg_fields[0], schema)?;
        let column = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(shape.encode(&column).map_err(wrap)?))
    }
}

/// A schema argument: a constant string.
fn schema_text<'a>(schema: Option<&'a ScalarValue>, call: &str) -> DfResult<&'a str> {
    match schema {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => Ok(s),
        _ => Err(wrap(Error::config("x", format!("`{call}`: the schema must be a constant string of Avro schema JSON")))),
    }
}
