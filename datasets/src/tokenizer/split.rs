//! Pre-tokenization: splitting text into the words BPE merges within, exactly as
//! llama.cpp's `unicode_regex_split` does for the pre-tokenizers decant supports.
//!
//! llama.cpp applies a list of regexes one after another, each splitting every
//! piece the previous one left. Most of its regexes run through hand-written
//! scanners (`unicode_regex_split_custom_*`), ported here line for line; the
//! few simple ones that go through `std::regex` on a "collapsed" text (each
//! non-ASCII code point replaced by a byte standing for its category) are
//! character-class matchers here, which match the same spans.

use super::unicode::Flags;

/// One regex of a pre-tokenizer's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Splitter {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with N = 3 for Llama 3 and N = 1 for Qwen2.
    Llama3 { max_digits: usize },
    /// `\p{N}`: every number code point on its own.
    EachNumber,
    /// `\p{N}+`
    NumberRuns,
    /// `[\p{P}\$\+<=>\^~\|]+`
    PunctuationRuns,
    /// `[0-9][0-9][0-9]`
    AsciiDigitTriples,
}

/// Splits `chars` into words; returns each word's length in code points.
pub(super) fn split(chars: &[char], splitters: &[Splitter]) -> Vec<usize> {
    let mut pieces = vec![chars.len()];
    for splitter in splitters {
        let mut next = Vec::with_capacity(pieces.len());
        let mut start = 0;
        for &len in &pieces {
            let mut word = Word::new(chars, start, start + len, &mut next);
            match *splitter {
                Splitter::Gpt2 => word.split_gpt2(),
                Splitter::Llama3 { max_digits } => word.split_llama3(max_digits),
                Splitter::EachNumber => {
                    word.split_matches(|chars, pos| usize::from(is_number(chars[pos])))
                }
                Splitter::NumberRuns => word.split_matches(|chars, pos| {
                    chars[pos..].iter().take_while(|&&c| is_number(c)).count()
                }),
                Splitter::PunctuationRuns => word.split_matches(|chars, pos| {
                    chars[pos..]
                        .iter()
                        .take_while(|&&c| is_default_punctuation(c))
                        .count()
                }),
                Splitter::AsciiDigitTriples => word.split_matches(|chars, pos| {
                    let triple = chars
                        .get(pos..pos + 3)
                        .is_some_and(|triple| triple.iter().all(char::is_ascii_digit));
                    if triple { 3 } else { 0 }
                }),
            }
            start += len;
        }
        pieces = next;
    }
    pieces
}

/// `\p{N}` in llama.cpp's collapsed regexes: ASCII digits and the code points
/// its tables class as numbers.
fn is_number(c: char) -> bool {
    Flags::of(c).is_number()
}

/// `[\p{P}\$\+<=>\^~\|]` in llama.cpp's collapsed regexes: in ASCII that is
/// every punctuation or symbol character but the backtick.
fn is_default_punctuation(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation() && c != '`'
    } else {
        let flags = Flags::of(c);
        flags.is_punctuation() && !flags.is_whitespace()
    }
}

/// One piece being split, with llama.cpp's scanner helpers: `chars` ends where
/// the piece ends, so reading past it gives no character and empty flags.
struct Word<'a> {
    chars: &'a [char],
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl<'a> Word<'a> {
    fn new(chars: &'a [char], start: usize, end: usize, out: &'a mut Vec<usize>) -> Self {
        Self {
            chars: &chars[..end],
            prev_end: start,
            out,
        }
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.chars.get(pos).copied()
    }

    fn flags_at(&self, pos: usize) -> Flags {
        self.char_at(pos).map(Flags::of).unwrap_or_default()
    }

    /// Ends the current token at `end` (llama.cpp's `_add_token`).
    fn emit(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(end - self.prev_end);
        }
        self.prev_end = end;
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos`, optionally case-insensitive; the
    /// match length. ASCII lowercasing is llama.cpp's `unicode_tolower` here:
    /// no other code point lowercases to one of these letters (checked when
    /// the tables are generated).
    fn contraction(&self, pos: usize, ignore_case: bool) -> Option<usize> {
        if self.chars[pos] != '\'' {
            return None;
        }
        let at = |pos| {
            self.char_at(pos).map(|c: char| {
                if ignore_case {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
        };
        let next = at(pos + 1)?;
        if matches!(next, 's' | 't' | 'm' | 'd') {
            return Some(2);
        }
        let after = at(pos + 2)?;
        matches!((next, after), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
    }

    /// The run of whitespace at `pos`: its length, and the position just past
    /// its last `\r` or `\n` if it has one.
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut len = 0;
        let mut after_newline = None;
        while self.flags_at(pos + len).is_whitespace() {
            if matches!(self.char_at(pos + len), Some('\r' | '\n')) {
                after_newline = Some(pos + len + 1);
            }
            len += 1;
        }
        (len, after_newline)
    }

    /// `unicode_regex_split_custom_gpt2`.
    fn split_gpt2(&mut self) {
        let mut pos = self.prev_end;
        while pos < self.chars.len() {
            let c = self.chars[pos];
            if let Some(len) = self.contraction(pos, false) {
                pos += len;
                self.emit(pos);
                continue;
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            let mut flags = if c == ' ' {
                self.flags_at(pos + 1)
            } else {
                Flags::of(c)
            };
            let run: Option<fn(Flags) -> bool> = if flags.is_letter() {
                Some(Flags::is_letter)
            } else if flags.is_number() {
                Some(Flags::is_number)
            } else if is_other(flags) {
                Some(is_other)
            } else {
                None
            };
            if let Some(in_run) = run {
                pos += usize::from(c == ' ');
                while in_run(flags) {
                    pos += 1;
                    flags = self.flags_at(pos);
                }
                self.emit(pos);
                continue;
            }
            let (spaces, _) = self.whitespace_run(pos);
            pos += if spaces > 1 && self.char_at(pos + spaces).is_some() {
                // `\s+(?!\S)`: leave the last space to the word after it.
                spaces - 1
            } else {
                spaces.max(1)
            };
            self.emit(pos);
        }
    }

    /// `unicode_regex_split_custom_llama3` (`max_digits` 3) and
    /// `unicode_regex_split_custom_qwen2` (`max_digits` 1).
    fn split_llama3(&mut self, max_digits: usize) {
        let mut pos = self.prev_end;
        while pos < self.chars.len() {
            let c = self.chars[pos];
            let flags = Flags::of(c);
            if let Some(len) = self.contraction(pos, true) {
                pos += len;
                self.emit(pos);
                continue;
            }
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(c == '\r' || c == '\n' || flags.is_number())
                && (flags.is_letter() || self.flags_at(pos + 1).is_letter())
            {
                pos += 1;
                while self.flags_at(pos).is_letter() {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // `\p{N}{1,max_digits}`
            if flags.is_number() {
                let mut group_start = pos;
                while self.flags_at(pos).is_number() {
                    pos += 1;
                    if pos - group_start >= max_digits {
                        self.emit(pos);
                        group_start = pos;
                    }
                }
                self.emit(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`; unlike the GPT-2 scanner this one
            // also takes a lone space at the end of the piece.
            let mut flags2 = if c == ' ' {
                self.flags_at(pos + 1)
            } else {
                flags
            };
            if !(flags2.is_whitespace() || flags2.is_letter() || flags2.is_number()) {
                pos += usize::from(c == ' ');
                while is_other(flags2) {
                    pos += 1;
                    flags2 = self.flags_at(pos);
                }
                while matches!(self.char_at(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            let (spaces, after_newline) = self.whitespace_run(pos);
            pos = match after_newline {
                // `\s*[\r\n]+`
                Some(after_newline) => after_newline,
                // `\s+(?!\S)`
                None if spaces > 1 && self.char_at(pos + spaces).is_some() => pos + spaces - 1,
                // `\s+`, or a lone character no alternative matches
                None => pos + spaces.max(1),
            };
            self.emit(pos);
        }
    }

    /// A `std::regex` split: each match and each gap between matches becomes a
    /// piece. `match_len` gives the length of the match starting at a position
    /// (0 for none); it never looks behind.
    fn split_matches(&mut self, match_len: impl Fn(&[char], usize) -> usize) {
        let mut pos = self.prev_end;
        while pos < self.chars.len() {
            match match_len(self.chars, pos) {
                0 => pos += 1,
                len => {
                    self.emit(pos);
                    pos += len;
                    self.emit(pos);
                }
            }
        }
        self.emit(pos);
    }
}

/// `[^\s\p{L}\p{N}]` inside the piece.
fn is_other(flags: Flags) -> bool {
    !(flags.is_whitespace() || flags.is_letter() || flags.is_number()) && flags.is_present()
}
