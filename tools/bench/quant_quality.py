#!/usr/bin/env python3
"""Benchmark table: for each quantization type, the reference teacher's size, perplexity,
KL divergence from the F32 teacher and same-top-token rate, all measured by decant
(`decant quantize`, then `decant eval --teacher F32 --metrics ppl,kld,top1`), in the
layout of llama.cpp's published quantization tables. Prints a Markdown table.

    ~/.cache/decant/venv/bin/python tools/bench/quant_quality.py \\
        [--decant target/release/decant] [--data FILE] [--ctx 128] [--types q8_0,q4_k_m,...]

Defaults: the F32 reference teacher (~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf)
and train/tests/goldens/ppl/prose.txt at context 128 (a few hundred scored tokens:
enough to rank the types, not for llama.cpp's wikitext-sized error bars).
"""

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TYPES = "f16,q8_0,q6_k,q5_k_m,q5_0,q4_k_m,q4_k_s,q4_0,iq4_nl,q3_k_m,q2_k"


def decant(binary: Path, *args: str) -> dict:
    run = subprocess.run([str(binary), *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--decant", type=Path, default=target / "release/decant")
    parser.add_argument("--model", type=Path,
                        default=Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf")
    parser.add_argument("--data", type=Path, default=ROOT / "train/tests/goldens/ppl/prose.txt")
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--types", default=TYPES)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    params = None
    rows = []
    with tempfile.TemporaryDirectory(dir=args.model.parent) as tmp:
        for ty in args.types.split(","):
            out = Path(tmp) / f"{ty}.gguf"
            q = decant(args.decant, "quantize", "--model", str(args.model), "--type", ty,
                       "--out", str(out), "--threads", str(args.threads))
            e = decant(args.decant, "eval", "--model", str(out), "--teacher", str(args.model),
                       "--data", str(args.data), "--ctx", str(args.ctx), "--metrics", "ppl,kld,top1")
            if params is None:
                params = decant(args.decant, "inspect", str(args.model))["parameters"]
            rows.append((ty, q["size"], e))
            out.unlink()
    teacher = rows[0][2]["teacher_ppl"]
    print(f"model {args.model.name}; data {args.data.name}, ctx {args.ctx}, "
          f"{rows[0][2]['kld']['count']} scored tokens; F32 PPL {teacher['value']:.4f} ± {teacher['error']:.4f}")
    print()
    print("| type | size MiB | bpw | PPL | ΔPPL % | mean KLD | median KLD | 99% KLD | same top % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ty, size, e in rows:
        ppl, kld, top = e["ppl"]["value"], e["kld"], e["top1"]
        bpw = f"{8 * size / params:.2f}"
        print(f"| {ty} | {size / 2**20:.1f} | {bpw} | {ppl:.4f} | {100 * (ppl / teacher['value'] - 1):+.2f} "
              f"| {kld['mean']:.5f} ± {kld['error']:.5f} | {kld['median']:.5f} | {kld['p99']:.4f} "
              f"| {100 * top['value']:.2f} ± {100 * top['error']:.2f} |")


if __name__ == "__main__":
    main()
