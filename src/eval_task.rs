//! `decant eval --metrics exact,draft`: answers generated for chat examples,
//! scored against their gold answers, and the model as a draft for a teacher
//! in greedy speculative decoding (see `decant::task_eval`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use datasets::{DataSource, RecordSpec};
use decant::model_arg;
use decant::stage::source;
use decant::task_eval::{self, ChatTask, DraftReport, TaskReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use train::CpuBackend;

use crate::eval_cmd::{EvalArgs, Metric};

pub fn run(args: &EvalArgs, metrics: &[Metric]) -> Result<()> {
    let model_source = model_arg::resolve(&args.model)?;
    let teacher_source = match (&args.teacher, metrics.contains(&Metric::Draft)) {
        (Some(teacher), true) => Some(model_arg::resolve(teacher)?),
        (None, true) => bail!(
            "--metrics draft measures the model as a draft for a teacher: pass --teacher MODEL"
        ),
        (_, false) => None,
    };
    let tokenizer = source::tokenizer(&model_source)?;
    let Some(template) = source::chat_template(&model_source)? else {
        bail!(
            "{model_source}: has no chat template; --metrics exact and draft render each conversation through it"
        );
    };
    let data = DataSource::open(&[args.data.display().to_string()], RecordSpec::default())?;
    let load = |source: &model_arg::ModelSource| {
        train::load_model::<CpuBackend>(source.path(), &Default::default())
            .with_context(|| format!("cannot load {source}"))
    };
    let model = load(&model_source)?;
    let task = ChatTask {
        tokenizer: &tokenizer,
        template: &template,
        max_new_tokens: args.max_new_tokens,
    };
    let limit = args.max_examples.unwrap_or(usize::MAX);
    let cannot = || format!("cannot evaluate {model_source} on {}", args.data.display());
    let mut report = json!({ "model": model_source.path(), "data": args.data });
    let mut lines = Vec::new();
    if metrics.contains(&Metric::Exact) {
        let bar = progress("exact match", args.max_examples);
        let mut hits = 0usize;
        let exact = task_eval::evaluate(
            &model,
            &task,
            data.records().take(limit),
            &data.origin(),
            |prediction| {
                bar.inc(1);
                hits += usize::from(prediction.exact);
                bar.set_message(format!("{hits} exact"));
            },
        )
        .with_context(cannot)?;
        bar.finish_and_clear();
        lines.push(exact_text(&exact));
        report["exact"] = json!(exact);
    }
    if let Some(teacher_source) = &teacher_source {
        let teacher = load(teacher_source)?;
        let bar = progress("draft acceptance", args.max_examples);
        let draft = task_eval::draft(
            &model,
            &teacher,
            &task,
            data.records().take(limit),
            &data.origin(),
            |_| bar.inc(1),
        )
        .with_context(cannot)?;
        bar.finish_and_clear();
        lines.push(draft_text(&draft));
        report["teacher"] = json!(teacher_source.path());
        report["draft"] = json!(draft);
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

fn progress(label: &str, total: Option<usize>) -> ProgressBar {
    let bar = ProgressBar::new(total.map_or(0, |n| n as u64)).with_style(
        ProgressStyle::with_template("{prefix} {pos} examples  {wide_msg}")
            .expect("a valid template"),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn exact_text(report: &TaskReport) -> String {
    let mut lines = vec![format!(
        "examples: {}  exact match: {:.1}%",
        report.examples,
        100.0 * report.exact_match
    )];
    if let Some(valid) = report.json_valid {
        lines.push(format!(
            "JSON answers: {}  valid JSON: {:.1}%  field accuracy: {:.1}%",
            report.json_examples,
            100.0 * valid,
            100.0 * report.field_accuracy.unwrap_or(0.0)
        ));
        for (field, accuracy) in &report.per_field {
            lines.push(format!("  {field}: {:.1}%", 100.0 * accuracy));
        }
    }
    lines.join("\n")
}

fn draft_text(report: &DraftReport) -> String {
    let mut lines = vec![format!(
        "draft: {} examples, {} teacher tokens; tokens per verification step by draft length:",
        report.examples, report.tokens
    )];
    for figure in &report.draft_lengths {
        lines.push(format!(
            "  {}: {:.3} tokens/step, {:.1}% of drafted tokens accepted",
            figure.draft_length,
            figure.tokens_per_step,
            100.0 * figure.acceptance_rate
        ));
    }
    lines.join("\n")
}
