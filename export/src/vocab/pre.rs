//! Pre-tokenizers: recognising a `tokenizer.json`'s the way llama.cpp's converter
//! does (`get_vocab_base_pre`: the sha256 of the ids the tokenizer gives a check
//! text, looked up among known models), and writing the `tokenizer.json` parts of
//! the ones decant's families use.

use serde_json::{Value, json};

/// `chktxt` of llama.cpp's `convert_hf_to_gguf.py`, character for character.
pub const CHECK_TEXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫\u{fe0f} (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// Hashes from `get_vocab_base_pre` (llama.cpp as vendored by llama-cpp-python
/// 0.3.36) for the pre-tokenizers of the families decant runs.
const KNOWN: &[(&str, &str)] = &[
    // HuggingFaceTB/SmolLM-135M
    ("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm"),
    // meta-llama/Meta-Llama-3-8B
    ("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"),
    // Qwen/Qwen1.5-7B
    ("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"),
    // Qwen/Qwen3-Embedding-0.6B
    ("d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"),
    // openai-community/gpt2
    ("3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"),
    // evilfreelancer/ruGPT3XL
    ("0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"),
];

/// The `tokenizer.ggml.pre` name of the pre-tokenizer whose check-text ids hash
/// to `hash` (lowercase hex sha256 of Python's `str()` of the id list).
pub fn pre_tokenizer_of_hash(hash: &str) -> Option<&'static str> {
    KNOWN.iter().find(|(known, _)| *known == hash).map(|&(_, name)| name)
}

/// The id list as Python's `str(list)` prints it, which is what gets hashed.
pub(super) fn python_list(ids: &[u32]) -> String {
    let items: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// What a `tokenizer.json` holds around its BPE model for one pre-tokenizer.
pub(super) struct Layout {
    pub normalizer: Value,
    pub pre_tokenizer: Value,
    /// Without the special tokens a template adds; see [`Layout::bos_template`].
    pub post_processor: Value,
    pub decoder: Value,
    pub ignore_merges: bool,
    /// The post-processor prepends BOS (Llama 3's `TemplateProcessing`).
    pub bos_template: bool,
}

/// Llama 3's split regex (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

fn byte_level(add_prefix_space: bool, trim_offsets: bool, use_regex: bool) -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": add_prefix_space,
           "trim_offsets": trim_offsets, "use_regex": use_regex})
}

fn split(regex: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

/// The layout the model families' own `tokenizer.json` files have.
pub(super) fn layout(pre: &str) -> Option<Layout> {
    let gpt2_like = |pre_tokenizer| Layout {
        normalizer: Value::Null,
        pre_tokenizer,
        post_processor: byte_level(true, false, true),
        decoder: byte_level(true, true, true),
        ignore_merges: false,
        bos_template: false,
    };
    Some(match pre {
        "gpt-2" => gpt2_like(byte_level(false, true, true)),
        "smollm" => gpt2_like(json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level(false, true, true),
        ]})),
        "llama-bpe" => Layout {
            normalizer: Value::Null,
            pre_tokenizer: json!({"type": "Sequence", "pretokenizers": [
                split(LLAMA3_REGEX), byte_level(false, true, false),
            ]}),
            post_processor: byte_level(true, false, true),
            decoder: byte_level(true, true, true),
            ignore_merges: true,
            bos_template: true,
        },
        "qwen2" => Layout {
            normalizer: json!({"type": "NFC"}),
            pre_tokenizer: json!({"type": "Sequence", "pretokenizers": [
                split(QWEN2_REGEX), byte_level(false, false, false),
            ]}),
            post_processor: byte_level(false, false, false),
            decoder: byte_level(false, false, false),
            ignore_merges: false,
            bos_template: false,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_printed_as_python_prints_a_list() {
        assert_eq!(python_list(&[1, 22, 333]), "[1, 22, 333]");
        assert_eq!(python_list(&[]), "[]");
    }

    #[test]
    fn check_text_is_the_converters() {
        // From Python: len(chktxt.encode()), len(chktxt).
        assert_eq!((CHECK_TEXT.len(), CHECK_TEXT.chars().count()), (431, 350));
    }
}
