//! A serving cascade: the student answers when its confidence (the mean token
//! log-probability of its answer) reaches a threshold, and the teacher answers
//! the rest. The threshold is the lowest at which the student's exact match on
//! the examples it keeps still meets the recipe's target accuracy.

use serde::{Deserialize, Serialize};

use crate::task_eval::Prediction;

/// The student keeps the examples whose confidence is at least `threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CascadePoint {
    pub threshold: f64,
    /// Share of examples the student keeps.
    pub coverage: f64,
    /// Its exact match on them.
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cascade {
    pub target_accuracy: f64,
    /// The chosen point; `None` when no threshold meets the target.
    pub chosen: Option<CascadePoint>,
    /// Every distinct threshold, most confident first.
    pub curve: Vec<CascadePoint>,
}

pub fn choose(predictions: &[Prediction], target_accuracy: f64) -> Cascade {
    let mut by_confidence: Vec<(f64, bool)> = predictions
        .iter()
        .map(|p| (p.mean_logprob, p.exact))
        .collect();
    by_confidence.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n = by_confidence.len();
    let mut curve = Vec::new();
    let mut hits = 0;
    for (i, &(confidence, exact)) in by_confidence.iter().enumerate() {
        hits += usize::from(exact);
        // Equal confidences are kept or sent on together.
        if by_confidence
            .get(i + 1)
            .is_some_and(|next| next.0 == confidence)
        {
            continue;
        }
        let kept = i + 1;
        curve.push(CascadePoint {
            threshold: confidence,
            coverage: kept as f64 / n as f64,
            accuracy: hits as f64 / kept as f64,
        });
    }
    let chosen = curve
        .iter()
        .rev()
        .find(|p| p.accuracy >= target_accuracy)
        .copied();
    Cascade {
        target_accuracy,
        chosen,
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(mean_logprob: f64, exact: bool) -> Prediction {
        Prediction {
            location: String::new(),
            gold: String::new(),
            prediction: String::new(),
            exact,
            json_valid: None,
            fields: Default::default(),
            mean_logprob,
            tokens: 1,
        }
    }

    #[test]
    fn the_threshold_keeps_the_most_examples_that_meet_the_target() {
        let predictions = [
            prediction(-0.1, true),
            prediction(-0.2, true),
            prediction(-0.3, false),
            prediction(-0.4, true),
            prediction(-0.9, false),
        ];
        let cascade = choose(&predictions, 0.75);
        let accuracies: Vec<f64> = cascade.curve.iter().map(|p| p.accuracy).collect();
        assert_eq!(accuracies, [1.0, 1.0, 2.0 / 3.0, 0.75, 0.6]);
        assert_eq!(
            cascade.chosen,
            Some(CascadePoint {
                threshold: -0.4,
                coverage: 0.8,
                accuracy: 0.75
            })
        );
        assert_eq!(
            choose(&predictions, 1.0).chosen.map(|p| p.threshold),
            Some(-0.2)
        );
        assert_eq!(choose(&[prediction(-0.1, false)], 0.5).chosen, None);
    }

    #[test]
    fn equal_confidences_go_together() {
        let predictions = [
            prediction(-0.5, true),
            prediction(-0.5, false),
            prediction(-0.1, true),
        ];
        let cascade = choose(&predictions, 0.9);
        assert_eq!(cascade.curve.len(), 2);
        assert_eq!(
            cascade.chosen,
            Some(CascadePoint {
                threshold: -0.1,
                coverage: 1.0 / 3.0,
                accuracy: 1.0
            })
        );
    }
}
