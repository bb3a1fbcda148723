//! Turning a token back into bytes the way llama.cpp's `token_to_piece` and
//! `llama_detokenize` do.

use super::unicode::char_to_byte;

/// llama.cpp's `llama_decode_text`: each GPT-2 character back to its byte. A
/// character outside the map (a vocabulary that is not byte-level) becomes
/// llama.cpp's `[UNK_BYTE_0x…]` marker, token text included.
pub(super) fn decode_byte_level(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(byte) => bytes.push(byte),
            None => {
                bytes.extend_from_slice(b"[UNK_BYTE_0x");
                let mut utf8 = [0; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    bytes.extend_from_slice(format!("{byte:02x}").as_bytes());
                }
                bytes.extend_from_slice(text.as_bytes());
                bytes.push(b']');
            }
        }
    }
    bytes
}

/// The byte of a `<0xXX>` token (llama.cpp's `token_to_byte`: `strtol` of
/// characters 3 and 4 as hex).
pub(super) fn byte_token_value(text: &str) -> u8 {
    let digits = text.get(3..5).unwrap_or("");
    let hex: String = digits.chars().take_while(char::is_ascii_hexdigit).collect();
    u8::from_str_radix(&hex, 16).unwrap_or(0)
}

/// llama.cpp's `clean_spaces` passes over detokenized bytes, ported with their
/// in-place indexing: drop the space before `?!.,`, around a lone `'`, and
/// before `'s 'm 're 've`.
pub(super) fn clean_up_spaces(text: &mut Vec<u8>) {
    let mut total = text.len();

    let total1 = total;
    total = usize::from(total > 0);
    for i in 1..total1 {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }

    let total2 = total;
    total = usize::from(total > 0);
    let mut i = 1;
    while i < total2 {
        let x = text[i];
        if x == b'\'' && i + 1 < total2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }

    let total3 = total;
    total = usize::from(total > 0);
    for i in 1..total3 {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = text[i + 1];
            let drop_space = match x1 {
                b's' | b'm' => true,
                b't' | b'd' => false,
                _ => i + 2 < total3 && matches!((x1, text[i + 2]), (b'r' | b'v', b'e')),
            };
            if drop_space {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::unicode::byte_encode;

    fn clean(text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        clean_up_spaces(&mut bytes);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("it 's we 're I 'd"), "it's we're I 'd");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean(""), "");
        assert_eq!(clean(" ."), ".");
    }

    #[test]
    fn byte_token_value_reads_hex() {
        assert_eq!(byte_token_value("<0x0A>"), 10);
        assert_eq!(byte_token_value("<0xFF>"), 255);
        assert_eq!(byte_token_value("x"), 0);
    }

    #[test]
    fn byte_level_text_decodes_to_bytes() {
        assert_eq!(decode_byte_level(&byte_encode(" hi\n")), b" hi\n");
        assert_eq!(decode_byte_level("€"), b"[UNK_BYTE_0xe282ac\xe2\x82\xac]");
    }
}
