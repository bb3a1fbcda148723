//! `decant data`: training data as a model sees it.

use anyhow::Result;
use datasets::{
    AssistantTurns, Columns, DataSource, FractionSplit, HeldOut, Part, Prepare, RecordFormat,
    RecordSpec, Renderer, Split, Stats, Truncation,
};
use decant::model_arg::{self, ModelSource};
use decant::tokenize;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Examples, tokens, length histogram, and the shares truncated and trained, for one model.
    Stats(StatsArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("held_out_spec").args(["held_out_fraction", "held_out"])))]
pub struct StatsArgs {
    /// A data file (.jsonl, .parquet, .arrow), a directory of them or a glob; repeatable.
    #[arg(long, required = true, value_name = "FILE")]
    data: Vec<String>,
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    model: String,
    /// Record format: auto, text, prompt-completion or messages.
    #[arg(long, default_value = "auto")]
    format: RecordFormat,
    /// A field name other than the format's default, as FIELD=NAME with FIELD one of
    /// text, prompt, completion, system, messages (e.g. --column completion=answer); repeatable.
    #[arg(long = "column", value_name = "FIELD=NAME", value_parser = parse_column)]
    columns: Vec<(String, String)>,
    /// Longest example in tokens; longer ones are counted and handled by --truncation.
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// What happens to an example longer than --max-length: error, left, right or drop.
    #[arg(long, default_value = "right")]
    truncation: Truncation,
    /// Which assistant turns of a conversation are trained: all or last.
    #[arg(long, default_value = "all")]
    train_on: AssistantTurns,
    /// Hold out about this share of the records, chosen by a hash of each record's content.
    #[arg(long, value_name = "F")]
    held_out_fraction: Option<f64>,
    /// Hold out these data files (a file, directory or glob; repeatable); they leave --data.
    #[arg(long, value_name = "FILE")]
    held_out: Vec<String>,
    /// Seed of the --held-out-fraction split.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "held_out_fraction"
    )]
    split_seed: u64,
    /// With data held out, the part to count: train (the default) or held-out.
    #[arg(long, requires = "held_out_spec")]
    part: Option<Part>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// FIELD=NAME, checked here so that a bad field is a usage error.
fn parse_column(spec: &str) -> Result<(String, String), String> {
    let (field, name) = spec
        .split_once('=')
        .ok_or_else(|| format!("'{spec}': expected FIELD=NAME"))?;
    Columns::default().set(field, name)?;
    Ok((field.to_owned(), name.to_owned()))
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Stats(args) => stats(args),
    }
}

fn stats(args: StatsArgs) -> Result<()> {
    let mut columns = Columns::default();
    for (field, name) in args.columns {
        columns.set(&field, name).map_err(anyhow::Error::msg)?;
    }
    let spec = RecordSpec {
        format: args.format,
        columns,
    };
    let source = DataSource::open(&args.data, spec)?;
    let held_out = match (args.held_out_fraction, args.held_out) {
        (Some(fraction), _) => Some(HeldOut::Fraction(FractionSplit::new(
            fraction,
            args.split_seed,
        )?)),
        (None, files) if !files.is_empty() => Some(HeldOut::Files(files)),
        (None, _) => None,
    };
    let split = held_out
        .map(|held_out| Split::new(source.clone(), held_out))
        .transpose()?;
    let part = args.part.unwrap_or(Part::Train);
    let model = model_arg::resolve(&args.model)?;
    let tokenizer = tokenize::load_tokenizer(&model)?;
    let template = decant::stage::source::chat_template(&model)?;
    let renderer = Renderer::new(&tokenizer, template.as_ref(), args.train_on);
    let prepare = Prepare::new(renderer, args.max_length, args.truncation)?;

    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} examples ({per_sec})")
            .expect("valid template"),
    );
    let (records, origin, files) = match &split {
        Some(split) => (
            split.records(part),
            split.origin(part),
            split.source(part).files(),
        ),
        None => (
            Box::new(source.records()) as Box<dyn Iterator<Item = _> + '_>,
            source.origin(),
            source.files(),
        ),
    };
    let stats = Stats::collect(records.inspect(|_| progress.inc(1)), &prepare, &origin);
    progress.finish_and_clear();
    let stats = stats?;

    if args.json {
        let report = json!({
            "data": files,
            "part": split.as_ref().map(|_| part.name()),
            "model": model.path(),
            "format": args.format,
            "train_on": args.train_on,
            "stats": stats,
        });
        println!("{report}");
    } else {
        print!("{}", render_text(&origin, &model, &stats));
    }
    Ok(())
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn render_text(origin: &str, model: &ModelSource, stats: &Stats) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("data:      {origin}"));
    line(format!("model:     {model}"));
    line(format!(
        "examples:  {} ({} kept, {} dropped as too long, {} with nothing to train on)",
        stats.examples, stats.kept, stats.dropped_too_long, stats.dropped_untrained
    ));
    line(format!(
        "tokens:    {} ({} trained, {})",
        stats.tokens,
        stats.trained_tokens,
        percent(stats.trained_share)
    ));
    if let Some(max_length) = stats.max_length {
        line(format!(
            "too long:  {} over {max_length} tokens ({}), {} truncated (truncation = {})",
            stats.over_max_length,
            percent(stats.over_max_length_share),
            stats.truncated,
            stats.truncation
        ));
    }
    let length = &stats.length;
    line(format!(
        "length:    min {}, mean {:.1}, p50 {}, p90 {}, p99 {}, max {}",
        length.min, length.mean, length.p50, length.p90, length.p99, length.max
    ));
    line("histogram (tokens per example):".to_owned());
    let widest = stats
        .histogram
        .iter()
        .map(|bin| bin.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for bin in &stats.histogram {
        let bar = "#".repeat((bin.count * 40).div_ceil(widest) as usize);
        let row = format!("  {:>7}-{:<7} {:>9} {bar}", bin.min, bin.max, bin.count);
        line(row.trim_end().to_owned());
    }
    out
}
