//! `[student]` → the student's first weights: layers of the teacher, chosen by
//! the recipe or ranked on calibration data, or an existing model.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::{Documents, Loader, LoaderConfig, Order, Shard};
use distill::prune::{self, LayerImportance};
use serde::{Deserialize, Serialize};
use train::Transformer;

use super::StageError;
use crate::model_arg;
use crate::recipe::student::StudentInit;

/// How the student was made, for the stage report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lineage {
    /// The teacher layers it kept, in order; `None` for an existing model.
    pub layers: Option<Vec<usize>>,
    pub importance: Option<LayerImportance>,
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
            Ok((student, Lineage { layers: Some(layers), importance: None }))
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
                },
            ))
        }
        StudentInit::Width { .. } => Err(StageError::Unsupported(
            "[student.init] kind = \"width\": width pruning is not available yet; prune by depth \
             (`kind = \"depth\"` or `kind = \"layers\"`)"
                .to_owned(),
        )),
        StudentInit::Model { model } => {
            let source = model_arg::resolve(&model.argument())?;
            let student = train::load_model::<S>(source.path(), device)?;
            Ok((student, Lineage { layers: None, importance: None }))
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
