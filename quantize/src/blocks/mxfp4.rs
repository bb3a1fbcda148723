//! OCP microscaling FP4: 32 E2M1 values sharing one power-of-two (E8M0) scale.

use super::Block;
use crate::GgmlType;

pub const QK_MXFP4: usize = 32;

/// `x = 2^(e - 127) * fp4(q)`; element `j` in the low nibble of `qs[j]`, element
/// `j + 16` in its high nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockMxfp4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}
const _: () = assert!(size_of::<BlockMxfp4>() == 17);

// SAFETY: a `repr(C)` struct of `u8`s only.
unsafe impl Block for BlockMxfp4 {
    const TYPE: GgmlType = GgmlType::Mxfp4;
}
