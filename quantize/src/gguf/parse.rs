//! Parsing and validating the layout of a GGUF file: header, metadata, tensor
//! infos, and where each tensor's data lies.

use crate::GgmlType;

use super::cursor::{Cursor, Place};
use super::decode;
use super::error::Problem;
use super::named::Named;
use super::tensor_info::{TensorInfo, checked_n_bytes};
use super::value::Value;
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};

/// A metadata entry takes at least a key length, a one-byte key (llama.cpp rejects
/// empty keys), a type id and a one-byte value.
const MIN_KV_LEN: u64 = 8 + 1 + 4 + 1;
/// A tensor info takes at least a name length, a dimension count, a type id and an
/// offset.
const MIN_TENSOR_INFO_LEN: u64 = 8 + 4 + 4 + 8;

pub(super) struct Layout {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub metadata: Named<(String, Value)>,
    pub tensors: Named<TensorInfo>,
}

pub(super) fn parse(bytes: &[u8]) -> Result<Layout, Problem> {
    let mut cur = Cursor::new(bytes);
    let version = header_version(&mut cur, bytes)?;
    let n_tensors = cur.u64(Place::Header)?;
    let n_kv = cur.u64(Place::Header)?;
    cur.check_count(n_kv, MIN_KV_LEN, Place::Header, "metadata entries")?;
    cur.check_count(n_tensors, MIN_TENSOR_INFO_LEN, Place::Header, "tensors")?;

    let metadata = metadata(&mut cur, n_kv)?;
    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some((_, value)) => checked_alignment(value)?,
    };
    let tensors = tensor_infos(&mut cur, n_tensors)?;

    let data_offset = cur.position().next_multiple_of(alignment);
    check_data(tensors.items(), data_offset, alignment, bytes.len() as u64)?;
    Ok(Layout { version, alignment, data_offset, metadata, tensors })
}

fn header_version(cur: &mut Cursor<'_>, bytes: &[u8]) -> Result<u32, Problem> {
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    if head != &MAGIC[..head.len()] {
        return Err(Problem::BadMagic { found: head.to_vec() });
    }
    cur.fixed::<4>(Place::Header)?;
    let version = cur.u32(Place::Header)?;
    // A file written on a big-endian host has its small version number in the high
    // bytes when read little-endian; gguf-py and llama.cpp detect it the same way.
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Problem::BigEndian { raw: version });
    }
    match version {
        2 | 3 => Ok(version),
        _ => Err(Problem::UnsupportedVersion { version }),
    }
}

fn metadata(cur: &mut Cursor<'_>, n_kv: u64) -> Result<Named<(String, Value)>, Problem> {
    let mut metadata = Named::with_capacity(n_kv as usize);
    for index in 0..n_kv {
        let key = cur.string(Place::Key { index })?;
        if key.is_empty() {
            return Err(Problem::EmptyKey { index });
        }
        let place = Place::Value { key: &key };
        let ty = decode::value_type(cur.u32(place)?, &key)?;
        let value = decode::value(cur, ty, &key)?;
        metadata.push(key.clone(), (key, value)).map_err(|key| Problem::DuplicateKey { key })?;
    }
    Ok(metadata)
}

/// llama.cpp requires `general.alignment` to be a u32 power of two.
pub(super) fn checked_alignment(value: &Value) -> Result<u64, Problem> {
    match *value {
        Value::U32(a) if a.is_power_of_two() => Ok(a.into()),
        Value::U32(a) => Err(Problem::BadAlignment { value: a }),
        ref other => Err(Problem::AlignmentType { found: other.value_type() }),
    }
}

fn tensor_infos(cur: &mut Cursor<'_>, n_tensors: u64) -> Result<Named<TensorInfo>, Problem> {
    let mut tensors = Named::with_capacity(n_tensors as usize);
    for index in 0..n_tensors {
        let info = tensor_info(cur, index)?;
        tensors.push(info.name.clone(), info).map_err(|name| Problem::DuplicateTensor { name })?;
    }
    Ok(tensors)
}

fn tensor_info(cur: &mut Cursor<'_>, index: u64) -> Result<TensorInfo, Problem> {
    let name = cur.string(Place::TensorName { index })?;
    let place = Place::TensorOf { name: &name };
    let n_dims = cur.u32(place)?;
    if n_dims as usize > MAX_DIMS {
        return Err(Problem::TooManyDims { name, n_dims: n_dims.into() });
    }
    let shape = (0..n_dims).map(|_| cur.u64(place)).collect::<Result<Vec<_>, _>>()?;
    let id = cur.u32(place)?;
    let Some(ggml_type) = GgmlType::from_id(id) else {
        return Err(Problem::UnknownTensorType { name, id });
    };
    checked_n_bytes(&name, &shape, ggml_type)?;
    let offset = cur.u64(place)?;
    Ok(TensorInfo { name, shape, ggml_type, offset })
}

/// Every tensor's data must be aligned, inside the file, and apart from the others.
fn check_data(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<(), Problem> {
    // llama.cpp only seeks to the data section when there are tensors; gguf-py's
    // writer pads anyway, so a tensor-less file may or may not end with padding.
    if !tensors.is_empty() && data_offset > file_len {
        return Err(Problem::DataStartPastEnd { offset: data_offset, file_len });
    }
    let mut spans = Vec::with_capacity(tensors.len());
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(Problem::MisalignedOffset {
                name: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let len = t.n_bytes();
        let inside = |start: &u64| start.checked_add(len).is_some_and(|end| end <= file_len);
        let Some(start) = data_offset.checked_add(t.offset).filter(inside) else {
            return Err(Problem::DataOutOfBounds {
                name: t.name.clone(),
                start: data_offset.saturating_add(t.offset),
                len,
                file_len,
            });
        };
        if len > 0 {
            spans.push((start, len, t));
        }
    }
    spans.sort_unstable_by_key(|&(start, len, _)| (start, len));
    for (&(a_start, a_len, a), &(b_start, b_len, b)) in spans.iter().zip(spans.iter().skip(1)) {
        // Both spans end inside the file, so the sum cannot overflow.
        if a_start + a_len > b_start {
            return Err(Problem::Overlap {
                first: a.name.clone(),
                first_start: a_start,
                first_len: a_len,
                second: b.name.clone(),
                second_start: b_start,
                second_len: b_len,
            });
        }
    }
    Ok(())
}
