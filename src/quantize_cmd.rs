//! `decant quantize`: a GGUF model to one of llama.cpp's quantization mixes, byte
//! for byte as `llama-quantize` writes it.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use decant::model_arg::{self, ModelSource};
use indicatif::{ProgressBar, ProgressStyle};
use quantize::GgmlType;
use quantize::gguf::GgufFile;
use quantize::mix::{Mix, MixOptions};
use quantize::model_quant::{Imatrix, Quantization, Report};
use serde_json::json;

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// The model: a .gguf file in F32, F16 or BF16 (quantized tensors are
    /// dequantized first, with a warning).
    #[arg(long)]
    model: String,
    /// The mix, as llama-quantize names it (case-insensitive): q4_0 q4_1 q5_0 q5_1
    /// q8_0 q2_k q2_k_s q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k
    /// iq4_nl iq4_xs f16 bf16 f32; q3_k, q4_k, q5_k mean their _m mix.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_mix)]
    mix: Mix,
    /// The output file; replaced only once the new one is complete.
    #[arg(long, value_name = "OUT.gguf")]
    out: PathBuf,
    /// An importance matrix: llama-imatrix's GGUF format or its legacy .dat one.
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
    /// Every quantizable weight to the mix's base type, without its per-tensor rules.
    #[arg(long)]
    pure: bool,
    /// Threads to quantize with [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// The ggml type of output.weight (e.g. q8_0), instead of the mix's choice.
    #[arg(long, value_name = "GGML_TYPE", value_parser = parse_ggml_type)]
    output_tensor_type: Option<GgmlType>,
    /// The ggml type of token_embd.weight, instead of the mix's choice.
    #[arg(long, value_name = "GGML_TYPE", value_parser = parse_ggml_type)]
    token_embedding_type: Option<GgmlType>,
    /// Print one JSON object: output path, size, tensors per type, fallbacks, time.
    #[arg(long)]
    json: bool,
}

fn parse_mix(name: &str) -> Result<Mix, String> {
    name.parse()
        .map_err(|e: quantize::mix::MixError| e.to_string())
}

fn parse_ggml_type(name: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = GgmlType::ALL.iter().map(|t| t.name()).collect();
        format!(
            "unknown ggml type '{name}'; valid types: {}",
            names.join(", ")
        )
    })
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let start = Instant::now();
    let path = match model_arg::resolve(&args.model)? {
        ModelSource::Gguf(path) => path,
        ModelSource::HfDir(dir) => bail!(
            "{}: quantizing a Hugging Face directory is not supported yet; convert it to GGUF first \
             (decant export, or llama.cpp's convert_hf_to_gguf.py) and quantize that",
            dir.display()
        ),
    };
    let input =
        GgufFile::open(&path).with_context(|| format!("cannot quantize {}", path.display()))?;
    let imatrix = args.imatrix.as_deref().map(Imatrix::load).transpose()?;
    let options = MixOptions {
        mix: args.mix,
        pure: args.pure,
        has_imatrix: imatrix.is_some(),
        output_type: args.output_tensor_type,
        token_embedding_type: args.token_embedding_type,
    };
    let job = Quantization::new(&input, options, imatrix)
        .with_context(|| format!("cannot quantize {} to {}", path.display(), args.mix))?;

    let requantized = job.requantized_types();
    if !requantized.is_empty() {
        let types: Vec<&str> = requantized.iter().map(|t| t.name()).collect();
        eprintln!(
            "warning: {} holds quantized tensors ({}); they are dequantized to F32 and quantized \
             again, which loses more than quantizing from F32, F16 or BF16 would \
             (llama-quantize --allow-requantize)",
            path.display(),
            types.join(", ")
        );
    }

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
    let bar = ProgressBar::new(job.plan().tensors.len() as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} tensors {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("quantizing to {}", args.mix));
    bar.enable_steady_tick(Duration::from_millis(200));
    let report = job
        .write(&args.out, threads, |p| {
            bar.set_position(p.done as u64);
            bar.set_message(format!("{} -> {}", p.tensor, p.target));
        })
        .with_context(|| {
            format!(
                "cannot quantize {} to {}",
                path.display(),
                args.out.display()
            )
        })?;
    bar.finish_and_clear();

    let elapsed = start.elapsed().as_secs_f64();
    if args.json {
        println!("{}", summary_json(&report, &args, threads, elapsed));
    } else {
        let counts: Vec<String> = report
            .type_counts
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        println!(
            "wrote {} ({:.1} MiB, {}): {} tensors ({}), {} fallbacks, {elapsed:.1} s",
            report.path.display(),
            report.size as f64 / (1024.0 * 1024.0),
            args.mix,
            job.plan().tensors.len(),
            counts.join(", "),
            report.n_fallback
        );
    }
    Ok(())
}

fn summary_json(
    report: &Report,
    args: &QuantizeArgs,
    threads: NonZeroUsize,
    elapsed: f64,
) -> serde_json::Value {
    let tensors: serde_json::Map<String, serde_json::Value> = report
        .type_counts
        .iter()
        .map(|(t, &n)| (t.name().to_owned(), json!(n)))
        .collect();
    json!({
        "output": report.path,
        "size": report.size,
        "type": args.mix.name(),
        "ftype": args.mix.ftype(),
        "pure": args.pure,
        "imatrix": args.imatrix,
        "tensors": tensors,
        "n_tensors": report.type_counts.values().sum::<usize>(),
        "n_fallback": report.n_fallback,
        "threads": threads.get(),
        "elapsed_s": elapsed,
    })
}
