#!/usr/bin/env python3
"""Golden tokenizations from llama.cpp, for datasets/tests/tokenize_llamacpp.rs.

Tokenizes a varied corpus and seeded random texts with llama.cpp (through
llama-cpp-python's `Llama.tokenize`, which is `llama_tokenize`) for the reference
teacher and for llama.cpp's own vocabulary-only GGUF files (one per pre-tokenizer
family), and records the ids, `llama_detokenize` of them, the special-token ids,
the end-of-generation set and a hash of every token's piece.

    ~/.cache/decant/venv/bin/python tools/goldens/tokenize_llamacpp.py

Needs the venv from `tools/setup-python.sh --with-llama`, the reference model
(`tools/fetch-reference-model.sh`, or DECANT_REFERENCE_MODEL) and the vocabularies
(`tools/fetch-llamacpp-vocabs.sh`, or DECANT_LLAMACPP_VOCABS).
"""
import ctypes
import hashlib
import json
import os
import random
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "datasets/tests/goldens/tokenize_llamacpp.json"
CACHE = Path(os.environ.get("DECANT_CACHE", Path.home() / ".cache/decant"))
REFERENCE = Path(os.environ.get("DECANT_REFERENCE_MODEL", CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
VOCABS = Path(os.environ.get("DECANT_LLAMACPP_VOCABS", CACHE / "vocabs"))

# (name the Rust test uses, file, tokenizer.ggml.pre to override the file's with)
MODELS = [
    ("smollm", REFERENCE, None),
    ("llama-bpe", VOCABS / "ggml-vocab-llama-bpe.gguf", None),
    ("qwen2", VOCABS / "ggml-vocab-qwen2.gguf", None),
    ("gpt-2", VOCABS / "ggml-vocab-gpt-2.gguf", None),
    # llama.cpp's fallback pre-tokenizer, which no shipped vocabulary names.
    ("gpt-2-pre-default", VOCABS / "ggml-vocab-gpt-2.gguf", "default"),
    ("llama-spm", VOCABS / "ggml-vocab-llama-spm.gguf", None),
]

CORPUS = [
    # prose and contractions
    "Hello world",
    " Hello world",
    "Hello World!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right, they've said we'll go; she'd know it's fine.",
    "DON'T SHOUT, YOU'RE LOUD. I'LL STOP. WE'D, THEY'VE, IT'S",
    "'tis rock 'n' roll, y'all ' era '' don't",
    "Hello , world ! Is it ? Yes . No 's 'm 're 've 'll 'd 't",
    "a ' ' b",
    "’s ‘smart’ “quotes” — dashes – and … ellipsis",
    # code and structured text
    'def main():\n    print("Hello, world!")\n    return 0\n',
    "fn add(a: i32, b: i32) -> i32 {\n\ta + b\n}\n",
    '{"name": "decant", "version": [0, 1, 0], "nested": {"ok": true, "n": null}}',
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC;",
    "for i in $(seq 1 10); do echo \"$i\" | grep -E '^[0-9]+$'; done",
    "## Heading\n\n- item one\n- item two\n\n```python\nprint('hi')\n```\n",
    "C++ and C# and F#; __init__ snake_case_name camelCaseName SCREAMING_CASE kebab-case-name",
    "https://example.com/path/to?query=1&x=2#frag user@example.org",
    "^[a-z]+\\d*$ `code` ~tilde~ |pipe| <angle> [square] {curly} (round)",
    # numbers
    "12345678",
    "3.14159 1,234,567.89 -42 +7 0.000001 9999999999999999999",
    "2024-05-09T13:45:00Z, call +1 (555) 010-9999, 0x1F, 1e-9",
    "$100.00 €50 £3 ¥2000 100% 50‰",
    "w048 7tuijk dsdfhu a1b2c3 1 2 3 11 222 3333 44444",
    "x² + y³ = z⁴, ½ ¼ ¾, Ⅻ ⅷ, ٠١٢٣٤٥ १२३ ௧௨",
    # whitespace
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    "\t\n",
    " \n \n",
    "\n \n",
    "a  b   c    d",
    "  leading and trailing  ",
    "\t\tindented\twith\ttabs",
    "line1\r\nline2\rline3\n",
    "mixed  \t \n  whitespace\n\n  runs   ",
    "no\u00a0break\u3000ideographic\u2009thin\u200bzero-width",
    "\ufeffbyte order mark",
    "control \x00\x01\x1f\x7f chars \x0b\x0c",
    "    Hello\n    Hello",
    # unicode
    "café naïve façade Åland Ærø señor",
    "e\u0301 a\u0308 combining marks vs é ä",
    "z̷̢̛a̶̜͝l̸̤̓g̵̰̈́o̵̞͑ text",
    "Äpfel Größe Straße",
    "нещо на Български, Привет мир!",
    "Καλημέρα κόσμε",
    "مرحبا بالعالم، هذا نص عربي.",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีครับ ภาษาไทย",
    "កាន់តែពិសេសអាចខលចេញ",
    "我想在apple工作1314151天～",
    "こんにちは世界、カタカナとひらがな。",
    "안녕하세요 세계",
    "ＡＢＣ１２３ fullwidth",
    "∑∫√∞ ≠ ≤ ≥ ± × ÷ → ⇒ ∀x∈ℝ",
    "🦙.cpp 🚀 (normal) 😶‍🌫️ (joined) ✅ 👍🏽 🇺🇸🇯🇵 👨‍👩‍👧‍👦",
    "\ue000 private use, \U0010ffff last code point, \U0001d54f math",
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!! ... ?!?! --- ___ *** ===",
    # special-token texts
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "foo<|im_end|>bar <|im_start|> <|endoftext|>baz",
    "<|im_start <|im_end| im_end|> <|IM_END|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
    "<s> hello </s> <unk> [INST] question [/INST]",
    "<repo_name>decant<file_sep>src/main.rs<fim_prefix>fn<fim_suffix>}<fim_middle>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|><|endoftext|>",
]


# Random texts built from pieces that stress the pre-tokenizers: boundaries
# between scripts, digits, contractions, whitespace kinds and special tokens.
FUZZ_PIECES = [
    *"abcXYZ019!?.,;:'\"-_/\\()[]{}<>@#$%^&*+=|~`",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c", "\x85",
    "'s", "'t", "'re", "'VE", "'M", "'ll", "'D", "'",
    "hello", "World", "naïve", "Straße", "мир", "世界", "こんにちは", "안녕", "مرحبا", "नमस्ते", "ไทย",
    "0", "7", "42", "123", "4567", "89012", "١٢٣", "²", "½", "Ⅻ", "௧",
    "🦙", "😶‍🌫️", "👍🏽", "🇺🇸", "✅",
    "\u0301", "\u0308", "\u200d", "\u200b", "\ufeff", "\U0001d54f",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<s>", "</s>", "<unk>", "<|im_", "[PAD151646]",
]
FUZZ_SEED = 20240509
FUZZ_COUNT = 150


def fuzz_texts():
    rng = random.Random(FUZZ_SEED)
    return ["".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 12))) for _ in range(FUZZ_COUNT)]


def tokenize(llm, text, add_special, parse_special):
    return llm.tokenize(text.encode(), add_bos=add_special, special=parse_special)


def detokenize(vocab, ids, remove_special, unparse_special):
    tokens = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    size = 64 + 16 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, tokens, len(ids), buf, size, remove_special, unparse_special)
    assert n >= 0, "detokenize buffer too small"
    return buf.raw[:n]


def piece(vocab, token, special):
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    assert n >= 0, f"token {token} piece longer than the buffer"
    return buf.raw[:n]


def pieces_sha256(vocab, n_tokens, special):
    """sha256 over every token's piece, each preceded by its length (u32 LE)."""
    digest = hashlib.sha256()
    for token in range(n_tokens):
        data = piece(vocab, token, special)
        digest.update(len(data).to_bytes(4, "little"))
        digest.update(data)
    return digest.hexdigest()


def text(data):
    return data.decode("utf-8")


def special_ids(vocab):
    def opt(token):
        return None if token == llama_cpp.LLAMA_TOKEN_NULL else token

    return {
        "bos": opt(llama_cpp.llama_vocab_bos(vocab)),
        "eos": opt(llama_cpp.llama_vocab_eos(vocab)),
        "eot": opt(llama_cpp.llama_vocab_eot(vocab)),
        "pad": opt(llama_cpp.llama_vocab_pad(vocab)),
        "sep": opt(llama_cpp.llama_vocab_sep(vocab)),
        "fim_pre": opt(llama_cpp.llama_vocab_fim_pre(vocab)),
        "fim_suf": opt(llama_cpp.llama_vocab_fim_suf(vocab)),
        "fim_mid": opt(llama_cpp.llama_vocab_fim_mid(vocab)),
        "fim_pad": opt(llama_cpp.llama_vocab_fim_pad(vocab)),
        "fim_rep": opt(llama_cpp.llama_vocab_fim_rep(vocab)),
        "fim_sep": opt(llama_cpp.llama_vocab_fim_sep(vocab)),
    }


def model_golden(name, path, pre, fuzz):
    overrides = {"tokenizer.ggml.pre": pre} if pre else None
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False, kv_overrides=overrides)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_tokens = llama_cpp.llama_vocab_n_tokens(vocab)
    cases = []
    for sample in CORPUS:
        plain = tokenize(llm, sample, add_special=False, parse_special=False)
        special = tokenize(llm, sample, add_special=False, parse_special=True)
        cases.append(
            {
                "text": sample,
                "ids": plain,
                "ids_parse_special": special,
                "ids_add_special": tokenize(llm, sample, add_special=True, parse_special=True),
                "decoded": text(detokenize(vocab, plain, False, False)),
                "decoded_special": text(detokenize(vocab, special, False, True)),
            }
        )
    return {
        "name": name,
        "file": path.name,
        "pre_override": pre,
        "vocab_size": n_tokens,
        "special": special_ids(vocab),
        "eog": [token for token in range(n_tokens) if llama_cpp.llama_vocab_is_eog(vocab, token)],
        "pieces_sha256": pieces_sha256(vocab, n_tokens, special=False),
        "pieces_special_sha256": pieces_sha256(vocab, n_tokens, special=True),
        "cases": cases,
        "fuzz_ids": [tokenize(llm, sample, add_special=False, parse_special=True) for sample in fuzz],
    }


def main():
    fuzz = fuzz_texts()
    golden = {
        "generator": "tools/goldens/tokenize_llamacpp.py",
        "llama_cpp_python": llama_cpp.__version__,
        "fuzz_texts": fuzz,
        "models": [model_golden(name, path, pre, fuzz) for name, path, pre in MODELS],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line keeps the file small and its diffs readable.
    lines = []
    for model in golden["models"]:
        cases = model.pop("cases")
        fuzz_ids = model.pop("fuzz_ids")
        head = json.dumps(model, ensure_ascii=False)
        body = ",\n".join("    " + json.dumps(case, ensure_ascii=False) for case in cases)
        lines.append(head[:-1] + ', "cases": [\n' + body + '\n  ], "fuzz_ids": ' + json.dumps(fuzz_ids) + "}")
    header = json.dumps({k: v for k, v in golden.items() if k not in ("models", "fuzz_texts")}, ensure_ascii=False)
    texts = ",\n  ".join(json.dumps(text, ensure_ascii=False) for text in fuzz)
    OUT.write_text(
        header[:-1] + ', "fuzz_texts": [\n  ' + texts + '\n], "models": [\n  ' + ",\n  ".join(lines) + "\n]}\n"
    )
    json.loads(OUT.read_text())
    print(f"wrote {OUT}: {len(CORPUS)} texts and {len(fuzz)} random ones x {len(MODELS)} vocabularies")


if __name__ == "__main__":
    main()
