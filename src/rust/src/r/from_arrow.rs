//! Arrow -> R data frame (memory tables, console output, collect()). Only
//! the R main thread calls this. Integers wider than R's 32 bits and
//! decimals become doubles, as DBI drivers do by default.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int32Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use extendr_api::prelude::*;

use crate::error::Error;

fn cast_to(array: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, Error> {
    cast(array, to).map_err(|e| Error::internal(format!("can't bring a {} column into R: {e}", array.data_type())))
}

/// The rows of several batches of one schema, as one R vector.
fn column_to_r(parts: &[ArrayRef]) -> std::result::Result<Robj, Error> {
    let data_type = parts.first().map(|a| a.data_type().clone()).unwrap_or(DataType::Null);
    let len: usize = parts.iter().map(|a| a.len()).sum();
    Ok(match &data_type {
        DataType::Boolean => {
            let mut out = Vec::with_capacity(len);
            for a in parts {
                let a = a.as_boolean();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { Rbool::na() } else { Rbool::from(a.value(i)) }));
            }
            Logicals::from_values(out).into()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            let mut out = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Int32)?;
                let a = a.as_primitive::<Int32Type>();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { Rint::na() } else { Rint::from(a.value(i)) }));
            }
            Integers::from_values(out).into()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let mut out: Vec<Option<String>> = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Utf8)?;
                let a = a.as_string::<i32>();
                out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_string())));
            }
            out.into_iter().map(|s| s.map(Rstr::from).unwrap_or_else(Rstr::na)).collect::<Strings>().into()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let mut out: Vec<Robj> = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Binary)?;
                let a = a.as_binary::<i32>();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { ().into() } else { Raw::from_bytes(a.value(i)).into() }));
            }
            List::from_values(out).into()
        }
        DataType::Timestamp(_, _) => {
            let mut out = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                let a = a.as_primitive::<TimestampMicrosecondType>();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { Rfloat::na() } else { Rfloat::from(a.value(i) as f64 / 1e6) }));
            }
            let mut v: Robj = Doubles::from_values(out).into();
            v.set_class(["POSIXct", "POSIXt"]).map_err(|e| Error::internal(e.to_string()))?;
            v.set_attrib("tzone", "UTC").map_err(|e| Error::internal(e.to_string()))?;
            v
        }
        DataType::Date32 | DataType::Date64 => {
            let mut out = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Date32)?;
                let a = a.as_primitive::<arrow::datatypes::Date32Type>();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { Rfloat::na() } else { Rfloat::from(a.value(i) as f64) }));
            }
            let mut v: Robj = Doubles::from_values(out).into();
            v.set_class(["Date"]).map_err(|e| Error::internal(e.to_string()))?;
            v
        }
        DataType::Null => Logicals::from_values(vec![Rbool::na(); len]).into(),
        t if t.is_numeric() => {
            let mut out = Vec::with_capacity(len);
            for a in parts {
                let a = cast_to(a, &DataType::Float64)?;
                let a = a.as_primitive::<Float64Type>();
                out.extend((0..a.len()).map(|i| if a.is_null(i) { Rfloat::na() } else { Rfloat::from(a.value(i)) }));
            }
            Doubles::from_values(out).into()
        }
        _ => {
            // Lists, structs, intervals: their text, rather than nothing.
            let text: Vec<ArrayRef> = parts.iter().map(|a| cast_to(a, &DataType::Utf8)).collect::<std::result::Result<_, _>>()?;
            return column_to_r(&text);
        }
    })
}

pub fn batches_to_data_frame(schema: &arrow::datatypes::Schema, batches: &[RecordBatch]) -> std::result::Result<Robj, Error> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut names = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let parts: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
        let column = if parts.is_empty() {
            column_to_r(&[arrow::array::new_empty_array(field.data_type())])?
        } else {
            column_to_r(&parts)?
        };
        names.push(field.name().clone());
        columns.push(column);
    }
    let mut df: Robj = List::from_names_and_values(names, columns).map_err(|e| Error::internal(e.to_string()))?.into();
    let row_names = if rows == 0 { Integers::new(0) } else { Integers::from_values([Rint::na(), Rint::from(-(rows as i32))]) };
    df.set_attrib("row.names", row_names)
        .map_err(|e| Error::internal(e.to_string()))?;
    df.set_class(["data.frame"]).map_err(|e| Error::internal(e.to_string()))?;
    Ok(df)
}
