//! The tensors of a model and their names in Hugging Face and GGUF files.

/// One weight of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    TokenEmbedding,
    OutputNorm,
    Output,
    Layer(usize, LayerWeight),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerWeight {
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    OBias,
    QNorm,
    KNorm,
    FfnNorm,
    Gate,
    Up,
    Down,
    GateBias,
    UpBias,
    DownBias,
}

impl Weight {
    /// The name in a transformers checkpoint (`model.safetensors`).
    pub fn hf_name(self) -> String {
        use LayerWeight::*;
        let (layer, suffix) = match self {
            Weight::TokenEmbedding => return "model.embed_tokens.weight".into(),
            Weight::OutputNorm => return "model.norm.weight".into(),
            Weight::Output => return "lm_head.weight".into(),
            Weight::Layer(layer, w) => (
                layer,
                match w {
                    AttnNorm => "input_layernorm.weight",
                    Q => "self_attn.q_proj.weight",
                    K => "self_attn.k_proj.weight",
                    V => "self_attn.v_proj.weight",
                    O => "self_attn.o_proj.weight",
                    QBias => "self_attn.q_proj.bias",
                    KBias => "self_attn.k_proj.bias",
                    VBias => "self_attn.v_proj.bias",
                    OBias => "self_attn.o_proj.bias",
                    QNorm => "self_attn.q_norm.weight",
                    KNorm => "self_attn.k_norm.weight",
                    FfnNorm => "post_attention_layernorm.weight",
                    Gate => "mlp.gate_proj.weight",
                    Up => "mlp.up_proj.weight",
                    Down => "mlp.down_proj.weight",
                    GateBias => "mlp.gate_proj.bias",
                    UpBias => "mlp.up_proj.bias",
                    DownBias => "mlp.down_proj.bias",
                },
            ),
        };
        format!("model.layers.{layer}.{suffix}")
    }

    /// The name in a GGUF file, as llama.cpp's `LLM_TENSOR_NAMES` spells it.
    pub fn gguf_name(self) -> String {
        use LayerWeight::*;
        let (layer, suffix) = match self {
            Weight::TokenEmbedding => return "token_embd.weight".into(),
            Weight::OutputNorm => return "output_norm.weight".into(),
            Weight::Output => return "output.weight".into(),
            Weight::Layer(layer, w) => (
                layer,
                match w {
                    AttnNorm => "attn_norm.weight",
                    Q => "attn_q.weight",
                    K => "attn_k.weight",
                    V => "attn_v.weight",
                    O => "attn_output.weight",
                    QBias => "attn_q.bias",
                    KBias => "attn_k.bias",
                    VBias => "attn_v.bias",
                    OBias => "attn_output.bias",
                    QNorm => "attn_q_norm.weight",
                    KNorm => "attn_k_norm.weight",
                    FfnNorm => "ffn_norm.weight",
                    Gate => "ffn_gate.weight",
                    Up => "ffn_up.weight",
                    Down => "ffn_down.weight",
                    GateBias => "ffn_gate.bias",
                    UpBias => "ffn_up.bias",
                    DownBias => "ffn_down.bias",
                },
            ),
        };
        format!("blk.{layer}.{suffix}")
    }
}
