//! `decant cache-teacher`: a teacher's top-k distributions over a data set,
//! for distillation without the teacher in the loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datasets::{AssistantTurns, DataSource, Documents, Prepare, RecordFormat, RecordSpec, Renderer, Truncation};
use decant::model_arg;
use decant::stage::state::sha256_of;
use decant::stage::{source, teacher_cache};
use serde_json::json;
use train::CpuBackend;

#[derive(clap::Args)]
pub struct CacheTeacherArgs {
    /// The teacher: a .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    teacher: String,
    /// Training data (.jsonl, .parquet, .arrow), a directory of them or a glob; repeatable.
    #[arg(long, required = true, value_name = "FILE")]
    data: Vec<String>,
    /// Tokens kept per position (the rest is one probability).
    #[arg(long, value_name = "K")]
    top_k: usize,
    /// The cache directory, which must not exist (built beside it and renamed when complete).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Record format: auto, text, prompt-completion or messages.
    #[arg(long, default_value = "auto")]
    format: RecordFormat,
    /// Longest example in tokens, as the distill stage's `data.max_length`.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    max_length: usize,
    /// What happens to a longer example: error, left, right or drop.
    #[arg(long, default_value = "right")]
    truncation: Truncation,
    /// Which assistant turns of a conversation are trained (and cached): all or last.
    #[arg(long, default_value = "all")]
    train_on: AssistantTurns,
    /// Print one JSON object: the manifest and the time taken.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CacheTeacherArgs) -> Result<()> {
    let started = Instant::now();
    if args.out.exists() {
        bail!("{}: already exists; a teacher cache is written to a new directory", args.out.display());
    }
    let teacher_source = model_arg::resolve(&args.teacher)?;
    let tokenizer = source::tokenizer(&teacher_source)?;
    let template = source::chat_template(&teacher_source)?;
    let spec = RecordSpec { format: args.format, ..RecordSpec::default() };
    let data = DataSource::open(&args.data, spec)?;
    let renderer = Renderer::new(&tokenizer, template.as_ref(), args.train_on);
    let prepare = Prepare::new(renderer, Some(args.max_length), args.truncation)?;
    let (documents, _) = Documents::build(data.records(), &prepare, &data.origin())?;
    let documents = Arc::new(documents);
    let teacher = train::load_model::<CpuBackend>(teacher_source.path(), &Default::default())
        .with_context(|| format!("cannot load {teacher_source}"))?;
    let spec = teacher_cache::spec(
        args.top_k,
        sha256_of(teacher_source.path())?,
        teacher_cache::tokenizer_sha256(&tokenizer, teacher.config.vocab_size),
    );
    let (_, manifest, _) = teacher_cache::ensure(&teacher, &documents, spec, &args.out, true)
        .with_context(|| format!("cannot cache {teacher_source} over {}", data.origin()))?;
    if args.json {
        let report = json!({
            "output": args.out,
            "manifest": manifest,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    } else {
        println!(
            "cached top-{} of {} over {} positions ({} documents) in {}: {:.1} bytes per position, \
             mean rest mass {:.4}, largest probability error {:.2e}",
            manifest.k,
            teacher_source,
            manifest.positions,
            manifest.documents,
            args.out.display(),
            manifest.bytes_per_position,
            manifest.quality.mean_rest,
            manifest.quality.max_abs_error
        );
    }
    Ok(())
}
