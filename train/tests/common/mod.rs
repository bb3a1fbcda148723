//! Tiny random checkpoints of each family, written as transformers and llama.cpp
//! would write them, and a plain f64 forward pass following transformers' code to
//! check decant's model against.

#![allow(dead_code)] // each test binary uses part of this module

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};
use train::{CpuBackend, Transformer};

/// A weight in transformers' naming: row-major shape and values.
pub type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

pub const VOCAB: usize = 64;
pub const HIDDEN: usize = 32;
pub const FFN: usize = 48;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;

/// A family's `config.json`, each exercising the options it is known for.
pub fn hf_config(model_type: &str) -> Value {
    let mut config = json!({
        "model_type": model_type,
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
    });
    let extra = match model_type {
        // Llama-3 frequency scaling with all three bands inside head_dim 8.
        "llama" => json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}}),
        "mistral" => json!({"sliding_window": 4}),
        "qwen2" => json!({"tie_word_embeddings": true, "sliding_window": 4,
            "use_sliding_window": false}),
        // A head width apart from hidden / heads.
        "qwen3" => json!({"head_dim": 16, "attention_bias": false}),
        other => panic!("no tiny config for {other}"),
    };
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn head_dim(config: &Value) -> usize {
    config["head_dim"]
        .as_u64()
        .map_or(HIDDEN / HEADS, |d| d as usize)
}

/// Deterministic pseudo-random values `k / 64`, `|k| ≤ 24`: exact in f16 and bf16,
/// so that a checkpoint stored in any of the three float types holds the same model.
pub struct Values(u64);

impl Values {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> f32 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z % 49) as f32 - 24.0) / 64.0
    }

    fn take(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }

    /// Norm weights near 1, as trained models have.
    fn take_norm(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| 1.0 + self.next() / 2.0).collect()
    }
}

/// Random weights for `config`, named as in transformers' state dicts.
pub fn random_weights(config: &Value, seed: u64) -> Weights {
    let mut values = Values::new(seed);
    let mut w = Weights::new();
    let model_type = config["model_type"].as_str().unwrap();
    let hd = head_dim(config);
    let (q_dim, kv_dim) = (HEADS * hd, KV_HEADS * hd);
    let qkv_bias = model_type == "qwen2";
    let mut put = |name: String, shape: Vec<usize>, norm: bool| {
        let n = shape.iter().product();
        let data = if norm {
            values.take_norm(n)
        } else {
            values.take(n)
        };
        w.insert(name, (shape, data));
    };
    put(
        "model.embed_tokens.weight".into(),
        vec![VOCAB, HIDDEN],
        false,
    );
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), vec![HIDDEN], true);
        put(
            format!("{p}.self_attn.q_proj.weight"),
            vec![q_dim, HIDDEN],
            false,
        );
        put(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv_dim, HIDDEN],
            false,
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv_dim, HIDDEN],
            false,
        );
        put(
            format!("{p}.self_attn.o_proj.weight"),
            vec![HIDDEN, q_dim],
            false,
        );
        if qkv_bias {
            put(format!("{p}.self_attn.q_proj.bias"), vec![q_dim], false);
            put(format!("{p}.self_attn.k_proj.bias"), vec![kv_dim], false);
            put(format!("{p}.self_attn.v_proj.bias"), vec![kv_dim], false);
        }
        if model_type == "qwen3" {
            put(format!("{p}.self_attn.q_norm.weight"), vec![hd], true);
            put(format!("{p}.self_attn.k_norm.weight"), vec![hd], true);
        }
        put(
            format!("{p}.post_attention_layernorm.weight"),
            vec![HIDDEN],
            true,
        );
        put(
            format!("{p}.mlp.gate_proj.weight"),
            vec![FFN, HIDDEN],
            false,
        );
        put(format!("{p}.mlp.up_proj.weight"), vec![FFN, HIDDEN], false);
        put(
            format!("{p}.mlp.down_proj.weight"),
            vec![HIDDEN, FFN],
            false,
        );
    }
    put("model.norm.weight".into(), vec![HIDDEN], true);
    if !config["tie_word_embeddings"].as_bool().unwrap() {
        put("lm_head.weight".into(), vec![VOCAB, HIDDEN], false);
    }
    w
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        other => panic!("no encoder for {other:?}"),
    }
}

pub fn write_safetensors(path: &Path, weights: &Weights, dtype: Dtype) {
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> = weights
        .iter()
        .map(|(name, (shape, data))| (name, shape, encode(data, dtype)))
        .collect();
    let views = bytes.iter().map(|(name, shape, data)| {
        (
            name.as_str(),
            TensorView::new(dtype, shape.to_vec(), data).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A Hugging Face directory: `config.json` and `model.safetensors`.
pub fn write_hf_dir(dir: &Path, config: &Value, weights: &Weights, dtype: Dtype) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_safetensors(&dir.join("model.safetensors"), weights, dtype);
}

/// Runs `model` on a batch of equally long sequences; logits per sequence,
/// position and token.
pub fn run(model: &Transformer<CpuBackend>, batch: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let (b, s) = (batch.len(), batch[0].len());
    let ids: Vec<i64> = batch.iter().flatten().map(|&t| t as i64).collect();
    let input =
        Tensor::<CpuBackend, 2, Int>::from_data(TensorData::new(ids, [b, s]), &Default::default());
    let logits: Vec<f32> = model.forward(input).into_data().to_vec().unwrap();
    let vocab = logits.len() / (b * s);
    logits
        .chunks(s * vocab)
        .map(|seq| seq.chunks(vocab).map(<[f32]>::to_vec).collect())
        .collect()
}

pub fn max_abs_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn matvec(w: &(Vec<usize>, Vec<f32>), x: &[f64]) -> Vec<f64> {
    let (rows, cols) = (w.0[0], w.0[1]);
    (0..rows)
        .map(|r| (0..cols).map(|c| f64::from(w.1[r * cols + c]) * x[c]).sum())
        .collect()
}

fn rms_norm(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let scale = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
    x.iter()
        .zip(w)
        .map(|(v, &g)| v * scale * f64::from(g))
        .collect()
}

/// transformers' default and Llama-3 `inv_freq` (`modeling_rope_utils`).
pub fn inv_freq(config: &Value, dim: usize) -> Vec<f64> {
    let theta = config["rope_theta"].as_f64().unwrap();
    let base: Vec<f64> = (0..dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    let scaling = &config["rope_scaling"];
    if scaling.is_null() {
        return base;
    }
    let factor = scaling["factor"].as_f64().unwrap();
    let low = scaling["low_freq_factor"].as_f64().unwrap();
    let high = scaling["high_freq_factor"].as_f64().unwrap();
    let old = scaling["original_max_position_embeddings"]
        .as_f64()
        .unwrap();
    let (low_wavelen, high_wavelen) = (old / low, old / high);
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            let scaled = if wavelen > low_wavelen { f / factor } else { f };
            let smooth = (old / wavelen - low) / (high - low);
            let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
            let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
            if medium { smoothed } else { scaled }
        })
        .collect()
}

/// `apply_rotary_pos_emb` with `rotate_half`, for one head at position `pos`.
fn rope(x: &mut [f64], pos: usize, inv_freq: &[f64]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (sin, cos) = (pos as f64 * inv_freq[i]).sin_cos();
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos - b * sin;
        x[i + half] = b * cos + a * sin;
    }
}

/// Logits of one sequence, computed as transformers' modeling code does, in f64.
pub fn reference_logits(config: &Value, w: &Weights, tokens: &[u32]) -> Vec<Vec<f32>> {
    let get = |name: &str| w.get(name).unwrap_or_else(|| panic!("{name}"));
    let opt = |name: &str| w.get(name).map(|(_, d)| d);
    let eps = config["rms_norm_eps"].as_f64().unwrap();
    let hd = head_dim(config);
    let freqs = inv_freq(config, hd);
    let window = (config["model_type"] == "mistral")
        .then(|| config["sliding_window"].as_u64())
        .flatten()
        .map(|w| w as usize);
    let embed = get("model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            let t = t as usize;
            embed.1[t * HIDDEN..(t + 1) * HIDDEN]
                .iter()
                .map(|&v| v.into())
                .collect()
        })
        .collect();
    let add_bias = |v: &mut Vec<f64>, b: Option<&Vec<f32>>| {
        if let Some(b) = b {
            v.iter_mut().zip(b).for_each(|(x, &b)| *x += f64::from(b));
        }
    };
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let (mut qs, mut ks, mut vs) = (vec![], vec![], vec![]);
        for (pos, x) in xs.iter().enumerate() {
            let h = rms_norm(x, &get(&format!("{p}.input_layernorm.weight")).1, eps);
            let mut q = matvec(get(&format!("{p}.self_attn.q_proj.weight")), &h);
            let mut k = matvec(get(&format!("{p}.self_attn.k_proj.weight")), &h);
            let mut v = matvec(get(&format!("{p}.self_attn.v_proj.weight")), &h);
            add_bias(&mut q, opt(&format!("{p}.self_attn.q_proj.bias")));
            add_bias(&mut k, opt(&format!("{p}.self_attn.k_proj.bias")));
            add_bias(&mut v, opt(&format!("{p}.self_attn.v_proj.bias")));
            for (t, norm) in [(&mut q, "q_norm"), (&mut k, "k_norm")] {
                for head in t.chunks_mut(hd) {
                    if let Some(g) = opt(&format!("{p}.self_attn.{norm}.weight")) {
                        let normed = rms_norm(head, g, eps);
                        head.copy_from_slice(&normed);
                    }
                    rope(head, pos, &freqs);
                }
            }
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        let group = HEADS / KV_HEADS;
        for i in 0..xs.len() {
            let mut out = vec![0.0; HEADS * hd];
            for h in 0..HEADS {
                let kvh = h / group;
                let q = &qs[i][h * hd..(h + 1) * hd];
                let visible: Vec<usize> = (0..=i)
                    .filter(|&j| window.is_none_or(|w| i - j < w))
                    .collect();
                let scores: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        let k = &ks[j][kvh * hd..(kvh + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (&j, e) in visible.iter().zip(&exps) {
                    let v = &vs[j][kvh * hd..(kvh + 1) * hd];
                    for d in 0..hd {
                        out[h * hd + d] += e / total * v[d];
                    }
                }
            }
            let o = matvec(get(&format!("{p}.self_attn.o_proj.weight")), &out);
            xs[i].iter_mut().zip(o).for_each(|(x, o)| *x += o);
            let h = rms_norm(
                &xs[i],
                &get(&format!("{p}.post_attention_layernorm.weight")).1,
                eps,
            );
            let gate = matvec(get(&format!("{p}.mlp.gate_proj.weight")), &h);
            let up = matvec(get(&format!("{p}.mlp.up_proj.weight")), &h);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = matvec(get(&format!("{p}.mlp.down_proj.weight")), &act);
            xs[i].iter_mut().zip(down).for_each(|(x, d)| *x += d);
        }
    }
    let head = w.get("lm_head.weight").unwrap_or(embed);
    xs.iter()
        .map(|x| {
            let h = rms_norm(x, &get("model.norm.weight").1, eps);
            matvec(head, &h).into_iter().map(|v| v as f32).collect()
        })
        .collect()
}
