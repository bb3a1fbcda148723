//! Students made from the teacher by removing parts of it, ranked on
//! calibration data: whole decoder layers (depth), as ShortGPT and Minitron's
//! depth axis do, or FFN channels, attention heads and hidden channels
//! (width), as Minitron's width axis does.

mod activation;
mod depth;
mod width;

pub use activation::{WidthImportance, width_importance};
pub use depth::{LayerImportance, keep_layers, layer_importance, most_important};
pub use width::{KeptWidths, WidthPruning, WidthTargets, prune_width};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PruneError {
    #[error("layer {layer} does not exist: the teacher has layers 0..{layers}")]
    NoSuchLayer { layer: usize, layers: usize },
    #[error("layers to keep must be strictly increasing, found {0} then {1}")]
    Unordered(usize, usize),
    #[error("cannot keep {keep} of the teacher's {layers} layers: expected 1..={layers}")]
    KeepCount { keep: usize, layers: usize },
    #[error("calibration data has no token to measure importance on")]
    NoCalibrationTokens,
    #[error(
        "cannot prune `{width}` to {value}: the teacher has {teacher} {}, expected 1..={teacher}",
        .width.unit()
    )]
    WidthRange { width: Width, value: usize, teacher: usize },
    #[error(
        "cannot prune `heads` to {heads}: grouped-query attention keeps all of the teacher's \
         {kv_heads} key/value heads and the same number of query heads for each, so `heads` \
         must be a multiple of {kv_heads} up to the teacher's {teacher}"
    )]
    HeadGroups { heads: usize, kv_heads: usize, teacher: usize },
    #[error("width pruning does not know which widths parameter `{0}` spans")]
    UnknownParameter(String),
}

/// A width the student can be pruned along, named as `[student.init]` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    Ffn,
    Heads,
    Hidden,
}

impl Width {
    fn unit(self) -> &'static str {
        match self {
            Width::Ffn => "FFN channels per layer",
            Width::Heads => "attention heads per layer",
            Width::Hidden => "hidden channels",
        }
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Width::Ffn => "ffn",
            Width::Heads => "heads",
            Width::Hidden => "hidden",
        })
    }
}

/// `layers.{i}.{rest}` → `(i, rest)`.
fn layer_of(name: &str) -> Option<(usize, &str)> {
    let (index, rest) = name.strip_prefix("layers.")?.split_once('.')?;
    Some((index.parse().ok()?, rest))
}
