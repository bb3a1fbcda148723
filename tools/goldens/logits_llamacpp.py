#!/usr/bin/env python3
"""Golden logits of the reference teacher from llama.cpp (through llama-cpp-python).

The Q4_1 reference model is first dequantized to an F32 GGUF (gguf-py), so that
llama.cpp multiplies the same f32 weights decant dequantizes itself; its quantized
matmuls would otherwise round activations to 8 bits. The KV cache is F32 too, and
flash attention is off, so the remaining differences are float summation order.

For each text the golden stores its token ids, every position's top-k logits with
their token ids and the log-sum-exp of the whole row, and the full rows of the
first and last positions. Output: a safetensors file read by train/tests.

Run with the venv from `tools/setup-python.sh --with-llama`:
    ~/.cache/decant/venv/bin/python tools/goldens/logits_llamacpp.py
"""

import argparse
import json
import os
import struct
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import llama_cpp
import llama_cpp.llama_cpp as llama_lib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oracles"))
from gguf_f32 import dequantize_to_f32  # noqa: E402

TOP_K = 64

# Prose, code, chat markup and digits; together over 200 positions.
TEXTS = [
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France, and the"
    " capital of Italy is",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Write a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n\n"
    "# The first values, computed on 2024-03-15: 0, 1, 1, 2, 3, 5, 8, 13, 21, 34.\n"
    "for i in range(10):\n    print(i, fibonacci(i))\n"
    "Distillation trains a small student model to imitate a larger teacher: the student "
    "learns from the teacher's full output distribution rather than from one-hot labels, "
    "which carries more information per example.",
]


def default_model() -> Path:
    env = os.environ.get("DECANT_REFERENCE_MODEL")
    if env:
        return Path(env)
    return Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def load_llama(model: Path) -> llama_cpp.Llama:
    # On CPUs with AMX, llama.cpp's extra buffer types crash batches of more than
    # one token; Llama() offers no switch, so patch the defaults it starts from.
    default_params = llama_lib.llama_model_default_params

    def params_without_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = params_without_extra_bufts
    try:
        return llama_cpp.Llama(
            model_path=str(model),
            n_ctx=512,
            n_batch=512,
            n_ubatch=512,
            logits_all=True,
            flash_attn=False,
            type_k=0,
            type_v=0,
            n_threads=os.cpu_count(),
            verbose=False,
        )
    finally:
        llama_lib.llama_model_default_params = default_params


def write_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, array in tensors.items():
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[array.dtype]
        blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2]
                        / "train/tests/goldens/smollm2_logits_llamacpp.safetensors")
    args = parser.parse_args()

    tensors = {}
    with tempfile.TemporaryDirectory() as tmp:
        f32_model = Path(tmp) / "model-f32.gguf"
        dequantize_to_f32(args.model, f32_model)
        llm = load_llama(f32_model)
        for k, text in enumerate(TEXTS):
            ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            llm.reset()
            llm.eval(ids)
            logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
            top = np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K].astype(np.int32)
            row_max = logits.max(axis=1, keepdims=True).astype(np.float64)
            lse = row_max[:, 0] + np.log(np.exp(logits - row_max).sum(axis=1))
            rows = np.array([0, len(ids) - 1], dtype=np.int32)
            tensors[f"tokens.{k}"] = np.array(ids, dtype=np.int32)
            tensors[f"top_ids.{k}"] = top
            tensors[f"top_logits.{k}"] = np.take_along_axis(logits, top, axis=1)
            tensors[f"logsumexp.{k}"] = lse.astype(np.float32)
            tensors[f"row_positions.{k}"] = rows
            tensors[f"rows.{k}"] = logits[rows]
            print(f"text {k}: {len(ids)} tokens", file=sys.stderr)
        del llm

    metadata = {
        "producer": f"llama-cpp-python {llama_cpp.__version__}, gguf {version('gguf')}",
        "model": f"{args.model.name} dequantized to F32 by gguf-py; F32 KV cache; no flash attention",
        "script": "tools/goldens/logits_llamacpp.py",
        "texts": json.dumps(TEXTS),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(args.out, tensors, metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
