//! `decant imatrix`: a model's importance matrix over a calibration text, as
//! llama.cpp's `llama-imatrix` computes it (see `train::imatrix`), written in its
//! GGUF format so that `decant quantize --imatrix` and llama-quantize read it.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use decant::{model_arg, tokenize};
use indicatif::{ProgressBar, ProgressStyle};
use quantize::model_quant::{ImatrixEntry, ImatrixMeta, write_imatrix};
use serde_json::json;
use train::CpuBackend;
use train::imatrix::{ImatrixOptions, compute_imatrix};

use crate::eval_cmd::{read_text, tokenize_like_llama_perplexity};

#[derive(clap::Args)]
pub struct ImatrixArgs {
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    model: String,
    /// The calibration text: a text file, or JSON Lines (.jsonl, .ndjson) whose
    /// records' `text` fields are joined by blank lines.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The output file (llama-imatrix's GGUF format); replaced only once complete.
    #[arg(long, value_name = "FILE.gguf")]
    out: PathBuf,
    /// Tokens per chunk; the data must hold at least two chunks.
    #[arg(long, value_name = "N", default_value_t = 512)]
    ctx: usize,
    /// Use at most N chunks from the start of the data.
    #[arg(long, value_name = "N")]
    chunks: Option<NonZeroUsize>,
    /// Print one JSON object: output path, entries, chunks, perplexity, time.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ImatrixArgs) -> Result<()> {
    let start = Instant::now();
    let source = model_arg::resolve(&args.model)?;
    let text = read_text(&args.data)?;
    let tokenizer = tokenize::load_tokenizer(&source)?;
    let (tokens, bos) = tokenize_like_llama_perplexity(&tokenizer, &text)
        .with_context(|| format!("cannot tokenize {}", args.data.display()))?;
    let options = ImatrixOptions {
        ctx: args.ctx,
        max_chunks: args.chunks,
        bos,
    };
    let cannot = || {
        format!(
            "cannot compute an importance matrix of {} on {}",
            source,
            args.data.display()
        )
    };
    let chunk_count = options.chunk_count(tokens.len()).with_context(cannot)?;
    let model = train::load_model::<CpuBackend>(source.path(), &Default::default())
        .with_context(|| format!("cannot load {source}"))?;

    let bar = ProgressBar::new(chunk_count as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} chunks {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("imatrix, ctx {}", args.ctx));
    bar.enable_steady_tick(Duration::from_millis(200));
    let report = compute_imatrix(&model, &tokens, &options, |done, ppl| {
        bar.set_position(done as u64);
        bar.set_message(format!("ppl {ppl:.4}"));
    })
    .with_context(cannot)?;
    bar.finish_and_clear();

    // llama-imatrix records the data file as it was named on its command line.
    let datasets = vec![args.data.display().to_string()];
    let counts: Vec<[f32; 1]> = report.entries.values().map(|e| [e.count as f32]).collect();
    let entries: Vec<ImatrixEntry<'_>> = report
        .entries
        .iter()
        .zip(&counts)
        .map(|((name, e), count)| ImatrixEntry {
            name,
            sums: &e.sums,
            counts: count,
        })
        .collect();
    let meta = ImatrixMeta {
        datasets: &datasets,
        chunk_count: report.chunks as u32,
        chunk_size: report.ctx as u32,
    };
    write_imatrix(&args.out, &entries, &meta)
        .with_context(|| format!("cannot write {}", args.out.display()))?;

    let elapsed = start.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "output": args.out,
                "model": source.path(),
                "data": args.data,
                "tokens": report.tokens,
                "ctx": report.ctx,
                "chunks": report.chunks,
                "entries": report.entries.len(),
                "ppl": report.ppl,
                "elapsed_s": elapsed,
            })
        );
    } else {
        println!(
            "wrote {}: {} entries from {} chunks of {} tokens (PPL {:.4}), {elapsed:.1} s",
            args.out.display(),
            report.entries.len(),
            report.chunks,
            report.ctx,
            report.ppl
        );
    }
    Ok(())
}
