#!/usr/bin/env python3
"""Golden importance matrix from llama.cpp's own forward pass, through the eval callback
llama-imatrix installs, for machines where building llama-imatrix
(tools/goldens/imatrix_llamacpp.sh) is out of reach.

llama-imatrix is `collect_imatrix` (tools/imatrix/imatrix.cpp) hooked into the graph
scheduler as `cb_eval`, around llama-perplexity's chunking. This script installs the
same hook in libllama from llama-cpp-python and collects what collect_imatrix
collects: for every GGML_OP_MUL_MAT whose weight is named `blk.*` and whose F32
input has at least 16 rows, the per-column sum of squared input values (in f32, row
by row) and the rows summed. The text is tokenized with add_special and without
parsing special tokens; whole chunks of ctx tokens, each from an empty KV cache with
its first token replaced by BOS. It writes the file as save_imatrix lays it out
(`general.type`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`;
per weight in name order `<name>.in_sum2` [ne0] and `<name>.counts` [1], F32).

Model: the reference teacher dequantized to F32, F32 KV cache, no flash attention,
as in tools/goldens/logits_llamacpp.py. Text: train/tests/goldens/ppl/prose.txt,
recorded by that relative path; context 128.

Output: tests/goldens/imatrix/smollm2_ctx128_llamacpp.gguf

    ~/.cache/decant/venv/bin/python tools/goldens/imatrix_llamacpp_callback.py
"""

import argparse
import ctypes
import re
import sys
from pathlib import Path

import numpy as np
import gguf
import llama_cpp
import llama_cpp.llama_cpp as llama_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from logits_llamacpp import load_llama  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEXT = "train/tests/goldens/ppl/prose.txt"
F32_MODEL = Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf"
GGML_H = Path.home() / ".cache/decant/llama.cpp-build/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml/include/ggml.h"

MAX_DIMS, MAX_SRC, MAX_OP_PARAMS, MAX_NAME = 4, 10, 64, 64


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` of ggml.h (llama-cpp-python 0.3.36's vendored ggml)."""


GgmlTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * MAX_DIMS),
    ("nb", ctypes.c_size_t * MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(GgmlTensor) * MAX_SRC),
    ("view_src", ctypes.POINTER(GgmlTensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]


def ggml_op_mul_mat(header: Path) -> int:
    """GGML_OP_MUL_MAT's value, counted from `enum ggml_op` in ggml.h."""
    body = re.search(r"enum ggml_op \{(.*?)\};", header.read_text(), re.S).group(1)
    names = re.findall(r"^\s*(GGML_OP_\w+)", body, re.M)
    return names.index("GGML_OP_MUL_MAT")


def filter_name(name: str) -> str:
    """imatrix.cpp's filter_tensor_name: `CUDA0#blk.0.attn_k.weight#0` -> the weight."""
    if "#" in name:
        return name.split("#")[1]
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=F32_MODEL)
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/goldens/imatrix/smollm2_ctx128_llamacpp.gguf")
    args = parser.parse_args()
    mul_mat = ggml_op_mul_mat(GGML_H)
    stats: dict[str, list] = {}

    @llama_lib.ggml_backend_sched_eval_callback
    def collect(tensor_ptr, ask, user_data):
        t = ctypes.cast(tensor_ptr, ctypes.POINTER(GgmlTensor)).contents
        if t.op != mul_mat:
            return False
        src0, src1 = t.src[0].contents, t.src[1].contents
        name = filter_name(src0.name.decode())
        if ask:
            return src1.ne[1] >= 16 and src1.type == 0 and name.startswith("blk.")
        ne0, rows = src1.ne[0], src1.ne[1] * src1.ne[2] * src1.ne[3]
        assert src1.nb[0] == 4 and src1.nb[1] == 4 * ne0, "contiguous F32 input"
        x = np.ctypeslib.as_array((ctypes.c_float * (ne0 * rows)).from_address(src1.data)).reshape(rows, ne0)
        entry = stats.setdefault(name, [np.zeros(ne0, dtype=np.float32), 0])
        for row in x:  # f32, row by row, as collect_imatrix accumulates
            entry[0] += row * row
        entry[1] += rows
        return True

    default_ctx_params = llama_lib.llama_context_default_params

    def ctx_params_with_callback():
        params = default_ctx_params()
        params.cb_eval = collect
        params.cb_eval_user_data = None
        return params

    llama_lib.llama_context_default_params = ctx_params_with_callback
    try:
        llm = load_llama(args.model)
    finally:
        llama_lib.llama_context_default_params = default_ctx_params

    text = (ROOT / TEXT).read_text(encoding="utf-8")
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    vocab = llama_lib.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_lib.llama_vocab_get_add_bos(vocab))
    bos = llama_lib.llama_vocab_bos(vocab)
    ctx = args.ctx
    if len(tokens) < 2 * ctx:
        sys.exit(f"{TEXT}: {len(tokens)} tokens, fewer than 2 x {ctx}")
    n_chunk = len(tokens) // ctx
    for i in range(n_chunk):
        chunk = tokens[i * ctx:(i + 1) * ctx]
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
    del llm

    # An empty architecture adds no general.architecture key: llama-imatrix writes none.
    writer = gguf.GGUFWriter(args.out, arch="")
    writer.add_string("general.type", "imatrix")
    writer.add_array("imatrix.datasets", [TEXT])
    writer.add_uint32("imatrix.chunk_count", max(c for _, c in stats.values()) // ctx)
    writer.add_uint32("imatrix.chunk_size", ctx)
    for name in sorted(stats):
        sums, count = stats[name]
        writer.add_tensor(f"{name}.in_sum2", sums.astype(np.float32))
        writer.add_tensor(f"{name}.counts", np.array([count], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {args.out}: {len(stats)} entries, {n_chunk} chunks of {ctx}", file=sys.stderr)


if __name__ == "__main__":
    main()
