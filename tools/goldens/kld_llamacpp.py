#!/usr/bin/env python3
"""Golden KL divergence of the reference teacher quantized to Q4_K_M: llama-perplexity's
KL-divergence mode (tools/perplexity/perplexity.cpp) on llama.cpp's logits, for
tests/cli_eval.rs.

llama-cpp-python does not ship llama-perplexity, and building it
(tools/goldens/imatrix_llamacpp.sh --build-only) takes longer than a golden run
should on small machines; so, as tools/goldens/perplexity_llamacpp.py does for
perplexity, this follows perplexity.cpp step by step on logits from libllama:
- the teacher: the Q4_1 reference model dequantized to F32
  (~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf, which decant's tests
  rebuild byte for byte); the model: that file quantized to Q4_K_M by
  llama_model_quantize, then dequantized to F32 by gguf-py, so llama.cpp multiplies
  F32 activations by the weights decant dequantizes from the Q4_K_M file;
- the teacher's tokens (add_special, no special parsing) cut into whole chunks of
  ctx, BOS first in each, each from an empty F32 KV cache, no flash attention;
- `--kl-divergence-base`: per scored position (ctx/2 .. ctx-2) the teacher's
  log-probabilities as 16-bit levels over the 16 nats below the maximum
  (`log_softmax` with `log_prob`, `nearest_int`);
- `--kl-divergence`: per token the model's NLL (f32), the teacher's from its
  levels, KL = sum over levels above -16 of p_base (log p_base - log p), same top
  token; then mean ± uncertainty, sorted-value median and interpolated percentiles.
Arithmetic is in f32 where perplexity.cpp's is, sums of exp in f64.

Output: tests/goldens/kld/smollm2_q4_k_m_ctx128_llamacpp.json

    ~/.cache/decant/venv/bin/python tools/goldens/kld_llamacpp.py
"""

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import llama_cpp
import llama_cpp.llama_cpp as llama_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from logits_llamacpp import dequantize_to_f32, load_llama  # noqa: E402
from quantize_llamacpp import llama_quantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEACHER = Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf"
TEXT = "train/tests/goldens/ppl/prose.txt"
CTX = 128
f32 = np.float32


def nearest_int(values: np.ndarray) -> np.ndarray:
    """ggml's nearest_int: add 1.5 * 2^23 in f32, read the mantissa."""
    bits = (values.astype(f32) + f32(12582912.0)).view(np.int32)
    return (bits & 0x007FFFFF) - 0x00400000


def encode_base(logits: np.ndarray):
    """perplexity.cpp's log_softmax(n_vocab, logits, log_prob, tok): scale, min_log_prob, levels."""
    max_logit, min_logit = logits.max(), logits.min()
    min_logit = max(min_logit, f32(max_logit - f32(16)))
    sum_exp = np.exp(logits - max_logit, dtype=f32).astype(np.float64).sum()
    log_sum_exp = f32(math.log(sum_exp))
    min_log_prob = f32(f32(min_logit - max_logit) - log_sum_exp)
    scale = f32(f32(max_logit - min_logit) / f32(65535.0))
    if scale:
        inv_scale = f32(f32(1) / scale)
        levels = np.where(logits > min_logit, nearest_int(inv_scale * (logits - min_logit)), 0).astype(np.uint16)
    else:
        levels = np.zeros(len(logits), dtype=np.uint16)
    return scale, min_log_prob, levels


def token_kld(logits: np.ndarray, base, tok: int):
    """perplexity.cpp's log_softmax(n_vocab, logits, base_log_prob, tok, kld)."""
    scale, min_log_prob, levels = base
    imax = int(np.argmax(logits))
    max_logit = logits[imax]
    sum_exp = np.exp(logits - max_logit, dtype=f32).astype(np.float64).sum()
    log_sum_exp = f32(math.log(sum_exp))
    nll = f32(f32(max_logit + log_sum_exp) - logits[tok])
    p_log_base = (scale * levels.astype(f32) + min_log_prob).astype(f32)
    nll_base = -p_log_base[tok]
    norm = f32(max_logit + log_sum_exp)
    keep = p_log_base > f32(-16)
    terms = np.exp(p_log_base[keep]) * ((p_log_base[keep] - logits[keep]) + norm)
    kld = terms.astype(np.float32).astype(np.float64).sum()
    return float(nll), float(nll_base), kld, imax == int(np.argmax(p_log_base))


def mean_and_uncertainty(total: float, total2: float, count: int):
    mean = total / count
    var = total2 / count - mean * mean
    return mean, math.sqrt(var / (count - 1)) if var > 0 and count > 10 else 0.0


def percentile(values: np.ndarray, fraction: float) -> float:
    p = f32(fraction) * f32(len(values) - 1)
    ip = int(p)
    p = f32(p - f32(ip))
    return float((f32(1) - p) * values[ip] + p * values[min(ip + 1, len(values) - 1)])


def chunk_logits(model: Path, tokens: list[int], bos: int | None, ctx: int) -> list[np.ndarray]:
    llm = load_llama(model)
    first = ctx // 2
    out = []
    for i in range(len(tokens) // ctx):
        chunk = tokens[i * ctx:(i + 1) * ctx]
        if bos is not None:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        out.append(np.array(llm.scores[first:ctx - 1], dtype=f32))
    del llm
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "tests/goldens/kld/smollm2_q4_k_m_ctx128_llamacpp.json")
    args = parser.parse_args()
    if not TEACHER.is_file():
        sys.exit(f"missing {TEACHER}: run tools/goldens/quantize_llamacpp.py or the decant tests first")

    text = (ROOT / TEXT).read_text(encoding="utf-8")
    llm = load_llama(TEACHER)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    vocab = llama_lib.llama_model_get_vocab(llm.model)
    bos = llama_lib.llama_vocab_bos(vocab) if llama_lib.llama_vocab_get_add_bos(vocab) else None
    del llm
    teacher = chunk_logits(TEACHER, tokens, bos, CTX)
    with tempfile.TemporaryDirectory(dir=TEACHER.parent) as tmp:
        quant, quant_f32 = Path(tmp) / "q4_k_m.gguf", Path(tmp) / "q4_k_m-f32.gguf"
        error, _ = llama_quantize(TEACHER, quant, "q4_k_m", args.threads)
        if error:
            sys.exit(f"llama_model_quantize failed: {error}")
        dequantize_to_f32(quant, quant_f32)
        model = chunk_logits(quant_f32, tokens, bos, CTX)

    first = CTX // 2
    sums = dict(nll=0.0, nll2=0.0, base=0.0, base2=0.0, kld=0.0, kld2=0.0)
    klds, same_top = [], 0
    for i, (t_rows, m_rows) in enumerate(zip(teacher, model)):
        targets = tokens[i * CTX + first + 1:(i + 1) * CTX]
        for t_row, m_row, tok in zip(t_rows, m_rows, targets):
            nll, nll_base, kld, same = token_kld(m_row, encode_base(t_row), tok)
            sums["nll"] += nll
            sums["nll2"] += nll * nll
            sums["base"] += nll_base
            sums["base2"] += nll_base * nll_base
            sums["kld"] += kld
            sums["kld2"] += kld * kld
            klds.append(kld)
            same_top += same
    count = len(klds)
    values = np.sort(np.array(klds, dtype=f32))
    half = count // 2
    median = 0.5 * (values[half] + values[half - 1]) if count % 2 == 0 else values[half]
    log_ppl = mean_and_uncertainty(sums["nll"], sums["nll2"], count)
    log_base = mean_and_uncertainty(sums["base"], sums["base2"], count)
    kld_mean = mean_and_uncertainty(sums["kld"], sums["kld2"], count)
    top = same_top / count
    result = {
        "producer": f"llama-perplexity's KL-divergence algorithm on llama-cpp-python {llama_cpp.__version__} logits",
        "script": "tools/goldens/kld_llamacpp.py",
        "teacher": TEACHER.name,
        "model": "the teacher quantized to q4_k_m by llama_model_quantize, dequantized to F32 by gguf-py",
        "text": TEXT,
        "ctx": CTX,
        "tokens": len(tokens),
        "chunks": len(teacher),
        "count": count,
        "ppl": math.exp(log_ppl[0]),
        "ppl_error": math.exp(log_ppl[0]) * log_ppl[1],
        "teacher_ppl": math.exp(log_base[0]),
        "teacher_ppl_error": math.exp(log_base[0]) * log_base[1],
        "kld_mean": kld_mean[0],
        "kld_mean_error": kld_mean[1],
        "kld_max": float(values[-1]),
        "kld_p99_9": percentile(values, 0.999),
        "kld_p99": percentile(values, 0.99),
        "kld_p95": percentile(values, 0.95),
        "kld_p90": percentile(values, 0.90),
        "kld_median": float(median),
        "kld_min": float(values[0]),
        "same_top_percent": 100 * top,
        "same_top_percent_error": 100 * math.sqrt(top * (1 - top) / (count - 1)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
