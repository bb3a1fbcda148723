//! `decant cache-teacher`: a teacher's top-k distributions over a data set,
//! for distillation without the teacher in the loop; with `--rank R --world W`
//! one rank's part of it, and with `--merge` the parts checked and assembled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datasets::logit_cache::Manifest;
use datasets::logit_cache::parts::{part_name, parts_dir};
use datasets::{
    AssistantTurns, DataSource, Documents, Prepare, RecordFormat, RecordSpec, Renderer, Truncation,
};
use decant::model_arg;
use decant::stage::state::sha256_of;
use decant::stage::teacher_cache::PartOutcome;
use decant::stage::{source, teacher_cache};
use distill::teacher_cache::CacheSpec;
use serde_json::json;
use train::CpuBackend;

#[derive(clap::Args)]
pub struct CacheTeacherArgs {
    /// The teacher: a .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long, required_unless_present = "merge")]
    teacher: Option<String>,
    /// Training data (.jsonl, .parquet, .arrow), a directory of them or a glob; repeatable.
    #[arg(long, required_unless_present = "merge", value_name = "FILE")]
    data: Vec<String>,
    /// Tokens kept per position (the rest is one probability).
    #[arg(long, required_unless_present = "merge", value_name = "K")]
    top_k: Option<usize>,
    /// Ids drawn from the teacher's distribution outside the top-k, per unit of
    /// the mass there: a position gets round(N × rest), each standing for about
    /// 1/N of the probability. They teach forward KL the tail's shape; about
    /// 1.5 bytes each.
    #[arg(long, value_name = "N", default_value_t = 0)]
    tail_samples: usize,
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
    /// Documents per cache shard; also the unit of work shared among ranks
    /// (a multiple of 8 with --rank).
    #[arg(long, value_name = "N", default_value_t = teacher_cache::SHARD_DOCUMENTS)]
    shard_documents: u64,
    /// The first documents, whose teacher top-k rank the id permutation (every rank computes them).
    #[arg(long, value_name = "N", default_value_t = teacher_cache::RANKING_DOCUMENTS)]
    ranking_documents: u64,
    /// Cache only this rank's share of the documents, into OUT.parts/rank-RRRRR-of-WWWWW
    /// (a no-op if it is complete); merge the parts with --merge.
    #[arg(long, value_name = "R", requires = "world")]
    rank: Option<u32>,
    /// How many ranks share the documents (with --rank).
    #[arg(long, value_name = "W", requires = "rank", value_parser = clap::value_parser!(u32).range(1..))]
    world: Option<u32>,
    /// Check the parts in OUT.parts and assemble the cache OUT from them; needs nothing else.
    #[arg(
        long,
        conflicts_with_all = ["teacher", "data", "top_k", "tail_samples","rank", "world", "shard_documents", "ranking_documents"]
    )]
    merge: bool,
    /// Print one JSON object: the manifest and the time taken.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CacheTeacherArgs) -> Result<()> {
    let started = Instant::now();
    if args.merge {
        return merge(&args, started);
    }
    if args.rank.is_none() && args.out.exists() {
        bail!(
            "{}: already exists; a teacher cache is written to a new directory",
            args.out.display()
        );
    }
    let teacher_arg = args
        .teacher
        .as_deref()
        .expect("clap requires --teacher without --merge");
    let top_k = args.top_k.expect("clap requires --top-k without --merge");
    let teacher_source = model_arg::resolve(teacher_arg)?;
    let tokenizer = source::tokenizer(&teacher_source)?;
    let template = source::chat_template(&teacher_source)?;
    let spec = RecordSpec {
        format: args.format,
        ..RecordSpec::default()
    };
    let data = DataSource::open(&args.data, spec)?;
    let renderer = Renderer::new(&tokenizer, template.as_ref(), args.train_on);
    let prepare = Prepare::new(renderer, Some(args.max_length), args.truncation)?;
    let (documents, _) = Documents::build(data.records(), &prepare, &data.origin())?;
    let documents = Arc::new(documents);
    let teacher = train::load_model::<CpuBackend>(teacher_source.path(), &Default::default())
        .with_context(|| format!("cannot load {teacher_source}"))?;
    let spec = CacheSpec {
        shard_documents: args.shard_documents,
        ranking_documents: args.ranking_documents,
        ..teacher_cache::spec(
            top_k,
            args.tail_samples,
            sha256_of(teacher_source.path())?,
            teacher_cache::tokenizer_sha256(&tokenizer, teacher.config.vocab_size),
        )
    };
    let cannot = || format!("cannot cache {teacher_source} over {}", data.origin());
    if let (Some(rank), Some(world)) = (args.rank, args.world) {
        let outcome =
            teacher_cache::ensure_part(&teacher, &documents, &spec, &args.out, rank, world, true)
                .with_context(cannot)?;
        return report_part(&args, outcome, started);
    }
    let (_, manifest, _) =
        teacher_cache::ensure(&teacher, &documents, spec, &args.out, true).with_context(cannot)?;
    if args.json {
        let report = json!({
            "output": args.out,
            "manifest": manifest,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    } else {
        println!(
            "cached top-{} of {} {}",
            manifest.k,
            teacher_source,
            summary(&manifest, &args.out)
        );
    }
    Ok(())
}

fn merge(args: &CacheTeacherArgs, started: Instant) -> Result<()> {
    let (_, manifest, reused) = teacher_cache::merge_parts(&args.out).with_context(|| {
        format!(
            "cannot merge the parts of the teacher cache {}",
            args.out.display()
        )
    })?;
    if args.json {
        let report = json!({
            "output": args.out,
            "merged_before": reused,
            "manifest": manifest,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    } else {
        let verb = if reused { "already merged" } else { "merged" };
        println!(
            "{verb} top-{} {}",
            manifest.k,
            summary(&manifest, &args.out)
        );
    }
    Ok(())
}

fn report_part(args: &CacheTeacherArgs, outcome: PartOutcome, started: Instant) -> Result<()> {
    let (state, part) = match &outcome {
        PartOutcome::Written(part) => ("written", Some(part)),
        PartOutcome::Reused(part) => ("complete", Some(part)),
        PartOutcome::Merged(_) => ("merged", None),
    };
    let dir = parts_dir(&args.out).join(part_name(args.rank.unwrap_or(0), args.world.unwrap_or(1)));
    if args.json {
        let report = json!({
            "output": if part.is_some() { &dir } else { &args.out },
            "state": state,
            "part": part,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
        return Ok(());
    }
    match (&outcome, part) {
        (PartOutcome::Merged(manifest), _) => {
            println!(
                "{} is merged already: top-{} {}",
                args.out.display(),
                manifest.k,
                summary(manifest, &args.out)
            );
        }
        (_, Some(part)) => println!(
            "{state}: rank {} of {}, documents {}..{} of {} in {} shard(s), in {}",
            part.rank,
            part.world,
            part.first_document,
            part.end_document,
            part.cache.documents,
            part.shards.len(),
            dir.display()
        ),
        _ => unreachable!("a part outcome other than Merged has a part"),
    }
    Ok(())
}

fn summary(manifest: &Manifest, out: &std::path::Path) -> String {
    format!(
        "over {} positions ({} documents) in {}: {:.1} bytes per position, mean rest mass {:.4}, \
         largest probability error {:.2e}",
        manifest.positions,
        manifest.documents,
        out.display(),
        manifest.bytes_per_position,
        manifest.quality.mean_rest,
        manifest.quality.max_abs_error
    )
}
