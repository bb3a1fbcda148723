#!/usr/bin/env python3
"""Golden KL divergence of the reference teacher quantized to Q4_K_M, from llama.cpp's
own llama-perplexity in its KL-divergence mode, for tests/cli_eval.rs.

Steps:
- build llama-perplexity from llama-cpp-python's source distribution
  (tools/goldens/imatrix_llamacpp.sh --build-only);
- the teacher: the Q4_1 reference model dequantized to F32
  (~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf, which decant's tests
  rebuild byte for byte);
- the model: that F32 file quantized to Q4_K_M by llama.cpp's llama_model_quantize
  (2 threads), then dequantized to F32 by gguf-py, so llama.cpp multiplies F32
  activations by the weights decant dequantizes from the Q4_K_M file (llama.cpp's
  quantized matmuls would quantize activations to 8 bits);
- `llama-perplexity --kl-divergence-base` on the teacher, then
  `--kl-divergence` on the model; context 128, F32 KV cache, no flash attention;
  text train/tests/goldens/ppl/prose.txt. Its summary is parsed into the golden.

Output: tests/goldens/kld/smollm2_q4_k_m_ctx128_llamacpp.json

    ~/.cache/decant/venv/bin/python tools/goldens/kld_llamacpp.py
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from logits_llamacpp import dequantize_to_f32  # noqa: E402
from quantize_llamacpp import llama_quantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", Path.home() / ".cache/decant/llama.cpp-build"))
TEACHER = Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf"
TEXT = "train/tests/goldens/ppl/prose.txt"
CTX = 128
NUMBER = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"

# llama-perplexity's summary lines and the golden's keys.
PATTERNS = {
    "ppl": rf"Mean PPL\(Q\)\s*:\s*{NUMBER}\s*±\s*{NUMBER}",
    "teacher_ppl": rf"Mean PPL\(base\)\s*:\s*{NUMBER}\s*±\s*{NUMBER}",
    "kld_mean": rf"Mean\s+KLD:\s*{NUMBER}\s*±\s*{NUMBER}",
    "kld_max": rf"Maximum KLD:\s*{NUMBER}",
    "kld_p99_9": rf"99\.9%\s+KLD:\s*{NUMBER}",
    "kld_p99": rf"99\.0%\s+KLD:\s*{NUMBER}",
    "kld_p95": rf"95\.0%\s+KLD:\s*{NUMBER}",
    "kld_p90": rf"90\.0%\s+KLD:\s*{NUMBER}",
    "kld_median": rf"Median\s+KLD:\s*{NUMBER}",
    "kld_min": rf"Minimum KLD:\s*{NUMBER}",
    "same_top_percent": rf"Same top p:\s*{NUMBER}\s*±\s*{NUMBER}\s*%",
}


def perplexity(model: Path, *extra: str, threads: int) -> str:
    cmd = [str(BUILD / "build/bin/llama-perplexity"), "-m", str(model), "-f", TEXT,
           "-c", str(CTX), "-t", str(threads), "-ctk", "f32", "-ctv", "f32", "-fa", "off", *extra]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-4000:]}")
    return run.stdout + run.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "tests/goldens/kld/smollm2_q4_k_m_ctx128_llamacpp.json")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "tools/goldens/imatrix_llamacpp.sh"), "--build-only"], check=True)
    if not TEACHER.is_file():
        sys.exit(f"missing {TEACHER}: run tools/goldens/quantize_llamacpp.py or the decant tests first")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        quant, quant_f32, base = tmp / "q4_k_m.gguf", tmp / "q4_k_m-f32.gguf", tmp / "base.kld"
        error, _ = llama_quantize(TEACHER, quant, "q4_k_m", args.threads)
        if error:
            sys.exit(f"llama_model_quantize failed: {error}")
        dequantize_to_f32(quant, quant_f32)
        perplexity(TEACHER, "--kl-divergence-base", str(base), threads=args.threads)
        log = perplexity(quant_f32, "--kl-divergence-base", str(base), "--kl-divergence",
                         threads=args.threads)

    result = {
        "producer": f"llama-perplexity from llama-cpp-python {llama_cpp.__version__}'s llama.cpp",
        "script": "tools/goldens/kld_llamacpp.py",
        "teacher": f"{TEACHER.name}",
        "model": "the teacher quantized to q4_k_m by llama_model_quantize, dequantized to F32",
        "text": TEXT,
        "ctx": CTX,
    }
    for key, pattern in PATTERNS.items():
        match = re.search(pattern, log)
        if not match:
            sys.exit(f"no '{key}' in llama-perplexity's output:\n{log[-4000:]}")
        result[key] = float(match.group(1))
        if match.lastindex and match.lastindex > 1:
            result[f"{key}_error"] = float(match.group(2))
    chunks = re.findall(r"^\s*(\d+)\s+[0-9.]+ ±", log, re.MULTILINE)
    result["chunks"] = int(chunks[-1]) if chunks else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
