//! K-quant super-blocks: 256 elements in sub-blocks of 16 or 32, whose scales are
//! themselves quantized against one or two half-precision super-block scales.

use super::{Block, K_SCALE_SIZE, QK_K};
use crate::GgmlType;

/// 16 sub-blocks of 16: `x = d * (scales[i] & 0xF) * q - dmin * (scales[i] >> 4)`
/// with 2-bit `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// 16 sub-blocks of 16: `x = d * (scale - 32) * (q - 4 * !hbit)` with 2 low bits in
/// `qs`, the high bit in `hmask` (set means no offset) and 6-bit scales packed in
/// `scales`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; K_SCALE_SIZE],
    pub d: [u8; 2],
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// 8 sub-blocks of 32: `x = d * scale * q - dmin * min` with 4-bit `q` and 6-bit
/// scales and mins packed in `scales`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// [`BlockQ4K`] with a fifth quant bit per element in `qh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// 16 sub-blocks of 16: `x = d * scales[i] * (q - 32)` with 4 low bits in `ql`, 2 high
/// bits in `qh` and signed 8-bit scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 16],
    pub d: [u8; 2],
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// The intermediate format of K-quant dot products: an `f32` scale (little-endian
/// bits), signed 8-bit quants and their sums per 16 as little-endian `i16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [u8; QK_K],
    pub bsums: [u8; QK_K / 16 * 2],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

// SAFETY (all impls below): `repr(C)` structs of `u8` arrays only.
unsafe impl Block for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2K;
}
unsafe impl Block for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3K;
}
unsafe impl Block for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4K;
}
unsafe impl Block for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5K;
}
unsafe impl Block for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6K;
}
unsafe impl Block for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8K;
}
