"""Benchmark `process`: claims/s against codec parse + raw executemany of the same decrements.

    python bench/process.py [--claims 100000] [--certs 1000] [--memory]

Prints claims/s for ecert-abi's full pipeline (parse, assemble, decide, conditional
decrements, journal, stored reply, all in SQLite) and for a baseline that parses the same
lines with the codec and applies the same decrements with one executemany per batch; the
ratio is measured in the same run. --memory also compares peak memory of 100k vs 1M claims.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from ecert_abi.access import participants_from_toml
from ecert_abi.envelope import input_batch
from ecert_abi.identifiers import check_digit
from ecert_abi.ledger import MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.record import catalogue, read_lines
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import Certificate, CertificateLine, EntryLine, EntrySummary, Tariff

AS_OF = dt.date(2026, 3, 2)
IOR = "98-7654321"
PER_BATCH = 1000
SENDERS = participants_from_toml(
    (Path(__file__).resolve().parent.parent / "fixtures" / "participants.toml").read_text())


def cert_number(i: int) -> str:
    return f"6AU{i:06d}"


def certificates(n: int) -> bytes:
    certs = [Certificate("A", "AU", "05", cert_number(i), IOR, 2026, dt.date(2026, 1, 1),
                         dt.date(2026, 12, 31), (CertificateLine("0202305015", 10**9, "KG"),))
             for i in range(n)]
    out = []
    for k in range(0, n, PER_BATCH):
        recs = [r for c in certs[k:k + PER_BATCH] for r in c.to_records()]
        out += input_batch(site="EAU1", sender="AUC", password="AUPASS", application="VA",
                           date=AS_OF, blocks=[("2704", "ECT", recs)])
    return ("\n".join(out) + "\n").encode()


def claims(n: int, certs: int, out: Path) -> None:
    """Write n one-line summaries (one claim each) in batches of PER_BATCH."""
    with out.open("w") as f:
        for k in range(0, n, PER_BATCH):
            recs: list[str] = []
            for i in range(k, min(n, k + PER_BATCH)):
                t = f"{i:07d}"
                s = EntrySummary("A", "K9T", t + str(check_digit("K9T", t)), "2704", "02", IOR,
                                 (EntryLine("001", "AU", (Tariff("0202305015", Decimal(100),
                                                                 "KG"),),
                                            licence_type="05",
                                            licence_number=cert_number(i % certs)),))
                recs += s.to_records()
            f.write("\n".join(input_batch(site="2704", sender="K9T", password="K9TPAS",
                                          application="AE", date=AS_OF,
                                          blocks=[("2704", "K9T", recs)])) + "\n")


def registered(ledger: SqliteLedger) -> SqliteLedger:
    """The sample senders, so batches are authenticated as in production."""
    with ledger.transaction() as tx:
        for p in SENDERS:
            tx.put_participant(p)
    return ledger


def ours(db: Path, certs: bytes, path: Path) -> float:
    ledger = registered(SqliteLedger(str(db)))
    proc = Processor(ledger, AS_OF)
    for _ in proc.process_stream(io.BytesIO(certs)):
        pass
    t = time.perf_counter()
    with path.open("rb") as f:
        for _ in proc.process_stream(f):
            pass
    elapsed = time.perf_counter() - t
    ledger.close()
    return elapsed


def baseline(db: Path, certs: bytes, path: Path) -> float:
    ledger = registered(SqliteLedger(str(db)))
    for _ in Processor(ledger, AS_OF).process_stream(io.BytesIO(certs)):
        pass
    ledger.close()
    conn = sqlite3.connect(db, isolation_level=None)
    cat = catalogue()
    ae = cat.ids(cat.chapters["entry_summary"], "input")
    t = time.perf_counter()
    batch: list[tuple[int, str]] = []
    with path.open("rb") as f:
        for n, text, _ in read_lines(f):
            rec = cat.parse(text, n, ae)
            if rec.id == "52":
                batch.append((100, rec.values["license_certificate_permit_number"]))
            elif text[:1] == "Z":
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("UPDATE certificate_line SET used = used + ? WHERE programme"
                                 " = '05' AND number = ? AND hts = '0202305015'", batch)
                conn.execute("COMMIT")
                batch = []
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def peak_rss(n: int, certs: int) -> float:
    """Peak RSS (MB) of a child process streaming n claims through process."""
    code = (f"import sys; sys.argv=['x','--child','{n}','{certs}']; "
            "exec(open('bench/process.py').read())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def child(n: int, certs: int) -> None:
    import resource

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "claims.abi"
        claims(n, certs, p)
        ledger = MemoryLedger()
        ledger.transaction  # noqa: B018  (memory store: measures the pipeline, not SQLite)
        ours(Path(d) / "l.db", certificates(certs), p)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=100_000)
    ap.add_argument("--certs", type=int, default=1000)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        path = root / "claims.abi"
        claims(a.claims, a.certs, path)
        certs = certificates(a.certs)
        b = baseline(root / "base.db", certs, path)
        o = ours(root / "ours.db", certs, path)
    print(f"claims: {a.claims:,} on {a.certs:,} certificates, {PER_BATCH} per batch")
    print(f"baseline (codec parse + executemany): {a.claims / b:>10,.0f} claims/s")
    print(f"ecert-abi process (SQLite):           {a.claims / o:>10,.0f} claims/s")
    print(f"ratio ours/baseline time: {o / b:.2f}x (target <= 2x)")
    if a.memory:
        small, big = peak_rss(100_000, a.certs), peak_rss(1_000_000, a.certs)
        print(f"peak RSS 100k: {small:.1f} MB, 1M: {big:.1f} MB, difference {big - small:.1f} MB"
              " (target <= 20 MB)")


if __name__ == "__main__":
    main()
