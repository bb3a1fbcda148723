"""A GGUF rewritten with every tensor in F32, by the reference gguf-py code.

llama.cpp's quantized matmuls round activations to 8 bits; to compare against
weights dequantized exactly, llama.cpp runs an F32 copy of the file instead.
Shared by tools/oracles/llamacpp_export.py and the goldens (tools/goldens/).
"""

from pathlib import Path

import gguf
import numpy as np


def dequantize_to_f32(src: Path, dst: Path) -> None:
    """Writes to `dst` a copy of the GGUF `src` whose tensors are all F32: the same
    tensors in the same order under the same names and shapes, every type gguf-py
    can dequantize (F16, BF16, the legacy and K-quants, the IQ types), and all
    metadata key/values (tokenizer arrays included) copied in order, with
    general.file_type set to ALL_F32."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        if name == "general.file_type":
            value = int(gguf.LlamaFileType.ALL_F32)
        if name == "general.alignment":
            writer.data_alignment = int(value)
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, vtype, sub_type)
    for tensor in reader.tensors:
        # The reader's shape is in ggml order (innermost first); numpy's is reversed.
        # Quantized data comes as bytes per row, dequantized to elements per row,
        # so the reshape is what restores every dimension, whatever the rank.
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        shape = [int(d) for d in reversed(tensor.shape)]
        writer.add_tensor(tensor.name, np.ascontiguousarray(values, dtype=np.float32).reshape(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
