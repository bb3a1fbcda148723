//! `decant eval --metrics exact`: answers generated for chat examples and
//! scored against their gold answers (see `decant::task_eval`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use datasets::{DataSource, RecordSpec};
use decant::model_arg;
use decant::stage::source;
use decant::task_eval::{self, TaskReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use train::CpuBackend;

use crate::eval_cmd::EvalArgs;

pub fn run(args: &EvalArgs) -> Result<()> {
    let model_source = model_arg::resolve(&args.model)?;
    let tokenizer = source::tokenizer(&model_source)?;
    let Some(template) = source::chat_template(&model_source)? else {
        bail!("{model_source}: has no chat template; --metrics exact renders each conversation through it");
    };
    let data = DataSource::open(&[args.data.display().to_string()], RecordSpec::default())?;
    let model = train::load_model::<CpuBackend>(model_source.path(), &Default::default())
        .with_context(|| format!("cannot load {model_source}"))?;
    let records = data.records().take(args.max_examples.unwrap_or(usize::MAX));
    let bar = ProgressBar::new(args.max_examples.map_or(0, |n| n as u64)).with_style(
        ProgressStyle::with_template("{prefix} {pos} examples  {wide_msg}").expect("a valid template"),
    );
    bar.set_prefix("exact match");
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut hits = 0usize;
    let report = task_eval::evaluate(
        &model,
        &tokenizer,
        &template,
        records,
        &data.origin(),
        args.max_new_tokens,
        |prediction| {
            bar.inc(1);
            hits += usize::from(prediction.exact);
            bar.set_message(format!("{hits} exact"));
        },
    )
    .with_context(|| format!("cannot evaluate {model_source} on {}", args.data.display()))?;
    bar.finish_and_clear();
    if args.json {
        let out = json!({
            "model": model_source.path(),
            "data": args.data,
            "exact": report,
        });
        println!("{out}");
    } else {
        println!("{}", render_text(&report));
    }
    Ok(())
}

fn render_text(report: &TaskReport) -> String {
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
