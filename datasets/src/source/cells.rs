//! Rows of Arrow record batches as JSON values, so that records from Parquet
//! and Arrow IPC files are interpreted, and their errors worded, exactly as
//! records from JSON Lines are.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use serde_json::{Map, Number, Value};

use super::{Location, RawRecord};
use crate::error::{DatasetError, Result};

/// The columns of a file's schema that a record spec may read.
pub(super) struct Projection {
    /// Every column name, for error messages.
    names: Arc<[String]>,
    /// Position and name of each column read.
    read: Vec<(usize, String)>,
}

impl Projection {
    pub fn new(schema: &Schema, wanted: &[&str]) -> Self {
        let names: Arc<[String]> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let read = names
            .iter()
            .enumerate()
            .filter(|(_, name)| wanted.contains(&name.as_str()))
            .map(|(index, name)| (index, name.clone()))
            .collect();
        Self { names, read }
    }

    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.read.iter().map(|(index, _)| *index)
    }

    /// Row `row` of `batch`, whose columns are the schema's when `projected`
    /// is false, or only the columns read, in schema order, when it is true.
    pub fn record(
        &self,
        batch: &RecordBatch,
        projected: bool,
        row: usize,
        location: Location,
    ) -> Result<RawRecord> {
        let mut fields = Map::new();
        for (position, (index, name)) in self.read.iter().enumerate() {
            let column = batch.column(if projected { position } else { *index });
            let value = cell(column.as_ref(), row).map_err(|data_type| {
                DatasetError::FieldType {
                    field: name.clone(),
                    expected: "a string, number, boolean, list or struct column",
                    found: format!("Arrow type {data_type}"),
                }
                .at(&location)
            })?;
            fields.insert(name.clone(), value);
        }
        Ok(RawRecord {
            location,
            fields,
            columns: Some(self.names.clone()),
        })
    }
}

/// The value at `row`, or the Arrow type that has no JSON counterpart here.
fn cell(array: &dyn Array, row: usize) -> Result<Value, DataType> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    macro_rules! number {
        ($type:ty) => {
            Value::from(array.as_primitive::<$type>().value(row))
        };
    }
    let float = |value: f64| Number::from_f64(value).map_or(Value::Null, Value::Number);
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut object = Map::new();
            for (field, column) in fields.iter().zip(array.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row)?);
            }
            Value::Object(object)
        }
        other => return Err(other.clone()),
    })
}

fn list(values: &dyn Array) -> Result<Value, DataType> {
    (0..values.len()).map(|index| cell(values, index)).collect()
}
