//! `[student]` → the student's first weights: layers of the teacher, chosen by
//! the recipe or ranked on calibration data, the teacher narrowed to the
//! recipe's widths, or an existing model.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::{Documents, Loader, LoaderConfig, Order, Shard};
use distill::prune::{self, LayerImportance, WidthPruning, WidthTargets};
use serde::{Deserialize, Serialize};
use train::Transformer;

use super::StageError;
use crate::model_arg;
use crate::recipe::student::StudentInit;

/// How the student was made, for the stage report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lineage {
    /// The teacher layers it kept, in order; `None` for an existing model.
    /// Width pruning keeps them all.
    pub layers: Option<Vec<usize>>,
    pub importance: Option<LayerImportance>,
    /// What width pruning kept of every layer; `None` for any other init.
    #[serde(default)]
    pub width: Option<WidthLineage>,
}

/// What a width-pruned student kept of its teacher, as teacher indices in
/// increasing order: student channel or head `i` is the teacher's `[i]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WidthLineage {
    /// Hidden channels, the same in every layer: the student's hidden states
    /// are the teacher's at these channels.
    pub hidden: Vec<usize>,
    /// Per layer, FFN channels.
    pub ffn: Vec<Vec<usize>>,
    /// Per layer, query heads, the same number from each key/value group.
    pub heads: Vec<Vec<usize>>,
    /// The activation importance hidden channels and heads were ranked by;
    /// the FFN channels' (layers × intermediate size) is too long to report.
    pub hidden_importance: Vec<f64>,
    pub head_importance: Vec<Vec<f64>>,
    pub calibration_tokens: u64,
}

impl From<WidthPruning> for WidthLineage {
    fn from(pruning: WidthPruning) -> Self {
        let WidthPruning { kept, importance } = pruning;
        WidthLineage {
            hidden: kept.hidden,
            ffn: kept.ffn,
            heads: kept.heads,
            hidden_importance: importance.hidden,
            head_importance: importance.heads,
            calibration_tokens: importance.tokens,
        }
    }
}

/// Rows of each calibration forward pass: the calibration set goes through in
/// batches of this many documents, one per row.
const CALIBRATION_ROWS: usize = 8;

/// The student `init` describes, on `device` of backend `S`. Calibration
/// documents are drawn from `documents` in a shuffled order fixed by `seed`.
pub fn init<T: Backend, S: Backend>(
    init: &StudentInit,
    teacher: Option<&Transformer<T>>,
    documents: &Arc<Documents>,
    seed: u64,
    device: &S::Device,
) -> Result<(Transformer<S>, Lineage), StageError> {
    let needs_teacher = || {
        teacher.ok_or_else(|| {
            StageError::Unsupported(
                "[student.init]: pruning starts from the teacher's weights; add a [teacher] \
                 section or use `kind = \"model\"`"
                    .to_owned(),
            )
        })
    };
    match init {
        StudentInit::Layers { layers } => {
            let layers: Vec<usize> = layers.iter().map(|&l| l as usize).collect();
            let student = prune::keep_layers(needs_teacher()?, &layers, device)?;
            Ok((
                student,
                Lineage {
                    layers: Some(layers),
                    importance: None,
                    width: None,
                },
            ))
        }
        StudentInit::Depth {
            keep,
            calibration_samples,
        } => {
            let teacher = needs_teacher()?;
            let batches = calibration(documents, *calibration_samples as usize, seed)?;
            let importance = prune::layer_importance(teacher, &batches)?;
            let layers = prune::most_important(&importance, *keep as usize)?;
            let student = prune::keep_layers(teacher, &layers, device)?;
            Ok((
                student,
                Lineage {
                    layers: Some(layers),
                    importance: Some(importance),
                    width: None,
                },
            ))
        }
        StudentInit::Width {
            ffn,
            heads,
            hidden,
            calibration_samples,
        } => {
            let teacher = needs_teacher()?;
            let batches = calibration(documents, *calibration_samples as usize, seed)?;
            let width = |w: &Option<u64>| w.map(|w| w as usize);
            let targets = WidthTargets {
                ffn: width(ffn),
                heads: width(heads),
                hidden: width(hidden),
            };
            let (student, pruning) = prune::prune_width(teacher, &batches, targets, device)?;
            Ok((
                student,
                Lineage {
                    layers: Some((0..teacher.layers.len()).collect()),
                    importance: None,
                    width: Some(pruning.into()),
                },
            ))
        }
        StudentInit::Model { model } => {
            let source = model_arg::resolve(&model.argument())?;
            let student = train::load_model::<S>(source.path(), device)?;
            Ok((
                student,
                Lineage {
                    layers: None,
                    importance: None,
                    width: None,
                },
            ))
        }
    }
}

/// The first `samples` documents of a seeded shuffle, one per row.
fn calibration(
    documents: &Arc<Documents>,
    samples: usize,
    seed: u64,
) -> Result<Vec<datasets::Batch>, StageError> {
    let config = LoaderConfig {
        batch_size: CALIBRATION_ROWS,
        seq_len: documents.longest(),
        packing: false,
        order: Order {
            shuffle: true,
            seed,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: Some(1),
    };
    let batches = Loader::new(Arc::clone(documents), config)?;
    Ok(batches.take(samples.div_ceil(CALIBRATION_ROWS)).collect())
}
