//! Code point classes as llama.cpp's pre-tokenizers see them, and GPT-2's
//! byte-to-character mapping.

use super::unicode_data::{RANGE_CATEGORIES, RANGE_STARTS, WHITESPACE};

const NUMBER: u8 = 0x02;
const LETTER: u8 = 0x04;
const PUNCTUATION: u8 = 0x20;

/// One code point's category and whitespace bit (llama.cpp's `unicode_cpt_flags`,
/// less the case and NFD bits no pre-tokenizer here reads).
///
/// The default value, with no category at all, is what llama.cpp's splitters
/// read for a position outside the word they are scanning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flags {
    category: u8,
    whitespace: bool,
}

impl Flags {
    pub(super) fn of(c: char) -> Self {
        let cp = u32::from(c);
        let range = RANGE_STARTS.partition_point(|&start| start <= cp) - 1;
        Self {
            category: RANGE_CATEGORIES[range],
            whitespace: WHITESPACE.binary_search(&cp).is_ok(),
        }
    }

    pub(super) fn is_letter(self) -> bool {
        self.category == LETTER
    }

    pub(super) fn is_number(self) -> bool {
        self.category == NUMBER
    }

    pub(super) fn is_punctuation(self) -> bool {
        self.category == PUNCTUATION
    }

    pub(super) fn is_whitespace(self) -> bool {
        self.whitespace
    }

    /// llama.cpp's `flags.as_uint() != 0`: true for every code point, false
    /// only past the end of the word.
    pub(super) fn is_present(self) -> bool {
        self.category != 0
    }
}

/// Bytes that GPT-2's byte-to-character map leaves as they are: printable Latin-1.
const fn is_printable_byte(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The bytes GPT-2 moves above U+00FF, in the order it moves them.
const MOVED_BYTES: [u8; 68] = {
    let mut moved = [0; 68];
    let mut count = 0;
    let mut byte = 0;
    while byte < 256 {
        if !is_printable_byte(byte as u8) {
            moved[count] = byte as u8;
            count += 1;
        }
        byte += 1;
    }
    moved
};

const FIRST_MOVED: u32 = 0x100;

/// GPT-2's reversible map from bytes to printable characters: printable
/// Latin-1 stays, the other bytes move to U+0100 onwards in order.
pub(super) fn byte_to_char(byte: u8) -> char {
    if is_printable_byte(byte) {
        return char::from(byte);
    }
    let index = MOVED_BYTES.partition_point(|&moved| moved < byte) as u32;
    char::from_u32(FIRST_MOVED + index).expect("U+0100..U+0143 are characters")
}

/// The inverse of [`byte_to_char`]; `None` for characters it never yields.
pub(super) fn char_to_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    match u8::try_from(cp) {
        Ok(byte) if is_printable_byte(byte) => Some(byte),
        Ok(_) => None,
        Err(_) => MOVED_BYTES
            .get(usize::try_from(cp.checked_sub(FIRST_MOVED)?).ok()?)
            .copied(),
    }
}

/// Byte-level BPE's view of a word: each UTF-8 byte as its GPT-2 character.
pub(super) fn byte_encode(word: &str) -> String {
    word.bytes().map(byte_to_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips() {
        for byte in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(byte)), Some(byte));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(char_to_byte('A'), Some(b'A'));
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn categories_follow_llama_cpp_tables() {
        assert!(Flags::of('a').is_letter());
        assert!(Flags::of('é').is_letter());
        assert!(Flags::of('中').is_letter());
        assert!(Flags::of('7').is_number());
        assert!(Flags::of('²').is_number());
        assert!(Flags::of('!').is_punctuation());
        assert!(Flags::of('\u{3000}').is_whitespace());
        // Python's \s has U+001C..U+001F; llama.cpp's table does not.
        assert!(!Flags::of('\u{1C}').is_whitespace());
        assert!(Flags::of('\u{10FFFF}').is_present());
        assert!(!Flags::default().is_present());
    }
}
