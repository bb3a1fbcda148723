#!/usr/bin/env python3
"""Goldens for quantize's quantization kernels (quantize/tests/quantize_goldens.rs).

The reference is llama.cpp's own `ggml_quantize_chunk`, called through ctypes in
the libggml-base.so that llama-cpp-python installs. Written under
quantize/tests/goldens/quantize/:

  inputs.f32            every case's rows (nrows * n_per_row values), one case
                        after another, little-endian f32
  imatrix.f32           every case's importance weights (n_per_row each), likewise
  <type>.bin            ggml_quantize_chunk(type, rows, imatrix=NULL) of every case
                        the type's block size allows, one after another
  <type>.imatrix.bin    the same with the case's importance weights
  manifest.json         where each piece is:
      {"cases":   [{"name", "n_per_row", "nrows", "values_at", "imatrix_at"}],
       "goldens": [{"type", "case", "imatrix", "file", "at", "len"}]}
      with offsets in values (inputs) or bytes (goldens) and types by ggml
      name (`q4_K`).

F32, F16, BF16 and Q8_0 ignore the importance matrix, so they have no
`.imatrix.bin`; the test checks that theirs equal the plain ones.

Cases mix the content real tensors have and the corners the kernels branch on:
normal and heavy-tailed (Student t) weights, a lone giant outlier, all-zero and
constant rows, all-positive and all-negative rows, sparse rows, 1e-8 and
subnormal scales, and values up to the f16 maximum. Row lengths are 256 and 512
for every type and 32 and 64 for the 32-element block types. Importance weights
are positive and log-normal, a tenth of them zero. One more case, fma-traps-256,
holds values on which a fused multiply-add would change a Q4_0, Q4_1, Q5_0 or
Q5_1 level (see LEGACY_FMA), to pin down that llama.cpp does not fuse them.

gguf-py (`gguf.quants.quantize`) implements Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
BF16 in numpy; its bytes are compared with libggml's and any difference is
reported (libggml's are the goldens). With gguf==0.19.0 they agree on every
case, the subnormal ones included (there `1/d` overflows to inf and both turn the
resulting inf and NaN quants into 0).

Run with the venv from tools/setup-python.sh --with-llama:
  ~/.cache/decant/venv/bin/python tools/goldens/quantize_ggml.py
"""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
from pathlib import Path

import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quantize as gguf_quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "quantize" / "tests" / "goldens" / "quantize"

# Types by ggml_type_name, in GgmlType order.
TYPES = {
    "f32": Q.F32,
    "f16": Q.F16,
    "bf16": Q.BF16,
    "q4_0": Q.Q4_0,
    "q4_1": Q.Q4_1,
    "q5_0": Q.Q5_0,
    "q5_1": Q.Q5_1,
    "q8_0": Q.Q8_0,
    "q2_K": Q.Q2_K,
    "q3_K": Q.Q3_K,
    "q4_K": Q.Q4_K,
    "q5_K": Q.Q5_K,
    "q6_K": Q.Q6_K,
    "iq4_nl": Q.IQ4_NL,
    "iq4_xs": Q.IQ4_XS,
}
IGNORE_IMATRIX = {"f32", "f16", "bf16", "q8_0"}
GGUF_PY = {"bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"}


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def cases(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Case name -> rows (nrows, n_per_row), all finite."""
    out: dict[str, np.ndarray] = {}
    for n in (32, 64, 256, 512):
        rows = 4 if n <= 256 else 2

        def normal(scale: float = 0.02) -> np.ndarray:
            return f32(rng.normal(0.0, scale, (rows, n)))

        out[f"normal-{n}"] = normal()
        out[f"student-t-{n}"] = f32(rng.standard_t(3.0, (rows, n)) * 0.03)
        outlier = normal()
        for r in range(rows):
            outlier[r, rng.integers(n)] = (-1) ** r * 40.0
        out[f"outlier-{n}"] = outlier
        zeros_and_constants = np.zeros((4, n), np.float32)
        zeros_and_constants[1] = 0.25
        zeros_and_constants[2] = -3.0
        zeros_and_constants[3, n // 2 :] = 1e-3
        out[f"flat-{n}"] = zeros_and_constants
        signs = np.abs(normal(1.0))
        signs[1] = -signs[1]
        if rows > 2:
            # One sign per 16 values, then a sparse row.
            signs[2] *= np.repeat(rng.choice([-1.0, 1.0], n // 16), 16)
            signs[3] *= rng.random(n) < 0.05
        out[f"signs-{n}"] = f32(signs)
        out[f"tiny-{n}"] = normal(1e-8)
        out[f"subnormal-{n}"] = f32(rng.normal(0.0, 1e-39, (2, n)))
        huge = normal(1e4)
        huge[0, rng.integers(n)] = 65000.0
        out[f"huge-{n}"] = f32(np.clip(huge, -65000.0, 65000.0))
    out["fma-traps-256"] = np.stack(
        [np.concatenate([fma_sensitive_block(rng, *t) for _ in range(8)]) for t in LEGACY_FMA]
    )
    return out


# The legacy reference quantizers compute `x * id + c` (Q4_0, Q5_0) or
# `(x - min) * id + c` (Q4_1, Q5_1) and truncate. A compiler that fused the
# multiply-add would round once instead of twice and, for products a hair off a
# level boundary, store the neighbouring level. Random data almost never lands
# there, so the fma-traps case plants one such value in every block; row r is
# aimed at LEGACY_FMA[r] = (c, divisor of d, whether the type has a min).
LEGACY_FMA = [(8.5, -8, False), (0.5, 15, True), (16.5, -16, False), (0.5, 31, True)]


def fma_sensitive_block(rng: np.random.Generator, c: float, divisor: int, uses_min: bool) -> np.ndarray:
    """32 values of which one quantizes differently with and without FMA."""
    c32 = np.float32(c)
    while True:
        x = f32(rng.normal(0.0, 1.0, 32))
        if uses_min:
            lo, hi = x.min(), x.max()
            d = np.float32((hi - lo) / np.float32(divisor))
        else:
            lo, hi = np.float32(0), x[np.argmax(np.abs(x))]
            d = np.float32(hi / np.float32(divisor))
        idv = np.float32(np.float32(1) / d)
        for level in rng.permutation(np.arange(1, abs(divisor))):
            # A value whose product lands next to `level - c`, so that the sum with
            # c is next to the truncation boundary `level`.
            guess = np.float32((np.float64(level) - c) / np.float64(idv) + np.float64(lo))
            for step in range(-4, 5):
                v = np.float32(guess + step * np.spacing(guess))
                if not (lo < v < hi if uses_min else abs(v) < abs(hi)):
                    continue
                diff = np.float32(v - lo)
                twice = np.trunc(np.float32(diff * idv) + c32)
                once = np.trunc(np.float32(np.float64(diff) * np.float64(idv) + c))
                if twice != once:
                    spare = [i for i in range(32) if x[i] != lo and x[i] != hi]
                    x[rng.choice(spare)] = v
                    return x


def imatrix(rng: np.random.Generator, n: int) -> np.ndarray:
    w = f32(np.exp(rng.normal(0.0, 1.0, n)))
    w[rng.random(n) < 0.1] = 0.0
    return w


class Ggml:
    """`ggml_quantize_chunk` and `ggml_row_size` from libggml-base.so."""

    def __init__(self) -> None:
        path = Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"
        self.lib = ctypes.CDLL(str(path))
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_void_p,
        ]
        self.lib.ggml_row_size.restype = ctypes.c_size_t
        self.lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]

    def quantize(self, qtype: Q, rows: np.ndarray, imat: np.ndarray | None) -> bytes:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        nrows, n_per_row = rows.shape
        size = nrows * self.lib.ggml_row_size(int(qtype), n_per_row)
        dst = ctypes.create_string_buffer(size)
        imat_ptr = None
        if imat is not None:
            imat = np.ascontiguousarray(imat, dtype=np.float32)
            imat_ptr = imat.ctypes.data
        written = self.lib.ggml_quantize_chunk(
            int(qtype), rows.ctypes.data, dst, 0, nrows, n_per_row, imat_ptr
        )
        assert written == size, (qtype, written, size)
        return dst.raw


def compare_gguf_py(name: str, case: str, rows: np.ndarray, golden: bytes) -> str | None:
    """How gguf-py's bytes differ from libggml's, or None when they are equal."""
    with np.errstate(all="ignore"):  # the subnormal cases overflow 1/d on purpose
        ours = gguf_quantize(rows, TYPES[name]).tobytes()
    if ours == golden:
        return None
    block, size = GGML_QUANT_SIZES[TYPES[name]]
    a, b = np.frombuffer(ours, np.uint8), np.frombuffer(golden, np.uint8)
    at = np.flatnonzero(a != b)
    blocks = sorted({int(i) // size for i in at})
    first = blocks[0]
    return (
        f"{name} {case}: gguf-py differs in {len(blocks)} of {len(a) // size} blocks; "
        f"first block {first} (values {first * block}..{(first + 1) * block}): "
        f"gguf-py {a[first * size:(first + 1) * size].tobytes().hex()} "
        f"libggml {b[first * size:(first + 1) * size].tobytes().hex()}"
    )


def main() -> int:
    rng = np.random.default_rng(20251125)
    ggml = Ggml()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    manifest: dict[str, list] = {"cases": [], "goldens": []}
    inputs: list[np.ndarray] = []
    imatrices: list[np.ndarray] = []
    outputs: dict[str, bytearray] = {}
    differences: list[str] = []
    for case, rows in cases(rng).items():
        nrows, n = rows.shape
        imat = imatrix(rng, n)
        manifest["cases"].append(
            {
                "name": case,
                "n_per_row": n,
                "nrows": nrows,
                "values_at": sum(a.size for a in inputs),
                "imatrix_at": sum(a.size for a in imatrices),
            }
        )
        inputs.append(rows)
        imatrices.append(imat)
        for name, qtype in TYPES.items():
            if n % GGML_QUANT_SIZES[qtype][0]:
                continue
            for with_imatrix in (False, True):
                golden = ggml.quantize(qtype, rows, imat if with_imatrix else None)
                if with_imatrix and name in IGNORE_IMATRIX:
                    assert golden == ggml.quantize(qtype, rows, None), (name, case)
                    continue
                file = f"{name}{'.imatrix' if with_imatrix else ''}.bin"
                out = outputs.setdefault(file, bytearray())
                manifest["goldens"].append(
                    {
                        "type": name,
                        "case": case,
                        "imatrix": with_imatrix,
                        "file": file,
                        "at": len(out),
                        "len": len(golden),
                    }
                )
                out += golden
                if name in GGUF_PY and not with_imatrix:
                    difference = compare_gguf_py(name, case, rows, golden)
                    if difference:
                        differences.append(difference)

    np.concatenate([a.ravel() for a in inputs]).astype("<f4").tofile(OUT / "inputs.f32")
    np.concatenate(imatrices).astype("<f4").tofile(OUT / "imatrix.f32")
    for file, data in outputs.items():
        (OUT / file).write_bytes(data)
    # One entry a line: diffs of a regenerated manifest stay readable.
    sections = (
        f' "{key}": [\n' + ",\n".join(f"  {json.dumps(entry)}" for entry in entries) + "\n ]"
        for key, entries in manifest.items()
    )
    (OUT / "manifest.json").write_text("{\n" + ",\n".join(sections) + "\n}\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(
        f"{len(manifest['cases'])} cases, {len(manifest['goldens'])} goldens, "
        f"{total / 1e6:.2f} MB in {OUT.relative_to(ROOT)}",
        file=sys.stderr,
    )
    for difference in differences:
        print(difference, file=sys.stderr)
    print(f"gguf-py differs from libggml in {len(differences)} (type, case) pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
