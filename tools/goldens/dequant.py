#!/usr/bin/env python3
"""Goldens for quantize's dequantization kernels (quantize/tests/dequant_goldens.rs).

For every non-IQ ggml type this writes, under quantize/tests/goldens/dequant/:
  <type>.bin  a few blocks of raw block bytes
  <type>.f32  the values ggml dequantizes them to, little-endian f32
The Rust test compares bit for bit.

Quant fields are random bytes; scale fields are replaced by finite values of varied
magnitude (normal, subnormal, near the f16 maximum, negative, zero) so that every
output is finite and both float paths (normal and subnormal scale) are exercised.
Plain types get their edge values (subnormals, maxima, infinities, rounding ties).

Expected values come from gguf-py (`gguf.quants.dequantize`). Where gguf-py has no
dequantizer (Q8_1, Q8_K, I8..I64, F64) they are computed here in numpy float32 with
the formula of ggml's `dequantize_row_*`, as commented at each.

  --check-ggml  also run llama.cpp's own kernels (libggml-base.so from an installed
                llama-cpp-python, `ggml_get_type_traits(type)->to_float`, or the
                exported `dequantize_row_q8_K`) and require bit equality with what
                is written. On a disagreement libggml's output is the golden and the
                difference is reported.

Run with the venv from tools/setup-python.sh (gguf==0.19.0, numpy; llama-cpp-python
for --check-ggml):
  ~/.cache/decant/venv/bin/python tools/goldens/dequant.py [--check-ggml]
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize as gguf_dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "quantize" / "tests" / "goldens" / "dequant"


def geometry(qtype: Q) -> tuple[int, int]:
    """(elements, bytes) per block. gguf-py 0.19.0 still has Q8_1's old layout with
    f32 d and s (40 bytes); ggml's block_q8_1 has two f16s (36 bytes)."""
    if qtype == Q.Q8_1:
        return 32, 36
    return GGML_QUANT_SIZES[qtype]


@dataclass(frozen=True)
class Spec:
    name: str  # ggml_type_name, also the golden's file stem
    qtype: Q
    # (byte offset in the block, kind) of each scale field to overwrite with a chosen
    # finite value; kind is "f16", "f32" or "e8m0".
    scales: tuple[tuple[int, str], ...] = ()
    n_blocks: int = 12


QUANT_SPECS = [
    Spec("q4_0", Q.Q4_0, ((0, "f16"),)),
    Spec("q4_1", Q.Q4_1, ((0, "f16"), (2, "f16"))),
    Spec("q5_0", Q.Q5_0, ((0, "f16"),)),
    Spec("q5_1", Q.Q5_1, ((0, "f16"), (2, "f16"))),
    Spec("q8_0", Q.Q8_0, ((0, "f16"),)),
    Spec("q8_1", Q.Q8_1, ((0, "f16"), (2, "f16"))),
    Spec("q2_K", Q.Q2_K, ((80, "f16"), (82, "f16")), 8),
    Spec("q3_K", Q.Q3_K, ((108, "f16"),), 8),
    Spec("q4_K", Q.Q4_K, ((0, "f16"), (2, "f16")), 8),
    Spec("q5_K", Q.Q5_K, ((0, "f16"), (2, "f16")), 8),
    Spec("q6_K", Q.Q6_K, ((208, "f16"),), 8),
    Spec("q8_K", Q.Q8_K, ((0, "f32"),), 8),
    Spec("tq1_0", Q.TQ1_0, ((52, "f16"),), 8),
    Spec("tq2_0", Q.TQ2_0, ((64, "f16"),), 8),
    Spec("mxfp4", Q.MXFP4, ((0, "e8m0"),), 16),
]

# Scales cycled through block by block (after a few random ones): f16 subnormals
# (5.96e-8 is the smallest), its largest finite value, negatives and both zeros.
F16_SCALES = [0.0123, 5.96e-8, 3.0e-5, 6.0e4, 65504.0, -0.37, -1.0e-6, 0.0, -0.0, 1.0, 2.5e-3]
# Q8_K's scale is an f32: f32 subnormals and large values (|d| < f32::MAX / 128 keeps
# every output finite).
F32_SCALES = [0.0123, 1.0e-40, 1.4e-45, 1.0e30, -2.5e36, -2.5e-3, 0.0, -0.0, 1.0]
# E8M0 exponents: both subnormal results (0, 1), 2^0 and 2^-1 (127, 128) and the
# largest whose 12 * 2^(e - 128) is still finite (252).
E8M0_SCALES = [0, 1, 2, 127, 128, 252]


def scale_bytes(kind: str, i: int, rng: np.random.Generator) -> bytes:
    if kind == "e8m0":
        e = E8M0_SCALES[i] if i < len(E8M0_SCALES) else int(rng.integers(0, 253))
        return bytes([e])
    table = F16_SCALES if kind == "f16" else F32_SCALES
    value = table[i % len(table)] if i >= 2 else float(rng.normal(0, 0.05))
    return np.array([value], dtype=np.float16 if kind == "f16" else np.float32).tobytes()


def quant_blocks(spec: Spec, rng: np.random.Generator) -> bytes:
    _, type_size = geometry(spec.qtype)
    blocks = []
    for i in range(spec.n_blocks):
        block = bytearray(rng.integers(0, 256, type_size, dtype=np.uint8).tobytes())
        for k, (offset, kind) in enumerate(spec.scales):
            # Offset the second scale's cycle so d and min combinations vary.
            value = scale_bytes(kind, (i + 3 * k) % spec.n_blocks, rng)
            block[offset : offset + len(value)] = value
        blocks.append(bytes(block))
    return b"".join(blocks)


def f16_edges(rng: np.random.Generator) -> np.ndarray:
    edges = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00]
    # Canonical quiet NaNs only: their bits survive every platform's float arithmetic.
    edges += [0x7E00, 0xFE00]
    finite = rng.integers(0, 0x7C00, 51, dtype=np.uint16) | (rng.integers(0, 2, 51, dtype=np.uint16) << 15)
    return np.concatenate([np.array(edges, dtype=np.uint16), finite])


def bf16_edges(rng: np.random.Generator) -> np.ndarray:
    edges = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81]
    finite = rng.integers(0, 0x7F80, 52, dtype=np.uint16) | (rng.integers(0, 2, 52, dtype=np.uint16) << 15)
    return np.concatenate([np.array(edges, dtype=np.uint16), finite])


def f32_edges(rng: np.random.Generator) -> np.ndarray:
    edges = [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,
             0x7F800000, 0xFF800000, 0x7FC00000]
    finite = rng.integers(0, 0x7F800000, 54, dtype=np.uint32) | (rng.integers(0, 2, 54, dtype=np.uint32) << 31)
    return np.concatenate([np.array(edges, dtype=np.uint32), finite])


def f64_edges(rng: np.random.Generator) -> np.ndarray:
    edges = [0.0, -0.0, 1.0, -1.5, 3.4028234663852886e38, 3.4028235677973366e38, 1e300, -1e300,
             1e-40, 1.401298464324817e-45, 7.006492321624085e-46, 1e-50, float("inf"), float("-inf"),
             # halfway between two f32 neighbours: ties go to even
             1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24]
    finite = rng.normal(0, 1, 48) * 10.0 ** rng.integers(-30, 30, 48)
    return np.concatenate([np.array(edges, dtype=np.float64), finite])


def int_edges(dtype: type, rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(dtype)
    edges = [0, 1, -1, info.min, info.max, info.min + 1, info.max - 1]
    if info.bits >= 32:
        # Above 2^24 not every integer is an f32: these round, ties to even.
        edges += [2**24 + 1, 2**24 + 3, -(2**24 + 1), 2**31 - 65, 2**31 - 64]
    if info.bits == 64:
        edges += [2**53 + 1, 2**62 + 2**38, 2**62 + 2**38 + 1, -(2**63) + 2**39]
    random = rng.integers(info.min, info.max, 64 - len(edges), dtype=dtype, endpoint=True)
    return np.concatenate([np.array(edges, dtype=dtype), random])


def int_to_f32(n: int) -> float:
    """Exact round-to-nearest-even of an integer to f32 (C's `(float)`), avoiding a
    double rounding through f64."""
    sign, m = (-1.0 if n < 0 else 1.0), abs(n)
    excess = max(m.bit_length() - 24, 0)
    q, r = divmod(m, 1 << excess)
    half = 1 << excess >> 1
    if excess and (r > half or (r == half and q & 1)):
        q += 1
    return sign * float(q << excess)


def plain_values(name: str, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Input bytes and expected f32 values of a plain (block size 1) type."""
    if name == "f32":
        data = f32_edges(rng).astype("<u4").tobytes()
        return data, gguf_dequantize(np.frombuffer(data, np.uint8), Q.F32)
    if name == "f16":
        data = f16_edges(rng).astype("<u2").tobytes()
        return data, gguf_dequantize(np.frombuffer(data, np.uint8), Q.F16)
    if name == "bf16":
        data = bf16_edges(rng).astype("<u2").tobytes()
        return data, gguf_dequantize(np.frombuffer(data, np.uint8), Q.BF16)
    if name == "f64":
        # Not in gguf-py: C's (float) of a double, which numpy's cast is.
        values = f64_edges(rng)
        with np.errstate(over="ignore"):  # overflow to infinity is one of the edges
            expected = values.astype(np.float32)
        return values.astype("<f8").tobytes(), expected
    # I8..I64: not in gguf-py; ggml casts by value, (float)x.
    dtype = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64}[name]
    values = int_edges(dtype, rng)
    expected = np.array([int_to_f32(int(v)) for v in values], dtype=np.float32)
    return values.astype(np.dtype(dtype).newbyteorder("<")).tobytes(), expected


def numpy_dequantize(spec: Spec, data: bytes) -> np.ndarray:
    """ggml's formula for the quant types gguf-py cannot dequantize."""
    block_size, type_size = geometry(spec.qtype)
    blocks = np.frombuffer(data, np.uint8).reshape(-1, type_size)
    if spec.qtype in (Q.Q8_1,):
        # ggml has no dequantize_row_q8_1; the Q8_0 formula y = qs * d (s is derived data).
        d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
        qs = blocks[:, 4:].view(np.int8).astype(np.float32)
        return (qs * d).reshape(-1)
    if spec.qtype == Q.Q8_K:
        # dequantize_row_q8_K: y = d * qs with an f32 d.
        d = blocks[:, 0:4].copy().view("<f4")
        qs = blocks[:, 4 : 4 + block_size].view(np.int8).astype(np.float32)
        return (d * qs).reshape(-1)
    raise ValueError(spec.name)


def golden_quant(spec: Spec, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    data = quant_blocks(spec, rng)
    if spec.qtype in (Q.Q8_1, Q.Q8_K):
        return data, numpy_dequantize(spec, data)
    return data, gguf_dequantize(np.frombuffer(data, np.uint8), spec.qtype).reshape(-1)


class Ggml:
    """llama.cpp's dequantizers from libggml-base.so, called through ctypes."""

    class TypeTraits(ctypes.Structure):
        # struct ggml_type_traits in ggml.h
        _fields_ = [
            ("type_name", ctypes.c_char_p),
            ("blck_size", ctypes.c_int64),
            ("blck_size_interleave", ctypes.c_int64),
            ("type_size", ctypes.c_size_t),
            ("is_quantized", ctypes.c_bool),
            ("to_float", ctypes.c_void_p),
            ("from_float_ref", ctypes.c_void_p),
        ]

    ToFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)

    def __init__(self) -> None:
        import llama_cpp  # noqa: PLC0415 (only needed for --check-ggml)

        path = Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"
        self.lib = ctypes.CDLL(str(path))
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(self.TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        self.path = path

    def to_float(self, qtype: Q):
        """The row dequantizer of `qtype`, or None where ggml has none."""
        traits = self.lib.ggml_get_type_traits(int(qtype)).contents
        block_size, type_size = geometry(qtype)
        assert (traits.blck_size, traits.type_size) == (block_size, type_size), qtype.name
        if traits.to_float:
            return self.ToFloat(traits.to_float)
        if qtype == Q.Q8_K:
            # Defined and exported, but not registered in the type traits.
            return self.ToFloat(ctypes.cast(self.lib.dequantize_row_q8_K, ctypes.c_void_p).value)
        return None

    def dequantize(self, qtype: Q, data: bytes) -> np.ndarray | None:
        fn = self.to_float(qtype)
        if fn is None:
            return None
        block_size, type_size = geometry(qtype)
        n = len(data) // type_size * block_size
        src = ctypes.create_string_buffer(data, len(data))
        dst = np.zeros(n, dtype=np.float32)
        fn(ctypes.addressof(src), dst.ctypes.data, n)
        return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-ggml", action="store_true", help="cross-check against libggml-base.so")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    ggml = Ggml() if args.check_ggml else None
    if ggml:
        print(f"cross-checking against {ggml.path}")
    args.out.mkdir(parents=True, exist_ok=True)

    plain = [("f32", Q.F32), ("f16", Q.F16), ("bf16", Q.BF16), ("f64", Q.F64),
             ("i8", Q.I8), ("i16", Q.I16), ("i32", Q.I32), ("i64", Q.I64)]
    jobs = [(name, qtype, None) for name, qtype in plain] + [(s.name, s.qtype, s) for s in QUANT_SPECS]
    disagreements = 0
    for name, qtype, spec in jobs:
        # One stream per type, so adding a type leaves the others' goldens unchanged.
        rng = np.random.default_rng(0xDECA + int(qtype))
        data, expected = golden_quant(spec, rng) if spec else plain_values(name, rng)
        assert expected.dtype == np.float32, (name, expected.dtype)
        checked = ""
        if ggml and (reference := ggml.dequantize(qtype, data)) is not None:
            differ = np.flatnonzero(reference.view(np.uint32) != expected.view(np.uint32))
            if differ.size:
                disagreements += 1
                i = differ[0]
                print(f"{name}: gguf-py/numpy and libggml differ at {differ.size} values, first #{i}: "
                      f"{expected[i]!r} vs libggml {reference[i]!r}; keeping libggml's", file=sys.stderr)
                expected = reference
            checked = ", equal to libggml"
        (args.out / f"{name}.bin").write_bytes(data)
        (args.out / f"{name}.f32").write_bytes(expected.astype("<f4").tobytes())
        print(f"{name}: {len(data)} bytes -> {expected.size} values{checked}")
    if disagreements:
        print(f"{disagreements} type(s) where gguf-py and libggml disagree; libggml's values written",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
