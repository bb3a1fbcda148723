//! The runtime configuration of a decoder-only transformer, whichever file it came
//! from: GGUF metadata ([`gguf`]) or a Hugging Face `config.json` ([`hf`]).

pub mod gguf;
pub mod hf;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The model families decant runs. They share one decoder; the differences are
/// the options in [`ModelConfig`] and the few listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }

    /// Qwen3 normalizes each query and key head with its own RMSNorm before RoPE.
    pub fn has_qk_norm(self) -> bool {
        self == Architecture::Qwen3
    }

    /// Whether llama.cpp rotates adjacent pairs (its "normal" RoPE) for this family.
    /// Hugging Face checkpoints are all written for the rotate-half (NeoX) layout, so
    /// llama.cpp's converter permutes the Q and K rows of these families, and GGUF
    /// import has to permute them back for the model here, which always rotates halves.
    pub fn gguf_uses_normal_rope(self) -> bool {
        matches!(self, Architecture::Llama | Architecture::Mistral)
    }
}

impl std::str::FromStr for Architecture {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "llama" => Ok(Architecture::Llama),
            "mistral" => Ok(Architecture::Mistral),
            "qwen2" => Ok(Architecture::Qwen2),
            "qwen3" => Ok(Architecture::Qwen3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rotary position embedding parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    /// The frequency base (`rope_theta`, `rope.freq_base`).
    pub theta: f32,
    pub scaling: RopeScaling,
}

/// How the rotary frequencies are stretched for contexts longer than training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (position interpolation).
    Linear {
        factor: f32,
    },
    /// Llama 3.1's per-frequency scaling, as Hugging Face configs state it.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    /// One divisor per frequency, as GGUF files store Llama-3 scaling (the
    /// `rope_freqs.weight` tensor that llama.cpp's converter computes from the above).
    FreqFactors(Vec<f32>),
}

impl RopeScaling {
    /// The divisor of each of the `head_dim / 2` rotary frequencies, if any.
    pub fn freq_factors(&self, theta: f32, head_dim: usize) -> Option<Vec<f32>> {
        match self {
            RopeScaling::None | RopeScaling::Linear { .. } => None,
            RopeScaling::FreqFactors(factors) => Some(factors.clone()),
            &RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                // The formula of llama.cpp's converter (LlamaModel.generate_extra_tensors),
                // which transformers' `_compute_llama3_parameters` agrees with.
                let old_context = original_max_position_embeddings as f64;
                let (factor, low, high) = (
                    f64::from(factor),
                    f64::from(low_freq_factor),
                    f64::from(high_freq_factor),
                );
                let low_freq_wavelen = old_context / low;
                let high_freq_wavelen = old_context / high;
                let factors = (0..head_dim / 2)
                    .map(|i| {
                        let exponent = (2 * i) as f32 / head_dim as f32;
                        let freq = f64::from(1.0 / theta.powf(exponent));
                        let wavelen = 2.0 * std::f64::consts::PI / freq;
                        let f = if wavelen < high_freq_wavelen {
                            1.0
                        } else if wavelen > low_freq_wavelen {
                            factor
                        } else {
                            let smooth = (old_context / wavelen - low) / (high - low);
                            1.0 / ((1.0 - smooth) / factor + smooth)
                        };
                        f as f32
                    })
                    .collect();
                Some(factors)
            }
        }
    }

    /// The multiplier of every angle: `1 / factor` for linear scaling, else 1.
    pub fn freq_scale(&self) -> f32 {
        match self {
            RopeScaling::Linear { factor } => 1.0 / factor,
            _ => 1.0,
        }
    }
}

/// Everything the decoder needs to know about its shape and numerics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    /// Width of one attention head; Qwen3 sets it apart from `hidden_size / num_heads`.
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope: RopeConfig,
    pub max_position_embeddings: usize,
    /// The output head reuses the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections (Qwen2; optional in Llama).
    pub qkv_bias: bool,
    /// A bias on the attention output projection.
    pub o_bias: bool,
    /// Biases on the three MLP projections.
    pub mlp_bias: bool,
    /// Each position attends to at most this many positions, itself included (Mistral).
    pub sliding_window: Option<usize>,
}

impl ModelConfig {
    /// Checks the relations between sizes that the decoder relies on.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ModelError::Invalid(format!("{name} must be positive")));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(ModelError::Invalid(format!(
                "{} attention heads cannot be shared evenly among {} key/value heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::Invalid(format!(
                "head_dim {} is odd; RoPE rotates pairs of dimensions",
                self.head_dim
            )));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(ModelError::Invalid(format!(
                "rms_norm_eps must be positive, got {}",
                self.rms_norm_eps
            )));
        }
        if let RopeScaling::FreqFactors(factors) = &self.rope.scaling
            && factors.len() != self.head_dim / 2
        {
            return Err(ModelError::Invalid(format!(
                "{} RoPE frequency factors for head_dim {}, expected {}",
                factors.len(),
                self.head_dim,
                self.head_dim / 2
            )));
        }
        if self.parameter_count().is_none() {
            return Err(ModelError::Invalid(format!(
                "vocab_size {}, hidden_size {}, intermediate_size {}, num_layers {}, \
                 {} heads of head_dim {}: more weights than this machine can address",
                self.vocab_size,
                self.hidden_size,
                self.intermediate_size,
                self.num_layers,
                self.num_heads,
                self.head_dim
            )));
        }
        Ok(())
    }

    /// How many values the model's weights hold, or `None` when that overflows
    /// `usize`: readers compare it with what a file holds before allocating a
    /// model from a configuration they cannot trust.
    pub fn parameter_count(&self) -> Option<usize> {
        let add = |terms: &[Option<usize>]| {
            terms
                .iter()
                .try_fold(0usize, |total, term| total.checked_add((*term)?))
        };
        let if_set = |present: bool, n: Option<usize>| if present { n } else { Some(0) };
        let (hidden, ffn) = (self.hidden_size, self.intermediate_size);
        let q = self.num_heads.checked_mul(self.head_dim)?;
        let kv = self.num_kv_heads.checked_mul(self.head_dim)?;
        let qkv = add(&[Some(q), Some(kv), Some(kv)])?;
        let layer = add(&[
            hidden.checked_mul(2),
            hidden.checked_mul(qkv),
            if_set(self.qkv_bias, Some(qkv)),
            q.checked_mul(hidden),
            if_set(self.o_bias, Some(hidden)),
            if_set(
                self.architecture.has_qk_norm(),
                self.head_dim.checked_mul(2),
            ),
            hidden.checked_mul(ffn)?.checked_mul(3),
            if_set(self.mlp_bias, add(&[ffn.checked_mul(2), Some(hidden)])),
        ])?;
        let embedding = self.vocab_size.checked_mul(hidden)?;
        add(&[
            Some(embedding),
            self.num_layers.checked_mul(layer),
            Some(hidden),
            if_set(!self.tie_word_embeddings, Some(embedding)),
        ])
    }

    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SmolLM2-135M's shape, the reference teacher's.
    pub(crate) fn smollm2_135m() -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope: RopeConfig {
                theta: 100_000.0,
                scaling: RopeScaling::None,
            },
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            sliding_window: None,
        }
    }

    #[test]
    fn validate_names_the_broken_relation() {
        assert!(smollm2_135m().validate().is_ok());
        let mut c = smollm2_135m();
        c.num_kv_heads = 4;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("9 attention heads") && err.contains("4 key/value"),
            "{err}"
        );
        let mut c = smollm2_135m();
        c.rope.scaling = RopeScaling::FreqFactors(vec![1.0; 3]);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("expected 32")
        );
    }

    #[test]
    fn parameter_count_is_what_a_model_of_the_config_holds() {
        let mut c = ModelConfig {
            vocab_size: 40,
            hidden_size: 12,
            intermediate_size: 20,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 6,
            ..smollm2_135m()
        };
        let variants = [
            (Architecture::Llama, false, false, false, true),
            (Architecture::Llama, true, true, true, false),
            (Architecture::Qwen2, true, false, false, true),
            (Architecture::Qwen3, false, false, false, false),
        ];
        for (architecture, qkv_bias, o_bias, mlp_bias, tied) in variants {
            (c.architecture, c.qkv_bias, c.o_bias) = (architecture, qkv_bias, o_bias);
            (c.mlp_bias, c.tie_word_embeddings) = (mlp_bias, tied);
            let model = c.init::<crate::CpuBackend>(&Default::default()).unwrap();
            let held: usize = crate::optim::named_tensors(&model)
                .values()
                .map(|t| t.values.len())
                .sum();
            assert_eq!(
                c.parameter_count(),
                Some(held),
                "{architecture} {qkv_bias} {o_bias} {mlp_bias} {tied}"
            );
        }
    }

    #[test]
    fn sizes_whose_product_overflows_are_invalid() {
        let mut c = smollm2_135m();
        (c.num_heads, c.num_kv_heads, c.head_dim) = (8, 1, 2_403_239_936_599_892_338);
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("8 heads of head_dim 2403239936599892338"),
            "{err}"
        );
    }

    #[test]
    fn llama3_factors_match_llama_cpp_converter() {
        // Llama-3.1-8B: theta 5e5, head_dim 128, factor 8, low 1, high 4, context 8192.
        let scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let f = scaling.freq_factors(500_000.0, 128).unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!((f[0], f[63]), (1.0, 8.0));
        // The smooth band, from the converter's formula run in Python (numpy f32 freqs).
        let expected = [
            1.0, 1.2074839, 1.5534146, 2.026_313, 2.69453, 3.6842532, 5.257327, 8.0,
        ];
        for (got, want) in f[28..36].iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
    }
}
