//! Model → Hugging Face directory: `config.json`, the safetensors weights,
//! the tokenizer files, `generation_config.json` and a `README.md` model card,
//! built in a temporary directory that is renamed into place when complete.

mod config;
mod safetensors;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use train::Transformer;

pub use config::causal_lm_class;
pub use safetensors::{Dtype, INDEX_FILE, SINGLE_FILE};

use crate::atomic_dir::AtomicDir;
use crate::error::ExportError;
use crate::lineage::ExportMetadata;
use crate::model_card::model_card;
use crate::vocab::Vocabulary;

/// transformers' default `max_shard_size` (5 GB).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfReport {
    pub path: PathBuf,
    /// The files of the directory, by name.
    pub files: Vec<String>,
    /// Bytes of tensor data.
    pub weights_size: u64,
}

/// Options of a Hugging Face export.
#[derive(Clone, Copy, Debug)]
pub struct HfOptions {
    pub dtype: Dtype,
    /// Weights above this many bytes are split into shards.
    pub max_shard_bytes: u64,
}

/// Writes `model` as a Hugging Face directory at `out`, which must not exist.
/// Without a vocabulary the directory has no tokenizer files (a bare checkpoint).
pub fn export_hf_dir<B: Backend>(
    model: &Transformer<B>,
    vocab: Option<&Vocabulary>,
    metadata: &ExportMetadata,
    options: HfOptions,
    out: &Path,
    progress: impl FnMut(&str),
) -> Result<HfReport, ExportError> {
    let config = &model.config;
    let special = vocab.map(|v| v.special).unwrap_or_default();
    if let Some(vocab) = vocab
        && vocab.tokens.len() != config.vocab_size
    {
        return Err(ExportError::tokenizer(
            &vocab.origin,
            format!(
                "has {} tokens but the model's embeddings have {} rows",
                vocab.tokens.len(),
                config.vocab_size
            ),
        ));
    }
    let config_json = config::config_json(config, options.dtype, &special)?;
    let dir = AtomicDir::create(out)?;
    let (mut files, weights_size) =
        safetensors::write_weights(model, options.dtype, options.max_shard_bytes, dir.path(), progress)?;
    if files.len() > 1 {
        files.push(INDEX_FILE.to_owned());
    }
    let mut write = |name: &str, text: String| -> Result<(), ExportError> {
        dir.write(name, &text)?;
        files.push(name.to_owned());
        Ok(())
    };
    write("config.json", pretty(&config_json))?;
    write("generation_config.json", pretty(&config::generation_config_json(&special)))?;
    if let Some(vocab) = vocab {
        let tokenizer = vocab.hf_files(config.max_position_embeddings)?;
        write("tokenizer.json", tokenizer.tokenizer)?;
        write("tokenizer_config.json", tokenizer.tokenizer_config)?;
        write("special_tokens_map.json", tokenizer.special_tokens_map)?;
    }
    write("README.md", model_card(metadata, causal_lm_class(config.architecture)))?;
    let path = dir.finish()?;
    files.sort();
    Ok(HfReport { path, files, weights_size })
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values always serialize")
}
