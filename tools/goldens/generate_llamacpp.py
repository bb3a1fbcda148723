#!/usr/bin/env python3
"""Golden greedy generations of the reference teacher from llama.cpp (through llama-cpp-python).

Each prompt is a single user message rendered through the model's own chat
template (`tokenizer.chat_template`, with the generation prompt, in a Jinja
environment set up as transformers sets up its own) and tokenized as llama.cpp
tokenizes a chat prompt: special-token texts parsed, BOS added when the
vocabulary asks for it, never twice. llama.cpp then runs on the F32-dequantized
model with an F32 KV cache and no flash attention (as tools/goldens/logits_llamacpp.py):
the prompt in one batch, then one token at a time, each the argmax of the
previous position's logits taken here from `llm.scores` (the first of equal
maxima, as llama.cpp's greedy sampler), with no sampler, penalty or grammar in
between. Generation stops at an end-of-generation token (`llama_vocab_is_eog`)
or after MAX_TOKENS tokens.

Output: a JSON file read by train/tests and tests/cli_generate.rs.

Run with the venv from `tools/setup-python.sh --with-llama`:
    ~/.cache/decant/venv/bin/python tools/goldens/generate_llamacpp.py
"""

import argparse
import json
import re
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import jinja2
import jinja2.ext
import jinja2.sandbox
import llama_cpp
import numpy as np

from logits_llamacpp import default_model, dequantize_to_f32, load_llama

MAX_TOKENS = 32

# Three open questions that run past MAX_TOKENS, and one whose answer ends the
# turn early, so that the golden also pins down where generation stops.
PROMPTS = [
    "What is the capital of France? Tell me about the city.",
    "Write a Python function that checks whether a number is prime.",
    "Give me three tips for sleeping better.",
    "Answer with one word only: is water wet?",
]


def render_chat(template: str, user: str, bos: str, eos: str) -> str:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    return env.from_string(template).render(
        messages=[{"role": "user", "content": user}],
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
    )


def chat_prompt_tokens(llm: llama_cpp.Llama, text: str) -> list[int]:
    # add_bos means llama.cpp's add_special: BOS only where the vocabulary adds it.
    ids = llm.tokenize(text.encode(), add_bos=True, special=True)
    bos = llm.token_bos()
    if len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


def generate(llm: llama_cpp.Llama, prompt: list[int]) -> dict:
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    llm.eval(prompt)
    tokens = []
    while True:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            return {"tokens": tokens, "stop": "eog", "stop_token": token}
        tokens.append(token)
        if len(tokens) == MAX_TOKENS:
            return {"tokens": tokens, "stop": "max_tokens", "stop_token": None}
        llm.eval([token])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2]
                        / "train/tests/goldens/smollm2_generate_llamacpp.json")
    args = parser.parse_args()

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        f32_model = Path(tmp) / "model-f32.gguf"
        dequantize_to_f32(args.model, f32_model)
        llm = load_llama(f32_model)
        piece = lambda token: llm.detokenize([token], special=True).decode()
        template = llm.metadata["tokenizer.chat_template"]
        for prompt in PROMPTS:
            text = render_chat(template, prompt, piece(llm.token_bos()), piece(llm.token_eos()))
            ids = chat_prompt_tokens(llm, text)
            result = generate(llm, ids)
            reply = llm.detokenize(result["tokens"]).decode(errors="replace")
            print(f"{prompt!r}: {len(ids)} prompt tokens, {len(result['tokens'])} generated"
                  f" ({result['stop']}): {reply!r}", file=sys.stderr)
            cases.append({"prompt": prompt, "chat_text": text, "prompt_tokens": ids, **result,
                          "text": reply})
        del llm

    golden = {
        "producer": f"llama-cpp-python {llama_cpp.__version__}, gguf {version('gguf')}, "
                    f"jinja2 {version('jinja2')}",
        "model": f"{args.model.name} dequantized to F32 by gguf-py; F32 KV cache; no flash attention",
        "script": "tools/goldens/generate_llamacpp.py",
        "max_tokens": MAX_TOKENS,
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(golden, indent=1, ensure_ascii=False)
    # One line per id list keeps the file short enough to read.
    text = re.sub(r"\[[\d,\s]+\]", lambda m: json.dumps(json.loads(m.group(0))), text)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
