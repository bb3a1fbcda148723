//! A 64-bit hash that gives the same value on every platform, in every build
//! and in every version of decant: held-out splits and resume fingerprints are
//! stored, so `std`'s randomly keyed hashers would not do. Not cryptographic.

/// SplitMix64's output function (Steele, Lea & Flood, "Fast splittable
/// pseudorandom number generators", 2014): a bijection that spreads every
/// input bit over the whole word.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a sequence of words, each folded in through [`mix64`].
#[derive(Clone, Debug)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub fn new() -> Self {
        Self(0x6465_6361_6e74_2121)
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0 = mix64(self.0.rotate_left(23) ^ value);
        self
    }

    /// Bytes, length first, so that ("ab", "c") and ("a", "bc") differ.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.u64(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        last[..words.remainder().len()].copy_from_slice(words.remainder());
        self.u64(u64::from_le_bytes(last))
    }

    pub fn finish(&self) -> u64 {
        mix64(self.0)
    }
}
