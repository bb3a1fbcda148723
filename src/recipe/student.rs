//! `[student]`: how the student is made, by pruning the teacher or from an
//! existing model.

use std::path::Path;

use serde::Serialize;

use super::paths::ModelRef;
use super::reader::{Table, count, positive, string};

/// Calibration examples for importance ranking when a recipe gives none; the
/// Minitron paper ranks with 1024, a few hundred already order layers stably.
const CALIBRATION_SAMPLES: u64 = 256;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StudentInit {
    /// Keep exactly these teacher layers (0-based, in increasing order).
    Layers { layers: Vec<u64> },
    /// Keep `keep` layers: those whose removal changes the hidden states most
    /// on calibration examples from the training data.
    Depth { keep: u64, calibration_samples: u64 },
    /// Prune FFN channels, attention heads and the hidden size to these
    /// widths, ranked by activation importance; an absent width is kept.
    Width {
        ffn: Option<u64>,
        heads: Option<u64>,
        hidden: Option<u64>,
        calibration_samples: u64,
    },
    /// Start from an existing model, as it is.
    Model { model: ModelRef },
}

impl StudentInit {
    /// Whether this init reads the teacher's weights.
    pub fn prunes_teacher(&self) -> bool {
        !matches!(self, StudentInit::Model { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Student {
    pub init: StudentInit,
}

pub fn read(mut table: Table<'_, '_>, base: &Path) -> Option<Student> {
    let init = match table.table("init") {
        Some(init) => read_init(init, base),
        None => {
            if !table.has("init") {
                table.collector().error(
                    table.span(),
                    format!("{}: missing required key `init`", table.name()),
                );
            }
            None
        }
    };
    table.finish();
    Some(Student { init: init? })
}

fn read_init(mut table: Table<'_, '_>, base: &Path) -> Option<StudentInit> {
    let kind = table.kind(&["layers", "depth", "width", "model"]);
    let init = match kind {
        None => None,
        Some("layers") => table
            .require("layers")
            .then(|| {
                table.list("layers", count, |layers| {
                    let layers: Vec<u64> = layers.into_iter().map(|l| l.into_inner()).collect();
                    if layers.is_empty() {
                        return Err("expected at least one layer, found an empty array".to_owned());
                    }
                    if let Some(pair) = layers.windows(2).find(|pair| pair[0] >= pair[1]) {
                        return Err(format!(
                            "layers must be strictly increasing, found {} then {}",
                            pair[0], pair[1]
                        ));
                    }
                    Ok(layers)
                })
            })
            .flatten()
            .map(|layers| StudentInit::Layers { layers }),
        Some("depth") => {
            let keep = table.required("keep", positive);
            let calibration_samples = calibration(&mut table);
            keep.map(|keep| StudentInit::Depth {
                keep,
                calibration_samples,
            })
        }
        Some("width") => {
            let ffn = table.optional("ffn", positive);
            let heads = table.optional("heads", positive);
            let hidden = table.optional("hidden", positive);
            let calibration_samples = calibration(&mut table);
            let given = ["ffn", "heads", "hidden"].iter().any(|key| table.has(key));
            if !given {
                table.collector().error(
                    table.span(),
                    format!(
                        "{}: width pruning needs at least one of `ffn`, `heads`, `hidden`",
                        table.name()
                    ),
                );
            }
            given.then_some(StudentInit::Width {
                ffn,
                heads,
                hidden,
                calibration_samples,
            })
        }
        Some(_) => table
            .required("model", |value| ModelRef::parse(base, &string(value)?))
            .map(|model| StudentInit::Model { model }),
    };
    table.finish();
    init
}

fn calibration(table: &mut Table<'_, '_>) -> u64 {
    table
        .optional("calibration_samples", positive)
        .unwrap_or(CALIBRATION_SAMPLES)
}
