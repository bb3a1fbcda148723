//! A whole model's plan: every tensor in the order llama.cpp writes them, with the
//! type it gets (`llama_tensor_get_type` over the preliminary loop of
//! `llama_model_quantize_impl`).

use std::cmp::Ordering;

use crate::GgmlType;
use crate::gguf::TensorInfo;

use super::error::MixError;
use super::ftype::Mix;
use super::hparams::ModelParams;
use super::rules::{Rules, fallback, requires_imatrix};
use super::tensor_kind::{Category, allows_quantization, layer_of};

/// What to quantize to, beyond the model itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixOptions {
    pub mix: Mix,
    /// `--pure`: no per-tensor rules, every quantizable weight gets the base type
    /// (row-length fallbacks still apply, as in llama.cpp).
    pub pure: bool,
    /// An importance matrix will be used; a few rules depend on it.
    pub has_imatrix: bool,
    /// `--output-tensor-type`.
    pub output_type: Option<GgmlType>,
    /// `--token-embedding-type`.
    pub token_embedding_type: Option<GgmlType>,
}

impl MixOptions {
    pub fn new(mix: Mix) -> MixOptions {
        MixOptions {
            mix,
            pure: false,
            has_imatrix: false,
            output_type: None,
            token_embedding_type: None,
        }
    }
}

/// One tensor of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTensor {
    /// Position of the tensor in the input's list.
    pub index: usize,
    /// The type it is written in; its stored type when it is not quantized.
    pub target: GgmlType,
    /// Whether it may be quantized at all (a 2-D+ weight that is not excluded).
    pub quantizable: bool,
    /// Whether its target type is useless without an importance matrix.
    pub requires_imatrix: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Every input tensor, in output order.
    pub tensors: Vec<PlannedTensor>,
    /// Tensors whose rows did not fit the chosen type and got another one.
    pub n_fallback: usize,
}

/// llama.cpp's tensor order (its loader's `weight_name_comparer`): tensors outside
/// the `blk.N.` layers first, then layer by layer; by name (bytewise) within each.
pub fn llama_order(a: &str, b: &str) -> Ordering {
    let layer = |name: &str| {
        layer_of(name).map_or(-1, |l| l.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
    };
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}

/// Chooses every tensor's type as llama-quantize does for `options`.
///
/// Fails when an expert tensor's name has no valid layer, or when a type needs an
/// importance matrix and none is given.
pub fn plan(
    tensors: &[TensorInfo],
    params: &ModelParams,
    options: &MixOptions,
) -> Result<Plan, MixError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| llama_order(&tensors[a].name, &tensors[b].name));
    let categories: Vec<Category> = tensors.iter().map(|t| Category::of(&t.name)).collect();

    let mut rules = Rules {
        params,
        mix: options.mix,
        has_imatrix: options.has_imatrix,
        tied_embeddings: !categories.contains(&Category::Output),
        output_type: options.output_type,
        n_attention_wv: categories.iter().filter(|&&c| c == Category::AttnV).count() as i32,
        i_attention_wv: 0,
        i_ffn_down: 0,
    };
    let mut n_fallback = 0;
    let mut planned = Vec::with_capacity(tensors.len());
    for index in order {
        let tensor = &tensors[index];
        let quantizable = allows_quantization(&tensor.name, &tensor.shape);
        let target = if quantizable {
            let chosen = choose(&mut rules, tensor, categories[index], options)?;
            if chosen.fell_back {
                n_fallback += 1;
            }
            chosen.ty
        } else {
            tensor.ggml_type
        };
        let requires_imatrix = requires_imatrix(&tensor.name, target, options.mix);
        if quantizable && requires_imatrix && !options.has_imatrix {
            return Err(MixError::NeedsImatrix {
                tensor: tensor.name.clone(),
                ty: target,
                mix: options.mix,
            });
        }
        planned.push(PlannedTensor {
            index,
            target,
            quantizable,
            requires_imatrix,
        });
    }
    Ok(Plan {
        tensors: planned,
        n_fallback,
    })
}

struct Chosen {
    ty: GgmlType,
    fell_back: bool,
}

/// `llama_tensor_get_type` for a quantizable tensor: the overrides, then the mix
/// rules (unless pure), then the row-length fallback, the last two only for
/// quantized mixes.
fn choose(
    rules: &mut Rules<'_>,
    tensor: &TensorInfo,
    category: Category,
    options: &MixOptions,
) -> Result<Chosen, MixError> {
    let unchanged = |ty| {
        Ok(Chosen {
            ty,
            fell_back: false,
        })
    };
    match (category, options.token_embedding_type, options.output_type) {
        (Category::TokenEmbd, Some(ty), _) | (Category::Output, _, Some(ty)) => {
            return unchanged(ty);
        }
        _ => {}
    }
    let base = options.mix.base_type();
    if !options.mix.is_quantized() {
        return unchanged(base);
    }
    let row_len = tensor.shape.first().copied().unwrap_or(1);
    let ty = if options.pure {
        base
    } else {
        rules.choose(&tensor.name, row_len, category, base)?
    };
    let ty_fitted = fallback(row_len, ty);
    Ok(Chosen {
        ty: ty_fitted,
        fell_back: ty_fitted != ty,
    })
}
