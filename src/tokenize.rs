//! `decant tokenize`: the token ids a model's own tokenizer gives a text.

use datasets::{EncodeOptions, Tokenizer};
use quantize::gguf::GgufFile;
use serde_json::{Value as Json, json};

use crate::model_arg::ModelSource;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("cannot read {0}")]
    Gguf(String, #[source] quantize::gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] datasets::DatasetError),
}

/// Loads the tokenizer a model file carries: rebuilt from `tokenizer.ggml.*` for
/// GGUF (as llama.cpp does), `tokenizer.json` for a Hugging Face directory.
pub fn load_tokenizer(source: &ModelSource) -> Result<Tokenizer, TokenizeError> {
    match source {
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)
                .map_err(|e| TokenizeError::Gguf(path.display().to_string(), e))?;
            Ok(Tokenizer::from_gguf(&file)?)
        }
        ModelSource::HfDir(dir) => Ok(Tokenizer::from_hf_dir(dir)?),
    }
}

/// Token ids with no BOS/EOS added; `parse_special` reads `<|im_start|>`-style
/// texts as their special tokens.
pub fn tokenize(
    tokenizer: &Tokenizer,
    text: &str,
    parse_special: bool,
) -> Result<Vec<u32>, TokenizeError> {
    let options = EncodeOptions {
        add_special: false,
        parse_special,
    };
    Ok(tokenizer.encode(text, options)?)
}

pub fn render_json(
    tokenizer: &Tokenizer,
    source: &ModelSource,
    ids: &[u32],
) -> Result<Json, TokenizeError> {
    let pieces = ids
        .iter()
        .map(|&id| Ok(String::from_utf8_lossy(&tokenizer.token_to_piece(id, true)?).into_owned()))
        .collect::<Result<Vec<_>, TokenizeError>>()?;
    Ok(json!({
        "model": source.path(),
        "count": ids.len(),
        "tokens": ids,
        "pieces": pieces,
    }))
}
