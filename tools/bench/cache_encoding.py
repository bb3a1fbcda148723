#!/usr/bin/env python3
"""Teacher-cache encodings measured on real teacher distributions: exact bits per token of
top-k id codes and log-prob quantizers, and the error each quantizer induces in the
distillation loss. Prints Markdown tables.

    OMP_NUM_THREADS=1 ~/.cache/decant/venv/bin/python tools/bench/cache_encoding.py \\
        [--model GGUF] [--data JSONL] [--tokens 6000] [--npz /tmp/decant_topk.npz] \\
        [--golden datasets/src/logit_cache/codec_golden.txt]

The teacher (the Q4_1 reference model through llama-cpp-python) scores ChatML renderings of
conversations from data/extract/train.jsonl, taken evenly spaced through the file until
--tokens tokens are reached; its top-64 ids, log-probs and rest mass are saved to --npz and
reused when that file already exists. Conversations are split in halves: the id permutation
is ranked on the first half; every size and error is measured on the second.

Every id code is really encoded into bytes and decoded back (checked equal); values are
decoded from their codes. The loss error is that of the forward KL(teacher || student),
student = the teacher at temperature 1.5 over the full vocab, with the rest mass as one
bucket: exact top-k values vs values decoded from the cache.

--golden writes held-out records in the recommended layout, encoded by this script, as the
golden of the Rust codec (datasets/src/logit_cache/codec.rs); see write_golden.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TOP_K = 64
STUDENT_TEMPERATURE = 1.5


def default_model() -> Path:
    env = os.environ.get("DECANT_REFERENCE_MODEL")
    if env:
        return Path(env)
    return Path.home() / ".cache/decant/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def load_llama(model: Path, n_ctx: int):
    import llama_cpp
    import llama_cpp.llama_cpp as llama_lib

    # On CPUs with AMX, llama.cpp's extra buffer types crash batches of more than one token.
    default_params = llama_lib.llama_model_default_params

    def params_without_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = params_without_extra_bufts
    try:
        return llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                               logits_all=True, flash_attn=False, n_threads=1, verbose=False)
    finally:
        llama_lib.llama_model_default_params = default_params


def chatml(conversation: dict) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                   for m in conversation["messages"])


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def collect(model: Path, data: Path, n_tokens: int, out: Path) -> None:
    lines = data.read_text().splitlines()
    llm = load_llama(model, 2048)
    # Average conversation length is estimated from the first lines so that the sample
    # spreads evenly over the file.
    probe = [len(llm.tokenize(chatml(json.loads(l)).encode(), add_bos=False, special=True))
             for l in lines[:20]]
    stride = max(1, int(len(lines) / (n_tokens / np.mean(probe) * 1.1)))
    ids_all, lp_all, rest_all, slq_all, srest_all, conv_all = [], [], [], [], [], []
    total = 0
    for c, line_no in enumerate(range(0, len(lines), stride)):
        if total >= n_tokens:
            break
        ids = llm.tokenize(chatml(json.loads(lines[line_no])).encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
        lp = log_softmax(logits)
        top = np.argsort(-lp, axis=1, kind="stable")[:, :TOP_K]
        top_lp = np.take_along_axis(lp, top, axis=1)
        mask = np.ones_like(lp, dtype=bool)
        np.put_along_axis(mask, top, False, axis=1)
        rest = np.where(mask, np.exp(lp), 0.0).sum(axis=1)
        slp = log_softmax(logits / STUDENT_TEMPERATURE)
        srest = np.where(mask, np.exp(slp), 0.0).sum(axis=1)
        ids_all.append(top.astype(np.int32))
        lp_all.append(top_lp)
        rest_all.append(rest)
        slq_all.append(np.take_along_axis(slp, top, axis=1))
        srest_all.append(srest)
        conv_all.append(np.full(len(ids), c, dtype=np.int32))
        total += len(ids)
        print(f"conversation {c} (line {line_no + 1}): {len(ids)} tokens, {total} in all",
              file=sys.stderr)
    np.savez(out, ids=np.concatenate(ids_all), lp=np.concatenate(lp_all),
             rest=np.concatenate(rest_all), student_lq=np.concatenate(slq_all),
             student_rest=np.concatenate(srest_all), conversation=np.concatenate(conv_all),
             vocab=np.int64(llm.n_vocab()))


class BitWriter:
    """MSB-first bit string; `bytes()` pads the last byte with zeros."""

    def __init__(self):
        self.parts = []

    def fixed(self, value: int, width: int) -> None:
        if width:
            assert 0 <= value < 1 << width, (value, width)
            self.parts.append(format(value, f"0{width}b"))

    def unary(self, count: int) -> None:
        self.parts.append("0" * count + "1")

    def bits(self) -> str:
        return "".join(self.parts)

    def bytes(self) -> bytes:
        s = self.bits()
        s += "0" * (-len(s) % 8)
        return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


class BitReader:
    def __init__(self, data: bytes):
        self.s = format(int.from_bytes(data, "big"), f"0{len(data) * 8}b") if data else ""
        self.pos = 0

    def fixed(self, width: int) -> int:
        if width <= 0:
            return 0
        v = int(self.s[self.pos:self.pos + width], 2)
        self.pos += width
        return v

    def unary(self) -> int:
        end = self.s.index("1", self.pos)
        count = end - self.pos
        self.pos = end + 1
        return count


# Id codes. Each takes the token's ids sorted ascending, writes them, and reads them back.
# Per-token parameters (Rice k, Elias-Fano low width) are 4-bit header fields.

def gaps(ids):
    return [ids[0]] + [int(b - a - 1) for a, b in zip(ids[:-1], ids[1:])]


def ungap(gs):
    out, prev = [], -1
    for g in gs:
        prev = prev + 1 + g
        out.append(prev)
    return out


def rice_bits(gs, k):
    return sum((g >> k) + 1 + k for g in gs)


def best_rice_k(gs):
    return min(range(16), key=lambda k: rice_bits(gs, k))


def enc_raw16(w, ids):
    for i in ids:
        w.fixed(int(i), 16)


def dec_raw16(r, n):
    return [r.fixed(16) for _ in range(n)]


def enc_rice(w, ids):
    gs = gaps(ids)
    k = best_rice_k(gs)
    w.fixed(k, 4)
    for g in gs:
        w.unary(g >> k)
        w.fixed(g & ((1 << k) - 1), k)


def dec_rice(r, n):
    k = r.fixed(4)
    return ungap([(r.unary() << k) | r.fixed(k) for _ in range(n)])


def write_exp_golomb(w, g, k):
    v = g + (1 << k)
    w.fixed(0, v.bit_length() - k - 1)
    w.fixed(v, v.bit_length())


def read_exp_golomb(r, k):
    zeros = r.unary()
    return ((1 << (zeros + k)) | r.fixed(zeros + k)) - (1 << k)


def exp_golomb_bits(gs, k):
    return sum(2 * ((g >> k) + 1).bit_length() - 1 + k for g in gs)


def enc_exp_golomb(w, ids):
    gs = gaps(ids)
    k = min(range(16), key=lambda k: exp_golomb_bits(gs, k))
    w.fixed(k, 4)
    for g in gs:
        write_exp_golomb(w, g, k)


def dec_exp_golomb(r, n):
    k = r.fixed(4)
    return ungap([read_exp_golomb(r, k) for _ in range(n)])


def ef_bits(ids, low):
    return len(ids) * (low + 1) + (int(ids[-1]) >> low)


def enc_ef(w, ids, low):
    prev_high = 0
    for i in ids:
        high = int(i) >> low
        w.unary(high - prev_high)
        w.fixed(int(i) & ((1 << low) - 1), low)
        prev_high = high


def dec_ef(r, n, low):
    out, high = [], 0
    for _ in range(n):
        high += r.unary()
        out.append((high << low) | r.fixed(low))
    return out


def ef_codec(vocab):
    low = max(0, int(math.floor(math.log2(vocab / TOP_K))))
    return (lambda w, ids: enc_ef(w, ids, low)), (lambda r, n: dec_ef(r, n, low))


def enc_ef_adaptive(w, ids):
    low = min(range(16), key=lambda b: ef_bits(ids, b))
    w.fixed(low, 4)
    enc_ef(w, ids, low)


def dec_ef_adaptive(r, n):
    return dec_ef(r, n, r.fixed(4))


def frequency_permutation(ids_calib: np.ndarray, vocab: int) -> np.ndarray:
    """perm[id] = rank of id by how often it is in a top-k set (ties and unseen ids by id)."""
    counts = np.bincount(ids_calib.ravel(), minlength=vocab)
    order = np.lexsort((np.arange(vocab), -counts))
    perm = np.empty(vocab, dtype=np.int64)
    perm[order] = np.arange(vocab)
    return perm


def measure_ids(name, enc, dec, ids_rows):
    """Encodes every row (already sorted), checks the decode; per-row bit counts."""
    bits = np.empty(len(ids_rows), dtype=np.int64)
    for t, ids in enumerate(ids_rows):
        w = BitWriter()
        enc(w, [int(i) for i in ids])
        bits[t] = len(w.bits())
        back = dec(BitReader(w.bytes()), len(ids))
        assert back == [int(i) for i in ids], name
    return bits


# Value quantizers: d = top log-prob - log p >= 0, coded in `width` bits, decoded to d_hat.

class LogQuant:
    def __init__(self, step, width):
        self.step, self.width = step, width
        self.name = f"log p, step {step}, {width} bit (clamp {step * ((1 << width) - 1):g} nats)"

    def encode(self, d):
        return np.minimum(np.rint(d / self.step), (1 << self.width) - 1).astype(np.int64)

    def decode(self, code):
        return code * self.step


class PowQuant:
    """Uniform in (p / p_top)^a, a = 1/2 or 1/3; code 0 decodes to p = 0."""

    def __init__(self, root, width):
        self.a, self.width = 1.0 / root, width
        self.name = f"p^(1/{root}), {width} bit"

    def encode(self, d):
        m = (1 << self.width) - 1
        return np.rint(np.exp(-self.a * d) * m).astype(np.int64)

    def decode(self, code):
        v = code / ((1 << self.width) - 1)
        with np.errstate(divide="ignore"):
            return np.where(v > 0, -np.log(np.maximum(v, 1e-300)) / self.a, np.inf)


class RestQuant:
    def __init__(self, kind, width):
        self.kind, self.width = kind, width
        self.name = "exact (f64)" if kind == "exact" else f"{kind} {width} bit"

    def roundtrip(self, r):
        if self.kind == "exact":
            return r
        m = (1 << self.width) - 1
        if self.kind == "linear":
            return np.rint(r * m) / m
        if self.kind == "sqrt":
            return (np.rint(np.sqrt(r) * m) / m) ** 2
        raise ValueError(self.kind)


def decode_probs(d_hat, rest_hat):
    """Top-k probs from relative log-probs and the rest mass: the top log-prob is implied
    by normalization, so it is not stored."""
    w = np.exp(-d_hat)
    return (1.0 - rest_hat)[:, None] * w / w.sum(axis=1, keepdims=True)


def xlogy(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0) / y), 0.0)


def forward_kl(p, rest, student_lq, student_rest):
    q = np.exp(student_lq)
    return xlogy(p, q).sum(axis=1) + xlogy(rest, student_rest)


def stats(bits):
    return f"{bits.mean():.1f} | {bits.max()} | {bits.mean() / 8:.2f} | {bits.max() / 8:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--data", type=Path, default=ROOT / "data/extract/train.jsonl")
    parser.add_argument("--tokens", type=int, default=6000)
    parser.add_argument("--npz", type=Path, default=Path("/tmp/decant_topk.npz"))
    parser.add_argument("--golden", type=Path,
                        help="also write the recommended record's golden to this file")
    args = parser.parse_args()
    if not args.npz.exists():
        collect(args.model, args.data, args.tokens, args.npz)
    z = np.load(args.npz)
    vocab = int(z["vocab"])
    conv = z["conversation"]
    calib = conv < (conv.max() + 1) // 2
    held = ~calib
    ids, lp, rest = z["ids"][held], z["lp"][held], z["rest"][held]
    slq, srest = z["student_lq"][held], z["student_rest"][held]
    n = len(ids)
    print(f"{len(conv)} tokens from {conv.max() + 1} conversations; permutation ranked on "
          f"{calib.sum()}, measured on {n} held-out tokens; k = {TOP_K}, vocab {vocab}\n")

    perm = frequency_permutation(z["ids"][calib], vocab)
    sorted_ids = np.sort(ids, axis=1)
    sorted_perm = np.sort(perm[ids], axis=1)
    ef_enc, ef_dec = ef_codec(vocab)
    id_codes = [
        ("(a) u16 raw", enc_raw16, dec_raw16, sorted_ids),
        ("(b) sorted, Elias-Fano (fixed low width)", ef_enc, ef_dec, sorted_ids),
        ("(b') sorted, Elias-Fano (4-bit per-token low width)", enc_ef_adaptive, dec_ef_adaptive,
         sorted_ids),
        ("(c) sorted, Rice gaps (4-bit per-token k)", enc_rice, dec_rice, sorted_ids),
        ("(c') sorted, exp-Golomb gaps (4-bit per-token order)", enc_exp_golomb, dec_exp_golomb,
         sorted_ids),
        ("(d) permuted, Elias-Fano (fixed low width)", ef_enc, ef_dec, sorted_perm),
        ("(d) permuted, Elias-Fano (4-bit per-token low width)", enc_ef_adaptive,
         dec_ef_adaptive, sorted_perm),
        ("(d) permuted, Rice gaps (4-bit per-token k)", enc_rice, dec_rice, sorted_perm),
        ("(d) permuted, exp-Golomb gaps (4-bit per-token order)", enc_exp_golomb,
         dec_exp_golomb, sorted_perm),
    ]
    print("## Id codes (bits/token incl. header; decode checked)\n")
    print("| code | mean bits | max bits | mean B | max B |\n|---|---|---|---|---|")
    id_bits = {}
    for name, enc, dec, rows in id_codes:
        id_bits[name] = measure_ids(name, enc, dec, rows)
        print(f"| {name} | {stats(id_bits[name])} |")

    # Values are stored in the order of the (permuted) sorted ids; the sizes of both value
    # codes (fixed width, or Rice with a per-token k) and the loss are order-free.
    d = lp[:, :1] - lp
    kl_exact = forward_kl(np.exp(lp), rest, slq, srest)
    print(f"\nexact top-k forward KL, mean over held-out tokens: {kl_exact.mean():.5f} nats\n")

    def errors(d_hat, rest_hat):
        kl = forward_kl(decode_probs(d_hat, rest_hat), rest_hat, slq, srest)
        err = kl - kl_exact
        return (abs(kl.mean() - kl_exact.mean()) / kl_exact.mean(), np.abs(err).max(),
                np.abs(err).mean())

    quants = [LogQuant(s, b) for b, s in [(3, 1.0), (4, 0.5), (4, 0.75), (5, 0.25), (5, 0.375),
                                          (5, 0.5), (6, 0.125), (6, 0.25), (8, 0.0625)]]
    quants += [PowQuant(r, b) for r in (2, 3, 4) for b in (4, 5, 6, 7, 8)]
    rest16 = RestQuant("linear", 16)
    print("## Value quantizers (rest mass: linear 16 bit); value bits/token fixed width and "
          "Rice (3-bit per-token k, encoded and decoded), mean/max\n")
    print("| quantizer | fixed bits | Rice bits mean | Rice bits max | rel err mean KL "
          "| max abs err/token | mean abs err/token |\n|---|---|---|---|---|---|---|")
    results = []
    for qz in quants:
        code = qz.encode(d)
        assert code.min() >= 0 and code.max() < 1 << qz.width
        rel, mx, mean_abs = errors(qz.decode(code), rest16.roundtrip(rest))
        rice = measure_value_rice(qz, code)
        results.append((qz, rice, rel, mx))
        print(f"| {qz.name} | {TOP_K * qz.width} | {rice.mean():.1f} | {rice.max()} | {rel:.2e} "
              f"| {mx:.2e} | {mean_abs:.2e} |")

    print("\n## Rest mass quantizers (values exact)\n")
    print("| rest | bits | rel err mean KL | max abs err/token | mean abs err/token |")
    print("|---|---|---|---|---|")
    for rq in [RestQuant("exact", 64), RestQuant("linear", 8), RestQuant("sqrt", 8),
               RestQuant("linear", 12), RestQuant("linear", 16), RestQuant("sqrt", 16)]:
        rel, mx, mean_abs = errors(d, rq.roundtrip(rest))
        print(f"| {rq.name} | {rq.width if rq.kind != 'exact' else '-'} | {rel:.2e} | "
              f"{mx:.2e} | {mean_abs:.2e} |")

    best_ids = id_codes[-1][0]
    print(f"\n## Whole records: 16-bit rest + {best_ids} + values, byte-aligned per token "
          "(<= 100 B mean marked *)\n")
    print("| values | value code | mean B | max B | rel err mean KL | max abs err/token |")
    print("|---|---|---|---|---|---|")
    for qz, rice, rel, mx in results:
        for label, vbits in (("fixed", TOP_K * qz.width), ("Rice", rice)):
            total = (16 + id_bits[best_ids] + vbits + 7) // 8
            mark = " *" if total.mean() <= 100 else ""
            print(f"| {qz.name} | {label} | {total.mean():.2f}{mark} | {total.max()} | {rel:.2e} "
                  f"| {mx:.2e} |")

    verify_record(PowQuant(3, 6), perm, ids, d, rest, slq, srest, kl_exact)
    if args.golden:
        write_golden(args.golden, PowQuant(3, 6), perm, z["ids"][calib], ids, lp, rest)


def rice_symbol(qz, code):
    """Rice codes small numbers cheaply: p-root codes are small for the many small probs;
    log codes are small for the few large ones, so they are flipped."""
    return (1 << qz.width) - 1 - code if isinstance(qz, LogQuant) else code


def measure_value_rice(qz, code):
    bits = np.empty(len(code), dtype=np.int64)
    for t, row in enumerate(rice_symbol(qz, code)):
        w = BitWriter()
        write_rice_values(w, [int(c) for c in row])
        bits[t] = len(w.bits())
        assert read_rice_values(BitReader(w.bytes()), len(row)) == [int(c) for c in row]
    return bits


def write_rice_values(w, values):
    k = min(range(8), key=lambda k: rice_bits(values, k))
    w.fixed(k, 3)
    for v in values:
        w.unary(v >> k)
        w.fixed(v & ((1 << k) - 1), k)


def read_rice_values(r, n):
    k = r.fixed(3)
    return [(r.unary() << k) | r.fixed(k) for _ in range(n)]


def encode_record(qz, perm, ids_row, d_row, rest_row):
    """One record of the recommended layout; also the entries' order (ascending rank) and
    their value codes in that order."""
    ranks = perm[ids_row]
    order = np.argsort(ranks)
    codes = [int(c) for c in qz.encode(d_row)[order]]
    w = BitWriter()
    w.fixed(int(np.rint(rest_row * 65535)), 16)
    enc_exp_golomb(w, [int(x) for x in ranks[order]])
    write_rice_values(w, codes)
    return w.bytes(), order, codes


GOLDEN_RECORDS = 20
GOLDEN_FREQ_VOCAB = 300


def write_golden(path, qz, perm, ids_calib, ids, lp, rest):
    """Line-based golden for the Rust codec: `key value...` lines, `record` starts a record.
    Log-probs and rest are rounded to 4 decimals and then to f32 (the Rust codec's input
    type), so both sides encode the same numbers and the file stays small. The ranks are
    given only for the ids the records use: any permutation that agrees on them yields the
    same bytes. Decoded probs, in ascending rank order, are in units of 1e-8.
    `freq_counts`/`freq_ranks` check the frequency ranking (ties by id) on the real
    calibration counts of the first ids."""
    rows = np.linspace(0, len(ids) - 1, GOLDEN_RECORDS).round().astype(int)
    used = np.unique(ids[rows])
    small = ids_calib[ids_calib < GOLDEN_FREQ_VOCAB]
    lines = [f"# written by tools/bench/cache_encoding.py --golden; {GOLDEN_RECORDS} held-out "
             "records of the Q4_1 reference teacher",
             f"vocab {len(perm)}", f"k {ids.shape[1]}",
             "ranks " + " ".join(f"{i}:{perm[i]}" for i in used),
             "freq_counts " + " ".join(map(str, np.bincount(small, minlength=GOLDEN_FREQ_VOCAB))),
             "freq_ranks " + " ".join(map(str, frequency_permutation(small, GOLDEN_FREQ_VOCAB)))]
    for t in rows:
        lp32 = lp[t].round(4).astype(np.float32)
        rest32 = np.float32(round(rest[t], 4))
        lp64, rest64 = lp32.astype(np.float64), float(rest32)
        blob, order, codes = encode_record(qz, perm, ids[t], lp64.max() - lp64, rest64)
        rest_hat = np.rint(rest64 * 65535) / 65535
        probs = decode_probs(qz.decode(np.array(codes))[None, :], np.array([rest_hat]))[0]
        lines += ["record",
                  "ids " + " ".join(map(str, ids[t])),
                  "logprobs " + " ".join(map(str, lp32)),
                  f"rest {str(rest32)}",
                  "bytes " + blob.hex(),
                  "probs_e8 " + " ".join(str(int(x)) for x in np.rint(probs * 1e8))]
    path.write_text("\n".join(lines) + "\n")
    print(f"\ngolden: {len(rows)} records, {path.stat().st_size} bytes -> {path}")


def verify_record(qz, perm, ids, d, rest, slq, srest, kl_exact):
    """The recommended layout end to end, zero-padded to a byte: rest u16, exp-Golomb order
    u4 and 64 gaps of the sorted permuted ids, Rice k u3 and 64 value codes in that order.
    Decodes every record and recomputes the loss from the decoded record alone."""
    inverse = np.argsort(perm)
    sizes, kl = [], []
    for t in range(len(ids)):
        blob, order, codes = encode_record(qz, perm, ids[t], d[t], rest[t])
        sizes.append(len(blob))
        r = BitReader(blob)
        rest_hat = r.fixed(16) / 65535
        ids_hat = inverse[dec_exp_golomb(r, TOP_K)]
        codes_hat = np.array(read_rice_values(r, TOP_K))
        assert codes_hat.tolist() == codes and ids_hat.tolist() == ids[t][order].tolist()
        p_hat = decode_probs(qz.decode(codes_hat)[None, :], np.array([rest_hat]))
        kl.append(forward_kl(p_hat, np.array([rest_hat]), slq[t][order][None, :],
                             srest[t:t + 1])[0])
    sizes, kl = np.array(sizes), np.array(kl)
    print(f"\nrecommended record (u16 rest + permuted exp-Golomb ids + Rice {qz.name}) "
          f"encoded, decoded and scored for all {len(ids)} tokens: mean {sizes.mean():.2f} B, "
          f"max {sizes.max()} B; rel err mean KL {abs(kl.mean() - kl_exact.mean()) / kl_exact.mean():.2e}, "
          f"max abs err/token {np.abs(kl - kl_exact).max():.2e}")


if __name__ == "__main__":
    main()
