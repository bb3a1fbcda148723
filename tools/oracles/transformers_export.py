#!/usr/bin/env python3
"""transformers as the oracle for decant's Hugging Face exports.

For each exported directory, loads it with transformers (AutoConfig,
AutoTokenizer, AutoModelForCausalLM in float32), runs the tokens of a decant
`logits` file through it and compares the logits. Prints one JSON object.

    transformers_export.py DIR LOGITS.safetensors [DIR LOGITS.safetensors ...]
        LOGITS is what `decant logits --model DIR --tokens ... --out LOGITS`
        wrote for the same directory: tensors `tokens` (I32 [n]) and
        `logits` (F32 [n, vocab]).
        -> {"models": [{"dir", "class", "tokens", "max_abs_diff",
                        "argmax_equal", "chat_template_renders"}]}

Needs torch, so it is not part of the test suite (CI installs no torch):
    python3 -m venv ~/.cache/decant/torch-venv
    ~/.cache/decant/torch-venv/bin/pip install torch transformers==5.24.0 tokenizers==0.23.3 safetensors numpy
    ~/.cache/decant/torch-venv/bin/python tools/oracles/transformers_export.py ...
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def check(directory: str, logits_file: str) -> dict:
    config = AutoConfig.from_pretrained(directory)
    # The tiny test checkpoints carry weights and config only.
    has_tokenizer = (Path(directory) / "tokenizer.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(directory) if has_tokenizer else None
    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)
    model.eval()
    saved = load_file(logits_file)
    tokens = saved["tokens"].astype(np.int64)
    with torch.no_grad():
        ours = model(torch.from_numpy(tokens)[None, :]).logits[0].numpy()
    theirs = saved["logits"]
    renders = None
    if tokenizer is not None and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
        )
        renders = isinstance(text, str) and "Hello" in text
    return {
        "dir": directory,
        "class": type(model).__name__,
        "architectures": config.architectures,
        "tokens": int(tokens.shape[0]),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "argmax_equal": bool((ours.argmax(-1) == theirs.argmax(-1)).all()),
        "chat_template_renders": renders,
    }


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    pairs = zip(args[0::2], args[1::2])
    print(json.dumps({"models": [check(d, f) for d, f in pairs]}))


if __name__ == "__main__":
    main()
