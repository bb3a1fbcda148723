#!/usr/bin/env python3
"""Generate the synthetic field-extraction chat data set (free text -> JSON fields).

Four task families (invoices, server log lines, shipping notices, meeting notes) are
mixed evenly. Every document shuffles its clauses, varies its phrasing and date/number
formats and carries distractor numbers and dates, so that a model has to read the text
rather than copy a fixed position. Output is deterministic for a given --seed.
"""

import argparse
import json
import os
import random
import sys
from datetime import date, timedelta
from pathlib import Path

FIRST_NAMES = [
    "Alice", "Bruno", "Chen", "Dana", "Elif", "Farah", "Gustav", "Hana", "Ivan", "Jonas",
    "Keiko", "Lars", "Maya", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
    "Uma", "Victor", "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Boris", "Carla", "Diego",
    "Esther", "Felix", "Greta", "Hugo", "Ines", "Jamal",
]
LAST_NAMES = [
    "Adams", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quint",
    "Rossi", "Schmidt", "Tanaka", "Ueda", "Novak", "Weber", "Young", "Zhang", "Silva",
]
VENDORS = [
    "Acme Supplies Ltd", "Brightline Office GmbH", "Cobalt Systems Inc", "Delta Print Co",
    "Evergreen Foods", "Fjord Logistics AS", "Granite Hardware", "Helix Labs",
    "Ironwood Furniture", "Juniper Networks Shop", "Kestrel Electric", "Lumen Lighting",
    "Maple Paper Mill", "Northwind Traders", "Orbit Telecom", "Pioneer Tools",
    "Quartz Analytics", "Redwood Catering", "Summit Cleaning Services", "Tidal Water Co",
    "Umbra Security", "Vertex Software", "Willow Textiles", "Zenith Auto Parts",
    "Atlas Coffee Roasters", "Beacon Medical", "Cedar & Sons", "Nimbus Cloud Hosting",
]
CUSTOMERS = [
    "Harbor Dental", "Riverside School", "Blue Fox Studio", "Oakridge Clinic", "Sunset Bakery",
    "Metro Fitness", "Greenfield Farms", "Polar Design", "Crescent Hotel", "Lakeside Library",
]
CITIES = [
    "Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lyon", "Denver", "Krakow", "Seoul",
    "Austin", "Oslo", "Porto", "Melbourne", "Dublin", "Milan", "Zurich", "Valencia",
    "Rotterdam", "Helsinki", "Chicago", "Seattle", "Prague", "Vienna", "Montreal",
    "Singapore", "Auckland", "Bilbao", "Gdansk", "Leeds", "Tampere",
]
CARRIERS = [
    "DHL", "UPS", "FedEx", "DPD", "GLS", "PostNL", "Royal Mail", "La Poste", "Canada Post",
    "Japan Post", "TNT", "Aramex", "USPS", "Hermes", "Bring", "PostNord",
]
SERVICES = [
    "auth", "billing", "search", "gateway", "payments", "inventory", "mailer", "scheduler",
    "reports", "profile", "checkout", "notifier", "cache", "ingest", "export", "media",
]
USERNAMES = [
    "alice", "bkowalski", "chen.wei", "dana_r", "elif", "fhaddad", "gus", "hana.ito",
    "ivanp", "jonas42", "keiko", "lars.e", "maya", "nadia.o", "omar_k", "priya.s", "quinn",
    "rosa", "svenj", "tariq", "admin", "deploy", "svc-backup", "ops", "zoe.z", "victor",
]
LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"]
LEVEL_SPELLINGS = {
    "DEBUG": ["DEBUG", "debug", "Debug"],
    "INFO": ["INFO", "info", "Info"],
    "WARN": ["WARN", "warn", "WARNING", "warning"],
    "ERROR": ["ERROR", "error", "ERR", "Error"],
}
LOG_EVENTS = [
    "login failed", "session started", "request timed out", "token refreshed",
    "cache miss", "payment declined", "upload complete", "rate limit exceeded",
    "connection reset", "job finished", "config reloaded", "disk usage high",
    "password changed", "invalid signature", "retrying request", "export queued",
]
CURRENCIES = {
    "EUR": ["EUR", "€"], "USD": ["USD", "US$"], "GBP": ["GBP", "£"], "JPY": ["JPY", "¥"],
    "CHF": ["CHF"], "SEK": ["SEK"], "CAD": ["CAD", "C$"], "AUD": ["AUD", "A$"],
    "NOK": ["NOK"], "PLN": ["PLN"],
}
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]
TOPICS = [
    "the Q3 budget", "the website relaunch", "vendor selection", "the hiring plan",
    "the office move", "the security audit", "the product roadmap", "customer feedback",
    "the data migration", "the release schedule", "onboarding", "the trade fair",
]
TASKS = [
    "send the revised budget", "book the venue", "draft the press release",
    "update the risk register", "collect quotes", "fix the login bug", "prepare the demo",
    "review the contract", "write the test plan", "order new laptops",
    "share the slides", "call the supplier",
]

FAMILIES = ["invoice", "log", "shipping", "meeting"]


def pick_date(rng, start=date(2022, 1, 1), days=1460):
    return start + timedelta(days=rng.randrange(days))


def fmt_date(rng, d):
    """A date as a document might print it; the gold value is always ISO."""
    style = rng.randrange(5)
    if style == 0:
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    if style == 1:
        return f"{d.day:02d}.{d.month:02d}.{d.year}"
    if style == 2:
        return d.isoformat()
    if style == 3:
        return f"{d.day} {MONTHS[d.month - 1]} {d.year}"
    return f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}"


def fmt_amount(rng, cents, code):
    whole, frac = divmod(cents, 100)
    sep = rng.random() < 0.5
    digits = f"{whole:,}" if sep else str(whole)
    number = digits if code == "JPY" else f"{digits}.{frac:02d}"
    mark = rng.choice(CURRENCIES[code])
    if len(mark) > 1 and mark.isalpha() and rng.random() < 0.5:
        return f"{number} {mark}"
    return f"{mark}{number}" if not mark.isalpha() else f"{mark} {number}"


def money_cents(rng, code):
    if code == "JPY":
        return rng.randrange(1000, 400000) * 100
    return rng.randrange(1500, 900000)


def plain_number(x):
    """Whole amounts as JSON integers (12, not 12.0), others as the shortest decimal."""
    return int(x) if x == int(x) else x


def compact(obj):
    return json.dumps(obj, separators=(", ", ": "), ensure_ascii=False)


def invoice(rng):
    code = rng.choice(list(CURRENCIES))
    inv_no = rng.choice(["INV-", "IN", "#", "F-", ""]) + str(rng.randrange(10000, 999999))
    vendor = rng.choice(VENDORS)
    customer = rng.choice(CUSTOMERS)
    issued = pick_date(rng)
    due = issued + timedelta(days=rng.choice([14, 30, 45, 60]))
    total_c = money_cents(rng, code)
    tax_c = total_c * rng.choice([5, 7, 10, 19, 20]) // 120
    if code == "JPY":
        tax_c -= tax_c % 100
    sub_c = total_c - tax_c
    po = f"PO {rng.randrange(1000, 99999)}"
    ident = rng.choice([f"Invoice {inv_no}", f"Invoice no. {inv_no}", f"Ref: invoice {inv_no}"])
    by = rng.choice([f"from {vendor}", f"issued by {vendor}"])
    when = rng.choice([f"dated {fmt_date(rng, issued)}", f"issued on {fmt_date(rng, issued)}"])
    head = rng.choice([f"{ident} {by}, {when}", f"{ident}, {when}, {by}",
                       f"{vendor}. {ident} {when}"])
    body = [rng.choice([f"Total due: {fmt_amount(rng, total_c, code)}",
                        f"Amount payable {fmt_amount(rng, total_c, code)}",
                        f"TOTAL {fmt_amount(rng, total_c, code)}"]),
            f"Subtotal {fmt_amount(rng, sub_c, code)}, tax {fmt_amount(rng, tax_c, code)}",
            f"Payment due by {fmt_date(rng, due)}"]
    body += rng.sample([f"Bill to: {customer}, customer ID {rng.randrange(100, 9999)}",
                        f"Your order {po}", f"Bank ref {rng.randrange(10**6, 10**8)}"],
                       rng.randrange(0, 2))
    rng.shuffle(body)
    text = head + ". " + ". ".join(body) + "."
    gold = {
        "invoice_number": inv_no, "vendor": vendor, "date": issued.isoformat(),
        "total": plain_number(total_c / 100), "currency": code,
    }
    instr = rng.choice([
        "Extract invoice_number, vendor, date, total and currency from this invoice as JSON.",
        "Read the invoice below and return its fields as JSON.",
        "Return JSON with the invoice number, vendor, ISO date, total and currency code.",
        "Parse this invoice into JSON (invoice_number, vendor, date, total, currency).",
    ])
    return instr, text, gold


def ip_addr(rng):
    if rng.random() < 0.5:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def log_line(rng):
    d = pick_date(rng)
    h, m, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    iso = f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}"
    ts = rng.choice([
        iso + "Z", f"{d.isoformat()} {h:02d}:{m:02d}:{s:02d}",
        f"{d.day:02d}/{MONTHS[d.month - 1][:3]}/{d.year}:{h:02d}:{m:02d}:{s:02d}",
        iso + f".{rng.randrange(1000):03d}Z",
    ])
    level = rng.choice(LEVELS)
    lv = rng.choice(LEVEL_SPELLINGS[level])
    service = rng.choice(SERVICES)
    user = rng.choice(USERNAMES) if rng.random() < 0.7 else None
    ip = ip_addr(rng) if rng.random() < 0.7 else None
    event = rng.choice(LOG_EVENTS)
    extras = [
        f"pid={rng.randrange(100, 65000)}", f"latency={rng.randrange(1, 5000)}ms",
        f"status={rng.choice([200, 201, 400, 401, 403, 404, 429, 500, 502, 503])}",
        f"req_id={rng.randrange(16**8):08x}", f"bytes={rng.randrange(0, 2**20)}",
        f"port={rng.randrange(1024, 65535)}", f"retry={rng.randrange(0, 6)}",
    ]
    fields = rng.sample(extras, rng.randrange(2, 4))
    if user is not None:
        fields.append(rng.choice([f"user={user}", f"user='{user}'", f"uid={user}"]))
    if ip is not None:
        fields.append(rng.choice([f"ip={ip}", f"client={ip}", f"src={ip}"]))
    rng.shuffle(fields)
    style = rng.randrange(3)
    if style == 0:
        line = f"{ts} [{lv}] {service}: {event} " + " ".join(fields)
    elif style == 1:
        line = f"{ts} {lv} service={service} msg=\"{event}\" " + " ".join(fields)
    else:
        line = f"[{ts}] {service}-svc {lv.upper()} {event}; " + ", ".join(fields)
    gold = {"timestamp": iso, "level": level, "service": service, "user": user, "ip": ip}
    instr = rng.choice([
        "Extract timestamp, level, service, user and ip from this log line as JSON (null if missing).",
        "Parse the server log line into JSON. Use null for absent fields.",
        "Return JSON with the ISO timestamp, log level (DEBUG/INFO/WARN/ERROR), service, user and client ip; null when absent.",
        "Turn this log entry into a JSON record (timestamp, level, service, user, ip).",
    ])
    return instr, line, gold


def tracking(rng, carrier):
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(16))
    if rng.random() < 0.5:
        return "".join(rng.choice("0123456789") for _ in range(rng.choice([10, 12, 14])))
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return (rng.choice(letters) + rng.choice(letters) + str(rng.randrange(10**8, 10**9))
            + rng.choice(["DE", "GB", "NL", "FR", "JP", "CA", "US", "SE"]))


def shipping(rng):
    order = rng.choice(["ORD-", "SO-", "#", "A"]) + str(rng.randrange(10000, 9999999))
    carrier = rng.choice(CARRIERS)
    track = tracking(rng, carrier)
    origin, dest = rng.sample(CITIES, 2)
    kg = plain_number(rng.randrange(1, 3000) / 10)
    weight = rng.choice([f"{kg} kg", f"{kg}kg", f"{kg} kilograms",
                         f"{str(kg).replace('.', ',')} kg"])
    shipped = pick_date(rng)
    clauses = [
        rng.choice([f"Your order {order} has shipped", f"Order {order} is on its way",
                    f"Shipment for order {order} dispatched"]),
        rng.choice([f"Carrier: {carrier}", f"sent with {carrier}", f"handled by {carrier}"]),
        rng.choice([f"tracking number {track}", f"Tracking: {track}", f"track it with {track}"]),
        rng.choice([f"shipped from {origin} to {dest}", f"destination: {dest} (from our {origin} warehouse)",
                    f"delivering to {dest}, origin {origin}"]),
        rng.choice([f"weight {weight}", f"package weight: {weight}", f"gross weight {weight}"]),
    ] + rng.sample([f"{rng.randrange(1, 6)} parcel(s), dispatched {fmt_date(rng, shipped)}",
                    f"expected in {rng.randrange(2, 10)} business days",
                    f"postcode {rng.randrange(10000, 99999)}"], rng.randrange(1, 3))
    first, rest = clauses[0], clauses[1:]
    rng.shuffle(rest)
    text = first + ". " + ". ".join(c[0].upper() + c[1:] for c in rest) + "."
    gold = {"order_id": order, "carrier": carrier, "tracking_number": track,
            "destination_city": dest, "weight_kg": kg}
    instr = rng.choice([
        "Extract order_id, carrier, tracking_number, destination_city and weight_kg as JSON.",
        "Read this shipping notice and return the shipment fields as JSON.",
        "Return JSON: order id, carrier, tracking number, destination city, weight in kg.",
        "Parse the shipping notification into JSON (order_id, carrier, tracking_number, destination_city, weight_kg).",
    ])
    return instr, text, gold


def meeting(rng):
    d = pick_date(rng)
    deadline = d + timedelta(days=rng.randrange(3, 40))
    next_meet = d + timedelta(days=rng.choice([7, 14, 21, 28]))
    n = rng.randrange(2, 5)
    names = []
    while len(names) < n + 1:
        p = rng.choice(FIRST_NAMES)
        if p not in names:
            names.append(p)
    attendees, absent = names[:n], names[n]
    owner = rng.choice(attendees)
    listing = ", ".join(attendees[:-1]) + " and " + attendees[-1]
    topic, task = rng.choice(TOPICS), rng.choice(TASKS)
    clauses = [
        rng.choice([f"Attendees: {listing}", f"Present: {listing}", f"{listing} attended"]),
        rng.choice([f"Apologies from {absent}", f"{absent} was absent"]),
        f"We discussed {topic} ({rng.randrange(2, 9)} open points)",
        rng.choice([f"Action: {owner} to {task} by {fmt_date(rng, deadline)}",
                    f"{owner} will {task}, due {fmt_date(rng, deadline)}",
                    f"Action item for {owner}: {task} (deadline {fmt_date(rng, deadline)})"]),
        f"Next meeting {fmt_date(rng, next_meet)}",
    ]
    head = rng.choice([f"Meeting notes, {fmt_date(rng, d)}", f"Minutes of {fmt_date(rng, d)}",
                       f"Team sync on {fmt_date(rng, d)}"])
    rng.shuffle(clauses)
    text = head + ". " + ". ".join(clauses) + "."
    gold = {"date": d.isoformat(), "attendees": attendees, "action_owner": owner,
            "deadline": deadline.isoformat()}
    instr = rng.choice([
        "Extract date, attendees, action_owner and deadline from these meeting notes as JSON.",
        "Read the minutes and return JSON with the meeting date, attendee list, action owner and deadline.",
        "Summarise these notes as JSON (date, attendees, action_owner, deadline), dates in ISO format.",
        "Parse the meeting notes into a JSON object.",
    ])
    return instr, text, gold


GENERATORS = {"invoice": invoice, "log": log_line, "shipping": shipping, "meeting": meeting}


def example(rng, family):
    instr, text, gold = GENERATORS[family](rng)
    user = f"{instr}\n\n{text}"
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": compact(gold)}]}


def split(rng, n, seen):
    """n examples, families mixed evenly, none whose user turn is already in `seen`."""
    families = [FAMILIES[i % len(FAMILIES)] for i in range(n)]
    rng.shuffle(families)
    out = []
    for family in families:
        while True:
            ex = example(rng, family)
            key = ex["messages"][0]["content"]
            if key not in seen:
                seen.add(key)
                out.append(ex)
                break
    return out


def write_jsonl(path, rows):
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    return path.stat().st_size


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {value}")
    return value


def main(argv=None):
    default_out = Path(__file__).resolve().parents[2] / "data" / "extract"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_out, help=f"output directory (default {default_out})")
    ap.add_argument("--train", type=non_negative, default=3000, help="training examples (default 3000)")
    ap.add_argument("--eval", type=non_negative, default=200, help="held-out examples (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    seen = set()
    train = split(rng, args.train, seen)
    held_out = split(rng, args.eval, seen)
    prompts = [{"messages": ex["messages"][:1]} for ex in held_out]

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        sizes = {name: write_jsonl(args.out / f"{name}.jsonl", rows)
                 for name, rows in (("train", train), ("eval", held_out), ("prompts", prompts))}
        fsync_dir(args.out)
    except OSError as e:
        print(f"error: cannot write to {args.out}: {e}", file=sys.stderr)
        return 1
    total_kb = sum(sizes.values()) / 1024
    print(f"wrote {len(train)} train, {len(held_out)} eval, {len(prompts)} prompts "
          f"({len(FAMILIES)} families, seed {args.seed}, {total_kb:.0f} KiB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
