//! `[qat]`: quantization-aware fine-tuning against the exact rounding of the
//! exported GGUF.

use quantize::mix::Mix;
use serde::{Serialize, Serializer};

use super::reader::{Table, above_zero, boolean, one_of, parsed, positive};
use super::train::Train;

pub use train::qat::FAKE_QUANT_TYPES;

/// What the QAT loss distils from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    Teacher,
    /// The full-precision student as it left distillation (self-distillation).
    Student,
}

/// The straight-through estimator's backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ste {
    /// The gradient passes through unchanged.
    Identity,
    /// Zero gradient for weights outside the block's representable range.
    Clipped,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Qat {
    /// The llama.cpp mix (`q4_k_m`) or, with `pure`, the one type every 2-D
    /// weight gets, as `decant quantize --type --pure` would write it.
    #[serde(rename = "type", serialize_with = "mix_name")]
    pub mix: Mix,
    pub pure: bool,
    pub steps: u64,
    pub lr: f64,
    pub include_embeddings: bool,
    pub include_output: bool,
    pub reference: Reference,
    pub ste: Ste,
}

pub fn mix_name<S: Serializer>(mix: &Mix, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(mix.name())
}

/// `train` gives the defaults: a tenth of its steps (QAT recovers most of
/// the rounding loss well within that) at a tenth of its learning rate.
pub fn read(mut table: Table<'_, '_>, train: Option<&Train>, has_teacher: bool) -> Option<Qat> {
    let mix = table.required("type", |value| {
        let mix = parsed::<Mix>(value)?;
        if FAKE_QUANT_TYPES.contains(&mix.base_type()) {
            Ok(mix)
        } else {
            let names: Vec<&str> = FAKE_QUANT_TYPES.iter().map(|t| t.name()).collect();
            Err(format!(
                "QAT cannot train against {mix}: its {} blocks have no fake-quant kernel \
                 (QAT supports {} and the mixes built on them)",
                mix.base_type(),
                names.join(", ")
            ))
        }
    });
    let pure = table.optional("pure", boolean).unwrap_or(false);
    let steps = table.optional("steps", positive);
    let lr = table.optional("lr", above_zero);
    let include_embeddings = table
        .optional("include_embeddings", boolean)
        .unwrap_or(true);
    let include_output = table.optional("include_output", boolean).unwrap_or(true);
    let reference = table
        .optional("reference", one_of(&["teacher", "student"]))
        .map(|name| {
            if name == "teacher" {
                Reference::Teacher
            } else {
                Reference::Student
            }
        });
    if reference == Some(Reference::Teacher) && !has_teacher {
        let out = table.collector();
        out.error(
            out.span_of(&format!("{}.reference", table.path())),
            format!(
                "`{}.reference`: the recipe has no [teacher] to distil from; use \"student\"",
                table.path()
            ),
        );
    }
    let ste = table
        .optional("ste", one_of(&["identity", "clipped"]))
        .map(|name| {
            if name == "identity" {
                Ste::Identity
            } else {
                Ste::Clipped
            }
        })
        .unwrap_or(Ste::Identity);
    table.finish();
    let train = train?;
    Some(Qat {
        mix: mix?,
        pure,
        steps: steps.unwrap_or((train.steps / 10).max(1)),
        lr: lr.unwrap_or(train.lr / 10.0),
        include_embeddings,
        include_output,
        reference: reference.unwrap_or(if has_teacher {
            Reference::Teacher
        } else {
            Reference::Student
        }),
        ste,
    })
}
