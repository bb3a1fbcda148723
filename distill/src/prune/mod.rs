//! Students made from the teacher by removing parts of it: whole decoder
//! layers (depth) ranked on calibration data, as ShortGPT and Minitron's depth
//! axis do.

mod depth;

pub use depth::{LayerImportance, keep_layers, layer_importance, most_important};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PruneError {
    #[error("layer {layer} does not exist: the teacher has layers 0..{layers}")]
    NoSuchLayer { layer: usize, layers: usize },
    #[error("layers to keep must be strictly increasing, found {0} then {1}")]
    Unordered(usize, usize),
    #[error("cannot keep {keep} of the teacher's {layers} layers: expected 1..={layers}")]
    KeepCount { keep: usize, layers: usize },
    #[error("calibration data has no token to measure layer importance on")]
    NoCalibrationTokens,
}
