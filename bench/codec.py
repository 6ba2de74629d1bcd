"""Codec benchmark: parse and emit throughput of ecert-abi against plain-Python baselines and
construct's compiled parser, plus peak memory of streaming the batch framer.

Usage:
    python bench/codec.py                     # 1,000,000 records
    python bench/codec.py --records 200000
    python bench/codec.py --memory-records 100000,1000000

What is measured, all in this one run over the same generated file of valid AE input
records (10, 11, 40, 50, 52 cycling; built with `layout.emit`, values from a seeded RNG):

  parse (a) baseline   plain str slicing of every non-filler field of each line, int() /
                       Decimal() conversion of the numeric fields only, no validation
        (b) construct  construct Struct of Bytes fields (one per field), .compile()d, one per
                       record type; lines as bytes; no validation, no conversion
        (c) ours       catalogue().parse(text, n, ids) per line (full 80-column validation
                       by the layout regex) plus `.values` of one record in 100 (decoding
                       is lazy)
  emit  (d) baseline   hand-written f-string formatter per record type from value dicts
        (e) ours       layout.emit(values) (validated by the layout regex)

Lines are held in memory before timing, so file I/O is not part of (a)-(e). The dispatch
on the record identifier is done the same way (dict lookup) for (a) and (b).

Memory: a child process streams `frame(read_lines(f))` over a file of M records (batches of
one block of 1,000 AE records) and reports its peak RSS (VmHWM, else ru_maxrss);
run for two sizes, the difference shows whether memory grows with the file. A single batch
is by design held in memory whole; the files here have many batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import construct

from ecert_abi.envelope import frame
from ecert_abi.record import catalogue, read_lines

CYCLE = ("R10", "R11", "R40", "R50", "R52")

A_LINE = "A2704K9TPASSWD041726     AE                                BENCH                "
B_LINE = "B  2704K9TAE                                               BLOCK                "
Y_LINE = "Y  2704K9TAE                                                                    "
Z_LINE = "Z2704K9T      041726                                                            "


# --- data -------------------------------------------------------------------------------

def transaction_values(rng: random.Random, k: int) -> list[tuple[str, dict[str, Any]]]:
    """Values of one realistic AE summary (10, 11, 40, 50, 52) number k."""
    day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(300))
    origin = rng.choice(("AU", "NZ", "MX", "CA", "UY"))
    qty = rng.randrange(1, 10**9)
    return [
        ("R10", {
            "summary_filing_action_request_code": rng.choice("AAAR"),
            "entry_filer_code": rng.choice(("K9T", "B12", "7XQ")),
            "entry_number": f"{k % 10**7:07d}{rng.randrange(10)}",
            "district_port_of_entry": rng.choice(("2704", "1001", "3901", "5301")),
            "broker_reference_number": f"BRK-{k % 100000:05d}",
            "entry_type_code": rng.choice(("01", "02", "03", "11")),
            "mode_of_transportation_code": rng.choice(("11", "40", "30")),
            "electronic_signature": "X",
            "payment_type_code": rng.choice("126"),
            "preliminary_statement_print_date": day if rng.random() < 0.5 else None,
        }),
        ("R11", {
            "importer_of_record_number": f"{rng.randrange(10, 100)}-{rng.randrange(10**7):07d}",
            "consignee_number": f"{rng.randrange(10, 100)}-{rng.randrange(10**7):07d}",
            "estimated_entry_date": day,
            "us_state_of_destination_code": rng.choice(("CA", "NY", "TX", "IL")),
        }),
        ("R40", {
            "line_item_identifier": "001",
            "country_of_origin_code": origin,
            "country_of_export_code": origin,
            "date_of_exportation": day - dt.timedelta(days=rng.randrange(60)),
            "charges_amount": rng.randrange(10**6),
            "foreign_port_of_lading_code": rng.choice(("60201", "60225", "20195")),
            "gross_shipping_weight": rng.randrange(10**7),
            "related_party_indicator": rng.choice("NY"),
        }),
        ("R50", {
            "hts_number": rng.choice(("0202305015", "0201300200", "1701140000")),
            "duty_amount": Decimal(rng.randrange(10**8)).scaleb(-2),
            "value_of_goods_amount": rng.randrange(10**7),
            "quantity_1": Decimal(qty).scaleb(-2),
            "unit_of_measure_code_1": "KG",
        }),
        ("R52", {
            "license_certificate_permit_type_code": rng.choice(("05", "30")),
            "license_certificate_permit_number": f"6{origin}{rng.randrange(10**6):06d}",
        }),
    ]


def generate(n: int, seed: int = 2026) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """n valid AE records (lines) and their (layout, values), built with layout.emit."""
    cat = catalogue()
    emitters = {name: cat.layout(name).emit for name in CYCLE}
    rng = random.Random(seed)
    lines: list[str] = []
    values: list[tuple[str, dict[str, Any]]] = []
    k = 0
    while len(lines) < n:
        k += 1
        for name, vals in transaction_values(rng, k):
            if len(lines) == n:
                break
            lines.append(emitters[name](vals))
            values.append((name, vals))
    return lines, values


# --- (a) baseline parse -----------------------------------------------------------------

def baseline_parser() -> Callable[[list[str]], int]:
    cat = catalogue()
    plans: dict[str, list[tuple[str, int, int, int, int]]] = {}
    for name in CYCLE:
        lay = cat.layout(name)
        plan = []
        for f in lay.fields:
            if f.cls == "S":
                continue
            kind = (2 if f.decimals else 1) if f.cls in ("N", "(S)N") else 0
            plan.append((f.name, f.start - 1, f.end, kind, -f.decimals))
        plans[lay.id] = plan

    def run(lines: list[str]) -> int:
        n = 0
        for line in lines:
            rec: dict[str, object] = {}
            for name, a, b, kind, exp in plans[line[:2]]:
                s = line[a:b]
                if kind == 0:
                    rec[name] = s
                elif kind == 1:
                    rec[name] = int(s) if s.strip() else None
                else:
                    rec[name] = Decimal(s).scaleb(exp) if s.strip() else None
            n += 1
        return n

    return run


# --- (b) construct, compiled ------------------------------------------------------------

def construct_parser() -> Callable[[list[bytes]], int]:
    cat = catalogue()
    structs = {}
    for name in CYCLE:
        lay = cat.layout(name)
        st = construct.Struct(*(f.name / construct.Bytes(f.width) for f in lay.fields))
        structs[lay.id.encode()] = st.compile().parse

    def run(lines: list[bytes]) -> int:
        n = 0
        for line in lines:
            structs[line[:2]](line)
            n += 1
        return n

    return run


# --- (c) ours ---------------------------------------------------------------------------

def our_parser() -> Callable[[list[str]], int]:
    cat = catalogue()
    ids = cat.ids(cat.chapters["entry_summary"], "input")
    parse = cat.parse

    def run(lines: list[str]) -> int:
        bad = 0
        for n, text in enumerate(lines, 1):
            rec = parse(text, n, ids)
            if n % 100 == 0:
                rec.values  # noqa: B018  (lazy decoding: touch one record in 100)
            if rec.defects:
                bad += 1
        if bad:
            raise SystemExit(f"ours: {bad} generated records did not validate")
        return len(lines)

    return run


# --- (d) baseline emit ------------------------------------------------------------------

def _t(v: str | None, w: int) -> str:
    return " " * w if v is None else v.ljust(w)


def _n(v: int | None, w: int) -> str:
    return " " * w if v is None else f"{v:0{w}d}"


def _c(v: Decimal | None, w: int) -> str:  # 2 implied decimals
    return " " * w if v is None else f"{int(v.scaleb(2)):0{w}d}"


def _d(v: dt.date | None) -> str:
    return "      " if v is None else f"{v.month:02d}{v.day:02d}{v.year % 100:02d}"


def f10(v: dict[str, Any]) -> str:
    g = v.get
    return (f"10{_t(g('summary_filing_action_request_code'), 1)}{_t(g('entry_filer_code'), 3)}"
            f"  {_t(g('entry_number'), 8)} {_t(g('district_port_of_entry'), 4)}"
            f"{_t(g('broker_reference_number'), 9)}   {_t(g('entry_type_code'), 2)}"
            f"{_t(g('mode_of_transportation_code'), 2)}{_t(g('bond_waiver_indicator'), 1)}"
            f"{_t(g('electronic_signature'), 1)}"
            f"{_t(g('cargo_release_certification_request_indicator'), 1)}"
            f"{_t(g('electronic_invoice_indicator'), 1)}"
            f"{_t(g('consolidated_summary_indicator'), 1)}"
            f"{_t(g('shipment_usage_type_code'), 1)}{_t(g('live_entry_indicator'), 1)}"
            f"{_t(g('deferred_tax_payment_code'), 1)}"
            f"{_t(g('trade_agreement_reconciliation_indicator'), 1)}"
            f"{_t(g('reconciliation_issue_code'), 3)} {_t(g('payment_type_code'), 1)}"
            f"{_d(g('preliminary_statement_print_date'))}{_t(g('periodic_statement_month'), 2)}"
            f"{_t(g('statement_client_branch_identifier'), 2)}"
            f"{_t(g('bond_waiver_reason_code'), 3)}"
            f"{_t(g('post_summary_correction_indicator'), 1)}"
            f"{_t(g('accelerated_liquidation_request_indicator'), 1)}"
            f"{_t(g('known_importer_indicator'), 1)}{_t(g('pga_data_included_indicator'), 1)}"
            f"{_t(g('tib_declaration_indicator'), 1)}"
            f"{_t(g('consolidated_express_informal_indicator'), 1)}          ")


def f11(v: dict[str, Any]) -> str:
    g = v.get
    return (f"11{_t(g('importer_of_record_number'), 12)}{_t(g('consignee_number'), 12)}"
            f"{_t(g('designated_notify_party_4811_number'), 12)}   "
            f"{_d(g('estimated_entry_date'))}{_d(g('date_of_importation'))}       "
            f"{_t(g('us_state_of_destination_code'), 2)}"
            f"{_t(g('foreign_trade_zone_identifier'), 9)}         ")


def f40(v: dict[str, Any]) -> str:
    g = v.get
    return (f"40  {_t(g('line_item_identifier'), 3)}{_t(g('article_set_indicator'), 1)}"
            f"{_t(g('country_of_origin_code'), 2)}{_t(g('country_of_export_code'), 2)}"
            f"{_d(g('date_of_exportation'))}{_d(g('date_of_exportation_textiles'))}"
            f"{_t(g('trade_agreement_special_program_claim_code'), 2)}"
            f"{_n(g('charges_amount'), 10)}{_t(g('foreign_port_of_lading_code'), 5)}"
            f"{_n(g('gross_shipping_weight'), 10)}{_n(g('category_code_textiles'), 3)}"
            f"{_t(g('product_claim_code'), 1)}{_t(g('related_party_indicator'), 1)}"
            f"{_t(g('nafta_net_cost_indicator'), 1)}{_t(g('fee_exemption_code'), 1)} "
            f"{_t(g('ad_case_non_reimbursement_statement'), 1)}{' ' * 20}")


def f50(v: dict[str, Any]) -> str:
    g = v.get
    return (f"50{_t(g('hts_number'), 10)} {_c(g('duty_amount'), 10)} "
            f"{_n(g('value_of_goods_amount'), 10)} {_c(g('quantity_1'), 12)}"
            f"{_t(g('unit_of_measure_code_1'), 3)}{_c(g('quantity_2'), 12)}"
            f"{_t(g('unit_of_measure_code_2'), 3)}{_c(g('quantity_3'), 12)}"
            f"{_t(g('unit_of_measure_code_3'), 3)}")


def f52(v: dict[str, Any]) -> str:
    g = v.get
    return (f"52{_t(g('license_certificate_permit_type_code'), 2)}"
            f"{_t(g('license_certificate_permit_number'), 10)}{' ' * 66}")


BASELINE_EMIT = {"R10": f10, "R11": f11, "R40": f40, "R50": f50, "R52": f52}


def baseline_emitter() -> Callable[[list[tuple[str, dict[str, Any]]]], list[str]]:
    fmt = BASELINE_EMIT

    def run(values: list[tuple[str, dict[str, Any]]]) -> list[str]:
        return [fmt[name](v) for name, v in values]

    return run


def our_emitter() -> Callable[[list[tuple[str, dict[str, Any]]]], list[str]]:
    cat = catalogue()
    emit = {name: cat.layout(name).emit for name in CYCLE}

    def run(values: list[tuple[str, dict[str, Any]]]) -> list[str]:
        return [emit[name](v) for name, v in values]

    return run


# --- timing -----------------------------------------------------------------------------

def timed(fn: Callable[[Any], Any], arg: Any, count: int, repeat: int) -> tuple[float, Any]:
    """(records per second, result) of fn(arg) over `count` records: the best of `repeat`
    runs (the machine may be shared; the fastest run is the least disturbed one)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn(arg)
        best = min(best, time.perf_counter() - t0)
    return count / best, result


# --- memory (child process) -------------------------------------------------------------

def write_envelope_file(path: Path, records: int, pool: list[str], per_batch: int = 1000) -> None:
    """`records` AE records from `pool`, in batches of one block of `per_batch` records."""
    assert per_batch % len(CYCLE) == 0
    with path.open("wb") as out:
        done = 0
        i = 0
        while done < records:
            take = min(per_batch, records - done)  # every batch starts at a 10-record
            chunk = []
            for _ in range(take):
                chunk.append(pool[i % len(pool)])
                i += 1
            out.write("\n".join([A_LINE, B_LINE, *chunk, Y_LINE, Z_LINE]).encode("latin-1"))
            out.write(b"\n")
            done += take


def peak_rss_kb() -> int:
    """Peak resident set of this process in KiB.

    Linux keeps ru_maxrss across fork+exec (a child of a big parent reports the parent's
    peak), so the per-address-space high-water mark VmHWM is read when available.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(path: str) -> None:
    catalogue()  # the layouts are loaded before the baseline is taken
    base = peak_rss_kb()
    batches = records = faults = 0
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        for batch in frame(read_lines(f)):
            batches += 1
            records += len(batch.records)
            faults += len(batch.faults)
    elapsed = time.perf_counter() - t0
    peak = peak_rss_kb()
    print(json.dumps({"batches": batches, "records": records, "faults": faults,
                      "base_kb": base, "peak_kb": peak, "seconds": elapsed}))


def measure_memory(path: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# --- main -------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000,
                    help="records in the parse/emit file (default 1,000,000)")
    ap.add_argument("--memory-records", default="100000,1000000",
                    help="the two file sizes of the framing memory test")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement; the best is reported (default 3)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    n = args.records
    t_start = time.perf_counter()
    print(f"ecert-abi codec benchmark: {n:,} AE records (10, 11, 40, 50, 52 cycling), "
          f"best of {args.repeat}; Python {sys.version.split()[0]}, "
          f"construct {construct.__version__}")
    with tempfile.TemporaryDirectory(prefix="ecert-bench-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        lines, values = generate(n)
        path = tmpdir / "ae.abi"
        path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
        print(f"generated {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")

        # the file as read back: text lines and byte lines
        with path.open("rb") as f:
            text = [t for _, t, _ in read_lines(f)]
        raw = [t.encode("latin-1") for t in text]
        assert text == lines

        # sanity: the baselines produce what they claim
        assert [BASELINE_EMIT[name](v) for name, v in values[:2000]] == lines[:2000]

        results: dict[str, float] = {}
        print("\nparse (records/s)")
        for key, label, fn, arg in [
            ("a", "(a) baseline: str slicing + int()/Decimal()", baseline_parser(), text),
            ("b", "(b) construct: compiled Struct of Bytes", construct_parser(), raw),
            ("c", "(c) ours: cat.parse + .values of 1 in 100", our_parser(), text),
        ]:
            rate, _ = timed(fn, arg, n, args.repeat)
            results[key] = rate
            print(f"  {label:<46} {rate:>12,.0f}")
        print("\nemit (records/s)")
        for key, label, fn in [
            ("d", "(d) baseline: hand-written f-strings", baseline_emitter()),
            ("e", "(e) ours: layout.emit(values)", our_emitter()),
        ]:
            rate, out = timed(fn, values, n, args.repeat)
            assert out == lines, f"{label} did not reproduce the file"
            results[key] = rate
            print(f"  {label:<46} {rate:>12,.0f}")
        del text, raw, lines, values
        gc.collect()

        # memory of streaming frame() over two file sizes
        sizes = [int(x) for x in args.memory_records.split(",")]
        pool_lines, _ = generate(10_000, seed=7)
        mem = []
        print("\nframe(read_lines(f)) streaming, child process")
        for size in sizes:
            mpath = tmpdir / f"batches-{size}.abi"
            write_envelope_file(mpath, size, pool_lines)
            m = measure_memory(mpath)
            mpath.unlink()
            if m["faults"]:
                raise SystemExit(f"memory file of {size} records has {m['faults']} faults")
            mem.append(m)
            print(f"  {size:>10,} records, {m['batches']:>5,} batches: peak RSS "
                  f"{m['peak_kb'] / 1024:7.1f} MB (after loading layouts "
                  f"{m['base_kb'] / 1024:.1f} MB), {m['records'] / m['seconds']:,.0f} lines/s")
        diff_mb = (mem[-1]["peak_kb"] - mem[0]["peak_kb"]) / 1024

    total = time.perf_counter() - t_start
    print("\n" + "=" * 66)
    print(f"SUMMARY  ({n:,} records, {total:.0f} s total)")
    print(f"  parse  ours {results['c']:>11,.0f}/s   baseline {results['a']:>11,.0f}/s   "
          f"construct {results['b']:>11,.0f}/s")
    print(f"         ours/(a) baseline  = {results['c'] / results['a']:.2f}x")
    print(f"         ours/(b) construct = {results['c'] / results['b']:.2f}x")
    print(f"  emit   ours {results['e']:>11,.0f}/s   baseline {results['d']:>11,.0f}/s")
    print(f"         ours/(d) baseline  = {results['e'] / results['d']:.2f}x")
    print(f"  frame  peak RSS {sizes[0]:,} -> {sizes[-1]:,} records: "
          f"{mem[0]['peak_kb'] / 1024:.1f} -> {mem[-1]['peak_kb'] / 1024:.1f} MB "
          f"(difference {diff_mb:+.1f} MB)")
    print("=" * 66)


if __name__ == "__main__":
    main()
