//! The `decant` command line. Exit codes: 0 success, 1 user error (bad input,
//! with a message naming what and where), 2 usage error (clap's own).

mod cache_teacher_cmd;
mod data_cmd;
mod distill_cmd;
mod eval_cmd;
mod eval_table;
mod eval_task;
mod export_cmd;
mod generate_cmd;
mod imatrix_cmd;
mod label_cmd;
mod logits_cmd;
mod publish_cmd;
mod qat_cmd;
mod quantize_cmd;
mod recipe_cmd;
mod run_cmd;
mod stage_args;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use decant::{inspect, model_arg, tokenize};
use quantize::gguf::GgufFile;

#[derive(Parser)]
#[command(
    name = "decant",
    version,
    about = "Distil a teacher LLM into a small, quantized, task-specific student"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's architecture, parameters, tokenizer, chat template and tensors.
    Inspect {
        /// A .gguf file.
        model: PathBuf,
        /// Print one JSON object with all metadata and every tensor.
        #[arg(long)]
        json: bool,
    },
    /// Print the token ids a model's tokenizer gives a text (no BOS added).
    Tokenize {
        /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
        #[arg(long)]
        model: String,
        /// The text to tokenize.
        #[arg(long)]
        text: String,
        /// Read special-token texts such as <|im_start|> as their special tokens.
        #[arg(long)]
        special: bool,
        /// Print one JSON object with the ids and their pieces.
        #[arg(long)]
        json: bool,
    },
    /// Quantize a GGUF model to a llama.cpp mix (q4_k_m, q8_0, ...), byte for byte as llama-quantize.
    Quantize(quantize_cmd::QuantizeArgs),
    /// Training data as a model sees it.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Evaluate a model on a text: perplexity, chunked and scored as llama-perplexity does.
    Eval(eval_cmd::EvalArgs),
    /// Write a model's next-token logits at every position of a text or token list to a safetensors file.
    Logits(logits_cmd::LogitsArgs),
    /// Generate text greedily from a prompt; with --chat, as the reply to a user message.
    Generate(generate_cmd::GenerateArgs),
    /// Recipes: the TOML files that drive a run.
    #[command(subcommand)]
    Recipe(recipe_cmd::RecipeCommand),
    /// Compute an importance matrix over a calibration text for `quantize --imatrix`, as llama-imatrix does.
    Imatrix(imatrix_cmd::ImatrixArgs),
    /// Export a model to GGUF (with an Ollama Modelfile) or to a Hugging Face safetensors directory.
    Export(export_cmd::ExportArgs),
    /// Run a recipe's stages (distill, QAT, export, eval, publish) into a run directory with a manifest.
    Run(run_cmd::RunArgs),
    /// Publish a completed run's exported files to a model registry (file:///DIR).
    Publish(publish_cmd::PublishArgs),
    /// Run a recipe's distill stage: prune the teacher into a student and train it against the teacher.
    Distill(distill_cmd::DistillArgs),
    /// Run a recipe's QAT stage: fine-tune the distilled student against the exact rounding of its export type.
    Qat(qat_cmd::QatArgs),
    /// Answer a file of prompts with a teacher, writing conversations to train a student on.
    Label(label_cmd::LabelArgs),
    /// Store a teacher's top-k next-token distributions over a data set, for distillation without it.
    CacheTeacher(cache_teacher_cmd::CacheTeacherArgs),
}

#[global_allocator]
static HEAP: train::allocator::Heap = train::allocator::HEAP;

fn main() -> ExitCode {
    train::allocator::keep_freed_memory();
    // Burn's collective installs a tracing subscriber printing on stdout, the
    // channel of `--json`, unless the process has one: this one drops events.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause left out when the message before it
/// already says it: the library errors put their source in their own message.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { model, json } => inspect_model(&model, json),
        Command::Tokenize {
            model,
            text,
            special,
            json,
        } => tokenize_text(&model, &text, special, json),
        Command::Quantize(args) => quantize_cmd::run(args),
        Command::Data(command) => data_cmd::run(command),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Logits(args) => logits_cmd::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Recipe(command) => recipe_cmd::run(command),
        Command::Imatrix(args) => imatrix_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Distill(args) => distill_cmd::run(args),
        Command::Run(args) => run_cmd::run(args),
        Command::Publish(args) => publish_cmd::run(args),
        Command::Qat(args) => qat_cmd::run(args),
        Command::Label(args) => label_cmd::run(args),
        Command::CacheTeacher(args) => cache_teacher_cmd::run(args),
    }
}

fn inspect_model(model: &Path, json: bool) -> Result<()> {
    if model.is_dir() {
        bail!(
            "{}: is a directory; decant inspect reads GGUF files (Hugging Face directories are not supported yet)",
            model.display()
        );
    }
    let file =
        GgufFile::open(model).with_context(|| format!("cannot inspect {}", model.display()))?;
    let summary = inspect::Summary::of(&file);
    if json {
        println!("{}", inspect::render_json(&file, &summary));
    } else {
        print!("{}", inspect::render_text(&file, &summary));
    }
    Ok(())
}

fn tokenize_text(model: &str, text: &str, special: bool, json: bool) -> Result<()> {
    let source = model_arg::resolve(model)?;
    let tokenizer = tokenize::load_tokenizer(&source)?;
    let ids = tokenize::tokenize(&tokenizer, text, special)?;
    if json {
        println!("{}", tokenize::render_json(&tokenizer, &source, &ids)?);
    } else {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", ids.join(","));
    }
    Ok(())
}
