//! `RUN_DIR/report.md` with its plot `RUN_DIR/report/loss.svg`: what a run did,
//! for a person reading it — the training stages' loss curves, the size and
//! quality of each exported file beside the teacher, and every artifact's
//! lineage. Written by `decant run` after the manifest, from the same data.

mod plot;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::stage::StageError;
use crate::stage::eval::EvalReport;
use crate::stage::pipeline::{MANIFEST_FILE, Manifest};
use crate::stage::state::write_bytes;

pub const REPORT_FILE: &str = "report.md";
/// The plots, beside the report.
pub const PLOT_DIR: &str = "report";

/// One point of a training stage's `metrics.jsonl`.
#[derive(Deserialize)]
struct Step {
    step: u64,
    loss: f64,
}

/// Writes the report of the run in `run_dir`; returns its path.
pub fn write(
    run_dir: &Path,
    manifest: &Manifest,
    eval: Option<&EvalReport>,
) -> Result<PathBuf, StageError> {
    let mut curves = Vec::new();
    for stage in ["distill", "qat"] {
        let path = run_dir.join(stage).join("metrics.jsonl");
        if path.is_file() {
            curves.push((stage, read_steps(&path)?));
        }
    }
    let mut text = format!(
        "# {} — decant run report\n\ndecant {}, recipe `{}` (sha256 `{}`); every file below is listed with its \
         sha256 in [`{MANIFEST_FILE}`]({MANIFEST_FILE}).\n",
        manifest.name,
        manifest.decant_version,
        manifest.recipe.display(),
        manifest.recipe_sha256
    );
    if !curves.is_empty() {
        let svg = plot::loss_curves(&curves)?;
        write_bytes(&run_dir.join(PLOT_DIR).join("loss.svg"), svg.as_bytes())?;
        text.push_str("\n## Training\n\n![training loss per step](report/loss.svg)\n\n| stage | steps | first loss | last loss |\n|---|---|---|---|\n");
        for (stage, steps) in &curves {
            let (first, last) = (steps.first(), steps.last());
            let _ = writeln!(
                text,
                "| {stage} | {} | {} | {} |",
                last.map_or(0, |s| s.step),
                first.map_or("—".to_owned(), |s| format!("{:.4}", s.loss)),
                last.map_or("—".to_owned(), |s| format!("{:.4}", s.loss)),
            );
        }
    }
    if let Some(eval) = eval {
        models_table(&mut text, run_dir, eval);
    }
    lineage(&mut text, manifest);
    let path = run_dir.join(REPORT_FILE);
    write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

fn read_steps(path: &Path) -> Result<Vec<Step>, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| StageError::RunDir {
                path: path.to_owned(),
                message: format!("line {}: not a metrics record: {e}", i + 1),
            })
        })
        .collect()
}

fn models_table(text: &mut String, run_dir: &Path, eval: &EvalReport) {
    let _ = write!(
        text,
        "\n## Models\n\nOn {} examples of `{}`.\n\n\
         | model | file | size (MB) | parameters | perplexity | KL to teacher | same top token | exact match | tokens/s | cascade: threshold, student keeps |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        eval.examples, eval.data
    );
    let number = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.4}"));
    for m in &eval.models {
        let file = m
            .model
            .strip_prefix(run_dir)
            .unwrap_or(&m.model)
            .display()
            .to_string();
        let cascade = match m.cascade.as_ref().map(|c| c.chosen) {
            Some(Some(p)) => format!("{:.3}, {:.0}%", p.threshold, p.coverage * 100.0),
            Some(None) => "none meets the target".to_owned(),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            text,
            "| {} | `{file}` | {:.1} | {} | {} | {} | {} | {} | {} | {cascade} |",
            m.label,
            m.file_size as f64 / 1e6,
            m.parameters,
            number(m.ppl),
            number(m.kld),
            number(m.top1),
            number(m.exact_match),
            m.tokens_per_s.map_or("—".to_owned(), |v| format!("{v:.1}")),
        );
    }
}

fn lineage(text: &mut String, manifest: &Manifest) {
    text.push_str("\n## Lineage\n\n| artifact | kind | size (MB) | sha256 | made from |\n|---|---|---|---|---|\n");
    for a in &manifest.artifacts {
        let parents: Vec<String> = a
            .parents
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        let _ = writeln!(
            text,
            "| `{}` | {} | {:.1} | `{}…` | {} |",
            a.path.display(),
            a.kind,
            a.size as f64 / 1e6,
            &a.sha256[..12.min(a.sha256.len())],
            parents.join(", ")
        );
    }
}
