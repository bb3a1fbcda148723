//! `decant export`: a model to a GGUF file (with an Ollama Modelfile beside it)
//! or to a Hugging Face safetensors directory.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use decant::model_arg::{self, ModelSource};
use export::{DatasetRef, Dtype, ExportMetadata, HfOptions, ModelRef, Vocabulary};
use indicatif::{ProgressBar, ProgressStyle};
use quantize::GgmlType;
use quantize::gguf::{GgufFile, Value};
use quantize::mix::{Mix, MixOptions};
use serde_json::json;
use train::CpuBackend;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Gguf,
    Safetensors,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    model: String,
    /// gguf: one file for llama.cpp and Ollama; safetensors: a Hugging Face directory.
    #[arg(long, value_enum)]
    format: Format,
    /// The output: a .gguf file (replaced only once complete), or a directory that must not exist.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// GGUF: a llama-quantize mix (q8_0, q4_k_m, ...) or f32/f16/bf16; safetensors:
    /// f32/f16/bf16. Default: the source's float type (f32 for a quantized GGUF).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_mix)]
    mix: Option<Mix>,
    /// GGUF: every 2-D weight in TYPE, no per-tensor rules (like `llama-quantize --pure`);
    /// what a QAT stage with `pure = true` trained against.
    #[arg(long)]
    pure: bool,
    /// general.name and the model card's title [default: the source's name].
    #[arg(long)]
    name: Option<String>,
    /// The licence, as an SPDX id (apache-2.0) [default: a GGUF source's general.license].
    #[arg(long)]
    license: Option<String>,
    /// A model this one derives from (general.base_model.*); repeatable.
    #[arg(long = "base-model", value_name = "NAME")]
    base_models: Vec<String>,
    /// A data set it was trained on (general.dataset.*); repeatable.
    #[arg(long = "dataset", value_name = "NAME")]
    datasets: Vec<String>,
    /// safetensors: split the weights into shards of at most this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = export::hf::DEFAULT_MAX_SHARD_BYTES)]
    max_shard_size: u64,
    /// Threads to quantize with [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    json: bool,
}

fn parse_mix(name: &str) -> Result<Mix, String> {
    name.parse()
        .map_err(|e: quantize::mix::MixError| e.to_string())
}

/// What the source says about itself, for defaults and the tokenizer.
struct SourceInfo {
    vocab: Option<Vocabulary>,
    float_mix: Mix,
    name: String,
    license: Option<String>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let start = Instant::now();
    let source = model_arg::resolve(&args.model)?;
    let model = train::load_model::<CpuBackend>(source.path(), &Default::default())
        .with_context(|| format!("cannot load {source}"))?;
    let info = source_info(&source, model.config.vocab_size)?;
    let mix = args.mix.unwrap_or(info.float_mix);
    let metadata = ExportMetadata {
        name: args.name.clone().unwrap_or(info.name),
        base_models: args
            .base_models
            .iter()
            .map(|name| ModelRef {
                name: name.clone(),
                ..ModelRef::default()
            })
            .collect(),
        datasets: args
            .datasets
            .iter()
            .map(|name| DatasetRef {
                name: name.clone(),
                repo_url: None,
            })
            .collect(),
        license: args.license.clone().or(info.license),
        quantized_by: mix.is_quantized().then(|| "decant".to_owned()),
        ..ExportMetadata::default()
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} tensors {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let context = || format!("cannot export {source} to {}", args.out.display());

    let report = match args.format {
        Format::Gguf => {
            let Some(vocab) = &info.vocab else {
                bail!(
                    "{source}: has no tokenizer.json; a GGUF file needs the tokenizer, llama.cpp loads none without it"
                );
            };
            let threads = args.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
            });
            bar.set_prefix(format!("exporting GGUF ({})", mix.name()));
            let options = MixOptions {
                pure: args.pure,
                ..MixOptions::new(mix)
            };
            let report = export::export_gguf(
                &model,
                vocab,
                &metadata,
                options,
                &args.out,
                threads.get(),
                |p| {
                    bar.set_length(p.total as u64);
                    bar.set_position(p.done as u64);
                    bar.set_message(format!("{} {}", p.tensor, p.ty));
                },
            )
            .with_context(context)?;
            let (modelfile, chat) =
                export::write_modelfile(&report.path, vocab.chat_template.as_deref())
                    .with_context(context)?;
            if chat.is_none() {
                eprintln!(
                    "warning: the chat template of {source} is neither ChatML nor Llama 3; \
                     {} has no TEMPLATE, write one for Ollama by hand",
                    modelfile.display()
                );
            }
            let tensors: serde_json::Map<String, serde_json::Value> = report
                .type_counts
                .iter()
                .map(|(t, &n)| (t.name().to_owned(), json!(n)))
                .collect();
            json!({
                "output": report.path, "format": "gguf", "type": mix.name(), "size": report.size,
                "tensors": tensors, "n_fallback": report.n_fallback, "modelfile": modelfile,
                "chat_format": chat.map(|c| c.name()),
            })
        }
        Format::Safetensors => {
            if args.pure {
                bail!(
                    "--pure: a Hugging Face directory holds float weights; --pure applies to --format gguf"
                );
            }
            let dtype = match mix {
                Mix::F32 => Dtype::F32,
                Mix::F16 => Dtype::F16,
                Mix::Bf16 => Dtype::Bf16,
                other => bail!(
                    "--type {}: a Hugging Face directory holds f32, f16 or bf16 weights; \
                     quantized types are for --format gguf",
                    other.name()
                ),
            };
            bar.set_prefix(format!("exporting safetensors ({})", dtype.torch_name()));
            bar.set_length(export::weights::weight_list(&model.config).len() as u64);
            let options = HfOptions {
                dtype,
                max_shard_bytes: args.max_shard_size,
            };
            let report = export::export_hf_dir(
                &model,
                info.vocab.as_ref(),
                &metadata,
                options,
                &args.out,
                |name| {
                    bar.inc(1);
                    bar.set_message(name.to_owned());
                },
            )
            .with_context(context)?;
            json!({
                "output": report.path, "format": "safetensors", "type": mix.name(),
                "size": report.weights_size, "files": report.files,
            })
        }
    };
    bar.finish_and_clear();
    let mut report = report;
    report["elapsed_s"] = json!(start.elapsed().as_secs_f64());
    if args.json {
        println!("{report}");
    } else {
        println!(
            "wrote {} ({}, {})",
            args.out.display(),
            report["format"].as_str().unwrap_or_default(),
            mix.name()
        );
    }
    Ok(())
}

fn source_info(source: &ModelSource, vocab_size: usize) -> Result<SourceInfo> {
    match source {
        ModelSource::Gguf(path) => {
            let file =
                GgufFile::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            let string = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
            Ok(SourceInfo {
                vocab: Some(Vocabulary::from_gguf(&file)?),
                float_mix: gguf_float_mix(&file),
                name: string("general.name").unwrap_or_else(|| stem(path)),
                license: string("general.license"),
            })
        }
        ModelSource::HfDir(dir) => {
            let vocab = if dir.join("tokenizer.json").is_file() {
                Some(Vocabulary::from_hf_dir(dir, vocab_size)?)
            } else {
                None
            };
            Ok(SourceInfo {
                vocab,
                float_mix: hf_float_mix(dir)?,
                name: stem(dir),
                license: None,
            })
        }
    }
}

/// F16 or BF16 when every matrix is stored so, else F32.
fn gguf_float_mix(file: &GgufFile) -> Mix {
    let matrices: Vec<GgmlType> = file
        .tensors()
        .iter()
        .filter(|t| t.shape.len() >= 2)
        .map(|t| t.ggml_type)
        .collect();
    match matrices.first() {
        Some(GgmlType::F16) if matrices.iter().all(|&t| t == GgmlType::F16) => Mix::F16,
        Some(GgmlType::Bf16) if matrices.iter().all(|&t| t == GgmlType::Bf16) => Mix::Bf16,
        _ => Mix::F32,
    }
}

/// config.json's `torch_dtype` (`dtype` in transformers 5).
fn hf_float_mix(dir: &Path) -> Result<Mix> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let dtype = config
        .get("torch_dtype")
        .or_else(|| config.get("dtype"))
        .and_then(|v| v.as_str());
    Ok(match dtype {
        Some("float16") => Mix::F16,
        Some("bfloat16") => Mix::Bf16,
        _ => Mix::F32,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}
