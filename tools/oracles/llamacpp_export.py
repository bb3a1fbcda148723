#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) as the oracle for decant's GGUF exports.

Run by tests/cli_export.rs with the venv python named by DECANT_PYTHON
(`tools/setup-python.sh --with-llama`). Prints one JSON object on stdout.

    generate MODEL.gguf --prompt-tokens 1,2,3 --max-tokens N
        Loads the file (F32 KV cache, no flash attention, no extra buffer types:
        the AMX trap of DESIGN.md) and decodes greedily: the prompt in one batch,
        then one token at a time, each the argmax of the last position's logits,
        stopping at an end-of-generation token or after N tokens.
        -> {"tokens": [...], "stop": "eog" | "max_tokens"}

    tokenizer MODEL.gguf --hf-dir DIR --texts FILE.json
        Loads the file's vocabulary only, recording llama.cpp's log, and tokenizes
        each text (no BOS; special-token texts read as special tokens, which is
        what `tokenizers` always does with added tokens) with llama.cpp and with
        Hugging Face `tokenizers` on DIR/tokenizer.json (no special tokens added).
        -> {"log_lines": n, "pre_warnings": [log lines about the pre-tokenizer],
            "cases": [{"text": ..., "llama": [...], "hf": [...]}]}

    logits MODEL.gguf --tokens 1,2,3 [--dequantize]
        Loads the file as `generate` does and evaluates the tokens in one batch,
        returning every position's full row of logits. With --dequantize, llama.cpp
        runs instead an F32 copy of the file, every tensor dequantized by gguf-py
        (tools/oracles/gguf_f32.py) into a temporary directory: llama.cpp's
        quantized matmuls round activations to 8 bits, so only the F32 copy
        compares with weights dequantized exactly.
        -> {"n_vocab": V, "logits": [[V floats] for each position]}
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

import llama_cpp
import llama_cpp.llama_cpp as llama_lib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_f32 import dequantize_to_f32  # noqa: E402


def load(model: Path, vocab_only: bool = False) -> llama_cpp.Llama:
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
            vocab_only=vocab_only,
            verbose=False,
        )
    finally:
        llama_lib.llama_model_default_params = default_params


def generate(args) -> dict:
    llm = load(args.model)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    prompt = [int(t) for t in args.prompt_tokens.split(",")]
    llm.eval(prompt)
    tokens = []
    while True:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            return {"tokens": tokens, "stop": "eog"}
        tokens.append(token)
        if len(tokens) == args.max_tokens:
            return {"tokens": tokens, "stop": "max_tokens"}
        llm.eval([token])


def tokenizer(args) -> dict:
    import tokenizers

    log = []

    @llama_lib.llama_log_callback
    def record(level, text, user_data):
        log.append(text.decode(errors="replace"))

    llama_lib.llama_log_set(record, ctypes.c_void_p(0))
    llm = load(args.model, vocab_only=True)
    text_log = "".join(log)
    pre_warnings = [
        line for line in text_log.splitlines()
        if "pre-tokenizer" in line or "GENERATION QUALITY" in line
    ]
    hf = tokenizers.Tokenizer.from_file(str(args.hf_dir / "tokenizer.json"))
    cases = []
    for text in json.loads(args.texts.read_text()):
        ours = llm.tokenize(text.encode(), add_bos=False, special=True)
        theirs = hf.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "llama": ours, "hf": theirs})
    del llm
    return {"log_lines": len(log), "pre_warnings": pre_warnings, "cases": cases}


def logits(args) -> dict:
    ids = [int(t) for t in args.tokens.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.dequantize:
            model = Path(tmp) / "model-f32.gguf"
            dequantize_to_f32(args.model, model)
        llm = load(model)
        llm.eval(ids)
        rows = np.array(llm.scores[: len(ids)], dtype=np.float32)
        n_vocab = llm.n_vocab()
        del llm
    return {"n_vocab": n_vocab, "logits": rows.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("model", type=Path)
    g.add_argument("--prompt-tokens", required=True)
    g.add_argument("--max-tokens", type=int, required=True)
    t = sub.add_parser("tokenizer")
    t.add_argument("model", type=Path)
    t.add_argument("--hf-dir", type=Path, required=True)
    t.add_argument("--texts", type=Path, required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("model", type=Path)
    lg.add_argument("--tokens", required=True)
    lg.add_argument("--dequantize", action="store_true")
    args = parser.parse_args()
    commands = {"generate": generate, "tokenizer": tokenizer, "logits": logits}
    result = commands[args.command](args)
    result["producer"] = f"llama-cpp-python {llama_cpp.__version__}"
    json.dump(result, sys.stdout, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
