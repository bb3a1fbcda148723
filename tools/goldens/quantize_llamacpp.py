#!/usr/bin/env python3
"""Goldens for decant's whole-model quantization (quantize/tests/mix_*.rs and
tests/cli_quantize.rs): llama.cpp's `llama_model_quantize` run on F32 models, with
the per-tensor type every mix chooses and the bytes it writes.

Models (all F32, every one written here with gguf-py's GGUFWriter):
  smollm2   the reference teacher (SmolLM2-135M-Instruct Q4_1, llama, hidden 576,
            30 layers, GQA 3, tied embeddings) dequantized with gguf.quants, all
            metadata copied in order, general.file_type set to 0 in place. Written to
            ~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf (~540 MB, never
            committed); decant's tests rebuild it byte for byte with decant's own
            dequantizer and writer and check its sha256 against the one recorded here.
  tiny      a random llama: hidden 256, FFN 512, vocab 512, 8 layers, 4 heads over 1
            KV head (GQA 4), untied output. Every row length divides 256, so the
            K-quant rules run without fallbacks.
  moe       a random llama with 8 experts (3-D expert tensors, the n_expert == 8
            rules), types only.
  odd_ffn   a random llama whose FFN is 200 wide: ffn_down rows fit neither 256 nor
            32, so K-quants fall back to F16 and the legacy types fail. Types only.
The random models' values come from a counter-based splitmix64 described at
`values()`, simple enough that the Rust tests regenerate the same files (their
sha256 is recorded too).

For each model and run (a mix, optionally --pure, an imatrix, or the output /
token-embedding type overrides) goldens/mix/llamacpp.json records the tensors in
llama.cpp's output order with their types (or the error llama.cpp gave), and for
the runs decant's end-to-end tests repeat, the output file's size and sha256 and
the first 16 hex digits of each tensor's data sha256, plus the metadata written.

Imatrix runs use an imatrix GGUF (the format llama-imatrix writes: `<name>.in_sum2`
and `<name>.counts` tensors, `imatrix.*` keys) generated here; its per-column
weights are computed as llama-quantize's `load_imatrix` does (sum / count, 1 where
the count is 0) and handed to llama_model_quantize together with the
`quantize.imatrix.*` keys llama-quantize adds through kv_overrides, the file named
`imatrix.gguf` as on a command line run in its directory.

Run (needs the venv of tools/setup-python.sh --with-llama and the reference model):
  ~/.cache/decant/venv/bin/python tools/goldens/quantize_llamacpp.py [--threads N]
It also prints llama_model_quantize's wall time for smollm2 -> q4_k_m.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "quantize" / "tests" / "goldens" / "mix" / "llamacpp.json"
CACHE = Path(os.environ.get("DECANT_CACHE", Path.home() / ".cache" / "decant"))
REFERENCE = Path(os.environ.get("DECANT_REFERENCE_MODEL", CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
F32_COPY = CACHE / "models" / "SmolLM2-135M-Instruct.F32.gguf"

# llama-quantize's names for the mixes decant supports, with their llama_ftype ids.
FTYPES = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9,
    "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15,
    "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "q2_k_s": 21, "iq4_nl": 25, "iq4_xs": 30,
    "bf16": 32,
}
# ggml_type ids of the types used as overrides.
GGML_TYPE_IDS = {"q8_0": 8, "q4_K": 12, "q6_K": 14}

# Runs whose bytes are recorded (decant's end-to-end tests repeat them).
SMOLLM2_BYTES = ["q4_k_m", "q5_k_m", "q8_0", "q4_0", "q6_k", "q3_k_m", "q2_k"]


def ggml_name(t: Q) -> str:
    """ggml_type_name: lower case, K-quants with a capital K."""
    name = t.name.lower()
    return name[:-2] + "_K" if name.endswith("_k") else name


# ---------------------------------------------------------------------------
# Deterministic values (mirrored in quantize/tests/mix_common/mod.rs).
# ---------------------------------------------------------------------------

GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(seed: int, n: int) -> np.ndarray:
    """The n outputs of splitmix64 started at state `seed`: for i in 0..n,
    z = seed + (i+1)*GAMMA, then the usual two xor-shift-multiplies and a final
    xor-shift (all wrapping u64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit(seed: int, n: int) -> np.ndarray:
    """Uniform f32 in [-1, 1): the top 24 bits k of each output, (k - 2^23) * 2^-23
    (exact in f32)."""
    k = (splitmix64(seed, n) >> np.uint64(40)).astype(np.int64) - (1 << 23)
    return k.astype(np.float32) * np.float32(2.0**-23)


def values(index: int, n: int, norm: bool) -> np.ndarray:
    """Tensor `index` (position in the file) of n elements, seed (index+1) << 32.
    Norms: 1 + v/8. Weights: (v*v*v + v/4) / 8, every 97th element times 8; each
    step rounded to f32 in this order."""
    v = unit((index + 1) << 32, n)
    if norm:
        return np.float32(1.0) + v * np.float32(0.125)
    w = (v * v * v + v * np.float32(0.25)) * np.float32(0.125)
    w[::97] *= np.float32(8.0)
    return w


def random_llama(
    path: Path, *, name: str, hidden: int, ffn: int, vocab: int, layers: int, heads: int,
    kv_heads: int, tied: bool, experts: int = 0, expert_ffn: int = 0,
) -> None:
    head_dim = hidden // heads
    w = GGUFWriter(str(path), "llama")
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", 0)
    w.add_uint32("llama.block_count", layers)
    w.add_uint32("llama.context_length", 256)
    w.add_uint32("llama.embedding_length", hidden)
    w.add_uint32("llama.feed_forward_length", ffn)
    w.add_uint32("llama.attention.head_count", heads)
    w.add_uint32("llama.attention.head_count_kv", kv_heads)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("llama.rope.dimension_count", head_dim)
    w.add_uint32("llama.vocab_size", vocab)
    if experts:
        w.add_uint32("llama.expert_count", experts)
        w.add_uint32("llama.expert_used_count", 2)

    # (name, ggml shape, is_norm)
    shapes: list[tuple[str, list[int], bool]] = [("token_embd.weight", [hidden, vocab], False)]
    for i in range(layers):
        b = f"blk.{i}."
        shapes += [
            (b + "attn_norm.weight", [hidden], True),
            (b + "attn_q.weight", [hidden, hidden], False),
            (b + "attn_k.weight", [hidden, kv_heads * head_dim], False),
            (b + "attn_v.weight", [hidden, kv_heads * head_dim], False),
            (b + "attn_output.weight", [hidden, hidden], False),
            (b + "ffn_norm.weight", [hidden], True),
        ]
        if experts:
            shapes += [
                (b + "ffn_gate_inp.weight", [hidden, experts], False),
                (b + "ffn_gate_exps.weight", [hidden, expert_ffn, experts], False),
                (b + "ffn_up_exps.weight", [hidden, expert_ffn, experts], False),
                (b + "ffn_down_exps.weight", [expert_ffn, hidden, experts], False),
            ]
        else:
            shapes += [
                (b + "ffn_gate.weight", [hidden, ffn], False),
                (b + "ffn_up.weight", [hidden, ffn], False),
                (b + "ffn_down.weight", [ffn, hidden], False),
            ]
    shapes.append(("output_norm.weight", [hidden], True))
    if not tied:
        shapes.append(("output.weight", [hidden, vocab], False))

    for index, (tname, shape, norm) in enumerate(shapes):
        n = int(np.prod(shape))
        w.add_tensor(tname, values(index, n, norm).reshape(list(reversed(shape))))
    write(w)


def write(w: GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def imatrix_for(model: Path, path: Path) -> None:
    """An imatrix GGUF as llama-imatrix writes it, for every matmul weight of
    `model` (2-D+ `.weight` tensors other than norms and token_embd), in file order.
    Entry e: in_sum2 = (v*v + 1/64) * 64 with v = unit((1000+e) << 32, ne0*n_mat),
    counts = 64 per matrix, except the last entry, whose counts are 0 (a tensor that
    saw no input: llama-quantize then uses weights of 1)."""
    r = GGUFReader(str(model))
    names = [
        (t.name, int(t.shape[0]), int(t.shape[2]) if len(t.shape) > 2 else 1)
        for t in r.tensors
        if len(t.shape) >= 2 and t.name.endswith(".weight") and "_norm" not in t.name
        and t.name != "token_embd.weight" and "ffn_gate_inp" not in t.name
    ]
    w = GGUFWriter(str(path), "llama")
    del w.kv_data[0]["general.architecture"]
    w.add_string("general.type", "imatrix")
    w.add_array("imatrix.datasets", ["decant-tiny.txt"])
    w.add_uint32("imatrix.chunk_count", 4)
    w.add_uint32("imatrix.chunk_size", 512)
    for e, (name, ne0, n_mat) in enumerate(names):
        v = unit((1000 + e) << 32, ne0 * n_mat)
        sums = (v * v + np.float32(1.0 / 64)) * np.float32(64.0)
        count = 0.0 if e == len(names) - 1 else 64.0
        w.add_tensor(name + ".in_sum2", sums.reshape(n_mat, ne0))
        w.add_tensor(name + ".counts", np.full((n_mat, 1), count, dtype=np.float32))
    write(w)


def load_imatrix(path: Path) -> tuple[dict[str, np.ndarray], list[str], int]:
    """llama-quantize's load_imatrix for the GGUF format."""
    r = GGUFReader(str(path))
    sums, counts = {}, {}
    for t in r.tensors:
        if t.name.endswith(".in_sum2"):
            sums[t.name[: -len(".in_sum2")]] = np.array(t.data, dtype=np.float32).reshape(-1, int(t.shape[0]))
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = np.array(t.data, dtype=np.float32).reshape(-1)
    data = {}
    for name in sorted(sums):
        s, c = sums[name], counts[name]
        e = np.ones_like(s)
        for j in range(s.shape[0]):
            if c[j] > 0:
                e[j] = s[j] / np.float32(c[j])
        data[name] = e.reshape(-1)
    datasets = [str(bytes(r.fields["imatrix.datasets"].parts[i]), "utf-8") for i in r.fields["imatrix.datasets"].data]
    chunks = int(r.fields["imatrix.chunk_count"].contents())
    return data, datasets, chunks


# ---------------------------------------------------------------------------
# The reference teacher, dequantized.
# ---------------------------------------------------------------------------

def field_value(f: gguf.ReaderField):
    return f.contents()


def write_f32_copy(src: Path, dst: Path) -> None:
    r = GGUFReader(str(src))
    arch = field_value(r.fields["general.architecture"])
    w = GGUFWriter(str(dst) + ".part", arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        val = 0 if key == "general.file_type" else field_value(f)
        w.add_key_value(key, val, vtype, sub_type=sub)
    for t in r.tensors:
        if t.tensor_type == Q.F32:
            data = np.array(t.data, dtype=np.float32)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
        w.add_tensor(t.name, data.reshape(list(reversed([int(d) for d in t.shape]))))
    write(w)
    os.replace(str(dst) + ".part", dst)


# ---------------------------------------------------------------------------
# llama.cpp
# ---------------------------------------------------------------------------

@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):
    pass


def llama_quantize(src: Path, dst: Path, mix: str, threads: int, *, pure: bool = False,
                   imatrix: Path | None = None, output_type: str | None = None,
                   embd_type: str | None = None) -> tuple[str | None, int]:
    """Runs llama_model_quantize; returns its error text (None on success) and the
    number of tensors it reported as needing a fallback type."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = FTYPES[mix]
    params.pure = pure
    if output_type:
        params.output_tensor_type = GGML_TYPE_IDS[output_type]
    if embd_type:
        params.token_embedding_type = GGML_TYPE_IDS[embd_type]
    keep = []
    if imatrix is not None:
        data, datasets, chunks = load_imatrix(imatrix)
        entries = (llama_cpp.llama_model_imatrix_data * (len(data) + 1))()
        for i, (name, vals) in enumerate(data.items()):
            arr = np.ascontiguousarray(vals, dtype=np.float32)
            keep.append(arr)
            entries[i].name = name.encode()
            entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = arr.size
        keep.append(entries)
        params.imatrix = entries
        # What llama-quantize adds for `--imatrix imatrix.gguf`.
        kvs = [("quantize.imatrix.file", 3, "imatrix.gguf")]
        if datasets:
            kvs.append(("quantize.imatrix.dataset", 3, datasets[0]))
        kvs.append(("quantize.imatrix.entries_count", 0, len(data)))
        if chunks > 0:
            kvs.append(("quantize.imatrix.chunks_count", 0, chunks))
        overrides = (llama_cpp.llama_model_kv_override * (len(kvs) + 1))()
        for i, (key, tag, val) in enumerate(kvs):
            overrides[i].tag = tag
            overrides[i].key = key.encode()
            if tag == 3:
                overrides[i].value.val_str = val.encode()[:127]
            else:
                overrides[i].value.val_i64 = val
        keep.append(overrides)
        params.kv_overrides = overrides

    messages: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level, text, user_data):
        messages.append(text.decode(errors="replace"))

    llama_cpp.llama_log_set(collect, None)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    llama_cpp.llama_log_set(_quiet, None)
    fallbacks = [re.search(r"(\d+) of \d+ tensor\(s\) required fallback", m) for m in messages]
    n_fallback = next((int(m.group(1)) for m in fallbacks if m), 0)
    if rc == 0:
        return None, n_fallback
    errors = [m for m in messages if "failed to quantize" in m]
    error = errors[-1].split("failed to quantize: ", 1)[-1] if errors else "".join(messages[-3:])
    return error.strip(), n_fallback


def describe_input(path: Path) -> dict:
    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def key(name: str, default: int) -> int:
        f = r.fields.get(f"{arch}.{name}")
        return int(f.contents()) if f is not None else default

    n_head = key("attention.head_count", 0)
    return {
        "hparams": {
            "arch": arch,
            "n_layer": key("block_count", 0),
            "n_head": n_head,
            "n_head_kv": key("attention.head_count_kv", n_head),
            "n_expert": key("expert_count", 0),
        },
        "tensors": [[t.name, [int(d) for d in t.shape], ggml_name(t.tensor_type)] for t in r.tensors],
    }


def metadata_of(r: GGUFReader) -> list:
    out = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        vtype = f.types[0]
        if vtype == GGUFValueType.ARRAY:
            out.append([key, "array", {"type": f.types[-1].name.lower(), "len": len(f.data)}])
        else:
            val = f.contents()
            if isinstance(val, float):
                val = float(np.float32(val)) if vtype == GGUFValueType.FLOAT32 else val
            out.append([key, vtype.name.lower(), val])
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def describe_output(path: Path, with_bytes: bool) -> dict:
    r = GGUFReader(str(path))
    out = {
        "names": [t.name for t in r.tensors],
        "types": [ggml_name(t.tensor_type) for t in r.tensors],
    }
    if with_bytes:
        raw = np.memmap(str(path), dtype=np.uint8, mode="r")
        out["file_size"] = os.path.getsize(path)
        out["file_sha256"] = sha256_file(path)
        out["tensor_sha256_16"] = [
            hashlib.sha256(raw[t.data_offset : t.data_offset + t.n_bytes].tobytes()).hexdigest()[:16]
            for t in r.tensors
        ]
        out["metadata"] = metadata_of(r)
    return out


def run_all(model: Path, runs: list[dict], threads: int, tmp: Path) -> dict:
    results = {}
    for run in runs:
        name = run["name"]
        out = tmp / f"{name}.gguf"
        t0 = time.perf_counter()
        err, n_fallback = llama_quantize(model, out, run["mix"], threads, pure=run.get("pure", False),
                             imatrix=run.get("imatrix"), output_type=run.get("output_tensor_type"),
                             embd_type=run.get("token_embedding_type"))
        dt = time.perf_counter() - t0
        rec = {k: (True if k == "imatrix" else v) for k, v in run.items() if k != "name" and k != "bytes"}
        if err is not None:
            rec["error"] = err
        else:
            rec["n_fallback"] = n_fallback
            desc = describe_output(out, run.get("bytes", False))
            rec.update(desc)
            out.unlink()
        print(f"  {name:24s} {dt:7.2f}s {'error: ' + err if err else ''}", file=sys.stderr)
        results[name] = rec
    return results


def hoist_names(model: dict) -> None:
    """Every run writes the tensors in the same order: keep that list once."""
    lists = [run.pop("names") for run in model["runs"].values() if "names" in run]
    assert all(names == lists[0] for names in lists)
    model["output_order"] = lists[0]


def mix_runs(bytes_for: list[str] | bool) -> list[dict]:
    return [{"name": m, "mix": m, "bytes": bytes_for is True or m in bytes_for} for m in FTYPES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_quiet, None)

    golden: dict = {
        "generator": "tools/goldens/quantize_llamacpp.py",
        "llama_cpp_python": llama_cpp.__version__,
        "gguf": "0.19.0",
        "models": {},
    }

    with tempfile.TemporaryDirectory(prefix="decant-mix-") as tmpdir:
        tmp = Path(tmpdir)

        # smollm2
        if not F32_COPY.exists():
            print(f"writing {F32_COPY}", file=sys.stderr)
            write_f32_copy(REFERENCE, F32_COPY)
        print("smollm2", file=sys.stderr)
        runs = mix_runs(SMOLLM2_BYTES)
        runs = [r for r in runs if r["mix"] != "q2_k_s"]
        runs.append({"name": "q4_k_m+pure", "mix": "q4_k_m", "pure": True})
        t0 = time.perf_counter()
        assert llama_quantize(F32_COPY, tmp / "timing.gguf", "q4_k_m", args.threads)[0] is None
        timing = time.perf_counter() - t0
        (tmp / "timing.gguf").unlink()
        golden["models"]["smollm2"] = {
            "f32_sha256": sha256_file(F32_COPY),
            "f32_size": os.path.getsize(F32_COPY),
            **describe_input(F32_COPY),
            "runs": run_all(F32_COPY, runs, args.threads, tmp),
        }

        # tiny
        tiny = tmp / "tiny.gguf"
        random_llama(tiny, name="decant tiny llama", hidden=256, ffn=512, vocab=512, layers=8,
                     heads=4, kv_heads=1, tied=False)
        imatrix = tmp / "imatrix.gguf"
        imatrix_for(tiny, imatrix)
        print("tiny", file=sys.stderr)
        runs = mix_runs(True)
        runs = [r for r in runs if r["mix"] != "q2_k_s"]
        runs += [
            {"name": "q4_k_m+pure", "mix": "q4_k_m", "pure": True, "bytes": True},
            {"name": "q4_k_m+overrides", "mix": "q4_k_m", "output_tensor_type": "q8_0",
             "token_embedding_type": "q4_K", "bytes": True},
        ]
        runs += [
            {"name": f"{m}+imatrix", "mix": m, "imatrix": imatrix, "bytes": True}
            for m in ["q2_k_s", "q4_k_m", "q4_0", "iq4_xs", "iq4_nl"]
        ]
        golden["models"]["tiny"] = {
            "f32_sha256": sha256_file(tiny),
            "imatrix_sha256": sha256_file(imatrix),
            **describe_input(tiny),
            "runs": run_all(tiny, runs, args.threads, tmp),
        }

        # moe
        moe = tmp / "moe.gguf"
        random_llama(moe, name="decant tiny moe", hidden=256, ffn=256, vocab=256, layers=4,
                     heads=4, kv_heads=4, tied=True, experts=8, expert_ffn=256)
        print("moe", file=sys.stderr)
        golden["models"]["moe"] = {
            **describe_input(moe),
            "runs": run_all(moe, [r for r in mix_runs([]) if r["mix"] != "q2_k_s"], args.threads, tmp),
        }

        # odd_ffn
        odd = tmp / "odd.gguf"
        random_llama(odd, name="decant odd ffn", hidden=256, ffn=200, vocab=256, layers=2,
                     heads=4, kv_heads=2, tied=True)
        print("odd_ffn", file=sys.stderr)
        golden["models"]["odd_ffn"] = {
            **describe_input(odd),
            "runs": run_all(odd, [r for r in mix_runs([]) if r["mix"] != "q2_k_s"], args.threads, tmp),
        }

    for model in golden["models"].values():
        hoist_names(model)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    print(f"llama_model_quantize smollm2 F32 -> q4_k_m, {args.threads} threads: {timing:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
