//! A bounds-checked little-endian cursor over the bytes of a GGUF file.

use super::error::Problem;

/// Where in the file a read happens, for error messages; rendered only on failure.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place<'a> {
    Header,
    Key { index: u64 },
    Value { key: &'a str },
    TensorName { index: u64 },
    TensorOf { name: &'a str },
}

impl Place<'_> {
    pub(super) fn describe(self) -> String {
        match self {
            Place::Header => "GGUF header".to_owned(),
            Place::Key { index } => format!("metadata key #{index}"),
            Place::Value { key } => format!("value of metadata key '{key}'"),
            Place::TensorName { index } => format!("name of tensor #{index}"),
            Place::TensorOf { name } => format!("tensor info of '{name}'"),
        }
    }
}

pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    /// Never past `bytes.len()`: it only advances over bytes already bounds-checked.
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub(super) fn position(&self) -> u64 {
        self.pos as u64
    }

    pub(super) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn truncated(&self, place: Place<'_>, needed: u64) -> Problem {
        Problem::Truncated {
            place: place.describe(),
            offset: self.position(),
            needed,
            file_len: self.bytes.len() as u64,
        }
    }

    /// The next `n` bytes, or a truncation error naming `place`.
    pub(super) fn take(&mut self, n: u64, place: Place<'_>) -> Result<&'a [u8], Problem> {
        let rest = &self.bytes[self.pos..];
        match usize::try_from(n).ok().and_then(|n| rest.get(..n)) {
            Some(taken) => {
                self.pos += taken.len();
                Ok(taken)
            }
            None => Err(self.truncated(place, n)),
        }
    }

    pub(super) fn fixed<const N: usize>(&mut self, place: Place<'_>) -> Result<[u8; N], Problem> {
        match self.bytes[self.pos..].first_chunk::<N>() {
            Some(chunk) => {
                self.pos += N;
                Ok(*chunk)
            }
            None => Err(self.truncated(place, N as u64)),
        }
    }

    pub(super) fn u32(&mut self, place: Place<'_>) -> Result<u32, Problem> {
        self.fixed(place).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, place: Place<'_>) -> Result<u64, Problem> {
        self.fixed(place).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string. The length is checked against the bytes left
    /// before anything is copied.
    pub(super) fn string(&mut self, place: Place<'_>) -> Result<String, Problem> {
        let len = self.u64(place)?;
        if len > self.remaining() {
            return Err(Problem::StringTooLong {
                place: place.describe(),
                len,
                remaining: self.remaining(),
            });
        }
        let bytes = self.take(len, place)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Problem::InvalidUtf8 { place: place.describe() }),
        }
    }

    /// Rejects `count` items of at least `min_len` bytes each when the rest of the
    /// file is too short to hold them, so the count can size an allocation.
    pub(super) fn check_count(
        &self,
        count: u64,
        min_len: u64,
        place: Place<'_>,
        items: &'static str,
    ) -> Result<(), Problem> {
        if count > self.remaining() / min_len {
            return Err(Problem::CountTooLarge {
                place: place.describe(),
                count,
                items,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }
}
