#!/usr/bin/env python3
"""Tiny random Hugging Face checkpoints and their logits from transformers.

For each family decant runs, builds a small model with transformers' own
classes (`LlamaForCausalLM`, `Qwen2ForCausalLM`, `Qwen3ForCausalLM`,
`MistralForCausalLM`), gives every parameter random values (biases and norm
weights included: transformers initializes those to 0 and 1, which would hide a
missing bias or norm), saves it with `save_pretrained` in float32 safetensors,
and runs a forward pass on fixed token ids with an all-ones attention mask.

Output, in train/tests/goldens/hf/ (read by train/tests/hf_transformers.rs):
- NAME/: the checkpoint as save_pretrained wrote it (config.json,
  generation_config.json, model.safetensors or shards with their index);
- NAME.logits.safetensors: `tokens` (I32 [batch, seq]) and `logits`
  (F32 [batch, seq, vocab]).

The weights are scaled so that logits spread over several units and attention
is far from uniform: a tolerance of 1e-4 then means something.

Needs torch (CPU) next to transformers in the venv; tests never do:
    ~/.cache/decant/venv/bin/pip install torch
    ~/.cache/decant/venv/bin/python tools/goldens/hf_transformers.py
"""

import argparse
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

BATCH, SEQ = 2, 24
WEIGHT_STD = 0.2

# Shared shape: GQA with 4 query heads; a vocabulary that is not a power of two.
BASE = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    hidden_act="silu",
)

# name: (model class, config class, config options, save_pretrained options)
MODELS = {
    "llama": (LlamaForCausalLM, LlamaConfig,
              dict(tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
              {}),
    # Llama 3.1's frequency scaling with all three bands inside head_dim 16
    # (wavelengths 6, 32, 167, ... against 64/4 and 64/1), and its own output head.
    "llama3_untied": (LlamaForCausalLM, LlamaConfig,
                      dict(tie_word_embeddings=False,
                           rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 64}),
                      {}),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config,
              dict(tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
              {}),
    # A head width apart from hidden / heads.
    "qwen3": (Qwen3ForCausalLM, Qwen3Config,
              dict(head_dim=24, tie_word_embeddings=True,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
              {}),
    # One key/value head, a window shorter than the sequence, and shards.
    "mistral_sharded": (MistralForCausalLM, MistralConfig,
                        dict(num_key_value_heads=1, sliding_window=8, tie_word_embeddings=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                        dict(max_shard_size="100KB")),
}


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.5 * noise)
            else:
                param.copy_(WEIGHT_STD * noise)


def build(name: str, out: Path, seed: int) -> None:
    model_class, config_class, options, save_options = MODELS[name]
    torch.manual_seed(seed)
    config = config_class(**{**BASE, **options})
    config._attn_implementation = "eager"
    model = model_class(config).to(torch.float32).eval()
    randomize(model, torch.Generator().manual_seed(seed))

    generator = torch.Generator().manual_seed(1000 + seed)
    tokens = torch.randint(0, config.vocab_size, (BATCH, SEQ), generator=generator)
    with torch.no_grad():
        logits = model(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits

    model_dir = out / name
    shutil.rmtree(model_dir, ignore_errors=True)
    model.save_pretrained(model_dir, **save_options)
    save_file(
        {"tokens": tokens.to(torch.int32).contiguous(), "logits": logits.to(torch.float32).contiguous()},
        out / f"{name}.logits.safetensors",
        # One key: safetensors writes a metadata map in no fixed order.
        metadata={"producer": f"tools/goldens/hf_transformers.py: {model_class.__name__}, "
                              f"transformers {transformers.__version__}, torch {torch.__version__}"},
    )
    print(f"{name}: {model_class.__name__}, logits std {logits.std():.2f}, "
          f"files {sorted(p.name for p in model_dir.iterdir())}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[2] / "train/tests/goldens/hf")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(MODELS):
        build(name, args.out, seed)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
