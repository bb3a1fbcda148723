//! Divergences between the teacher's and the student's next-token
//! distributions, both softened by a temperature T, each summed over positions
//! and scaled by T² so that the gradient's size does not depend on T (Hinton
//! et al., 2015).
//!
//! The definitions follow the implementations users compare with: TRL's
//! `generalized_jsd_loss` for the generalized Jensen–Shannon divergence (GKD,
//! Agarwal et al., 2024), whose β = 0 and β = 1 ends are the forward and reverse
//! KL; DistiLLM's skew KL (Ko et al., 2024), KL(p ‖ α·p + (1−α)·q).

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Divergence {
    /// KL(teacher ‖ student): mode-covering.
    ForwardKl,
    /// KL(student ‖ teacher): mode-seeking.
    ReverseKl,
    /// β·KL(teacher ‖ m) + (1−β)·KL(student ‖ m), m = β·teacher + (1−β)·student;
    /// as in TRL, β = 0 is the forward KL and β = 1 the reverse KL (where the
    /// mixture formula itself would vanish).
    Jsd { beta: f64 },
    /// KL(teacher ‖ α·teacher + (1−α)·student).
    SkewForwardKl { alpha: f64 },
    /// KL(student ‖ α·student + (1−α)·teacher).
    SkewReverseKl { alpha: f64 },
    /// ½·Σ|teacher − student|.
    TotalVariation,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DivergenceError {
    #[error("the temperature must be a positive number, not {0}")]
    Temperature(f64),
    #[error("{name} must lie in [0, 1], not {value}")]
    Mixture { name: &'static str, value: f64 },
    #[error(
        "teacher logits are {teacher:?} and student logits {student:?}: the same positions and \
         vocabulary are needed (align a padded vocabulary first)"
    )]
    Shapes {
        teacher: [usize; 2],
        student: [usize; 2],
    },
}

impl Divergence {
    pub fn validate(self, temperature: f64) -> Result<(), DivergenceError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(DivergenceError::Temperature(temperature));
        }
        let mixture = match self {
            Divergence::Jsd { beta } => Some(("beta", beta)),
            Divergence::SkewForwardKl { alpha } | Divergence::SkewReverseKl { alpha } => {
                Some(("alpha", alpha))
            }
            _ => None,
        };
        match mixture {
            Some((name, value)) if !(0.0..=1.0).contains(&value) => {
                Err(DivergenceError::Mixture { name, value })
            }
            _ => Ok(()),
        }
    }

    /// T² × the divergence at each of `n` positions, summed: student logits
    /// `[n, vocab]` (differentiated), teacher logits `[n, vocab]` (not).
    pub fn sum<B: Backend>(
        self,
        student: Tensor<B, 2>,
        teacher: Tensor<B, 2>,
        temperature: f64,
    ) -> Result<Tensor<B, 1>, DivergenceError> {
        self.validate(temperature)?;
        if student.dims() != teacher.dims() {
            return Err(DivergenceError::Shapes {
                teacher: teacher.dims(),
                student: student.dims(),
            });
        }
        let soften = |logits: Tensor<B, 2>| {
            let logits = if temperature == 1.0 {
                logits
            } else {
                logits.div_scalar(temperature)
            };
            log_softmax(logits, 1)
        };
        let log_s = soften(student);
        let log_t = soften(teacher.detach());
        let per_element = match self {
            Divergence::ForwardKl => kl(log_t, log_s),
            Divergence::ReverseKl => kl(log_s, log_t),
            Divergence::Jsd { beta } if beta == 0.0 => kl(log_t, log_s),
            Divergence::Jsd { beta } if beta == 1.0 => kl(log_s, log_t),
            Divergence::Jsd { beta } => {
                let mixture = log_mix(log_t.clone(), beta, log_s.clone());
                kl(log_t, mixture.clone()).mul_scalar(beta)
                    + kl(log_s, mixture).mul_scalar(1.0 - beta)
            }
            Divergence::SkewForwardKl { alpha } => {
                let mixture = log_mix(log_t.clone(), alpha, log_s);
                kl(log_t, mixture)
            }
            Divergence::SkewReverseKl { alpha } => {
                let mixture = log_mix(log_s.clone(), alpha, log_t);
                kl(log_s, mixture)
            }
            Divergence::TotalVariation => (log_t.exp() - log_s.exp()).abs().mul_scalar(0.5),
        };
        Ok(per_element.sum().mul_scalar(temperature * temperature))
    }
}

/// Σ p·(log p − log q) elementwise (summed by the caller), from log-probabilities.
fn kl<B: Backend>(log_p: Tensor<B, 2>, log_q: Tensor<B, 2>) -> Tensor<B, 2> {
    log_p.clone().exp() * (log_p - log_q)
}

/// log(w·p + (1−w)·q) from log p and log q, as a log-sum-exp that stays finite
/// where either probability underflows.
fn log_mix<B: Backend>(log_p: Tensor<B, 2>, w: f64, log_q: Tensor<B, 2>) -> Tensor<B, 2> {
    let a = log_p.add_scalar(w.ln());
    let b = log_q.add_scalar((1.0 - w).ln());
    let max = a.clone().max_pair(b.clone());
    max.clone() + ((a - max.clone()).exp() + (b - max).exp()).log()
}
