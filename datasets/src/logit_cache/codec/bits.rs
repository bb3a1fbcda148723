//! MSB-first bit packing for the record codes.

use super::CodecError;

/// MSB-first bit appender onto a byte vector.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    len: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            len: 0,
        }
    }

    /// Writes the low `width` bits of `value`; `width` may exceed 32 only for zeros.
    pub(super) fn fixed(&mut self, value: u32, width: u32) {
        let mut width = width;
        // A Rice code's zero run reaches 63 bits, more than the accumulator takes at once.
        while width > 32 {
            self.push(0, 32);
            width -= 32;
        }
        self.push(u64::from(value) & ((1u64 << width) - 1), width);
    }

    pub(super) fn push(&mut self, value: u64, width: u32) {
        self.acc = (self.acc << width) | value;
        self.len += width;
        while self.len >= 8 {
            self.len -= 8;
            self.out.push((self.acc >> self.len) as u8);
        }
        self.acc &= (1u64 << self.len) - 1;
    }

    pub(super) fn finish(self) {
        if self.len > 0 {
            self.out.push((self.acc << (8 - self.len)) as u8);
        }
    }
}

/// MSB-first bit reader that errors instead of reading past the end.
pub(super) struct BitReader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl BitReader<'_> {
    pub(super) fn available(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    pub(super) fn bit(&mut self) -> Result<u32, CodecError> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(CodecError::Truncated {
            bits_needed: 1,
            bits_available: 0,
        })?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    /// Reads `width <= 32` bits as an unsigned number.
    pub(super) fn fixed(&mut self, width: u32) -> Result<u32, CodecError> {
        if self.available() < width as usize {
            return Err(CodecError::Truncated {
                bits_needed: width as usize,
                bits_available: self.available(),
            });
        }
        let mut value = 0u32;
        for _ in 0..width {
            value = (value << 1) | self.bit()?;
        }
        Ok(value)
    }

    /// Counts zeros up to the next one, which it consumes; `None` when more than `max`
    /// zeros come first, as no valid code has.
    pub(super) fn zeros_then_one(&mut self, max: u32) -> Option<Result<u32, CodecError>> {
        for zeros in 0..=max {
            match self.bit() {
                Ok(1) => return Some(Ok(zeros)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// The bytes used, after checking the padding of the last one is zero.
    pub(super) fn finish(mut self) -> Result<usize, CodecError> {
        while !self.pos.is_multiple_of(8) {
            if self.bit()? != 0 {
                return Err(CodecError::NonzeroPadding);
            }
        }
        Ok(self.pos / 8)
    }
}
