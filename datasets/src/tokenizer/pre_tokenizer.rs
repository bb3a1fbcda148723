//! The `tokenizer.ggml.pre` names decant implements, with the regex lists and
//! vocabulary flags llama.cpp's `llama_vocab::impl::load` gives each.

use super::split::Splitter;

/// How a byte-level BPE vocabulary splits text and what llama.cpp sets for it.
#[derive(Clone, Copy, Debug)]
pub(super) struct PreTokenizer {
    pub(super) splitters: &'static [Splitter],
    /// Undo tokenization spaces (" ," → ",", " 's" → "'s") when detokenizing.
    pub(super) clean_spaces: bool,
    /// Take a word that is itself a token whole, without merging.
    pub(super) ignore_merges: bool,
    /// The `add_bos` default before `tokenizer.ggml.add_bos_token` is read.
    pub(super) add_bos: bool,
}

const GPT2: &[Splitter] = &[Splitter::Gpt2];
const LLAMA3: &[Splitter] = &[Splitter::Llama3 { max_digits: 3 }];
const QWEN2: &[Splitter] = &[Splitter::Llama3 { max_digits: 1 }];
const STARCODER: &[Splitter] = &[Splitter::EachNumber, Splitter::Gpt2];
const DEFAULT: &[Splitter] = &[
    Splitter::PunctuationRuns,
    Splitter::Gpt2,
    Splitter::NumberRuns,
    Splitter::AsciiDigitTriples,
];

const fn pre(splitters: &'static [Splitter], clean_spaces: bool) -> PreTokenizer {
    PreTokenizer {
        splitters,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
    }
}

const LLAMA3_FAMILY: PreTokenizer = PreTokenizer {
    splitters: LLAMA3,
    clean_spaces: true,
    ignore_merges: true,
    add_bos: true,
};

/// Pre-tokenizer names, as llama.cpp spells them.
const KNOWN: &[(&str, PreTokenizer)] = &[
    ("default", pre(DEFAULT, true)),
    ("llama3", LLAMA3_FAMILY),
    ("llama-v3", LLAMA3_FAMILY),
    ("llama-bpe", LLAMA3_FAMILY),
    ("falcon3", LLAMA3_FAMILY),
    ("falcon-h1", LLAMA3_FAMILY),
    ("pixtral", LLAMA3_FAMILY),
    ("midm-2.0", LLAMA3_FAMILY),
    ("lfm2", LLAMA3_FAMILY),
    ("jina-v5-nano", LLAMA3_FAMILY),
    ("dbrx", pre(LLAMA3, true)),
    ("smaug-bpe", pre(LLAMA3, true)),
    ("gpt-2", pre(GPT2, true)),
    ("phi-2", pre(GPT2, true)),
    ("jina-es", pre(GPT2, true)),
    ("jina-de", pre(GPT2, true)),
    ("gigachat", pre(GPT2, true)),
    ("jina-v2-es", pre(GPT2, true)),
    ("jina-v2-de", pre(GPT2, true)),
    ("a.x-4.0", pre(GPT2, true)),
    ("mellum", pre(GPT2, true)),
    ("modern-bert", pre(GPT2, true)),
    ("exaone4", pre(GPT2, true)),
    ("mpt", pre(GPT2, true)),
    ("olmo", pre(GPT2, true)),
    ("jais", pre(GPT2, true)),
    ("trillion", pre(GPT2, false)),
    ("granite-docling", pre(GPT2, false)),
    ("starcoder", pre(STARCODER, true)),
    ("refact", pre(STARCODER, true)),
    ("command-r", pre(STARCODER, false)),
    ("smollm", pre(STARCODER, false)),
    ("codeshell", pre(STARCODER, true)),
    ("exaone", pre(STARCODER, true)),
    ("minerva-7b", pre(STARCODER, true)),
    ("mellum2", pre(STARCODER, true)),
    ("qwen2", pre(QWEN2, false)),
    ("deepseek-r1-qwen", pre(QWEN2, false)),
    ("kormo", pre(QWEN2, false)),
    ("f2llmv2", pre(QWEN2, false)),
    ("megrez", pre(QWEN2, true)),
    ("stablelm2", pre(QWEN2, true)),
    ("hunyuan", pre(QWEN2, false)),
];

impl PreTokenizer {
    /// The pre-tokenizer for `tokenizer.ggml.pre`; a missing or empty name is
    /// llama.cpp's fallback, `default`.
    pub(super) fn named(name: Option<&str>) -> Option<Self> {
        let name = name.filter(|name| !name.is_empty()).unwrap_or("default");
        KNOWN
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, pre)| *pre)
    }

    /// The supported names, for error messages.
    pub(super) fn names() -> String {
        KNOWN
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
