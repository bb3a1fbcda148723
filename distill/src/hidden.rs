//! Hidden-state alignment: each student layer's output is pulled towards the
//! output of the teacher layer it stands for, through the student's learned
//! projection when the two widths differ (TinyBERT's W_h, Minitron's
//! intermediate-state loss). The loss of a position is either the squared
//! error relative to the teacher state's squared norm, so that layers whose
//! residual streams differ in scale weigh alike and `weight` = 1 is on the
//! scale of the divergence, or one minus the cosine similarity.

use burn::nn::Linear;
use burn::tensor::{DType, Tensor};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenLoss {
    /// ‖s − t‖² / ‖t‖² per position.
    Mse,
    /// 1 − cos(s, t) per position.
    Cosine,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HiddenAlignment {
    pub loss: HiddenLoss,
    /// The alignment's weight next to `alpha·CE + (1 − alpha)·D`.
    pub weight: f64,
    /// For each student layer, the teacher layer whose output its own output
    /// is aligned with (a pruned student's source layers); `None` spreads the
    /// student's layers evenly over the teacher's.
    pub teacher_layers: Option<Vec<usize>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HiddenError {
    #[error("hidden-state alignment weight must be a positive number, not {0}")]
    Weight(f64),
    #[error(
        "hidden-state alignment maps {mapped} student layers, the student has {student}"
    )]
    LayerCount { mapped: usize, student: usize },
    #[error("hidden-state alignment maps a student layer to teacher layer {layer}, the teacher has layers 0..{layers}")]
    NoSuchLayer { layer: usize, layers: usize },
    #[error(
        "the student's hidden width is {student} and the teacher's {teacher}: hidden-state \
         alignment between different widths needs the student's projection to the teacher's width"
    )]
    Width { student: usize, teacher: usize },
}

impl HiddenAlignment {
    /// The teacher layer each of the student's `student` layers is aligned
    /// with, for a teacher of `teacher` layers.
    pub fn layer_map(&self, student: usize, teacher: usize) -> Result<Vec<usize>, HiddenError> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(HiddenError::Weight(self.weight));
        }
        let map = match &self.teacher_layers {
            Some(layers) => layers.clone(),
            // Student layer i ends where the teacher is (i + 1)/student of the way through.
            None => (0..student).map(|i| ((i + 1) * teacher).div_ceil(student) - 1).collect(),
        };
        if map.len() != student {
            return Err(HiddenError::LayerCount { mapped: map.len(), student });
        }
        if let Some(&layer) = map.iter().find(|&&l| l >= teacher) {
            return Err(HiddenError::NoSuchLayer { layer, layers: teacher });
        }
        Ok(map)
    }

    /// The alignment loss summed over positions and averaged over layers:
    /// `student[i]` `[n, student width]` against `teacher[i]` `[n, teacher
    /// width]` (constants), the student's states mapped through `projection`.
    pub fn sum<B: Backend>(
        &self,
        student: Vec<Tensor<B, 2>>,
        teacher: Vec<Tensor<B, 2>>,
        projection: Option<&Linear<B>>,
    ) -> Result<Tensor<B, 1>, HiddenError> {
        let layers = student.len().max(1) as f64;
        let mut total: Option<Tensor<B, 1>> = None;
        for (s, t) in student.into_iter().zip(teacher) {
            let s = match projection {
                Some(projection) => projection.forward(s),
                None => s,
            };
            // A bf16 step's states against the f32 teacher's, in f32.
            let (s, t) = (s.cast(DType::F32), t.cast(DType::F32));
            let (sw, tw) = (s.dims()[1], t.dims()[1]);
            if sw != tw {
                return Err(HiddenError::Width { student: sw, teacher: tw });
            }
            let per_position = match self.loss {
                HiddenLoss::Mse => {
                    let error = (s - t.clone()).powi_scalar(2).sum_dim(1);
                    error / t.powi_scalar(2).sum_dim(1).clamp_min(1e-12)
                }
                HiddenLoss::Cosine => {
                    let dot = (s.clone() * t.clone()).sum_dim(1);
                    let norms = s.powi_scalar(2).sum_dim(1).sqrt() * t.powi_scalar(2).sum_dim(1).sqrt();
                    (dot / norms.clamp_min(1e-12)).neg().add_scalar(1.0)
                }
            };
            let layer = per_position.sum();
            total = Some(match total {
                Some(sum) => sum + layer,
                None => layer,
            });
        }
        Ok(total.expect("at least one layer is aligned").mul_scalar(self.weight / layers))
    }
}
