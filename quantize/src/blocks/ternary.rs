//! Ternary super-blocks (`x = d * t`, `t` in {-1, 0, 1}) from the BitNet b1.58 line
//! of models.

use super::{Block, QK_K};
use crate::GgmlType;

/// 1.6875 bits per weight: five trits per byte in `qs` and four per byte in `qh`, each
/// byte a base-3 number scaled to `ceil(n * 256 / 243)` so digits come out by
/// multiplication instead of division.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockTq1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: [u8; 2],
}
const _: () = assert!(size_of::<BlockTq1_0>() == 54);

/// 2.0625 bits per weight: `t + 1` in two bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockTq2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
}
const _: () = assert!(size_of::<BlockTq2_0>() == 66);

// SAFETY (both impls): `repr(C)` structs of `u8` arrays only.
unsafe impl Block for BlockTq1_0 {
    const TYPE: GgmlType = GgmlType::Tq1_0;
}
unsafe impl Block for BlockTq2_0 {
    const TYPE: GgmlType = GgmlType::Tq2_0;
}
