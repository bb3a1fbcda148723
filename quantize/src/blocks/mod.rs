//! ggml block layouts, field for field as `ggml-common.h` declares them.
//!
//! Every field is a byte array, so blocks have alignment 1 and no padding: a GGUF
//! tensor's bytes can be viewed as a slice of blocks wherever they sit in a memory
//! map. Half-precision scales are kept as their little-endian bits (`[u8; 2]`) for
//! the same reason; kernels decode them.

mod iquants;
mod kquants;
mod legacy;
mod mxfp4;
mod ternary;

pub use iquants::{
    BlockIq1M, BlockIq1S, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, BlockIq3S, BlockIq3Xxs, BlockIq4Nl,
    BlockIq4Xs, IQ3S_N_SCALE, QK4_NL,
};
pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
pub use legacy::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK4_0, QK4_1, QK5_0, QK5_1,
    QK8_0, QK8_1,
};
pub use mxfp4::{BlockMxfp4, QK_MXFP4};
pub use ternary::{BlockTq1_0, BlockTq2_0};

use crate::GgmlType;

/// Elements in a K-quant (and ternary) super-block, ggml's `QK_K`.
pub const QK_K: usize = 256;

/// Bytes of packed 6-bit scales and mins in Q3_K, Q4_K and Q5_K, ggml's `K_SCALE_SIZE`.
pub const K_SCALE_SIZE: usize = 12;

/// A ggml block type whose in-memory layout is its on-disk layout.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` structs made only of `u8`s and `u8` arrays, so that they
/// have alignment 1, no padding, and every bit pattern is a valid value.
pub unsafe trait Block: Sized {
    /// The tensor type stored as a sequence of these blocks.
    const TYPE: GgmlType;

    /// Views `bytes` as blocks.
    ///
    /// # Panics
    ///
    /// When `bytes` is not a whole number of blocks.
    fn slice_from_bytes(bytes: &[u8]) -> &[Self] {
        const { assert!(align_of::<Self>() == 1) };
        let size = size_of::<Self>();
        assert!(
            bytes.len().is_multiple_of(size),
            "{} bytes are not a whole number of {} blocks of {size} bytes",
            bytes.len(),
            Self::TYPE
        );
        // SAFETY: the trait's contract makes any `size` bytes a valid, alignment-1
        // `Self`; the length is a multiple of `size`, and the borrow is carried over.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / size) }
    }
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
        assert_geometry::<BlockQ4_0>(QK4_0);
        assert_geometry::<BlockQ4_1>(QK4_1);
        assert_geometry::<BlockQ5_0>(QK5_0);
        assert_geometry::<BlockQ5_1>(QK5_1);
        assert_geometry::<BlockQ8_0>(QK8_0);
        assert_geometry::<BlockQ8_1>(QK8_1);
        assert_geometry::<BlockQ2K>(QK_K);
        assert_geometry::<BlockQ3K>(QK_K);
        assert_geometry::<BlockQ4K>(QK_K);
        assert_geometry::<BlockQ5K>(QK_K);
        assert_geometry::<BlockQ6K>(QK_K);
        assert_geometry::<BlockQ8K>(QK_K);
        assert_geometry::<BlockTq1_0>(QK_K);
        assert_geometry::<BlockTq2_0>(QK_K);
        assert_geometry::<BlockMxfp4>(QK_MXFP4);
    }

    #[test]
    fn slices_view_bytes_in_place() {
        let bytes: Vec<u8> = (0..36).collect();
        let blocks = BlockQ4_0::slice_from_bytes(&bytes);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].d, [18, 19]);
        assert_eq!(blocks[1].qs[15], 35);
    }

    #[test]
    #[should_panic(expected = "not a whole number of q4_0 blocks")]
    fn partial_blocks_are_refused() {
        BlockQ4_0::slice_from_bytes(&[0; 19]);
    }
}
