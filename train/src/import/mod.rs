//! Loading a [`Transformer`] from a GGUF file or a Hugging Face directory.
//!
//! Both formats go through one builder: a [`WeightSource`] hands over each weight
//! as f32 values in row-major order, the builder checks its shape against the
//! configuration and places it in the model.

mod gguf;
mod names;
mod safetensors;

use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use quantize::gguf::GgufFile;

pub use names::{LayerWeight, Weight};

use crate::config::ModelConfig;
use crate::config::hf::HfConfigError;
use crate::error::ImportError;
use crate::model::{Attention, DecoderLayer, Mlp, Transformer};

/// Loads a model from a `.gguf` file or a Hugging Face directory (`config.json`
/// and safetensors weights).
pub fn load_model<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<Transformer<B>, ImportError> {
    if !path.is_dir() {
        return load_gguf(path, device);
    }
    if path.join("config.json").is_file() {
        load_hf_dir(path, device)
    } else {
        Err(ImportError::NotAModel {
            path: path.to_owned(),
        })
    }
}

/// Loads a GGUF model, dequantizing every tensor to f32.
pub fn load_gguf<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<Transformer<B>, ImportError> {
    let file = GgufFile::open(path).map_err(|e| ImportError::Gguf(Box::new(e)))?;
    let config = crate::config::gguf::from_gguf(&file).map_err(|source| ImportError::Config {
        path: path.to_owned(),
        source,
    })?;
    let source = gguf::GgufSource::new(&file, config.architecture.gguf_uses_normal_rope());
    build(&config, &source, device)
}

/// Loads a Hugging Face model directory: `config.json` and either
/// `model.safetensors` or the shards named by `model.safetensors.index.json`.
/// F32, F16 and BF16 weights are converted to f32.
pub fn load_hf_dir<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<Transformer<B>, ImportError> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| ImportError::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = crate::config::hf::from_json(&text).map_err(|e| match e {
        HfConfigError::Json(source) => ImportError::Json {
            path: config_path.clone(),
            source,
        },
        HfConfigError::Model(source) => ImportError::Config {
            path: config_path.clone(),
            source,
        },
    })?;
    let source = safetensors::SafetensorsSource::open(dir)?;
    build(&config, &source, device)
}

/// A weight as stored: row-major shape and f32 values.
pub(crate) struct RawTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Where the builder gets weights from.
pub(crate) trait WeightSource {
    /// The file or directory, for errors.
    fn path(&self) -> &Path;

    /// The weight's name in this source, for errors.
    fn name(&self, weight: Weight) -> String;

    fn read(&self, weight: Weight) -> Result<Option<RawTensor>, ImportError>;

    /// Whether each query and key head stores its rows in llama.cpp's "normal" RoPE
    /// order (pairs `(2i, 2i+1)`) rather than transformers' (pairs `(i, i + d/2)`).
    fn qk_rows_interleaved(&self) -> bool {
        false
    }
}

struct Builder<'a, S, B: Backend> {
    config: &'a ModelConfig,
    source: &'a S,
    device: &'a B::Device,
}

fn build<B: Backend, S: WeightSource>(
    config: &ModelConfig,
    source: &S,
    device: &B::Device,
) -> Result<Transformer<B>, ImportError> {
    let b = Builder {
        config,
        source,
        device,
    };
    let (vocab, hidden) = (config.vocab_size, config.hidden_size);
    Ok(Transformer {
        embed_tokens: Embedding {
            weight: Param::from_tensor(b.tensor(Weight::TokenEmbedding, [vocab, hidden])?),
        },
        layers: (0..config.num_layers)
            .map(|layer| b.layer(layer))
            .collect::<Result<_, _>>()?,
        norm: b.norm(Weight::OutputNorm, hidden)?,
        lm_head: if config.tie_word_embeddings {
            None
        } else {
            Some(b.linear(Weight::Output, None, hidden, vocab)?)
        },
        hidden_projection: None,
        config: config.clone(),
    })
}

impl<S: WeightSource, B: Backend> Builder<'_, S, B> {
    fn layer(&self, layer: usize) -> Result<DecoderLayer<B>, ImportError> {
        use LayerWeight::*;
        let c = self.config;
        let w = |kind| Weight::Layer(layer, kind);
        let bias = |present: bool, kind| present.then(|| w(kind));
        let head_norm = |kind| {
            c.architecture
                .has_qk_norm()
                .then(|| self.norm(w(kind), c.head_dim))
                .transpose()
        };
        let (hidden, ffn) = (c.hidden_size, c.intermediate_size);
        Ok(DecoderLayer {
            input_layernorm: self.norm(w(AttnNorm), hidden)?,
            self_attn: Attention {
                q_proj: self.linear(w(Q), bias(c.qkv_bias, QBias), hidden, c.q_dim())?,
                k_proj: self.linear(w(K), bias(c.qkv_bias, KBias), hidden, c.kv_dim())?,
                v_proj: self.linear(w(V), bias(c.qkv_bias, VBias), hidden, c.kv_dim())?,
                o_proj: self.linear(w(O), bias(c.o_bias, OBias), c.q_dim(), hidden)?,
                q_norm: head_norm(QNorm)?,
                k_norm: head_norm(KNorm)?,
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            },
            post_attention_layernorm: self.norm(w(FfnNorm), hidden)?,
            mlp: Mlp {
                gate_proj: self.linear(w(Gate), bias(c.mlp_bias, GateBias), hidden, ffn)?,
                up_proj: self.linear(w(Up), bias(c.mlp_bias, UpBias), hidden, ffn)?,
                down_proj: self.linear(w(Down), bias(c.mlp_bias, DownBias), ffn, hidden)?,
            },
        })
    }

    /// Reads a weight and checks its shape; undoes llama.cpp's Q/K row order.
    fn values(&self, weight: Weight, expected: &[usize]) -> Result<Vec<f32>, ImportError> {
        let raw = self
            .source
            .read(weight)?
            .ok_or_else(|| ImportError::MissingTensor {
                path: self.source.path().to_owned(),
                tensor: self.source.name(weight),
            })?;
        if raw.shape != expected {
            return Err(ImportError::ShapeMismatch {
                path: self.source.path().to_owned(),
                tensor: self.source.name(weight),
                expected: expected.to_vec(),
                actual: raw.shape,
            });
        }
        let heads = match weight {
            Weight::Layer(_, LayerWeight::Q | LayerWeight::QBias) => self.config.num_heads,
            Weight::Layer(_, LayerWeight::K | LayerWeight::KBias) => self.config.num_kv_heads,
            _ => return Ok(raw.data),
        };
        Ok(if self.source.qk_rows_interleaved() {
            deinterleave_rows(&raw.data, heads, expected.get(1).copied().unwrap_or(1))
        } else {
            raw.data
        })
    }

    fn tensor<const D: usize>(
        &self,
        weight: Weight,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, ImportError> {
        let data = self.values(weight, &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    /// A projection stored as `[d_out, d_in]` (PyTorch and ggml alike); Burn's
    /// `Linear` multiplies by `[d_in, d_out]`. The transpose is done here, once: a
    /// transposed view would be copied to contiguous memory on every forward pass.
    fn linear(
        &self,
        weight: Weight,
        bias: Option<Weight>,
        d_in: usize,
        d_out: usize,
    ) -> Result<Linear<B>, ImportError> {
        let values = transpose(&self.values(weight, &[d_out, d_in])?, d_out, d_in);
        let w = Tensor::from_data(TensorData::new(values, [d_in, d_out]), self.device);
        let bias = bias
            .map(|b| self.tensor(b, [d_out]).map(Param::from_tensor))
            .transpose()?;
        Ok(Linear {
            weight: Param::from_tensor(w),
            bias,
        })
    }

    fn norm(&self, weight: Weight, dim: usize) -> Result<RmsNorm<B>, ImportError> {
        Ok(RmsNorm {
            gamma: Param::from_tensor(self.tensor(weight, [dim])?),
            epsilon: self.config.rms_norm_eps,
        })
    }
}

/// `[rows, cols]` → `[cols, rows]`, row-major, in tiles that stay in cache.
/// Burn's linear weights are `[in, out]`, checkpoints' `[out, in]`: import and
/// export both turn one into the other.
pub fn transpose<T: Copy + Default>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut out = vec![T::default(); data.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

/// Inverts llama.cpp's converter permutation (`LlamaModel.permute`): within each
/// head, row `2i + j` of the file is row `j · d/2 + i` of the checkpoint it came
/// from, for `i < d/2` and `j ∈ {0, 1}`.
fn deinterleave_rows(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
    let head_dim = data.len() / row_len / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = (h * head_dim + 2 * i + j) * row_len;
                let dst = (h * head_dim + j * half + i) * row_len;
                out[dst..dst + row_len].copy_from_slice(&data[src..src + row_len]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's converter permutation, written as its numpy code reads:
    /// `w.reshape(heads, 2, d/2, row).swapaxes(1, 2).reshape(w.shape)`.
    fn interleave_rows(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
        let head_dim = data.len() / row_len / heads;
        let half = head_dim / 2;
        let mut out = Vec::with_capacity(data.len());
        for h in 0..heads {
            for i in 0..half {
                for j in 0..2 {
                    let src = (h * head_dim + j * half + i) * row_len;
                    out.extend_from_slice(&data[src..src + row_len]);
                }
            }
        }
        out
    }

    #[test]
    fn transposes_ragged_tiles() {
        let (rows, cols) = (33, 70);
        let data: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let t = transpose(&data, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], data[r * cols + c]);
            }
        }
    }

    #[test]
    fn deinterleave_inverts_the_converter() {
        let data: Vec<f32> = (0..3 * 8 * 5).map(|v| v as f32).collect();
        let permuted = interleave_rows(&data, 3, 5);
        assert_ne!(permuted, data);
        assert_eq!(deinterleave_rows(&permuted, 3, 5), data);
        // One head of 4 rows of length 1: checkpoint rows [a, b, c, d] pair (a, c)
        // and (b, d); the GGUF file stores them as [a, c, b, d].
        assert_eq!(
            interleave_rows(&[0.0, 1.0, 2.0, 3.0], 1, 1),
            [0.0, 2.0, 1.0, 3.0]
        );
    }
}
