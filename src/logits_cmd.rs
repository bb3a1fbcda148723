//! `decant logits`: a model's next-token logits at every position of a text or
//! a token sequence, written as a safetensors file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use decant::{model_arg, tokenize};
use quantize::gguf::{AtomicFile, Sink};
use serde_json::json;
use train::CpuBackend;

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
pub struct LogitsArgs {
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    model: String,
    /// A text, tokenized with the model's tokenizer without BOS (as `decant tokenize`).
    #[arg(long, group = "input")]
    text: Option<String>,
    /// Token ids, comma-separated.
    #[arg(long, group = "input", value_name = "IDS", value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// The safetensors file to write: `tokens` (I32 [n]) and `logits` (F32 [n, vocab]);
    /// replaced only once the new one is complete.
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
}

pub fn run(args: LogitsArgs) -> Result<()> {
    let source = model_arg::resolve(&args.model)?;
    let ids = match (args.text, args.tokens) {
        (Some(text), _) => {
            let tokenizer = tokenize::load_tokenizer(&source)?;
            tokenize::tokenize(&tokenizer, &text, false)
                .with_context(|| format!("cannot tokenize --text with the tokenizer of {source}"))?
        }
        (None, Some(ids)) => ids,
        (None, None) => unreachable!("clap requires --text or --tokens"),
    };
    let model = train::load_model::<CpuBackend>(source.path(), &Default::default())
        .with_context(|| format!("cannot load {source}"))?;
    let started = Instant::now();
    let logits = model
        .sequence_logits(&ids)
        .with_context(|| format!("cannot run {source} on the given tokens"))?;
    eprintln!("{} positions in {:.2?}", ids.len(), started.elapsed());
    write_logits(
        &args.out,
        &ids,
        &logits,
        model.config.vocab_size,
        &source.to_string(),
    )
    .with_context(|| format!("cannot write {}", args.out.display()))
}

/// Writes the two tensors in the safetensors layout: a little-endian u64 header
/// length, the JSON header padded with spaces to 8 bytes, then the tensors' bytes.
/// The format is small enough that writing it here spares the CLI a dependency.
fn write_logits(path: &Path, ids: &[u32], logits: &[f32], vocab: usize, model: &str) -> Result<()> {
    let n = ids.len();
    let tokens_bytes = 4 * n;
    let header = json!({
        "__metadata__": {"model": model, "producer": "decant logits"},
        "tokens": {"dtype": "I32", "shape": [n], "data_offsets": [0, tokens_bytes]},
        "logits": {
            "dtype": "F32",
            "shape": [n, vocab],
            "data_offsets": [tokens_bytes, tokens_bytes + 4 * logits.len()],
        },
    });
    let mut header = header.to_string().into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');

    let ids = ids
        .iter()
        .map(|&id| i32::try_from(id).context("a token id beyond i32 does not fit the I32 tensor"))
        .collect::<Result<Vec<i32>>>()?;

    let mut file = AtomicFile::create(path)?;
    file.write_all(&(header.len() as u64).to_le_bytes())?;
    file.write_all(&header)?;
    for id in ids {
        file.write_all(&id.to_le_bytes())?;
    }
    for value in logits {
        file.write_all(&value.to_le_bytes())?;
    }
    file.complete()?;
    Ok(())
}
