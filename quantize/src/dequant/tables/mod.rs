//! ggml's lookup tables for the i-quants, generated from `ggml-common.h` by
//! `tools/goldens/gen_iq_tables.py`.
//!
//! Grid entries are kept as the integers ggml declares; ggml reads them as bytes in
//! memory order, so kernels take their little-endian bytes.

// Generated with the header's one-row-per-line layout, which is easier to diff
// against ggml-common.h than rustfmt's one value per line.
#[rustfmt::skip]
mod iq;

pub(crate) use iq::{
    IQ1M_DELTA, IQ1S_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
    KMASK_IQ2XS, KSIGNS_IQ2XS, KVALUES_IQ4NL,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A sign code stores 7 sign bits; the eighth makes the number of negatives even.
    #[test]
    fn sign_codes_have_even_parity() {
        for (code, &signs) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(usize::from(signs & 0x7F), code);
            assert_eq!(signs.count_ones() % 2, 0, "code {code}");
        }
        assert_eq!(KMASK_IQ2XS, std::array::from_fn(|j| 1 << j));
    }

    fn only(bytes: impl IntoIterator<Item = u8>, levels: &[u8]) -> bool {
        bytes.into_iter().all(|b| levels.contains(&b))
    }

    /// The kernels rely on every grid byte being one of its type's levels (and on
    /// the IQ2 and IQ3 magnitudes fitting an `i8`).
    #[test]
    fn grids_hold_only_their_levels() {
        let iq2 = [0x08, 0x19, 0x2b];
        assert!(only(IQ2XXS_GRID.iter().flat_map(|g| g.to_le_bytes()), &iq2));
        assert!(only(IQ2XS_GRID.iter().flat_map(|g| g.to_le_bytes()), &iq2));
        assert!(only(IQ2S_GRID.iter().flat_map(|g| g.to_le_bytes()), &iq2));
        let iq3xxs = [0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e];
        assert!(only(
            IQ3XXS_GRID.iter().flat_map(|g| g.to_le_bytes()),
            &iq3xxs
        ));
        let iq3s = [0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f];
        assert!(only(IQ3S_GRID.iter().flat_map(|g| g.to_le_bytes()), &iq3s));
        assert!(only(
            IQ1S_GRID.iter().flat_map(|g| g.to_le_bytes()),
            &[0xff, 0x00, 0x01]
        ));
    }
}
