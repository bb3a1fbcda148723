//! Where a serving router finds the cascade the eval stage chose: each
//! evaluated GGUF's metadata (`decant.cascade.*`) and a section of the model
//! card in the Hugging Face export. A file without a chosen threshold (no
//! threshold met the target) records the target alone: send everything to the
//! teacher.

use std::fmt::Write;
use std::path::Path;

use quantize::gguf::{Value, set_metadata};

use super::StageError;
use super::eval::ModelScores;
use super::export::ExportReport;

/// What the threshold is compared with.
const CONFIDENCE: &str = "mean_token_logprob";
const CARD_BEGIN: &str = "<!-- decant:cascade -->";
const CARD_END: &str = "<!-- /decant:cascade -->";

pub fn stamp(models: &[ModelScores], exported: &ExportReport) -> Result<(), StageError> {
    let stamped: Vec<&ModelScores> = models
        .iter()
        .filter(|m| {
            m.cascade.is_some()
                && exported
                    .files
                    .iter()
                    .any(|f| f.format == "gguf" && f.path == m.model)
        })
        .collect();
    if stamped.is_empty() {
        return Ok(());
    }
    for scores in &stamped {
        let cascade = scores.cascade.as_ref().expect("filtered on");
        let mut entries = vec![
            (
                "decant.cascade.confidence".to_owned(),
                Value::from(CONFIDENCE),
            ),
            (
                "decant.cascade.target_accuracy".to_owned(),
                Value::F32(cascade.target_accuracy as f32),
            ),
        ];
        if let Some(point) = cascade.chosen {
            entries.push((
                "decant.cascade.threshold".to_owned(),
                Value::F32(point.threshold as f32),
            ));
            entries.push((
                "decant.cascade.coverage".to_owned(),
                Value::F32(point.coverage as f32),
            ));
            entries.push((
                "decant.cascade.accuracy".to_owned(),
                Value::F32(point.accuracy as f32),
            ));
        }
        set_metadata(&scores.model, &entries).map_err(export::ExportError::from)?;
    }
    for hf in exported.files.iter().filter(|f| f.format == "safetensors") {
        write_card_section(&hf.path.join("README.md"), &stamped)?;
    }
    Ok(())
}

/// Replaces the card's cascade section (or appends one).
fn write_card_section(card: &Path, models: &[&ModelScores]) -> Result<(), StageError> {
    let text = std::fs::read_to_string(card).map_err(|e| StageError::io(card, e))?;
    let mut section = format!(
        "{CARD_BEGIN}\n## Serving cascade\n\nThe student answers when the mean log-probability of its answer's tokens \
         reaches the threshold, and the teacher answers the rest. Chosen by `decant run` on the eval set for a target \
         exact match of {:.0}%; the GGUF files carry it as `decant.cascade.threshold`.\n\n\
         | file | threshold | student keeps | exact match on those |\n|---|---|---|---|\n",
        models[0]
            .cascade
            .as_ref()
            .map_or(0.0, |c| c.target_accuracy * 100.0)
    );
    for scores in models {
        let name = scores
            .model
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let row = match scores.cascade.as_ref().and_then(|c| c.chosen) {
            Some(p) => format!(
                "| {name} | {:.4} | {:.1}% | {:.1}% |\n",
                p.threshold,
                p.coverage * 100.0,
                p.accuracy * 100.0
            ),
            None => format!("| {name} | none meets the target | 0% | — |\n"),
        };
        section.push_str(&row);
    }
    let _ = writeln!(section, "{CARD_END}");
    let updated = match (text.find(CARD_BEGIN), text.find(CARD_END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!(
                "{}{section}{}",
                &text[..begin],
                text[end + CARD_END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{}\n\n{section}", text.trim_end()),
    };
    super::state::write_bytes(card, updated.as_bytes())
}
