//! Model → GGUF v3, as llama.cpp's `convert_hf_to_gguf.py` names and lays out the
//! tensors (Q/K rows permuted for Llama and Mistral, Llama-3 RoPE scaling as a
//! `rope_freqs.weight` tensor), with each tensor's type chosen by the same mix
//! planning `decant quantize` uses. Tensors are converted and written one at a
//! time into a temporary file that is renamed into place when complete.

mod hparams;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use quantize::GgmlType;
use quantize::gguf::{GgufWriter, TensorInfo, Value};
use quantize::mix::{MixOptions, ModelParams, plan};
use train::config::ModelConfig;
use train::Transformer;
use train::config::gguf::ROPE_FREQS;
use train::import::{LayerWeight, Weight};

pub use hparams::gguf_arch;

use crate::error::ExportError;
use crate::lineage::ExportMetadata;
use crate::vocab::Vocabulary;
use crate::weights::{interleave_rows, read_weight, weight_list, weight_shape};

/// ggml's quantization format version (`GGML_QNT_VERSION`).
const QUANTIZATION_VERSION: u32 = 2;

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufReport {
    pub path: PathBuf,
    pub size: u64,
    pub type_counts: BTreeMap<GgmlType, usize>,
    pub n_fallback: usize,
}

/// Where a running export is, after each tensor.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub tensor: &'a str,
    pub ty: GgmlType,
}

enum Source {
    Weight(Weight),
    RopeFreqs(Vec<f32>),
}

/// The type every weight of a model of `config` gets in a GGUF written with
/// `options`: the plan [`export_gguf`] writes by, which quantization-aware
/// training fake-quantizes to.
pub fn planned_types(
    config: &ModelConfig,
    options: &MixOptions,
) -> Result<Vec<(Weight, GgmlType)>, ExportError> {
    let (infos, sources) = tensors(config);
    let plan = plan(&infos, &model_params(config), options)?;
    Ok(plan
        .tensors
        .iter()
        .filter_map(|planned| match sources[planned.index] {
            Source::Weight(weight) => Some((weight, planned.target)),
            Source::RopeFreqs(_) => None,
        })
        .collect())
}

/// Every tensor of the file, declared F32, with where its values come from.
fn tensors(config: &ModelConfig) -> (Vec<TensorInfo>, Vec<Source>) {
    let mut sources = Vec::new();
    let mut infos = Vec::new();
    if let Some(factors) = config.rope.scaling.freq_factors(config.rope.theta, config.head_dim) {
        infos.push(info(ROPE_FREQS, &[factors.len()]));
        sources.push(Source::RopeFreqs(factors));
    }
    for weight in weight_list(config) {
        infos.push(info(&weight.gguf_name(), &weight_shape(config, weight)));
        sources.push(Source::Weight(weight));
    }
    (infos, sources)
}

fn model_params(config: &ModelConfig) -> ModelParams {
    ModelParams {
        arch: gguf_arch(config.architecture).to_owned(),
        n_layer: config.num_layers as u32,
        n_head: config.num_heads as u32,
        n_head_kv: config.num_kv_heads as u32,
        n_expert: 0,
    }
}

/// Writes `model` to `out` in the types `options` (a mix, or `--pure`) gives
/// each tensor.
pub fn export_gguf<B: Backend>(
    model: &Transformer<B>,
    vocab: &Vocabulary,
    metadata: &ExportMetadata,
    options: MixOptions,
    out: &Path,
    threads: usize,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<GgufReport, ExportError> {
    let config = &model.config;
    check_vocab(vocab, config.vocab_size)?;
    let arch = gguf_arch(config.architecture);
    let mix = options.mix;
    let (infos, sources) = tensors(config);
    let plan = plan(&infos, &model_params(config), &options)?;

    let mut writer = GgufWriter::new();
    writer.metadata("general.architecture", arch)?;
    writer.metadata("general.type", "model")?;
    let (head, tail) = hparams::arch_entries(config);
    let entries = metadata
        .general_entries()
        .into_iter()
        .chain(head)
        .chain([("general.file_type".to_owned(), Value::U32(mix.ftype()))])
        .chain(tail)
        .chain(vocab.gguf_entries()?)
        .chain(metadata.decant_entries())
        .chain([("general.quantization_version".to_owned(), Value::U32(QUANTIZATION_VERSION))]);
    for (key, value) in entries {
        writer.metadata(key, value)?;
    }
    let mut declared = writer.finish_metadata();
    for planned in &plan.tensors {
        let info = &infos[planned.index];
        declared.tensor_info(info.name.as_str(), &info.shape, planned.target)?;
    }
    let mut data = declared.write_file(out)?;

    let mut type_counts = BTreeMap::new();
    let total = plan.tensors.len();
    for (done, planned) in plan.tensors.iter().enumerate() {
        let name = &infos[planned.index].name;
        let values = match &sources[planned.index] {
            Source::RopeFreqs(factors) => factors.clone(),
            Source::Weight(weight) => gguf_layout(model, *weight)?,
        };
        let row = infos[planned.index].shape[0] as usize;
        let bytes = convert(&values, row, planned.target, threads).map_err(|source| {
            ExportError::Quant { tensor: name.clone(), ty: planned.target, source }
        })?;
        data.write_tensor(name, &bytes)?;
        *type_counts.entry(planned.target).or_insert(0) += 1;
        progress(Progress { done: done + 1, total, tensor: name, ty: planned.target });
    }
    let path = data.finish()?;
    let size = std::fs::metadata(&path).map_err(|e| ExportError::io(&path, e))?.len();
    Ok(GgufReport { path, size, type_counts, n_fallback: plan.n_fallback })
}

fn check_vocab(vocab: &Vocabulary, vocab_size: usize) -> Result<(), ExportError> {
    if vocab.tokens.len() != vocab_size {
        return Err(ExportError::tokenizer(
            &vocab.origin,
            format!(
                "has {} tokens but the model's embeddings have {vocab_size} rows; llama.cpp refuses such a file",
                vocab.tokens.len()
            ),
        ));
    }
    Ok(())
}

/// A tensor as declared before planning: F32, shape in ggml order.
fn info(name: &str, row_major: &[usize]) -> TensorInfo {
    TensorInfo {
        name: name.to_owned(),
        shape: row_major.iter().rev().map(|&d| d as u64).collect(),
        ggml_type: GgmlType::F32,
        offset: 0,
    }
}

/// A weight's values as llama.cpp wants them: Q/K rows in adjacent-pair order
/// for the families whose GGUF RoPE rotates pairs.
fn gguf_layout<B: Backend>(model: &Transformer<B>, weight: Weight) -> Result<Vec<f32>, ExportError> {
    let config = &model.config;
    let data = read_weight(model, weight)?;
    let heads = match weight {
        Weight::Layer(_, LayerWeight::Q | LayerWeight::QBias) => config.num_heads,
        Weight::Layer(_, LayerWeight::K | LayerWeight::KBias) => config.num_kv_heads,
        _ => return Ok(data.values),
    };
    if !config.architecture.gguf_uses_normal_rope() {
        return Ok(data.values);
    }
    let row_len = data.shape.get(1).copied().unwrap_or(1);
    Ok(interleave_rows(&data.values, heads, row_len))
}

/// `values`, rows of `row` values, in type `ty`, rows spread over `threads`.
fn convert(
    values: &[f32],
    row: usize,
    ty: GgmlType,
    threads: usize,
) -> Result<Vec<u8>, quantize::QuantError> {
    let row_bytes = quantize::quant::row_size(ty, row)?;
    let n_rows = values.len() / row;
    let mut out = vec![0u8; n_rows * row_bytes];
    let rows_per_part = n_rows.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = values
            .chunks(rows_per_part * row)
            .zip(out.chunks_mut(rows_per_part * row_bytes))
            .map(|(src, dst)| scope.spawn(move || quantize::quantize_chunk(ty, src, row, None, dst)))
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().expect("quantization kernels do not panic"))
            .try_for_each(|r| r.map(drop))
    })?;
    Ok(out)
}
