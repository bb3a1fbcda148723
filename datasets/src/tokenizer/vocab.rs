//! A GGUF vocabulary, built and used the way llama.cpp's `llama_vocab` is, so
//! that token ids and decoded text come out identical to `llama_tokenize` and
//! `llama_detokenize`.

use std::collections::{BTreeSet, HashMap};

use super::decode::{byte_token_value, clean_up_spaces, decode_byte_level};
use super::merge::{self, MergeRanks};
use super::pre_tokenizer::PreTokenizer;
use super::special::{Attr, EOG_TEXTS, Fragment, ROLE_TEXTS, SpecialTokens, partition};
use super::split;
use super::unicode::byte_encode;
use super::word_cache::WordCache;
use crate::error::{DatasetError, Result};

/// A vocabulary's `tokenizer.ggml.*` metadata as plain data: what
/// [`super::Tokenizer::from_vocab`] builds a tokenizer from.
#[derive(Clone, Debug, Default)]
pub struct VocabConfig {
    /// Where the metadata came from (a file name), for error messages.
    pub origin: String,
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a BPE vocabulary.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores`: merge priorities of a SentencePiece vocabulary.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges`: `"left right"`, highest priority first.
    pub merges: Option<Vec<String>>,
    /// The `tokenizer.ggml.*_token_id` keys present.
    pub special: SpecialTokens,
    /// `tokenizer.ggml.add_bos_token`
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`
    pub add_space_prefix: Option<bool>,
}

#[derive(Debug)]
struct TokenData {
    text: String,
    score: f32,
    attr: Attr,
}

enum Model {
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    Bpe {
        pre: PreTokenizer,
        ranks: MergeRanks,
        words: WordCache,
    },
    /// SentencePiece (`tokenizer.ggml.model = "llama"`): merges by token score
    /// over text whose spaces are `▁`, with `<0xXX>` byte fallback.
    Spm,
}

/// A vocabulary ready to tokenize, with llama.cpp's defaults and derivations
/// applied to its metadata.
pub(super) struct Vocab {
    model: Model,
    tokens: Vec<TokenData>,
    ids: HashMap<String, u32>,
    special: SpecialTokens,
    eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first: the order
    /// special tokens are cut out of input text.
    specials_by_length: Vec<u32>,
    /// Each token's bytes as rendered with `special = true`.
    pieces: Vec<Box<[u8]>>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// What llama.cpp sets for a vocabulary kind before it reads the optional keys.
struct Defaults {
    special: SpecialTokens,
    add_bos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

impl Model {
    fn new(config: &VocabConfig) -> Result<(Self, Defaults)> {
        let origin = || config.origin.clone();
        match config.model.as_str() {
            "gpt2" => {
                let merges = config
                    .merges
                    .as_ref()
                    .ok_or_else(|| DatasetError::MissingKey {
                        origin: origin(),
                        key: "tokenizer.ggml.merges",
                        expected: "the BPE merges of a \"gpt2\" vocabulary",
                    })?;
                let pre = PreTokenizer::named(config.pre.as_deref()).ok_or_else(|| {
                    DatasetError::UnknownPreTokenizer {
                        origin: origin(),
                        pre: config.pre.clone().unwrap_or_default(),
                        known: PreTokenizer::names(),
                    }
                })?;
                let defaults = Defaults {
                    special: SpecialTokens {
                        bos: Some(11),
                        eos: Some(11),
                        ..SpecialTokens::default()
                    },
                    add_bos: pre.add_bos,
                    add_space_prefix: false,
                    clean_spaces: pre.clean_spaces,
                };
                let ranks = MergeRanks::new(merges);
                let words = WordCache::default();
                Ok((Self::Bpe { pre, ranks, words }, defaults))
            }
            "llama" => {
                let defaults = Defaults {
                    special: SpecialTokens {
                        bos: Some(1),
                        eos: Some(2),
                        unk: Some(0),
                        ..SpecialTokens::default()
                    },
                    add_bos: true,
                    add_space_prefix: true,
                    clean_spaces: false,
                };
                Ok((Self::Spm, defaults))
            }
            other => Err(DatasetError::UnknownTokenizerModel {
                origin: origin(),
                model: other.to_owned(),
            }),
        }
    }
}

impl Vocab {
    /// Mirrors `llama_vocab::impl::load`.
    pub(super) fn new(config: VocabConfig) -> Result<Self> {
        let (model, defaults) = Model::new(&config)?;
        let origin = config.origin;
        let n_tokens = config.tokens.len();
        if n_tokens == 0 {
            return Err(DatasetError::InvalidKey {
                origin,
                key: "tokenizer.ggml.tokens",
                expected: "at least one token".to_owned(),
                found: "an empty array".to_owned(),
            });
        }
        let scores = per_token(config.scores, n_tokens, &origin, "tokenizer.ggml.scores")?;
        let types = per_token(
            config.token_types,
            n_tokens,
            &origin,
            "tokenizer.ggml.token_type",
        )?;
        let mut tokens = Vec::with_capacity(n_tokens);
        let mut ids = HashMap::with_capacity(n_tokens);
        for (id, text) in (0u32..).zip(config.tokens) {
            let index = id as usize;
            let text = if text.is_empty() {
                format!("[EMPTY_{id}]")
            } else {
                text
            };
            // A repeated text maps to its last id, as in llama.cpp.
            ids.insert(text.clone(), id);
            tokens.push(TokenData {
                text,
                score: scores.as_ref().map_or(0.0, |scores| scores[index]),
                attr: types
                    .as_ref()
                    .map_or(Attr::NORMAL, |types| Attr::from_token_type(types[index])),
            });
        }

        let special = resolve_ids(defaults.special, config.special, n_tokens);
        let add_bos = config.add_bos.unwrap_or(defaults.add_bos);
        let add_eos = config.add_eos.unwrap_or(false);
        for (flag, key, id) in [
            (add_bos, "tokenizer.ggml.add_bos_token", special.bos),
            (add_eos, "tokenizer.ggml.add_eos_token", special.eos),
        ] {
            if flag && id.is_none() {
                return Err(DatasetError::InvalidKey {
                    origin,
                    key,
                    expected: "false when the vocabulary has no such token".to_owned(),
                    found: "true".to_owned(),
                });
            }
        }

        let mut vocab = Self {
            model,
            tokens,
            ids,
            special,
            eog: BTreeSet::new(),
            specials_by_length: Vec::new(),
            pieces: Vec::new(),
            add_bos,
            add_eos,
            add_space_prefix: config.add_space_prefix.unwrap_or(defaults.add_space_prefix),
            clean_spaces: defaults.clean_spaces,
        };
        vocab.detect_special_tokens();
        vocab.specials_by_length = (0u32..)
            .zip(&vocab.tokens)
            .filter(|(_, token)| {
                token
                    .attr
                    .intersects(Attr::CONTROL | Attr::USER_DEFINED | Attr::UNKNOWN)
            })
            .map(|(id, _)| id)
            .collect();
        vocab
            .specials_by_length
            .sort_by_key(|&id| std::cmp::Reverse(vocab.tokens[id as usize].text.len()));
        vocab.pieces = (0..vocab.tokens.len())
            .map(|index| vocab.render_piece(index))
            .collect();
        Ok(vocab)
    }

    /// The token-text heuristics of llama.cpp's loader: role ids the metadata
    /// leaves out, control attributes for control-looking tokens, unused
    /// control tokens, and the set of tokens that end generation.
    ///
    /// Where a vocabulary has several candidates for a role, llama.cpp takes the
    /// first its text-to-id hash map yields, an order it does not define (for
    /// SmolLM2's end of turn, `<|endoftext|>` over `<|im_end|>`). Here the first
    /// candidate in llama.cpp's own list wins, which is the end-of-turn marker
    /// of the model's chat format for Llama 3, Qwen2 and ChatML vocabularies.
    fn detect_special_tokens(&mut self) {
        for (role, texts) in ROLE_TEXTS {
            let slot = role(&mut self.special);
            if slot.is_some() {
                continue;
            }
            if let Some(id) = texts.iter().find_map(|text| self.ids.get(*text).copied()) {
                *slot = Some(id);
                self.tokens[id as usize].attr.insert(Attr::CONTROL);
            }
        }

        // llama.cpp visits each distinct text once, under the last id that has it.
        let canonical: Vec<u32> = (0u32..)
            .zip(&self.tokens)
            .filter(|(id, token)| self.ids[&token.text] == *id)
            .map(|(id, _)| id)
            .collect();
        for &id in &canonical {
            let token = &mut self.tokens[id as usize];
            if token.attr.intersects(Attr::CONTROL) && token.text.contains("unused") {
                token.attr.insert(Attr::UNUSED);
            }
        }
        let special = self.special;
        self.eog.extend(
            [special.fim_pad, special.fim_rep, special.fim_sep]
                .into_iter()
                .flatten(),
        );
        for &id in &canonical {
            let token = &mut self.tokens[id as usize];
            if EOG_TEXTS.contains(&token.text.as_str()) {
                self.eog.insert(id);
                token.attr.insert(Attr::CONTROL);
            }
        }
        self.eog.extend(
            [special.eos, special.eot, special.eom]
                .into_iter()
                .flatten(),
        );
    }

    pub(super) fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub(super) fn len(&self) -> usize {
        self.tokens.len()
    }

    pub(super) fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    pub(super) fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// `llama_tokenize(text, add_special, parse_special)`.
    pub(super) fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let specials = self.specials_by_length.iter().filter_map(|&id| {
            let token = &self.tokens[id as usize];
            // Without parse_special only user-defined tokens are cut out.
            let cut = parse_special || !token.attr.intersects(Attr::CONTROL | Attr::UNKNOWN);
            cut.then_some((id, token.text.as_str()))
        });
        let fragments = partition(text, specials);

        let mut output = Vec::new();
        if add_special && self.add_bos {
            output.extend(self.special.bos);
        }
        // SentencePiece prefixes a space to text at the start or after a special token.
        let mut after_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) => {
                    output.push(id);
                    after_special = true;
                }
                Fragment::Text(text) => {
                    match &self.model {
                        Model::Bpe { pre, ranks, words } => {
                            self.tokenize_bpe(text, pre, ranks, words, &mut output)
                        }
                        Model::Spm => {
                            let prefix = if self.add_space_prefix && after_special {
                                " "
                            } else {
                                ""
                            };
                            let escaped = format!("{prefix}{text}").replace(' ', "▁");
                            self.tokenize_spm(&escaped, &mut output);
                        }
                    }
                    after_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            output.extend(self.special.eos);
        }
        output
    }

    fn tokenize_bpe(
        &self,
        text: &str,
        pre: &PreTokenizer,
        ranks: &MergeRanks,
        words: &WordCache,
        output: &mut Vec<u32>,
    ) {
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0;
        let mut word = String::new();
        for len in split::split(&chars, pre.splitters) {
            word.clear();
            word.extend(&chars[start..start + len]);
            start += len;
            words.tokens(&word, output, |output| {
                self.merge_bpe_word(&word, pre, ranks, output)
            });
        }
    }

    fn merge_bpe_word(
        &self,
        word: &str,
        pre: &PreTokenizer,
        ranks: &MergeRanks,
        output: &mut Vec<u32>,
    ) {
        let word = byte_encode(word);
        if pre.ignore_merges
            && let Some(id) = self.token_id(&word)
        {
            output.push(id);
            return;
        }
        for piece in merge::bpe(&word, ranks) {
            match self.token_id(piece) {
                Some(id) => output.push(id),
                // llama.cpp looks each byte of the piece up as a one-byte token;
                // only ASCII bytes can be one.
                None => {
                    output.extend(piece.bytes().filter(u8::is_ascii).filter_map(|byte| {
                        self.token_id(char::from(byte).encode_utf8(&mut [0; 4]))
                    }))
                }
            }
        }
    }

    fn tokenize_spm(&self, text: &str, output: &mut Vec<u32>) {
        let score = |piece: &str| {
            self.token_id(piece)
                .map(|id| self.tokens[id as usize].score)
        };
        for piece in merge::spm(text, score) {
            match self.token_id(piece) {
                Some(id) => output.push(id),
                None => output.extend(piece.bytes().filter_map(|byte| self.byte_token(byte))),
            }
        }
    }

    /// The token for a raw byte in a SentencePiece vocabulary: `<0xXX>`, or the
    /// byte itself as text. llama.cpp throws when neither exists; the byte is
    /// dropped here.
    fn byte_token(&self, byte: u8) -> Option<u32> {
        self.token_id(&format!("<0x{byte:02X}>")).or_else(|| {
            std::str::from_utf8(&[byte])
                .ok()
                .and_then(|text| self.token_id(text))
        })
    }

    /// `token_to_piece(id, special = true)` as llama.cpp caches it.
    fn render_piece(&self, index: usize) -> Box<[u8]> {
        let token = &self.tokens[index];
        if token
            .attr
            .intersects(Attr::UNKNOWN | Attr::CONTROL | Attr::USER_DEFINED)
        {
            token.text.as_bytes().into()
        } else if token.attr.intersects(Attr::NORMAL) {
            match self.model {
                Model::Bpe { .. } => decode_byte_level(&token.text).into(),
                Model::Spm => token.text.replace('▁', " ").into_bytes().into(),
            }
        } else if token.attr.intersects(Attr::BYTE) {
            [byte_token_value(&token.text)].into()
        } else {
            Box::default()
        }
    }

    /// `llama_token_to_piece(id, lstrip = 0, special)`. Control and unknown
    /// tokens render only with `special`.
    pub(super) fn token_to_piece(&self, id: u32, special: bool) -> &[u8] {
        let Some(token) = self.tokens.get(id as usize) else {
            return &[];
        };
        if !special && token.attr.intersects(Attr::UNKNOWN | Attr::CONTROL) {
            return &[];
        }
        &self.pieces[id as usize]
    }

    /// `llama_detokenize(ids, remove_special = false, unparse_special)`, as
    /// llama.cpp's `common_detokenize` calls it.
    pub(super) fn detokenize(&self, ids: &[u32], unparse_special: bool) -> Vec<u8> {
        // SentencePiece's prefix space comes off the first token again.
        let mut remove_space = self.add_space_prefix;
        let mut text = Vec::new();
        for &id in ids {
            let piece = self.token_to_piece(id, unparse_special);
            let piece = match piece.strip_prefix(b" ") {
                Some(stripped) if remove_space => stripped,
                _ => piece,
            };
            text.extend_from_slice(piece);
            remove_space = false;
        }
        if self.clean_spaces {
            clean_up_spaces(&mut text);
        }
        text
    }
}

/// The role ids in effect: each key in range replaces the default; a default
/// out of range is dropped (llama.cpp ignores an out-of-range key with a warning).
fn resolve_ids(defaults: SpecialTokens, given: SpecialTokens, n_tokens: usize) -> SpecialTokens {
    let pick = |given: Option<u32>, default: Option<u32>| {
        let in_range = |id: Option<u32>| id.filter(|&id| (id as usize) < n_tokens);
        in_range(given).or(in_range(default))
    };
    SpecialTokens {
        bos: pick(given.bos, defaults.bos),
        eos: pick(given.eos, defaults.eos),
        eot: pick(given.eot, defaults.eot),
        eom: pick(given.eom, defaults.eom),
        unk: pick(given.unk, defaults.unk),
        sep: pick(given.sep, defaults.sep),
        pad: pick(given.pad, defaults.pad),
        mask: pick(given.mask, defaults.mask),
        fim_pre: pick(given.fim_pre, defaults.fim_pre),
        fim_suf: pick(given.fim_suf, defaults.fim_suf),
        fim_mid: pick(given.fim_mid, defaults.fim_mid),
        fim_pad: pick(given.fim_pad, defaults.fim_pad),
        fim_rep: pick(given.fim_rep, defaults.fim_rep),
        fim_sep: pick(given.fim_sep, defaults.fim_sep),
    }
}

/// Checks that a per-token array has an entry for every token.
fn per_token<T>(
    values: Option<Vec<T>>,
    n_tokens: usize,
    origin: &str,
    key: &'static str,
) -> Result<Option<Vec<T>>> {
    match values {
        Some(values) if values.len() < n_tokens => Err(DatasetError::InvalidKey {
            origin: origin.to_owned(),
            key,
            expected: format!("one entry per token ({n_tokens})"),
            found: format!("{} entries", values.len()),
        }),
        values => Ok(values),
    }
}
