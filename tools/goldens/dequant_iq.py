#!/usr/bin/env python3
"""Goldens for quantize's IQ dequantization kernels (quantize/tests/dequant_iq_goldens.rs).

For IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL and IQ4_XS this
writes, under quantize/tests/goldens/dequant_iq/:
  <type>.bin  a few blocks of raw block bytes
  <type>.f32  the values ggml dequantizes them to, little-endian f32
The Rust test compares bit for bit.

Grid indices, signs and sub-block scales are random bytes, except that the first block
is all ones (the last grid entry, every sign negative, the largest sub-scales) and the
second all zeros. The f16 super-block scale is replaced by finite values of varied
magnitude (normal, subnormal, near the f16 maximum, negative, both zeros), so every
output is finite. IQ1_M has no scale field: its f16 is spread over the top nibbles of
its four 16-bit sub-scale words, which are set the same way.

Expected values come from gguf-py (`gguf.quants.dequantize`).

  --check-ggml  also run llama.cpp's own kernels (libggml-base.so from an installed
                llama-cpp-python, `ggml_get_type_traits(type)->to_float`) and require
                bit equality. On a disagreement libggml's output is the golden and the
                difference is reported.

Run with the venv from tools/setup-python.sh (gguf==0.19.0, numpy; llama-cpp-python
for --check-ggml):
  ~/.cache/decant/venv/bin/python tools/goldens/dequant_iq.py [--check-ggml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize as gguf_dequantize

from dequant import Ggml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "quantize" / "tests" / "goldens" / "dequant_iq"

# ggml_type_name -> type. Every IQ type keeps its f16 scale `d` in bytes 0..2 except IQ1_M.
TYPES = {
    "iq1_s": Q.IQ1_S,
    "iq1_m": Q.IQ1_M,
    "iq2_xxs": Q.IQ2_XXS,
    "iq2_xs": Q.IQ2_XS,
    "iq2_s": Q.IQ2_S,
    "iq3_xxs": Q.IQ3_XXS,
    "iq3_s": Q.IQ3_S,
    "iq4_nl": Q.IQ4_NL,
    "iq4_xs": Q.IQ4_XS,
}

# One per block, cycled: f16 subnormals (5.96e-8 is the smallest, 6.1035e-5 the
# smallest normal), its largest finite value, negatives and both zeros.
F16_SCALES = [0.0123, 1.0, 5.96e-8, 3.0e-5, 6.1035e-5, 6.0e4, 65504.0, -0.37, -1.0e-6, 0.0, -0.0, -2.5e-3]

# IQ4_NL blocks hold 32 values, not 256: more of them keep its golden comparable in size.
BLOCKS_PER_SCALE = {Q.IQ4_NL: 4}

# IQ1_M: offset of the 8 bytes holding four little-endian u16 sub-scale words.
IQ1M_SCALES = 48


def f16_bits(value: float) -> int:
    return int(np.array([value], dtype="<f2").view("<u2")[0])


def set_scale(block: bytearray, qtype: Q, value: float) -> None:
    if qtype != Q.IQ1_M:
        block[0:2] = f16_bits(value).to_bytes(2, "little")
        return
    # ggml assembles the f16 from the top nibble of each word, word k giving nibble k.
    bits = f16_bits(value)
    for k in range(4):
        at = IQ1M_SCALES + 2 * k
        word = int.from_bytes(block[at : at + 2], "little")
        word = (word & 0x0FFF) | (((bits >> (4 * k)) & 0xF) << 12)
        block[at : at + 2] = word.to_bytes(2, "little")


def blocks(qtype: Q, rng: np.random.Generator) -> bytes:
    _, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = len(F16_SCALES) * BLOCKS_PER_SCALE.get(qtype, 1)
    out = []
    for i in range(n_blocks):
        if i < 2:
            block = bytearray([0xFF if i == 0 else 0x00] * type_size)
        else:
            block = bytearray(rng.integers(0, 256, type_size, dtype=np.uint8).tobytes())
        set_scale(block, qtype, F16_SCALES[i % len(F16_SCALES)])
        out.append(bytes(block))
    return b"".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-ggml", action="store_true", help="cross-check against libggml-base.so")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    ggml = Ggml() if args.check_ggml else None
    if ggml:
        print(f"cross-checking against {ggml.path}")
    args.out.mkdir(parents=True, exist_ok=True)

    disagreements = 0
    for name, qtype in TYPES.items():
        # One stream per type, so adding a type leaves the others' goldens unchanged.
        rng = np.random.default_rng(0x1DECA + int(qtype))
        data = blocks(qtype, rng)
        expected = gguf_dequantize(np.frombuffer(data, np.uint8), qtype).reshape(-1)
        assert expected.dtype == np.float32, (name, expected.dtype)
        assert np.isfinite(expected).all(), name
        checked = ""
        if ggml:
            reference = ggml.dequantize(qtype, data)
            assert reference is not None, f"libggml has no dequantizer for {name}"
            differ = np.flatnonzero(reference.view(np.uint32) != expected.view(np.uint32))
            checked = ", equal to libggml"
            if differ.size:
                disagreements += 1
                checked = ", libggml's"
                i = differ[0]
                print(f"{name}: gguf-py and libggml differ at {differ.size} values, first #{i}: "
                      f"{expected[i]!r} vs libggml {reference[i]!r}; keeping libggml's", file=sys.stderr)
                expected = reference
        (args.out / f"{name}.bin").write_bytes(data)
        (args.out / f"{name}.f32").write_bytes(expected.astype("<f4").tobytes())
        print(f"{name}: {len(data)} bytes -> {expected.size} values{checked}")
    if disagreements:
        print(f"{disagreements} type(s) where gguf-py and libggml disagree; libggml's values written",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
