//! I-quants: groups of 8 (or 4) values stored as an index into a fixed grid of
//! magnitudes plus sign bits, under small sub-block scales and one half-precision
//! super-block scale. IQ4_NL and IQ4_XS instead map 4-bit codes through a
//! non-linear table. 16-bit fields are little-endian byte pairs.

use super::{Block, QK_K};
use crate::GgmlType;

/// Elements in an IQ4_NL block, ggml's `QK4_NL`.
pub const QK4_NL: usize = 32;

/// Sub-block scale bytes of IQ3_S, two 4-bit scales each, ggml's `IQ3S_N_SCALE`.
pub const IQ3S_N_SCALE: usize = QK_K / 64;

/// 2.0625 bits per value. Each 32 values take 8 bytes of `qs`: four grid indices
/// into `iq2xxs_grid`, then a little-endian `u32` of four 7-bit sign codes and a
/// 4-bit scale in its top bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq2Xxs {
    pub d: [u8; 2],
    pub qs: [u8; QK_K / 8 * 2],
}
const _: () = assert!(size_of::<BlockIq2Xxs>() == 66);

/// 2.3125 bits per value. `qs` holds a little-endian `u16` per 8 values: a 9-bit
/// index into `iq2xs_grid` and a 7-bit sign code; `scales` two 4-bit scales per 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq2Xs {
    pub d: [u8; 2],
    pub qs: [u8; QK_K / 8 * 2],
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(size_of::<BlockIq2Xs>() == 74);

/// 2.5625 bits per value. The first half of `qs` holds the low 8 bits of one
/// `iq2s_grid` index per 8 values, the second half their sign bytes; `qh` the
/// indices' top 2 bits, four per byte; `scales` two 4-bit scales per 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq2S {
    pub d: [u8; 2],
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(size_of::<BlockIq2S>() == 82);

/// 3.0625 bits per value. The first 64 bytes of `qs` are indices into
/// `iq3xxs_grid`, one per 4 values; the last 32 a little-endian `u32` per 32
/// values of four 7-bit sign codes and a 4-bit scale, as in [`BlockIq2Xxs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq3Xxs {
    pub d: [u8; 2],
    pub qs: [u8; 3 * QK_K / 8],
}
const _: () = assert!(size_of::<BlockIq3Xxs>() == 98);

/// 3.4375 bits per value. `qs` holds the low 8 bits of one `iq3s_grid` index per
/// 4 values, `qh` their 9th bits; `signs` one sign bit per value; `scales` two
/// 4-bit scales per 64 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq3S {
    pub d: [u8; 2],
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub signs: [u8; QK_K / 8],
    pub scales: [u8; IQ3S_N_SCALE],
}
const _: () = assert!(size_of::<BlockIq3S>() == 110);

/// 1.5625 bits per value. `qs` holds the low 8 bits of one `iq1s_grid` index per
/// 8 values; `qh` a little-endian `u16` per 32 values: the four indices' top 3
/// bits, a 3-bit scale and the sign of the shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq1S {
    pub d: [u8; 2],
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 32 * 2],
}
const _: () = assert!(size_of::<BlockIq1S>() == 50);

/// 1.75 bits per value, with no scale field: `scales` is four little-endian `u16`
/// words, each four 3-bit sub-block scales under one nibble of the f16 super-block
/// scale. `qs` holds the low 8 bits of one `iq1s_grid` index per 8 values; each
/// nibble of `qh` an index's top 3 bits and the sign of its shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq1M {
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 16],
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(size_of::<BlockIq1M>() == 56);

/// `x = d * kvalues_iq4nl[q]`: value `j` in the low nibble of `qs[j]`, value
/// `j + 16` in its high nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq4Nl {
    pub d: [u8; 2],
    pub qs: [u8; QK4_NL / 2],
}
const _: () = assert!(size_of::<BlockIq4Nl>() == 18);

/// IQ4_NL's codes in 8 sub-blocks of 32 with 6-bit scales offset by 32: the low 4
/// bits in `scales_l` (two per byte), the high 2 in the little-endian `u16`
/// `scales_h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockIq4Xs {
    pub d: [u8; 2],
    pub scales_h: [u8; 2],
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);

// SAFETY (all impls below): `repr(C)` structs of `u8` arrays only.
unsafe impl Block for BlockIq2Xxs {
    const TYPE: GgmlType = GgmlType::Iq2Xxs;
}
unsafe impl Block for BlockIq2Xs {
    const TYPE: GgmlType = GgmlType::Iq2Xs;
}
unsafe impl Block for BlockIq2S {
    const TYPE: GgmlType = GgmlType::Iq2S;
}
unsafe impl Block for BlockIq3Xxs {
    const TYPE: GgmlType = GgmlType::Iq3Xxs;
}
unsafe impl Block for BlockIq3S {
    const TYPE: GgmlType = GgmlType::Iq3S;
}
unsafe impl Block for BlockIq1S {
    const TYPE: GgmlType = GgmlType::Iq1S;
}
unsafe impl Block for BlockIq1M {
    const TYPE: GgmlType = GgmlType::Iq1M;
}
unsafe impl Block for BlockIq4Nl {
    const TYPE: GgmlType = GgmlType::Iq4Nl;
}
unsafe impl Block for BlockIq4Xs {
    const TYPE: GgmlType = GgmlType::Iq4Xs;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_geometry<B: Block>(elements: usize) {
        assert_eq!(size_of::<B>(), B::TYPE.type_size(), "{}", B::TYPE);
        assert_eq!(elements, B::TYPE.block_size(), "{}", B::TYPE);
    }

    #[test]
    fn layouts_match_ggml_type_geometry() {
        assert_geometry::<BlockIq2Xxs>(QK_K);
        assert_geometry::<BlockIq2Xs>(QK_K);
        assert_geometry::<BlockIq2S>(QK_K);
        assert_geometry::<BlockIq3Xxs>(QK_K);
        assert_geometry::<BlockIq3S>(QK_K);
        assert_geometry::<BlockIq1S>(QK_K);
        assert_geometry::<BlockIq1M>(QK_K);
        assert_geometry::<BlockIq4Nl>(QK4_NL);
        assert_geometry::<BlockIq4Xs>(QK_K);
    }
}
