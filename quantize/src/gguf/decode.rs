//! Decoding metadata values from the file.

use super::MAX_ARRAY_DEPTH;
use super::cursor::{Cursor, Place};
use super::error::Problem;
use super::value::{Array, Value, ValueType};

/// Upper bound on what one array count may preallocate. Counts are already bounded
/// by the bytes left in the file, but a string or nested array takes several times
/// its minimum encoded size in memory; past this, vectors grow only as items are
/// actually decoded.
const PREALLOC_LIMIT: u64 = 1 << 16;

pub(super) fn value_type(id: u32, key: &str) -> Result<ValueType, Problem> {
    ValueType::from_id(id).ok_or_else(|| Problem::UnknownValueType { key: key.to_owned(), id })
}

/// The value of metadata entry `key`, whose type id has already been read.
pub(super) fn value(cur: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<Value, Problem> {
    let place = Place::Value { key };
    Ok(match ty {
        ValueType::U8 => Value::U8(u8::from_le_bytes(cur.fixed(place)?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(cur.fixed(place)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.fixed(place)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.fixed(place)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(cur.fixed(place)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.fixed(place)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.fixed(place)?)),
        ValueType::Bool => Value::Bool(bool_from(cur.fixed(place)?)),
        ValueType::String => Value::String(cur.string(place)?),
        ValueType::Array => Value::Array(array(cur, key, 1)?),
        ValueType::U64 => Value::U64(u64::from_le_bytes(cur.fixed(place)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.fixed(place)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.fixed(place)?)),
    })
}

/// Like llama.cpp, any nonzero byte is true.
fn bool_from([b]: [u8; 1]) -> bool {
    b != 0
}

/// An array `depth` levels deep, counting the outermost as 1.
fn array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array, Problem> {
    // Each level recurses, so a hostile file of nested array headers must not be
    // able to exhaust the stack.
    if depth > MAX_ARRAY_DEPTH {
        return Err(Problem::NestingTooDeep { key: key.to_owned(), max: MAX_ARRAY_DEPTH });
    }
    let place = Place::Value { key };
    let ty = value_type(cur.u32(place)?, key)?;
    let count = cur.u64(place)?;
    cur.check_count(count, ty.min_encoded_len(), place, "array elements")?;
    Ok(match ty {
        ValueType::U8 => Array::U8(cur.take(count, place)?.to_vec()),
        ValueType::I8 => Array::I8(fixed_items(cur, count, place, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(fixed_items(cur, count, place, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(fixed_items(cur, count, place, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(fixed_items(cur, count, place, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(fixed_items(cur, count, place, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(fixed_items(cur, count, place, f32::from_le_bytes)?),
        ValueType::Bool => Array::Bool(fixed_items(cur, count, place, bool_from)?),
        ValueType::U64 => Array::U64(fixed_items(cur, count, place, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(fixed_items(cur, count, place, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(fixed_items(cur, count, place, f64::from_le_bytes)?),
        ValueType::String => Array::String(items(count, || cur.string(place))?),
        ValueType::Array => Array::Array(items(count, || array(cur, key, depth + 1))?),
    })
}

/// `count` fixed-size items, whose total size `check_count` has already bounded.
fn fixed_items<const N: usize, T>(
    cur: &mut Cursor<'_>,
    count: u64,
    place: Place<'_>,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, Problem> {
    let bytes = cur.take(count * N as u64, place)?;
    Ok(bytes.as_chunks::<N>().0.iter().map(|chunk| decode(*chunk)).collect())
}

/// `count` variable-size items, decoded one by one.
fn items<T>(count: u64, mut decode: impl FnMut() -> Result<T, Problem>) -> Result<Vec<T>, Problem> {
    let mut items = Vec::with_capacity(count.min(PREALLOC_LIMIT) as usize);
    for _ in 0..count {
        items.push(decode()?);
    }
    Ok(items)
}
