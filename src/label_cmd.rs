//! `decant label`: the teacher's answers to a file of prompts, as training
//! conversations for sequence-level distillation.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datasets::{DataSource, RecordSpec};
use decant::label;
use decant::model_arg;
use decant::stage::source;
use indicatif::{ProgressBar, ProgressStyle};
use quantize::gguf::{AtomicFile, Sink};
use serde_json::json;
use train::CpuBackend;
use train::generate::Sampling;

#[derive(clap::Args)]
pub struct LabelArgs {
    /// The model whose answers become the labels.
    #[arg(long)]
    teacher: String,
    /// Prompts: JSON Lines of conversations (messages, or prompt with an optional
    /// completion, or text as a user turn); a final assistant turn is replaced.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The labelled conversations, JSON Lines (replaced only once complete).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Tokens per answer at most.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_new_tokens: usize,
    /// 0 answers greedily; above 0, samples at this temperature.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    temperature: f32,
    /// With --temperature: sample from the most likely tokens holding this much probability.
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    top_p: f32,
    /// With --temperature: the seed of example i's draws is this plus i.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    json: bool,
}

pub fn run(args: LabelArgs) -> Result<()> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!(
            "--temperature {}: expected 0 (greedy) or a positive number",
            args.temperature
        );
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p {}: expected a probability in (0, 1]", args.top_p);
    }
    let started = Instant::now();
    let teacher_source = model_arg::resolve(&args.teacher)?;
    let tokenizer = source::tokenizer(&teacher_source)?;
    let Some(template) = source::chat_template(&teacher_source)? else {
        bail!("{teacher_source}: has no chat template to render the prompts with");
    };
    let data = DataSource::open(&[args.data.display().to_string()], RecordSpec::default())?;
    let teacher = train::load_model::<CpuBackend>(teacher_source.path(), &Default::default())
        .with_context(|| format!("cannot load {teacher_source}"))?;
    let mut out = AtomicFile::create(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} labelling: {pos} answers  {wide_msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let (mut examples, mut tokens, mut cut) = (0u64, 0u64, 0u64);
    for record in data.records() {
        let record = record?;
        let sampling = if args.temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature: args.temperature,
                top_p: args.top_p,
                seed: args.seed.wrapping_add(examples),
            }
        };
        let labelled = label::label(
            &teacher,
            &tokenizer,
            &template,
            &record,
            args.max_new_tokens,
            sampling,
        )?;
        writeln!(out, "{}", labelled.to_json())
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        examples += 1;
        tokens += labelled.tokens as u64;
        cut += u64::from(labelled.cut);
        bar.inc(1);
        bar.set_message(format!("{tokens} tokens"));
    }
    bar.finish_and_clear();
    if examples == 0 {
        bail!("{}: has no prompts", args.data.display());
    }
    let path = out
        .complete()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if cut > 0 {
        eprintln!(
            "warning: {cut} of {examples} answers reached --max-new-tokens {} before their end",
            args.max_new_tokens
        );
    }
    if args.json {
        let report = json!({
            "output": path, "examples": examples, "tokens": tokens, "cut": cut,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    } else {
        println!(
            "wrote {examples} labelled conversations ({tokens} answer tokens) to {}",
            path.display()
        );
    }
    Ok(())
}
