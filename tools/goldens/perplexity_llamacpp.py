#!/usr/bin/env python3
"""Golden perplexity of the reference teacher: llama-perplexity's algorithm on llama.cpp logits.

llama-cpp-python does not ship llama-perplexity, so this script follows its
`perplexity()` (tools/perplexity/perplexity.cpp) step by step, with logits from
llama.cpp itself:
- the whole text is tokenized once with add_special (BOS only where the
  vocabulary adds it) and without parsing special tokens;
- the stream is cut into floor(n / ctx) chunks of ctx tokens, each evaluated
  from position 0 in an empty KV cache; when the vocabulary adds BOS, the first
  token of every chunk is replaced by BOS;
- in each chunk the first ctx/2 positions are context only; the logits at
  positions ctx/2 .. ctx-2 score the tokens that follow them;
- a token's NLL is llama.cpp's log_softmax: max in f32, the sum of expf in
  double; ppl = exp(mean NLL), and the ± estimate is
  ppl * sqrt((mean(NLL²) - mean(NLL)²) / (count - 1)).

As in tools/goldens/logits_llamacpp.py, llama.cpp runs the Q4_1 reference model
dequantized to F32, with an F32 KV cache and without flash attention, so that
it multiplies the same weights decant dequantizes.

Output: train/tests/goldens/ppl/smollm2_ctx128_llamacpp.json, read by tests/cli_eval.rs.

    ~/.cache/decant/venv/bin/python tools/goldens/perplexity_llamacpp.py
"""

import argparse
import json
import math
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import llama_cpp
import llama_cpp.llama_cpp as llama_lib

from logits_llamacpp import default_model, dequantize_to_f32, load_llama

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "train/tests/goldens/ppl"
CTX = 128


def token_nll(logits: np.ndarray, token: int) -> float:
    """llama-perplexity's `log_softmax`, negated."""
    max_logit = logits.max()
    sum_exp = np.exp(logits - max_logit, dtype=np.float32).astype(np.float64).sum()
    return -(float(logits[token] - max_logit) - math.log(sum_exp))


def perplexity(llm: llama_cpp.Llama, tokens: list[int], ctx: int) -> dict:
    vocab = llama_lib.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_lib.llama_vocab_get_add_bos(vocab))
    bos = llama_lib.llama_vocab_bos(vocab)
    first = ctx // 2
    chunks = len(tokens) // ctx
    nll_sum, nll2_sum, count = 0.0, 0.0, 0
    chunk_nll, running_ppl = [], []
    for i in range(chunks):
        chunk = tokens[i * ctx:(i + 1) * ctx]
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:ctx], dtype=np.float32)
        values = [token_nll(logits[p], chunk[p + 1]) for p in range(first, ctx - 1)]
        nll_sum += sum(values)
        nll2_sum += sum(v * v for v in values)
        count += len(values)
        chunk_nll.append(sum(values) / len(values))
        running_ppl.append(math.exp(nll_sum / count))
        print(f"[{i + 1}]{running_ppl[-1]:.4f}", file=sys.stderr)
    mean = nll_sum / count
    ppl = math.exp(mean)
    variance = nll2_sum / count - mean * mean
    return {
        "ctx": ctx,
        "add_bos": add_bos,
        "tokens": len(tokens),
        "chunks": chunks,
        "scored": count,
        "ppl": ppl,
        "ppl_error": math.sqrt(variance / (count - 1)) * ppl,
        "nll_mean": mean,
        "chunk_nll": chunk_nll,
        "running_ppl": running_ppl,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--text", type=Path, default=GOLDENS / "prose.txt")
    parser.add_argument("--out", type=Path, default=GOLDENS / "smollm2_ctx128_llamacpp.json")
    args = parser.parse_args()

    text = args.text.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        f32_model = Path(tmp) / "model-f32.gguf"
        dequantize_to_f32(args.model, f32_model)
        llm = load_llama(f32_model)
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        result = perplexity(llm, tokens, CTX)
        del llm

    result = {
        "producer": f"llama-cpp-python {llama_cpp.__version__}, gguf {version('gguf')}",
        "model": f"{args.model.name} dequantized to F32 by gguf-py; F32 KV cache; no flash attention",
        "script": "tools/goldens/perplexity_llamacpp.py",
        "text": str(args.text.relative_to(ROOT)) if args.text.is_relative_to(ROOT) else str(args.text),
        **result,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Final estimate: PPL = {result['ppl']:.4f} +/- {result['ppl_error']:.5f}; wrote {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
