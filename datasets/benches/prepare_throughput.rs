//! Throughput of the way from a JSON Lines file to packed batches: reading,
//! rendering through the chat template, tokenizing, loss masks, truncation and
//! packing, in tokens per second. `tools/bench/datasets_throughput.py` runs it
//! beside Hugging Face `datasets.map` with `tokenizers` on the same file and
//! prints the ratio; run alone it prints one JSON object:
//!
//!     cargo bench -p datasets --bench prepare_throughput -- \
//!         --data FILE.jsonl --model MODEL [--seq-len 2048] [--threads N] [--repeats 1]
//!
//! MODEL is a GGUF file (decant's llama.cpp-identical tokenizer) or a Hugging
//! Face directory (tokenizer.json through the `tokenizers` crate, and the
//! chat template of tokenizer_config.json). Loading the model is not timed;
//! everything from opening the data file to the last packed row is, in wall
//! time and in CPU time of all threads (on a shared machine the CPU time says
//! more). With several repeats the fastest is reported.

use std::error::Error;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datasets::{
    AssistantTurns, ChatTemplate, DataSource, Documents, Loader, LoaderConfig, Order, Prepare,
    RecordSpec, Renderer, Shard, Tokenizer, Truncation,
};
use quantize::gguf::GgufFile;
use serde_json::json;

struct Args {
    data: PathBuf,
    model: PathBuf,
    seq_len: usize,
    batch_size: usize,
    threads: NonZeroUsize,
    repeats: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut data = None;
    let mut model = None;
    let mut seq_len = 2048;
    let mut batch_size = 8;
    let mut threads = std::thread::available_parallelism().map_err(|error| error.to_string())?;
    let mut repeats = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        // `cargo bench` passes --bench to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|error| format!("{flag} {text}: {error}"))
        };
        match flag.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--model" => model = Some(PathBuf::from(value()?)),
            "--seq-len" => seq_len = number(value()?)?,
            "--batch-size" => batch_size = number(value()?)?,
            "--threads" => {
                threads =
                    NonZeroUsize::new(number(value()?)?).ok_or("--threads must be at least 1")?;
            }
            "--repeats" => repeats = number(value()?)?.max(1),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        data: data.ok_or("--data FILE.jsonl is required")?,
        model: model.ok_or("--model (a .gguf file or a Hugging Face directory) is required")?,
        seq_len,
        batch_size,
        threads,
        repeats,
    })
}

fn load_model(path: &Path) -> Result<(Tokenizer, ChatTemplate), Box<dyn Error>> {
    if path.is_dir() {
        return Ok((
            Tokenizer::from_hf_dir(path)?,
            ChatTemplate::from_hf_dir(path)?,
        ));
    }
    let file = GgufFile::open(path)?;
    Ok((
        Tokenizer::from_gguf(&file)?,
        ChatTemplate::from_gguf(&file)?,
    ))
}

/// CPU seconds the process has used, all threads, user and system: fields 14
/// and 15 of /proc/self/stat, in USER_HZ ticks, which Linux fixes at 100.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, is parenthesised and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split(' ').skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let (tokenizer, template) = load_model(&args.model)?;
    let renderer = Renderer::new(&tokenizer, Some(&template), AssistantTurns::All);
    let prepare =
        Prepare::new(renderer, Some(args.seq_len), Truncation::Right)?.with_threads(args.threads);
    let pad_token = tokenizer.special_tokens().eos.unwrap_or(0);

    let mut best: Option<serde_json::Value> = None;
    let mut best_seconds = f64::INFINITY;
    for _ in 0..args.repeats {
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let source = DataSource::open(&[&args.data.to_string_lossy()], RecordSpec::default())?;
        let (documents, stats) = Documents::build(source.records(), &prepare, &source.origin())?;
        let config = LoaderConfig {
            batch_size: args.batch_size,
            seq_len: args.seq_len,
            packing: true,
            order: Order {
                shuffle: false,
                seed: 0,
                shard: Shard::SINGLE,
            },
            pad_token,
            epochs: Some(1),
        };
        let (mut rows, mut batches, mut targets) = (0, 0, 0u64);
        for batch in Loader::new(Arc::new(documents), config)? {
            rows += batch.rows;
            batches += 1;
            targets += batch.loss_mask.iter().filter(|&&trained| trained).count() as u64;
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu = cpu_start.zip(cpu_seconds()).map(|(start, end)| end - start);
        if seconds < best_seconds {
            best_seconds = seconds;
            best = Some(json!({
                "examples": stats.examples,
                "kept": stats.kept,
                "truncated": stats.truncated,
                "tokens": stats.tokens,
                "trained_tokens": stats.trained_tokens,
                "targets": targets,
                "rows": rows,
                "batches": batches,
                "seq_len": args.seq_len,
                "threads": args.threads,
                "seconds": seconds,
                "tokens_per_s": stats.tokens as f64 / seconds,
                "cpu_seconds": cpu,
                "tokens_per_cpu_s": cpu.map(|cpu| stats.tokens as f64 / cpu),
            }));
        }
    }
    println!("{}", best.expect("at least one repeat"));
    Ok(())
}
