//! What a tensor is, judged from its name and shape as llama-quantize judges it:
//! whether it may be quantized at all, which rule family applies, and its layer.

/// Broad tensor roles (`tensor_category` in llama-quant.cpp). Matching is by
/// substring, so `ffn_down_exps` and `ffn_down_shexp` are both [`Category::FfnDown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Category {
    TokenEmbd,
    AttnQ,
    /// `attn_v`, `attn_qkv` and `attn_kv_b`: the ones that get more bits.
    AttnV,
    AttnK,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    /// The first match in llama.cpp's order, which matters: `attn_qkv` must be
    /// tested before `attn_v` and `attn_k`, `ffn_up` before `ffn_gate`.
    pub(super) fn of(name: &str) -> Category {
        if name == "output.weight" {
            Category::Output
        } else if is_token_embd(name) {
            Category::TokenEmbd
        } else if ["attn_qkv.weight", "attn_kv_b.weight", "attn_v.weight"]
            .iter()
            .any(|s| name.contains(s))
        {
            Category::AttnV
        } else if name.contains("attn_k.weight") {
            Category::AttnK
        } else if name.contains("attn_q.weight") {
            Category::AttnQ
        } else if name.contains("attn_output.weight") {
            Category::AttnOutput
        } else if name.contains("ffn_up") {
            Category::FfnUp
        } else if name.contains("ffn_gate") {
            Category::FfnGate
        } else if name.contains("ffn_down") {
            Category::FfnDown
        } else {
            Category::Other
        }
    }
}

/// The token embeddings, including Gemma 3n's per-layer ones.
pub fn is_token_embd(name: &str) -> bool {
    name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

/// Substrings that keep a weight in its stored type (`tensor_allows_quantization`):
/// gating and routing tables, tiny or positional tensors, convolutions.
const NEVER_QUANTIZED: [&str; 35] = [
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Whether llama-quantize would quantize this tensor: a weight of two or more
/// (non-trivial) dimensions whose name is not one of the exclusions. Positional
/// embeddings and BERT's token types are excluded by their exact names.
pub(super) fn allows_quantization(name: &str, shape: &[u64]) -> bool {
    n_dims(shape) >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !NEVER_QUANTIZED.iter().any(|s| name.contains(s))
}

/// `ggml_n_dims`: dimensions up to the last one larger than 1, at least one.
pub fn n_dims(shape: &[u64]) -> usize {
    shape
        .iter()
        .rposition(|&d| d > 1)
        .map_or(1, |last| last + 1)
}

/// The layer in a `blk.N.` name, read as C's `sscanf(name, "blk.%d.", ..)` reads it.
pub(super) fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?.trim_start();
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let value = digits[..len].bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_llama_cpp_precedence() {
        assert_eq!(Category::of("blk.0.attn_qkv.weight"), Category::AttnV);
        assert_eq!(Category::of("blk.0.attn_kv_b.weight"), Category::AttnV);
        assert_eq!(Category::of("blk.0.attn_k.weight"), Category::AttnK);
        assert_eq!(
            Category::of("blk.3.ffn_down_exps.weight"),
            Category::FfnDown
        );
        assert_eq!(Category::of("blk.3.ffn_gate_inp.weight"), Category::FfnGate);
        assert_eq!(
            Category::of("per_layer_token_embd.weight"),
            Category::TokenEmbd
        );
        assert_eq!(Category::of("output_norm.weight"), Category::Other);
    }

    #[test]
    fn exclusions() {
        assert!(allows_quantization("blk.0.attn_q.weight", &[576, 576]));
        assert!(!allows_quantization("blk.0.attn_norm.weight", &[576, 1]));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[576, 1, 1]));
        assert!(!allows_quantization("blk.0.ffn_gate_inp.weight", &[256, 8]));
        assert!(!allows_quantization("position_embd.weight", &[256, 512]));
        assert!(!allows_quantization("token_types.weight", &[256, 2]));
        assert!(!allows_quantization("blk.0.attn_q.bias", &[576, 576]));
    }

    #[test]
    fn layers_parse_like_sscanf() {
        assert_eq!(layer_of("blk.12.attn_q.weight"), Some(12));
        assert_eq!(layer_of("blk.-1.x"), Some(-1));
        assert_eq!(layer_of("blk.x.attn_q.weight"), None);
        assert_eq!(layer_of("output.weight"), None);
        assert_eq!(n_dims(&[]), 1);
        assert_eq!(n_dims(&[7, 1, 3, 1]), 3);
    }
}
