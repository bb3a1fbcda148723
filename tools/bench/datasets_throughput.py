#!/usr/bin/env python3
"""Data-preparation throughput: decant against Hugging Face `datasets.map` with
`tokenizers`, on the same JSON Lines file, the same tokenizer and chat
template, the same thread count, and the same output; prints the ratio.

    bash tools/setup-python.sh --with-bench
    ~/.cache/decant/venv/bin/python tools/bench/datasets_throughput.py [--size-mb 100]

The work, on both sides, from the JSONL file to packed rows:
- read the records (`messages` conversations, some with a system message,
  one to three user/assistant exchanges);
- render each through the reference teacher's chat template (SmolLM2, ChatML)
  and mark the assistant tokens as trained, up to and including `<|im_end|>`:
  the conversation before each reply is rendered with the generation prompt,
  then with the reply, and each new piece is tokenized on its own, which is
  what decant does (datasets/src/render.rs) and what a `transformers` user
  writes to get exactly the prompt tokens inference sees;
- truncate to the sequence length (right);
- pack next-fit into rows of the sequence length with position ids restarting
  per document, document ids, labels (-100 where untrained) and padding.

The Hugging Face side is `datasets.load_dataset("json")` then two batched
`map`s (render + tokenize, then pack), `PreTrainedTokenizerFast` over the
tokenizer.json built from the reference GGUF (tools/goldens/tokenize_hf_tokenizers.py)
with the GGUF's chat template. `tokenizers` encodes each batch on
RAYON_NUM_THREADS threads (set to the thread count), the Python around it
runs on one; `--num-proc` gives `map` worker processes instead. decant's side
is datasets/benches/prepare_throughput.rs, with its own GGUF tokenizer (the
default) or, with `--decant-model hf`, the `tokenizers` crate on the same
tokenizer.json. Both sides must agree on the examples kept and, with the same
tokenizer.json, exactly on the tokens and trained tokens; llama.cpp's
tokenization (the GGUF default) may differ from `tokenizers` on rare texts,
and a difference in token counts is then printed as a warning.

Wall time and CPU time (all threads) are both reported: on a shared machine
tokens per CPU second compare the implementations better. `--decant-bin`
runs a bench binary already built rather than `cargo bench`.

The data file is generated deterministically (seeded, words drawn from the
vocabulary with a Zipf law) and cached under ~/.cache/decant/bench/.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DECANT_CACHE", Path.home() / ".cache/decant"))
REFERENCE = Path(os.environ.get("DECANT_REFERENCE_MODEL", CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
sys.path.insert(0, str(ROOT / "tools/goldens"))

IGNORE_INDEX = -100
GENERATOR_VERSION = 1


def vocabulary_words(reader):
    """Whole-word tokens of the vocabulary, most frequent first (BPE ids grow
    with merge order, which follows frequency in the training corpus)."""
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    words = []
    for token in tokens:
        if token.startswith("Ġ") and token[1:].isalpha() and token[1:].isascii() and 2 <= len(token) <= 12:
            words.append(token[1:])
    return words


def generate(path: Path, size_mb: float, seed: int):
    from gguf import GGUFReader

    words = vocabulary_words(GGUFReader(REFERENCE))
    weights = [1.0 / (rank + 10) for rank in range(len(words))]
    cumulative = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    rng = random.Random(seed)
    punctuation = [".", ".", ".", ",", ",", "?", "!", ";", ":"]

    def paragraph(count):
        drawn = rng.choices(words, cum_weights=cumulative, k=count)
        out = []
        sentence_start = True
        for index, word in enumerate(drawn):
            if sentence_start:
                word = word.capitalize()
                sentence_start = False
            if rng.random() < 0.03:
                word = f"{word} {rng.randrange(0, 10000)}"
            out.append(word)
            if rng.random() < 0.12 or index == count - 1:
                mark = rng.choice(punctuation)
                out[-1] += mark
                sentence_start = mark in ".?!"
        return " ".join(out)

    def text(low, high):
        parts = [paragraph(rng.randint(low, high)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        return "\n\n".join(parts)

    limit = int(size_mb * 1_000_000)
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        while written < limit:
            messages = []
            if rng.random() < 0.3:
                messages.append({"role": "system", "content": text(8, 30)})
            for _ in range(rng.choice([1, 1, 2, 3])):
                messages.append({"role": "user", "content": text(10, 80)})
                messages.append({"role": "assistant", "content": text(30, 250)})
            line = json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def model_dir(directory: Path):
    """A Hugging Face directory for the reference teacher: tokenizer.json built
    from the GGUF as the tokenizer goldens build it, and tokenizer_config.json
    with the GGUF's chat template and special tokens."""
    from gguf import GGUFReader
    from tokenize_hf_tokenizers import tokenizer_json

    reader = GGUFReader(REFERENCE)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    template = reader.fields["tokenizer.chat_template"].contents()
    bos = tokens[reader.fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = tokens[reader.fields["tokenizer.ggml.eos_token_id"].contents()]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer_json(), ensure_ascii=False))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "chat_template": template,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))
    return template, bos, eos


def hf_side(data: Path, hf_dir: Path, template, bos, eos, seq_len, batch_size, num_proc, cache_dir):
    import datasets
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    datasets.disable_progress_bars()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json")),
        bos_token=bos,
        eos_token=eos,
    )
    tokenizer.chat_template = template
    end_of_generation = {tokenizer.convert_tokens_to_ids(token) for token in ["<|im_end|>", "<|endoftext|>", eos]}
    pad = tokenizer.convert_tokens_to_ids(eos)

    def render_and_tokenize(batch):
        pieces = []
        kinds = []
        for messages in batch["messages"]:
            replies = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
            steps = []
            for reply in replies:
                steps.append((messages[:reply], True, "prompt"))
                steps.append((messages[: reply + 1], False, "reply"))
            steps.append((messages, False, "rest"))
            rendered = ""
            example_kinds = []
            for prefix, generation_prompt, kind in steps:
                text = tokenizer.apply_chat_template(prefix, tokenize=False, add_generation_prompt=generation_prompt)
                if not text.startswith(rendered):
                    raise ValueError("the chat template is not incremental")
                pieces.append(text[len(rendered):])
                example_kinds.append(kind)
                rendered = text
            kinds.append(example_kinds)
        encoded = tokenizer(pieces, add_special_tokens=False)["input_ids"]
        input_ids, labels = [], []
        piece = 0
        for example_kinds in kinds:
            ids, label = [], []
            for kind in example_kinds:
                piece_ids = encoded[piece]
                piece += 1
                trained_until = 0
                if kind == "reply":
                    trained_until = len(piece_ids)
                    for position in range(len(piece_ids) - 1, -1, -1):
                        if piece_ids[position] in end_of_generation:
                            trained_until = position + 1
                            break
                ids.extend(piece_ids)
                label.extend(piece_ids[:trained_until])
                label.extend([IGNORE_INDEX] * (len(piece_ids) - trained_until))
            if label:
                label[0] = IGNORE_INDEX
            ids, label = ids[:seq_len], label[:seq_len]
            input_ids.append(ids)
            labels.append(label)
        return {"input_ids": input_ids, "labels": labels}

    def pack(batch):
        rows = {"input_ids": [], "labels": [], "position_ids": [], "document_ids": []}
        row_ids, row_labels, row_positions, row_documents = [], [], [], []

        def close_row():
            padding = seq_len - len(row_ids)
            rows["input_ids"].append(row_ids + [pad] * padding)
            rows["labels"].append(row_labels + [IGNORE_INDEX] * padding)
            rows["position_ids"].append(row_positions + [0] * padding)
            rows["document_ids"].append(row_documents + [0] * padding)

        document = 0
        for ids, label in zip(batch["input_ids"], batch["labels"]):
            if any(value != IGNORE_INDEX for value in label):
                if row_ids and len(row_ids) + len(ids) > seq_len:
                    close_row()
                    row_ids, row_labels, row_positions, row_documents = [], [], [], []
                    document = 0
                document += 1
                row_ids += ids
                # Shifted: each position's label is the next token's, and a
                # document's last position predicts nothing.
                row_labels += label[1:] + [IGNORE_INDEX]
                row_positions += range(len(ids))
                row_documents += [document] * len(ids)
        if row_ids:
            close_row()
        return rows

    start = time.perf_counter()
    cpu_start = time.process_time()
    dataset = datasets.load_dataset("json", data_files=str(data), split="train", cache_dir=str(cache_dir))
    loaded = time.perf_counter()
    tokenized = dataset.map(render_and_tokenize, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=dataset.column_names)
    rendered = time.perf_counter()
    packed = tokenized.map(pack, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=tokenized.column_names)
    done = time.perf_counter()
    cpu = time.process_time() - cpu_start

    kept = tokenized.filter(lambda labels: any(value != IGNORE_INDEX for value in labels), input_columns="labels", num_proc=num_proc)
    lengths = [len(ids) for ids in kept["input_ids"]]
    trained = sum(sum(1 for value in labels if value != IGNORE_INDEX) for labels in kept["labels"])
    tokens = sum(lengths)
    seconds = done - start
    return {
        "examples": len(dataset),
        "kept": len(kept),
        "tokens": tokens,
        "trained_tokens": trained,
        "rows": len(packed),
        "seconds": seconds,
        "load_seconds": loaded - start,
        "render_tokenize_seconds": rendered - loaded,
        "pack_seconds": done - rendered,
        "tokens_per_s": tokens / seconds,
        "cpu_seconds": cpu if num_proc is None else None,
        "tokens_per_cpu_s": tokens / cpu if num_proc is None else None,
    }


def decant_side(data: Path, model: Path, seq_len: int, threads: int, repeats: int, binary):
    command = [binary] if binary else ["cargo", "bench", "--quiet", "-p", "datasets", "--bench", "prepare_throughput", "--"]
    command += [
        "--data", str(data), "--model", str(model), "--seq-len", str(seq_len),
        "--threads", str(threads), "--repeats", str(repeats),
    ]
    output = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="size of the generated JSONL (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1000, help="examples per datasets.map batch")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--num-proc", type=int, default=None, help="datasets.map worker processes (default: none)")
    parser.add_argument("--repeats", type=int, default=1, help="decant runs; the fastest counts")
    parser.add_argument("--decant-model", choices=["gguf", "hf"], default="gguf")
    parser.add_argument("--decant-bin", help="a built prepare_throughput binary, rather than `cargo bench`")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    bench_dir = CACHE / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    size = f"{args.size_mb:g}".replace(".", "_")
    data = bench_dir / f"chat-{size}mb-seed{args.seed}-v{GENERATOR_VERSION}.jsonl"
    if not data.exists():
        print(f"generating {data}", file=sys.stderr)
        generate(data, args.size_mb, args.seed)

    with tempfile.TemporaryDirectory(prefix="decant-bench-") as tmp:
        hf_dir = Path(tmp) / "model"
        template, bos, eos = model_dir(hf_dir)
        print("Hugging Face datasets.map + tokenizers ...", file=sys.stderr)
        hf = hf_side(data, hf_dir, template, bos, eos, args.seq_len, args.batch_size, args.num_proc, Path(tmp) / "hf-cache")
        print("decant ...", file=sys.stderr)
        model = REFERENCE if args.decant_model == "gguf" else hf_dir
        decant = decant_side(data, model, args.seq_len, args.threads, args.repeats, args.decant_bin)

    for key in ["examples", "kept", "tokens", "trained_tokens"]:
        if hf[key] == decant[key]:
            continue
        message = f"the two sides disagree on {key}: Hugging Face {hf[key]}, decant {decant[key]}"
        # decant's GGUF tokenizer is llama.cpp's, which may split a rare text
        # differently from `tokenizers`; the same tokenizer.json must agree exactly.
        if args.decant_model == "gguf" and key in ("tokens", "trained_tokens"):
            print(f"warning: {message} ({(decant[key] - hf[key]) / hf[key]:+.4%})", file=sys.stderr)
        else:
            sys.exit(message)
    ratio = decant["tokens_per_s"] / hf["tokens_per_s"]
    cpu_ratio = None
    if hf["tokens_per_cpu_s"] and decant.get("tokens_per_cpu_s"):
        cpu_ratio = decant["tokens_per_cpu_s"] / hf["tokens_per_cpu_s"]
    report = {
        "data": str(data),
        "data_bytes": data.stat().st_size,
        "threads": args.threads,
        "num_proc": args.num_proc,
        "seq_len": args.seq_len,
        "decant_tokenizer": args.decant_model,
        "load_average": os.getloadavg(),
        "huggingface": hf,
        "decant": decant,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"data:    {data} ({report['data_bytes'] / 1e6:.1f} MB, {hf['examples']} examples, {hf['tokens']} tokens)")
        print(f"threads: {args.threads}, sequence length {args.seq_len}, load average {report['load_average'][0]:.2f}")
        print(
            f"Hugging Face datasets.map + tokenizers: {hf['tokens_per_s']:,.0f} tokens/s ({hf['seconds']:.1f} s: "
            f"load {hf['load_seconds']:.1f}, render+tokenize {hf['render_tokenize_seconds']:.1f}, pack {hf['pack_seconds']:.1f})"
        )
        print(f"decant ({args.decant_model} tokenizer):            {decant['tokens_per_s']:,.0f} tokens/s ({decant['seconds']:.1f} s)")
        print(f"ratio decant / Hugging Face: {ratio:.2f} (wall time)")
        if cpu_ratio is not None:
            print(
                f"per CPU second: Hugging Face {hf['tokens_per_cpu_s']:,.0f}, decant {decant['tokens_per_cpu_s']:,.0f} "
                f"tokens/s, ratio {cpu_ratio:.2f}"
            )


if __name__ == "__main__":
    main()
