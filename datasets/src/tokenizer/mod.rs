//! Tokenization identical to the reference implementations: llama.cpp's
//! `llama_tokenize` / `llama_detokenize` for GGUF vocabularies, and the
//! `tokenizers` crate for Hugging Face `tokenizer.json` files.

mod decode;
mod gguf;
mod hf;
mod merge;
mod pre_tokenizer;
mod special;
mod split;
mod unicode;
mod unicode_data;
mod vocab;
mod word_cache;

use std::borrow::Cow;
use std::path::Path;

use quantize::gguf::GgufFile;

pub use special::SpecialTokens;
pub use vocab::VocabConfig;

pub(crate) use gguf::Metadata;
pub(crate) use hf::{read_json, token_content};

use crate::error::Result;
use hf::HfTokenizer;
use vocab::Vocab;

/// How [`Tokenizer::encode`] treats special tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add the tokens the vocabulary puts around a text (BOS, and EOS where
    /// configured), as llama.cpp's `add_special` / HF's `add_special_tokens`.
    pub add_special: bool,
    /// Read special-token texts in the input (`<|im_start|>`) as those tokens
    /// rather than as plain text, as llama.cpp's `parse_special`.
    pub parse_special: bool,
}

/// A tokenizer for one model: its vocabulary, special tokens and end-of-generation set.
pub struct Tokenizer {
    backend: Backend,
}

/// Boxed, so that a `Tokenizer` is one pointer wide whichever backend it holds.
enum Backend {
    Gguf(Box<Vocab>),
    Hf(Box<HfTokenizer>),
}

impl Tokenizer {
    /// Builds the tokenizer llama.cpp would from this vocabulary metadata.
    pub fn from_vocab(config: VocabConfig) -> Result<Self> {
        Ok(Self {
            backend: Backend::Gguf(Box::new(Vocab::new(config)?)),
        })
    }

    /// The tokenizer of a GGUF model, from its `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        Self::from_vocab(VocabConfig::from_gguf(file)?)
    }

    /// The tokenizer of a Hugging Face model directory: `tokenizer.json`, with
    /// special tokens from `tokenizer_config.json` and end-of-generation ids
    /// from `generation_config.json` where present.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            backend: Backend::Hf(Box::new(HfTokenizer::from_dir(dir.as_ref())?)),
        })
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str, options: EncodeOptions) -> Result<Vec<u32>> {
        let EncodeOptions {
            add_special,
            parse_special,
        } = options;
        match &self.backend {
            Backend::Gguf(vocab) => Ok(vocab.tokenize(text, add_special, parse_special)),
            Backend::Hf(hf) => hf.encode(text, add_special, parse_special),
        }
    }

    /// The text of `ids`; with `special`, special tokens are rendered as their
    /// text, otherwise left out (llama.cpp's `common_detokenize`, HF's
    /// `decode(skip_special_tokens = !special)`). Bytes that do not form UTF-8
    /// (a sequence cut inside a character) become U+FFFD.
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
        match &self.backend {
            Backend::Gguf(vocab) => {
                Ok(String::from_utf8_lossy(&vocab.detokenize(ids, special)).into_owned())
            }
            Backend::Hf(hf) => hf.decode(ids, special),
        }
    }

    /// The bytes one token stands for (llama.cpp's `llama_token_to_piece`):
    /// possibly part of a UTF-8 character, empty for an unknown id, and empty
    /// for control tokens unless `special`. A Hugging Face tokenizer decodes the
    /// token alone, so a partial character comes back as U+FFFD.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<Cow<'_, [u8]>> {
        match &self.backend {
            Backend::Gguf(vocab) => Ok(Cow::Borrowed(vocab.token_to_piece(id, special))),
            Backend::Hf(hf) => Ok(Cow::Owned(hf.decode(&[id], special)?.into_bytes())),
        }
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.token_id(text),
            Backend::Hf(hf) => hf.token_id(text),
        }
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.special_tokens(),
            Backend::Hf(hf) => hf.special_tokens(),
        }
    }

    /// Whether generation stops at `id` (EOS, end of turn, and the other
    /// tokens the model's metadata or llama.cpp's rules mark).
    pub fn is_eog(&self, id: u32) -> bool {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.is_eog(id),
            Backend::Hf(hf) => hf.is_eog(id),
        }
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.len(),
            Backend::Hf(hf) => hf.vocab_size(),
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Gguf(_) => "gguf",
            Backend::Hf(_) => "tokenizer.json",
        };
        f.debug_struct("Tokenizer")
            .field("kind", &kind)
            .field("vocab_size", &self.vocab_size())
            .field("special", self.special_tokens())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokenizers_and_templates_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Tokenizer>();
        shared::<crate::ChatTemplate>();
    }
}
