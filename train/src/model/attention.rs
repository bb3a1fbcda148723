//! Causal self-attention with grouped key/value heads.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::kv_cache::LayerCache;
use super::rope::RopeTables;
use super::{INITIALIZER, normalize, project};
use crate::config::ModelConfig;
use crate::kernels;

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    /// Per-head RMSNorm of queries and keys before RoPE (Qwen3).
    pub q_norm: Option<RmsNorm<B>>,
    pub k_norm: Option<RmsNorm<B>>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    pub fn init(config: &ModelConfig, device: &B::Device) -> Self {
        let linear = |d_in, d_out, bias| {
            LinearConfig::new(d_in, d_out)
                .with_bias(bias)
                .with_initializer(INITIALIZER)
                .init(device)
        };
        let head_norm = || {
            config.architecture.has_qk_norm().then(|| {
                RmsNormConfig::new(config.head_dim)
                    .with_epsilon(config.rms_norm_eps)
                    .init(device)
            })
        };
        let hidden = config.hidden_size;
        Self {
            q_proj: linear(hidden, config.q_dim(), config.qkv_bias),
            k_proj: linear(hidden, config.kv_dim(), config.qkv_bias),
            v_proj: linear(hidden, config.kv_dim(), config.qkv_bias),
            o_proj: linear(config.q_dim(), hidden, config.o_bias),
            q_norm: head_norm(),
            k_norm: head_norm(),
            num_heads: config.num_heads,
            num_kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]` for `seq` new positions that
    /// follow those in `cache`, which gains their keys and values. `rope` covers the
    /// new positions; `mask` (true = hidden, `[.., seq, cached + seq]`) adds to the
    /// causal mask, e.g. a sliding window; it broadcasts over batch and heads.
    pub(super) fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: &mut LayerCache<B>,
    ) -> Tensor<B, 3> {
        project(&self.o_proj, self.attend(x, rope, mask, cache))
    }

    /// [`Self::forward`] short of `o_proj`: the heads' outputs side by side,
    /// `[batch, seq, heads * head_dim]`, head `h` in columns `h * head_dim..`.
    pub(super) fn attend(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: &mut LayerCache<B>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let heads = |t: Tensor<B, 3>, n| t.reshape([batch, seq, n, self.head_dim]);
        let q = heads(project(&self.q_proj, x.clone()), self.num_heads);
        let k = heads(project(&self.k_proj, x.clone()), self.num_kv_heads);
        let v = heads(project(&self.v_proj, x), self.num_kv_heads);
        let (q, k) = match (&self.q_norm, &self.k_norm) {
            (Some(q_norm), Some(k_norm)) => (normalize(q_norm, q), normalize(k_norm, k)),
            _ => (q, k),
        };
        let (q, k, v) = if cache.is_empty() {
            let flat = |t: Tensor<B, 4>, n: usize| t.reshape([batch, seq, n * self.head_dim]);
            let shape = kernels::attention::Shape {
                batch,
                seq,
                heads: self.num_heads,
                kv_heads: self.num_kv_heads,
                head_dim: self.head_dim,
            };
            let (q, k, v) = (
                flat(q, self.num_heads),
                flat(k, self.num_kv_heads),
                flat(v, self.num_kv_heads),
            );
            let values = v.clone().detach();
            match kernels::attention::attend(q, k, v, rope.tables(), mask.as_ref(), shape) {
                Ok((out, keys)) => {
                    // The kernel's keys and values fill the cache outside the graph:
                    // a forward pass that trains never decodes from its cache.
                    let layout = |t: Tensor<B, 3>| heads(t, self.num_kv_heads).swap_dims(1, 2);
                    cache.append(layout(keys), layout(values));
                    return out;
                }
                Err([q, k, v]) => (
                    heads(q, self.num_heads),
                    heads(k, self.num_kv_heads),
                    heads(v, self.num_kv_heads),
                ),
            }
        } else {
            (q, k, v)
        };
        let q = rope.apply(q.swap_dims(1, 2));
        let (k, v) = cache.append(rope.apply(k.swap_dims(1, 2)), v.swap_dims(1, 2));
        let (k, v) = (self.share_kv_heads(k), self.share_kv_heads(v));
        // Burn aligns the causal mask to the bottom right: query `i` of `seq` sees
        // the keys up to `cached + i`, which is what a cache needs.
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let out = attention(q, k, v, mask, None, options);
        out.swap_dims(1, 2)
            .reshape([batch, seq, self.num_heads * self.head_dim])
    }

    /// Repeats each key/value head for the consecutive query heads that share it:
    /// `[b, kv_heads, s, d]` → `[b, heads, s, d]`, query head `h` reading kv head
    /// `h / (heads / kv_heads)`, as in transformers' `repeat_kv` and ggml's broadcast.
    pub(crate) fn share_kv_heads(&self, t: Tensor<B, 4>) -> Tensor<B, 4> {
        let group = self.num_heads / self.num_kv_heads;
        if group == 1 {
            return t;
        }
        let [batch, kv_heads, seq, dim] = t.dims();
        // `repeat_dim` copies whole blocks; `expand` then `reshape` would gather the
        // broadcast view element by element, which is most of a decoding step's time
        // on Flex once the cache holds a few hundred positions.
        t.unsqueeze_dim::<5>(2)
            .repeat_dim(2, group)
            .reshape([batch, kv_heads * group, seq, dim])
    }
}
