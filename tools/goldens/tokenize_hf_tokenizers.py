#!/usr/bin/env python3
"""Golden tokenizations from Hugging Face `tokenizers`, for datasets/tests/tokenize_hf.rs.

Builds the reference teacher's tokenizer.json (SmolLM2's layout: byte-level BPE
with single-digit splitting, its control tokens as special added tokens) from
the GGUF's vocabulary and merges, and records what Python's `tokenizers` gives
for the texts of tokenize_llamacpp.json. The Rust test fills the same skeleton
from the same GGUF and loads it through `Tokenizer::from_hf_dir`.

    ~/.cache/decant/venv/bin/python tools/goldens/tokenize_hf_tokenizers.py
"""
import json
import os
from pathlib import Path

import tokenizers
from gguf import GGUFReader

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "datasets/tests/goldens"
OUT = GOLDENS / "tokenize_hf_tokenizers.json"
CACHE = Path(os.environ.get("DECANT_CACHE", Path.home() / ".cache/decant"))
REFERENCE = Path(os.environ.get("DECANT_REFERENCE_MODEL", CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))

CONTROL = 3

# tokenizer.json less "added_tokens" (the control tokens), "model.vocab" and
# "model.merges", which come from the GGUF.
SKELETON = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "normalizer": None,
    "pre_tokenizer": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    },
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
    },
}


def tokenizer_json():
    reader = GGUFReader(REFERENCE)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    added = [
        {
            "id": index,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for index, (token, kind) in enumerate(zip(tokens, types))
        if kind == CONTROL
    ]
    model = dict(SKELETON["model"], vocab={token: index for index, token in enumerate(tokens)}, merges=merges)
    return dict(SKELETON, added_tokens=added, model=model)


def main():
    llamacpp = json.loads((GOLDENS / "tokenize_llamacpp.json").read_text())
    smollm = next(model for model in llamacpp["models"] if model["name"] == "smollm")
    texts = [case["text"] for case in smollm["cases"]] + llamacpp["fuzz_texts"]
    llamacpp_ids = [case["ids_parse_special"] for case in smollm["cases"]] + smollm["fuzz_ids"]

    parsing = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json()))
    literal = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json()))
    literal.encode_special_tokens = True
    cases = []
    for text in texts:
        ids = parsing.encode(text, add_special_tokens=False).ids
        cases.append(
            {
                "text": text,
                "ids": literal.encode(text, add_special_tokens=False).ids,
                "ids_parse_special": ids,
                "decoded": parsing.decode(ids, skip_special_tokens=True),
                "decoded_special": parsing.decode(ids, skip_special_tokens=False),
            }
        )
    golden = {
        "generator": "tools/goldens/tokenize_hf_tokenizers.py",
        "tokenizers": tokenizers.__version__,
        "skeleton": SKELETON,
        "control_token_type": CONTROL,
    }
    head = json.dumps(golden, ensure_ascii=False)
    body = ",\n".join("  " + json.dumps(case, ensure_ascii=False) for case in cases)
    OUT.write_text(head[:-1] + ', "cases": [\n' + body + "\n]}\n")
    agree = sum(case["ids_parse_special"] == ids for case, ids in zip(cases, llamacpp_ids))
    print(f"wrote {OUT}: {len(cases)} texts; tokenizers and llama.cpp agree on {agree}")


if __name__ == "__main__":
    main()
