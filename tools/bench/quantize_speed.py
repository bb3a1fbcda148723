#!/usr/bin/env python3
"""Benchmark: wall time of `decant quantize` against llama.cpp's llama_model_quantize
(libllama from llama-cpp-python, through ctypes) on the same F32 model, mix and
thread count; prints both times (best of --repeats) and the ratio decant / llama.cpp.

    ~/.cache/decant/venv/bin/python tools/bench/quantize_speed.py \\
        [--decant target/release/decant] [--type q4_k_m] [--threads 2] [--repeats 3]

The model defaults to the reference teacher dequantized to F32
(~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf, written by decant's tests
or tools/goldens/quantize_llamacpp.py). Both outputs go to a temporary directory
on the same file system; each run writes a new file.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "goldens"))
from quantize_llamacpp import llama_quantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--decant", type=Path, default=target / "release/decant")
    parser.add_argument("--model", type=Path,
                        default=Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf")
    parser.add_argument("--type", default="q4_k_m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.model.parent) as tmp:
        ours, theirs = Path(tmp) / "decant.gguf", Path(tmp) / "llamacpp.gguf"

        def run_llamacpp():
            error, _ = llama_quantize(args.model, theirs, args.type, args.threads)
            if error:
                sys.exit(f"llama_model_quantize failed: {error}")

        def run_decant():
            subprocess.run([str(args.decant), "quantize", "--model", str(args.model), "--type", args.type,
                            "--out", str(ours), "--threads", str(args.threads)],
                           check=True, stdout=subprocess.DEVNULL)

        llamacpp = best_of(args.repeats, run_llamacpp)
        decant = best_of(args.repeats, run_decant)
        same = ours.read_bytes() == theirs.read_bytes()
    print(f"{args.model.name} -> {args.type}, {args.threads} threads, best of {args.repeats}")
    print(f"llama_model_quantize: {llamacpp:8.3f} s")
    print(f"decant quantize:      {decant:8.3f} s")
    print(f"ratio decant / llama.cpp: {decant / llamacpp:.3f} (below 1: decant is faster)")
    print(f"outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
