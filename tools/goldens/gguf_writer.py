#!/usr/bin/env python3
"""Goldens for quantize's GGUF container (quantize/tests/gguf_goldens.rs).

Writes small GGUF files with gguf-py's GGUFWriter (gguf==0.19.0) plus a
description of their content, under quantize/tests/goldens/gguf/:
  metadata.gguf       every value type, edge values, unicode, nested arrays and
                      arrays of strings; no tensors (the data section is padding only)
  tensors.gguf        tensors of several ggml types and ranks (F32, F16, BF16 raw,
                      Q8_0 raw, Q4_K raw, I32, a 3-D, a 0-D and a zero-element one),
                      sizes that are not multiples of the alignment
  alignment64.gguf    general.alignment = 64 set through add_custom_alignment
  v2.gguf             a GGUFWriter file with its version field set to 2: GGUF v2 and
                      v3 share one layout (v2 introduced the 64-bit counts and lengths
                      that v1 lacked; v3 only allowed big-endian files), which is why
                      gguf-py's GGUFReader and llama.cpp read both with the same code
  empty_arrays.gguf   empty arrays of every element type, built by hand below because
                      GGUFWriter refuses empty arrays ("Empty array"); the hand encoder
                      is checked against GGUFWriter on the other files first
  goldens.json        for each file: version, alignment, data offset, length, every
                      metadata entry with its type (floats also as raw bits) and every
                      tensor's shape (ggml order), type, offset, size and data in hex
The Rust tests rebuild each file with quantize's writer and compare bytes, and read
each back checking every value; they need no Python.

Regenerate (the output is deterministic; commit it):
  bash tools/setup-python.sh
  ~/.cache/decant/venv/bin/python tools/goldens/gguf_writer.py
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGUF_DEFAULT_ALIGNMENT

OUT = Path(__file__).resolve().parents[2] / "quantize" / "tests" / "goldens" / "gguf"

# Value types by the names the JSON uses (and ValueType::name in Rust).
VTYPES = {
    "u8": GGUFValueType.UINT8,
    "i8": GGUFValueType.INT8,
    "u16": GGUFValueType.UINT16,
    "i16": GGUFValueType.INT16,
    "u32": GGUFValueType.UINT32,
    "i32": GGUFValueType.INT32,
    "f32": GGUFValueType.FLOAT32,
    "bool": GGUFValueType.BOOL,
    "string": GGUFValueType.STRING,
    "array": GGUFValueType.ARRAY,
    "u64": GGUFValueType.UINT64,
    "i64": GGUFValueType.INT64,
    "f64": GGUFValueType.FLOAT64,
}
PACK = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i",
        "f32": "<f", "bool": "<?", "u64": "<Q", "i64": "<q", "f64": "<d"}


@dataclass
class S:
    """A scalar or string value."""
    type: str
    value: object


@dataclass
class A:
    """An array; plain items are wrapped as scalars of the element type."""
    element_type: str
    items: list

    def __post_init__(self) -> None:
        self.items = [x if isinstance(x, (S, A)) else S(self.element_type, x) for x in self.items]
        for x in self.items:
            assert (x.type if isinstance(x, S) else "array") == self.element_type, x


@dataclass
class Tensor:
    name: str
    data: np.ndarray
    raw_dtype: Q | None = None


@dataclass
class Content:
    arch: str
    metadata: list[tuple[str, S | A]]
    tensors: list[Tensor]
    alignment: int | None = None  # written as general.alignment right after the architecture


def all_metadata(arch: str, alignment: int | None) -> list[tuple[str, S | A]]:
    head = [("general.architecture", S("string", arch))]
    if alignment is not None:
        head.append(("general.alignment", S("u32", alignment)))
    return head


# ---- GGUFWriter ---------------------------------------------------------------------

def raw(v: S | A) -> object:
    """The Python value GGUFWriter packs as `v`. Inside arrays of arrays GGUFWriter
    infers each inner array's element type from its first item, so only the inferable
    types may appear there."""
    if isinstance(v, S):
        return v.value
    if v.element_type == "array":
        inner = []
        for a in v.items:
            assert a.items, "GGUFWriter cannot write empty arrays"
            if a.element_type == "u8":
                inner.append(bytes(raw(x) for x in a.items))
            else:
                assert a.element_type in ("i32", "f32", "string", "bool", "array"), a.element_type
                inner.append([raw(x) for x in a.items])
        return inner
    return [raw(x) for x in v.items]


def write_with_gguf_writer(path: Path, c: Content) -> None:
    w = GGUFWriter(path, c.arch)  # adds general.architecture first
    if c.alignment is not None:
        w.add_custom_alignment(c.alignment)
    for key, v in c.metadata:
        if isinstance(v, A):
            assert v.items, "GGUFWriter cannot write empty arrays"
            w.add_key_value(key, raw(v), GGUFValueType.ARRAY, sub_type=VTYPES[v.element_type])
        else:
            w.add_key_value(key, v.value, VTYPES[v.type])
    for t in c.tensors:
        w.add_tensor(t.name, t.data, raw_dtype=t.raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- Hand encoder (for what GGUFWriter cannot write) --------------------------------

def enc_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def enc_untyped(v: S | A) -> bytes:
    if isinstance(v, A):
        return (struct.pack("<IQ", VTYPES[v.element_type], len(v.items))
                + b"".join(enc_untyped(x) for x in v.items))
    if v.type == "string":
        return enc_str(v.value)
    return struct.pack(PACK[v.type], v.value)


def pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def tensor_layout(c: Content) -> list[tuple[list[int], Q, int, bytes]]:
    """(ggml shape, type, offset, data) per tensor, laid out as GGUFWriter does."""
    from gguf.quants import quant_shape_from_byte_shape
    align = c.alignment or GGUF_DEFAULT_ALIGNMENT
    out, offset = [], 0
    for t in c.tensors:
        shape = list(t.data.shape)
        if t.raw_dtype is not None:
            ggml_type = t.raw_dtype
            shape = list(quant_shape_from_byte_shape(shape, t.raw_dtype))
        else:
            ggml_type = {np.dtype(np.float32): Q.F32, np.dtype(np.float16): Q.F16,
                         np.dtype(np.int32): Q.I32}[t.data.dtype]
        data = t.data.tobytes()
        out.append((shape[::-1], ggml_type, offset, data))
        offset += pad(len(data), align)
    return out


def encode_by_hand(c: Content) -> bytes:
    align = c.alignment or GGUF_DEFAULT_ALIGNMENT
    kvs = all_metadata(c.arch, c.alignment) + c.metadata
    layout = tensor_layout(c)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(layout), len(kvs)))
    for key, v in kvs:
        out += enc_str(key) + struct.pack("<I", VTYPES[v.type if isinstance(v, S) else "array"])
        out += enc_untyped(v)
    for t, (shape, ggml_type, offset, _) in zip(c.tensors, layout):
        out += enc_str(t.name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", ggml_type, offset)
    out += bytes(pad(len(out), align) - len(out))
    for _, _, _, data in layout:
        out += data + bytes(pad(len(data), align) - len(data))
    return bytes(out)


# ---- Description --------------------------------------------------------------------

def describe_value(v: S | A) -> dict:
    if isinstance(v, A):
        return {"type": "array", "element_type": v.element_type,
                "items": [describe_value(x) for x in v.items]}
    d = {"type": v.type}
    if v.type in ("f32", "f64"):
        # Exact bits as written (the f32 ones rounded from the Python float by struct);
        # JSON has no NaN or infinity, so those carry only the bits.
        bits = struct.pack(PACK[v.type], v.value)[::-1].hex()
        d["bits"] = bits
        if math.isfinite(v.value):
            d["value"] = struct.unpack(PACK[v.type], struct.pack(PACK[v.type], v.value))[0]
    else:
        d["value"] = v.value
    return d


def describe(name: str, data: bytes, c: Content, version: int, written_by: str) -> dict:
    r = GGUFReader(OUT / name)  # gguf-py must accept every golden
    assert r.alignment == (c.alignment or GGUF_DEFAULT_ALIGNMENT)
    kvs = all_metadata(c.arch, c.alignment) + c.metadata
    assert [f.name for f in r.fields.values()][3:] == [k for k, _ in kvs]
    layout = tensor_layout(c)
    assert len(r.tensors) == len(layout)
    for rt, (shape, ggml_type, offset, t_data) in zip(r.tensors, layout):
        assert rt.tensor_type == ggml_type and rt.shape.tolist() == shape
        assert rt.data_offset - r.data_offset == offset
        assert bytes(data[rt.data_offset:rt.data_offset + len(t_data)]) == t_data
    return {
        "file": name,
        "written_by": written_by,
        "version": version,
        "alignment": c.alignment or GGUF_DEFAULT_ALIGNMENT,
        "data_offset": int(r.data_offset),
        "file_len": len(data),
        "metadata": [{"key": k, "value": describe_value(v)} for k, v in kvs],
        "tensors": [
            {"name": t.name, "shape": shape, "type": ggml_type.name.lower(), "type_id": int(ggml_type),
             "offset": offset, "n_bytes": len(t_data), "data_hex": t_data.hex()}
            for t, (shape, ggml_type, offset, t_data) in zip(c.tensors, layout)
        ],
    }


# ---- Content ------------------------------------------------------------------------

def metadata_content() -> Content:
    return Content(arch="decant-golden", tensors=[], metadata=[
        ("golden.u8", S("u8", 255)),
        ("golden.i8", S("i8", -128)),
        ("golden.u16", S("u16", 65535)),
        ("golden.i16", S("i16", -32768)),
        ("golden.u32", S("u32", 4294967295)),
        ("golden.i32", S("i32", -2147483648)),
        ("golden.f32", S("f32", 1.5)),
        ("golden.f32_rounded", S("f32", 0.1)),
        ("golden.f32_negative_zero", S("f32", -0.0)),
        ("golden.f32_max", S("f32", 3.4028234663852886e38)),
        ("golden.f32_subnormal", S("f32", 1e-45)),
        ("golden.f32_infinity", S("f32", math.inf)),
        ("golden.bool_true", S("bool", True)),
        ("golden.bool_false", S("bool", False)),
        ("golden.string", S("string", "hello")),
        ("golden.string_empty", S("string", "")),
        ("golden.string_unicode", S("string", "héllo wörld ✓ 日本語 🦀")),
        ("golden.string_escapes", S("string", "tab\tnewline\nquote\"nul\x00end")),
        ("golden.ключ.ユニコード", S("string", "a unicode key")),
        ("golden.u64", S("u64", 18446744073709551615)),
        ("golden.i64", S("i64", -9223372036854775808)),
        ("golden.f64", S("f64", 0.1)),
        ("golden.f64_tiny", S("f64", -2.5e-308)),
        ("golden.f64_nan", S("f64", math.nan)),
        ("golden.array.u8", A("u8", [0, 1, 255])),
        ("golden.array.i8", A("i8", [-128, 0, 127])),
        ("golden.array.u16", A("u16", [0, 65535])),
        ("golden.array.i16", A("i16", [-32768, 32767])),
        ("golden.array.u32", A("u32", [1, 2, 4294967295])),
        ("golden.array.i32", A("i32", [-1, 0, 2147483647])),
        ("golden.array.f32", A("f32", [0.5, -1.25, 100000.0])),
        ("golden.array.bool", A("bool", [True, False, True])),
        ("golden.array.string", A("string", ["<|endoftext|>", "", "Ġt", "日本", "🦀🦀"])),
        ("golden.array.u64", A("u64", [0, 18446744073709551615])),
        ("golden.array.i64", A("i64", [-9223372036854775808, 9223372036854775807])),
        ("golden.array.f64", A("f64", [1e300, -0.0, 2.5])),
        ("golden.nested.i32", A("array", [A("i32", [1, 2]), A("i32", [3])])),
        ("golden.nested.strings", A("array", [A("string", ["a", "b"]), A("string", ["ç"])])),
        ("golden.nested.mixed", A("array", [A("i32", [7]), A("string", ["x"]),
                                            A("f32", [0.25]), A("bool", [False]),
                                            A("u8", [1, 2, 3])])),
        ("golden.nested.deep", A("array", [A("array", [A("array", [A("i32", [42])])]),
                                           A("array", [A("i32", [1, 2]), A("string", ["z"])])])),
    ])


def tensors_content() -> Content:
    rng = np.random.default_rng(20261125)
    return Content(arch="decant-golden", metadata=[
        ("general.name", S("string", "tensors golden")),
        ("golden.count", S("u32", 9)),
    ], tensors=[
        Tensor("f32_2d", (np.arange(30, dtype=np.float32) * 0.5 - 3).reshape(6, 5)),
        Tensor("f16_1d", np.array([0.0, 1.0, -2.5, 65504.0, 6.1e-5, -0.0, 3.14], dtype=np.float16)),
        Tensor("q8_0.weight", rng.integers(0, 256, (3, 2 * 34), dtype=np.uint8), Q.Q8_0),
        Tensor("empty", np.zeros((0, 4), dtype=np.float32)),
        Tensor("q4_k.weight", rng.integers(0, 256, (1, 144), dtype=np.uint8), Q.Q4_K),
        Tensor("f32_3d", np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8),
        Tensor("scalar", np.array(2.75, dtype=np.float32)),
        Tensor("bf16_raw", rng.integers(0, 256, (2, 8), dtype=np.uint8), Q.BF16),
        Tensor("i32_vec", np.array([-1, 0, 1, 2**31 - 1, -2**31], dtype=np.int32)),
    ])


def alignment64_content() -> Content:
    rng = np.random.default_rng(64)
    return Content(arch="decant-golden", alignment=64, metadata=[
        ("general.name", S("string", "alignment 64")),
        ("golden.after_alignment", S("i32", -64)),
    ], tensors=[
        Tensor("three_f32", np.array([1.0, 2.0, 3.0], dtype=np.float32)),
        Tensor("q8_0.weight", rng.integers(0, 256, (1, 34), dtype=np.uint8), Q.Q8_0),
        Tensor("f16_3d", (np.arange(24, dtype=np.float32) - 12).astype(np.float16).reshape(2, 3, 4)),
    ])


def v2_content() -> Content:
    return Content(arch="llama", metadata=[
        ("llama.block_count", S("u32", 2)),
        ("tokenizer.ggml.tokens", A("string", ["<s>", "</s>", "hi"])),
    ], tensors=[
        Tensor("token_embd.weight", (np.arange(12, dtype=np.float32) - 6).reshape(3, 4)),
    ])


def empty_arrays_content() -> Content:
    return Content(arch="decant-golden", tensors=[], metadata=[
        *((f"golden.empty.{t}", A(t, [])) for t in VTYPES),
        ("golden.nested.with_empty", A("array", [A("u32", []), A("string", ["x"]), A("array", [])])),
    ])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = []
    for name, content in [("metadata.gguf", metadata_content()),
                          ("tensors.gguf", tensors_content()),
                          ("alignment64.gguf", alignment64_content())]:
        with tempfile.TemporaryDirectory() as tmp:
            write_with_gguf_writer(Path(tmp) / name, content)
            data = (Path(tmp) / name).read_bytes()
        assert encode_by_hand(content) == data, f"hand encoder disagrees with GGUFWriter on {name}"
        (OUT / name).write_bytes(data)
        files.append(describe(name, data, content, 3, "GGUFWriter"))

    content = v2_content()
    with tempfile.TemporaryDirectory() as tmp:
        write_with_gguf_writer(Path(tmp) / "v2.gguf", content)
        data = bytearray((Path(tmp) / "v2.gguf").read_bytes())
    assert data[4:8] == struct.pack("<I", 3)
    data[4:8] = struct.pack("<I", 2)
    (OUT / "v2.gguf").write_bytes(data)
    files.append(describe("v2.gguf", bytes(data), content, 2, "GGUFWriter, version field set to 2"))

    content = empty_arrays_content()
    data = encode_by_hand(content)
    (OUT / "empty_arrays.gguf").write_bytes(data)
    files.append(describe("empty_arrays.gguf", data, content, 3, "hand encoder (GGUFWriter refuses empty arrays)"))

    doc = {"generator": "tools/goldens/gguf_writer.py", "gguf_py_version": "0.19.0", "files": files}
    (OUT / "goldens.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    for f in files:
        print(f"{f['file']}: {f['file_len']} bytes, {len(f['metadata'])} keys, {len(f['tensors'])} tensors")


if __name__ == "__main__":
    main()
