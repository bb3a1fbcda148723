#!/usr/bin/env python3
"""llama.cpp's side of train/benches/prompt_processing.rs: times llama.cpp
(through llama-cpp-python) on the token sequences the bench gives it.

Reads one JSON object on stdin:
    {"model": F32.gguf, "threads": N, "repeats": R,
     "prompts": [[ids...], ...], "generate": G}
and prints one JSON object on stdout: the best of R runs for each prompt, its
whole sequence in one batch with logits for the last position only, and for G
one-token steps after the first prompt:
    {"prompts": [{"tokens": n, "seconds": s}, ...],
     "generate": {"tokens": G, "seconds": s}}

The model is loaded as for the goldens (tools/goldens/logits_llamacpp.py): F32
KV cache, no flash attention, no extra buffer types. If the F32 file does not
exist yet it is first written from the Q4_1 reference model, dequantized by gguf-py.

Run by the bench with the venv from `tools/setup-python.sh --with-llama`.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "goldens"))

import llama_cpp  # noqa: E402
import llama_cpp.llama_cpp as llama_lib  # noqa: E402
from logits_llamacpp import default_model, dequantize_to_f32  # noqa: E402


def load(model: Path, threads: int, n_ctx: int) -> llama_cpp.Llama:
    # On CPUs with AMX, llama.cpp's extra buffer types crash batches of more
    # than one token; Llama() offers no switch, so patch its defaults.
    default_params = llama_lib.llama_model_default_params

    def params_without_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = params_without_extra_bufts
    try:
        return llama_cpp.Llama(
            model_path=str(model),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            logits_all=False,
            flash_attn=False,
            type_k=0,
            type_v=0,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    finally:
        llama_lib.llama_model_default_params = default_params


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    request = json.load(sys.stdin)
    model = Path(request["model"])
    if not model.exists():
        print(f"writing {model} from {default_model()}", file=sys.stderr)
        dequantize_to_f32(default_model(), model)
    prompts = request["prompts"]
    steps = request["generate"]
    n_ctx = max(len(p) for p in prompts) + steps
    llm = load(model, request["threads"], n_ctx)

    def prompt_pass(ids):
        llm.reset()
        llm.eval(ids)

    # One untimed pass so that first-touch page faults and thread start-up count
    # against neither side.
    prompt_pass(prompts[0])
    report = {"prompts": [], "generate": {"tokens": steps}}
    for ids in prompts:
        seconds = best_of(request["repeats"], lambda: prompt_pass(ids))
        report["prompts"].append({"tokens": len(ids), "seconds": seconds})

    def generation():
        prompt_pass(prompts[0])
        start = time.perf_counter()
        for token in prompts[0][:steps]:
            llm.eval([token])
        return time.perf_counter() - start

    report["generate"]["seconds"] = min(generation() for _ in range(request["repeats"]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
