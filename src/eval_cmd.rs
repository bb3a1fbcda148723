//! `decant eval`: a model's quality on a data file: its perplexity, and against a
//! teacher the KL divergence and same-top-token rate, as llama.cpp's
//! `llama-perplexity` measures them (see `train::eval`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use datasets::{
    AssistantTurns, DataSource, Documents, EncodeOptions, Prepare, RecordSpec, Renderer, Tokenizer,
    Truncation,
};
use decant::{model_arg, tokenize};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use train::CpuBackend;
use train::eval::{
    ChunkScore, KlReport, PerplexityOptions, PerplexityReport, kl_divergence, perplexity,
    score_trained,
};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    pub(crate) model: String,
    /// The text to evaluate on: a text file, or JSON Lines (.jsonl, .ndjson) whose
    /// records' `text` fields are joined by blank lines into one text; on JSON
    /// Lines of conversations, ppl, kld and top1 score each conversation on its
    /// own, rendered as training renders it, on the tokens training trains on.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: PathBuf,
    /// The model to compare against for kld and top1 (e.g. the original of a
    /// quantized model); its tokenizer cuts the text, as llama-perplexity's
    /// --kl-divergence-base run does.
    #[arg(long, value_name = "MODEL")]
    pub(crate) teacher: Option<String>,
    /// Comma-separated metrics: ppl (perplexity; of the teacher too when given),
    /// kld (KL divergence from the teacher), top1 (same top token as the teacher);
    /// or, on chat examples (a JSON Lines file): exact (generate the last assistant
    /// turn and score exact match, and JSON validity and per-field match where the
    /// gold answer is a JSON object) and draft (tokens per verification step when
    /// the model drafts for --teacher in greedy speculative decoding, lengths 1-8).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "ppl", value_parser = parse_metric)]
    metrics: Vec<Metric>,
    /// Tokens per chunk; the first half of each chunk is context, the second half is scored.
    #[arg(long, value_name = "N", default_value_t = 512)]
    ctx: usize,
    /// Evaluate at most N chunks from the start of the data.
    #[arg(long, value_name = "N")]
    max_chunks: Option<NonZeroUsize>,
    /// exact: generate at most N tokens per answer.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) max_new_tokens: usize,
    /// exact: evaluate at most N examples from the start of the data.
    #[arg(long, value_name = "N")]
    pub(crate) max_examples: Option<usize>,
    /// Print one JSON object with every figure (with exact, every prediction too).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    Perplexity,
    KlDivergence,
    SameTop,
    Exact,
    Draft,
}

impl Metric {
    /// Whether the metric generates from chat examples rather than scoring a text.
    pub(crate) fn reads_chat(self) -> bool {
        matches!(self, Metric::Exact | Metric::Draft)
    }
}

const SUPPORTED: &str = "supported: ppl, kld, top1, exact, draft";

fn parse_metric(name: &str) -> Result<Metric, String> {
    match name {
        "ppl" => Ok(Metric::Perplexity),
        "kld" => Ok(Metric::KlDivergence),
        "top1" => Ok(Metric::SameTop),
        "exact" => Ok(Metric::Exact),
        "draft" => Ok(Metric::Draft),
        _ => Err(format!("unknown metric '{name}'; {SUPPORTED}")),
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let metrics = dedup(&args.metrics);
    if metrics.iter().any(|m| m.reads_chat()) {
        if !metrics.iter().all(|m| m.reads_chat()) {
            bail!(
                "--metrics exact and draft generate answers to chat examples, while ppl, kld and \
                 top1 score a text: evaluate them in separate runs"
            );
        }
        return crate::eval_task::run(&args, &metrics);
    }
    let needs_teacher = metrics.iter().any(|&m| m != Metric::Perplexity);
    let teacher = match (&args.teacher, needs_teacher) {
        (Some(teacher), _) => Some(model_arg::resolve(teacher)?),
        (None, true) => {
            bail!("--metrics kld and top1 compare against a teacher: pass --teacher MODEL")
        }
        (None, false) => None,
    };
    let source = model_arg::resolve(&args.model)?;
    let tokenizer = tokenize::load_tokenizer(teacher.as_ref().unwrap_or(&source))?;
    if let Some(data) = chat_records(&args.data)? {
        return chat_scores(
            &args,
            &metrics,
            &source,
            teacher.as_ref(),
            &tokenizer,
            &data,
        );
    }
    let text = read_text(&args.data)?;
    let (tokens, bos) = tokenize_like_llama_perplexity(&tokenizer, &text)
        .with_context(|| format!("cannot tokenize {}", args.data.display()))?;
    let options = PerplexityOptions {
        ctx: args.ctx,
        max_chunks: args.max_chunks,
        bos,
    };
    let cannot_evaluate = || format!("cannot evaluate {} on {}", source, args.data.display());
    let chunk_count = options
        .chunk_count(tokens.len())
        .with_context(cannot_evaluate)?;

    let load = |source: &model_arg::ModelSource| {
        train::load_model::<CpuBackend>(source.path(), &Default::default())
            .with_context(|| format!("cannot load {source}"))
    };
    let model = load(&source)?;
    let mut report = json!({
        "model": source.path(),
        "data": args.data,
        "tokens": tokens.len(),
    });
    let mut lines = Vec::new();
    let bar = progress_bar(chunk_count, options.ctx);
    let on_chunk = |chunk: &ChunkScore| {
        bar.inc(1);
        bar.set_message(format!("ppl {:.4}", chunk.running_ppl));
    };
    match &teacher {
        None => {
            let ppl =
                perplexity(&model, &tokens, &options, on_chunk).with_context(cannot_evaluate)?;
            report["ppl"] = perplexity_json(&ppl);
            lines.extend(perplexity_text(&ppl));
        }
        Some(teacher_source) => {
            report["teacher"] = json!(teacher_source.path());
            let teacher = load(teacher_source)?;
            let kl = kl_divergence(&model, &teacher, &tokens, &options, on_chunk)
                .with_context(cannot_evaluate)?;
            for metric in metrics {
                match metric {
                    Metric::Perplexity => {
                        report["ppl"] = perplexity_json(&kl.model);
                        report["teacher_ppl"] = perplexity_json(&kl.teacher);
                        lines.extend(perplexity_text(&kl.model));
                        lines.push(format!("Teacher PPL = {:.4}", kl.teacher.ppl));
                    }
                    Metric::KlDivergence => {
                        report["kld"] = kld_json(&kl);
                        lines.push(format!(
                            "Mean KLD: {:.6} +/- {:.6}; median {:.6}; 99.0% {:.6}; max {:.6}",
                            kl.kld_mean, kl.kld_error, kl.kld_median, kl.kld_p99, kl.kld_max
                        ));
                    }
                    Metric::SameTop => {
                        report["top1"] = json!({
                            "value": kl.same_top,
                            "error": kl.same_top_error,
                            "count": kl.count,
                        });
                        lines.push(format!(
                            "Same top p: {:.3} +/- {:.3} %",
                            100.0 * kl.same_top,
                            100.0 * kl.same_top_error
                        ));
                    }
                    Metric::Exact | Metric::Draft => {
                        unreachable!("chat metrics are evaluated apart")
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    if args.json {
        println!("{report}");
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

fn kld_json(kl: &KlReport) -> Value {
    json!({
        "mean": kl.kld_mean,
        "error": kl.kld_error,
        "median": kl.kld_median,
        "p90": kl.kld_p90,
        "p95": kl.kld_p95,
        "p99": kl.kld_p99,
        "p99_9": kl.kld_p999,
        "max": kl.kld_max,
        "min": kl.kld_min,
        "count": kl.count,
    })
}

/// The metrics in the order first named, each once.
fn dedup(metrics: &[Metric]) -> Vec<Metric> {
    let mut unique = Vec::new();
    for &metric in metrics {
        if !unique.contains(&metric) {
            unique.push(metric);
        }
    }
    unique
}

/// ppl, kld and top1 on conversations: each rendered as training renders it
/// and scored on the tokens training trains on (`train::eval::score_trained`).
fn chat_scores(
    args: &EvalArgs,
    metrics: &[Metric],
    source: &model_arg::ModelSource,
    teacher: Option<&model_arg::ModelSource>,
    tokenizer: &Tokenizer,
    data: &DataSource,
) -> Result<()> {
    let template = decant::stage::source::chat_template(teacher.unwrap_or(source))?;
    let renderer = Renderer::new(tokenizer, template.as_ref(), AssistantTurns::All);
    let prepare = Prepare::new(renderer, None, Truncation::Right)?;
    let (documents, stats) = Documents::build(data.records(), &prepare, &data.origin())?;
    let load = |source: &model_arg::ModelSource| {
        train::load_model::<CpuBackend>(source.path(), &Default::default())
            .with_context(|| format!("cannot load {source}"))
    };
    let model = load(source)?;
    let teacher_model = teacher.map(load).transpose()?;
    let Some(scores) = score_trained(&model, teacher_model.as_ref(), &documents) else {
        bail!(
            "{}: no conversation has a trained token to score",
            args.data.display()
        );
    };
    let mut report = json!({
        "model": source.path(),
        "data": args.data,
        "tokens": stats.tokens,
        "trained_tokens": scores.tokens,
        "documents": scores.documents,
        "ppl": { "value": scores.ppl, "nll_mean": scores.nll_mean },
    });
    let mut lines = vec![format!(
        "PPL of the trained tokens = {:.4} ({} tokens)",
        scores.ppl, scores.tokens
    )];
    if let Some(teacher) = teacher {
        report["teacher"] = json!(teacher.path());
        if let (true, Some(kld)) = (metrics.contains(&Metric::KlDivergence), scores.kld_mean) {
            report["kld"] = json!({ "mean": kld });
            lines.push(format!("Mean KLD: {kld:.6}"));
        }
        if let (true, Some(same)) = (metrics.contains(&Metric::SameTop), scores.same_top) {
            report["top1"] = json!({ "value": same });
            lines.push(format!("Same top p: {:.3} %", 100.0 * same));
        }
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

/// A JSON Lines file of conversations (its first record has `messages`, or
/// `prompt` and `completion`), read as training reads them; `None` for text.
fn chat_records(path: &Path) -> Result<Option<DataSource>> {
    let is_jsonl = path
        .extension()
        .is_some_and(|ext| ext == "jsonl" || ext == "ndjson");
    if !is_jsonl {
        return Ok(None);
    }
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first: Option<Value> = content
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok());
    let is_chat = first.is_some_and(|r| {
        r.get("text").is_none() && (r.get("messages").is_some() || r.get("prompt").is_some())
    });
    if !is_chat {
        return Ok(None);
    }
    Ok(Some(DataSource::open(
        &[path.display().to_string()],
        RecordSpec::default(),
    )?))
}

/// The evaluation text: a plain text file as it is, or the `text` fields of a
/// JSON Lines file joined by blank lines, as paragraphs of one text.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_jsonl = path
        .extension()
        .is_some_and(|ext| ext == "jsonl" || ext == "ndjson");
    if !is_jsonl {
        return Ok(content);
    }
    let mut texts = Vec::new();
    for (index, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), index + 1);
        let mut record: Value =
            serde_json::from_str(line).with_context(|| format!("{}: not a JSON value", at()))?;
        match record.get_mut("text").map(Value::take) {
            Some(Value::String(text)) => texts.push(text),
            Some(other) => bail!("{}: field 'text' holds {other}, not a string", at()),
            None => bail!("{}: the record has no field 'text'", at()),
        }
    }
    if texts.is_empty() {
        bail!("{}: no records", path.display());
    }
    Ok(texts.join("\n\n"))
}

/// Token ids of the whole text as llama-perplexity takes them (add_special, no
/// special-token parsing), and the BOS that starts each chunk where the
/// vocabulary adds one: what it puts in front of an empty text.
pub(crate) fn tokenize_like_llama_perplexity(
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<(Vec<u32>, Option<u32>)> {
    let options = EncodeOptions {
        add_special: true,
        parse_special: false,
    };
    let bos = tokenizer
        .encode("", options)?
        .first()
        .copied()
        .filter(|&id| Some(id) == tokenizer.special_tokens().bos);
    Ok((tokenizer.encode(text, options)?, bos))
}

fn progress_bar(chunks: usize, ctx: usize) -> ProgressBar {
    let bar = ProgressBar::new(chunks as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} chunks {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("perplexity, ctx {ctx}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn perplexity_json(report: &PerplexityReport) -> Value {
    json!({
        "value": report.ppl,
        "error": report.ppl_error,
        "nll_mean": report.nll_mean,
        "ctx": report.ctx,
        "chunks": report.chunks.len(),
        "scored": report.scored,
        "chunk_nll": report.chunks.iter().map(|c| c.nll_mean).collect::<Vec<_>>(),
        "running_ppl": report.chunks.iter().map(|c| c.running_ppl).collect::<Vec<_>>(),
    })
}

/// llama-perplexity's output: the running perplexity after each chunk, then the
/// final estimate.
fn perplexity_text(report: &PerplexityReport) -> [String; 2] {
    let running: Vec<String> = report
        .chunks
        .iter()
        .map(|c| format!("[{}]{:.4}", c.index + 1, c.running_ppl))
        .collect();
    let estimate = match report.ppl_error {
        Some(error) => format!("Final estimate: PPL = {:.4} +/- {error:.5}", report.ppl),
        None => format!("Final estimate: PPL = {:.4}", report.ppl),
    };
    [running.join(","), estimate]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_records_become_paragraphs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(
            &path,
            "{\"text\": \"One.\", \"id\": 1}\n\n{\"text\": \"Two.\"}\n",
        )
        .unwrap();
        assert_eq!(read_text(&path).unwrap(), "One.\n\nTwo.");
        let plain = dir.path().join("data.txt");
        std::fs::write(&plain, "{\"text\": \"as is\"}\n").unwrap();
        assert_eq!(read_text(&plain).unwrap(), "{\"text\": \"as is\"}\n");
    }

    #[test]
    fn bad_jsonl_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let error = |content: &str| {
            std::fs::write(&path, content).unwrap();
            format!("{:#}", read_text(&path).unwrap_err())
        };
        let at = |line: usize| format!("{}:{line}", path.display());
        let err = error("{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
        assert!(
            err.contains(&at(2)) && err.contains("no field 'text'"),
            "{err}"
        );
        let err = error("{\"text\": 3}\n");
        assert!(
            err.contains(&at(1)) && err.contains("not a string"),
            "{err}"
        );
        let err = error("{\"text\": \"ok\"}\n\n{oops\n");
        assert!(
            err.contains(&at(3)) && err.contains("not a JSON value"),
            "{err}"
        );
        assert!(error("\n\n").contains("no records"));
    }

    #[test]
    fn metric_names() {
        assert_eq!(parse_metric("ppl"), Ok(Metric::Perplexity));
        assert_eq!(parse_metric("kld"), Ok(Metric::KlDivergence));
        assert_eq!(parse_metric("top1"), Ok(Metric::SameTop));
        assert_eq!(parse_metric("exact"), Ok(Metric::Exact));
        assert_eq!(parse_metric("draft"), Ok(Metric::Draft));
        assert!(
            parse_metric("bleu")
                .unwrap_err()
                .contains("unknown metric 'bleu'; supported: ppl, kld, top1, exact, draft")
        );
        assert_eq!(
            dedup(&[Metric::Perplexity, Metric::Perplexity]),
            [Metric::Perplexity]
        );
    }
}
