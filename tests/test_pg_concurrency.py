"""Several processes draw on the same certificates at once; nothing is overdrawn or lost.

4 worker processes (spawn) each send 300 entry summaries, one batch each, against 20
certificates in one ledger (PostgreSQL database or SQLite file), with demand about ten
times the supply; some entry numbers are filed by all workers at once, and some batches
are sent by all of them. Afterwards every line stays within 0..issued, the journal explains every
used quantity, the pool fill is the sum of the lines, and every summary was either
accepted exactly once (and is on file with exactly its draws) or rejected.
"""

from __future__ import annotations

import datetime as dt
import io
import multiprocessing
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from participants_support import register

from ecert_abi.envelope import frame, input_batch
from ecert_abi.identifiers import check_digit
from ecert_abi.ledger import Ledger, open_ledger
from ecert_abi.processor import Processor
from ecert_abi.record import read_lines
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    read_ax_reply,
)

WORKERS = 4
PER_WORKER = 300
CERTS = 20
AS_OF = dt.date(2026, 3, 2)
IOR = "98-7654321"
HTS = ("0202305015", "0201305085")
BROKER = dict(site="2704", sender="K9T", password="K9TPAS")


def cert_number(i: int) -> str:
    return f"6AU{i:06d}"


def certificates_batch() -> bytes:
    """20 AU beef certificates; every other one has a second HTS line. Supply: 40,000 KG."""
    certs = [Certificate("A", "AU", "05", cert_number(i), IOR, 2026, dt.date(2026, 1, 15),
                         dt.date(2026, 12, 31),
                         tuple(CertificateLine(h, 2000 // (1 + i % 2), "KG")
                               for h in HTS[:1 + i % 2]))
             for i in range(CERTS)]
    lines = input_batch(site="EAU1", sender="AUC", password="AUPASS", application="VA",
                        date=dt.date(2026, 2, 1),
                        blocks=[("2704", "ECT", [r for c in certs for r in c.to_records()])])
    return ("\n".join(lines) + "\n").encode("ascii")


def summary(rnd: random.Random, n: str, reference: str) -> EntrySummary:
    """An entry summary of 1-3 lines of 50-400 KG on random certificate lines."""
    lines = []
    for j in range(rnd.randint(1, 3)):
        i = rnd.randrange(CERTS)
        lines.append(EntryLine(f"{j + 1:03d}", "AU", (
            Tariff(rnd.choice(HTS[:1 + i % 2]), Decimal(rnd.randint(50, 400)), "KG",
                   Decimal("1.00"), 100),),
            dt.date(2026, 2, 20), licence_type="05", licence_number=cert_number(i)))
    return EntrySummary("A", "K9T", n + str(check_digit("K9T", n)), "2704", "02", IOR,
                        tuple(lines), reference)


def as_batch(s: EntrySummary) -> bytes:
    lines = input_batch(**BROKER, application="AE", date=AS_OF,
                        blocks=[("2704", "K9T", s.to_records())])
    return ("\n".join(lines) + "\n").encode("ascii")


def summary_batches(worker: int) -> list[bytes]:
    """The worker's 300 summaries, one batch each (about 400,000 KG asked for in all).

    Every 15th is contested: at the same place in its list each worker files the same
    entry number under its own broker reference (the first to commit is ADDED, the others
    B35); every 15th, 7 later, is a batch all workers send byte for byte (processed once,
    replayed to the others).
    """
    rnd = random.Random(worker)
    out = []
    for k in range(PER_WORKER):
        if k % 15 == 0:
            s = summary(random.Random(k), f"8{k:06d}", f"W{worker}-{k}")
        elif k % 15 == 7:
            s = summary(random.Random(k), f"9{k:06d}", f"SAME-{k}")
        else:
            s = summary(rnd, f"{worker + 1}{k:06d}", f"W{worker}-{k}")
        out.append(as_batch(s))
    return out


def worker(url: str, batches: list[bytes]) -> list[list[str]]:
    """Runs in a spawned process: one Processor, one batch at a time."""
    ledger = open_ledger(url)
    try:
        proc = Processor(ledger, as_of=AS_OF)
        return [reply for b in batches for reply in proc.process_stream(io.BytesIO(b))]
    finally:
        ledger.close()


def dispositions(reply: list[str]) -> list[tuple[str, bool]]:
    data = ("\n".join(reply) + "\n").encode("latin-1")
    return [(str(d.entry_number), d.accepted) for b in frame(read_lines(io.BytesIO(data)))
            for d in read_ax_reply(b.records)]


def hammer(url: str) -> None:
    setup: Ledger = open_ledger(url)
    try:
        replies = list(Processor(register(setup), as_of=AS_OF).process_stream(
            io.BytesIO(certificates_batch())))
        assert len(replies) == 1 and len(setup.certificates()) == CERTS
    finally:
        setup.close()

    work = [(url, summary_batches(w)) for w in range(WORKERS)]
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.starmap(worker, work)  # a worker's exception is raised here

    ledger = open_ledger(url)
    try:
        check(ledger, [b for _, batches in work for b in batches],
              [r for res in results for r in res])
    finally:
        ledger.close()


def check(ledger: Ledger, sent: list[bytes], replies: list[list[str]]) -> None:
    assert len(replies) == len(sent) == WORKERS * PER_WORKER
    reply_to: dict[bytes, list[str]] = {}
    for batch, reply in zip(sent, replies, strict=True):
        assert reply_to.setdefault(batch, reply) == reply  # a batch sent again: same reply
    decided = [d for r in reply_to.values() for d in dispositions(r)]
    assert len(decided) == len(reply_to)  # one disposition per distinct summary batch
    accepted = Counter(e for e, ok in decided if ok)
    on_file = {s.entry_number: s for s in ledger.summaries()}
    assert set(on_file) == set(accepted)
    assert max(accepted.values()) == 1  # no summary accepted twice
    contested = {e for e, _ in decided if e.startswith("8")}
    assert len(contested) == PER_WORKER // 15 and contested & set(accepted)
    assert 0 < len(accepted) < len(decided)  # demand well above supply: both happen

    used = {(c.number, ln.hts): ln for c in ledger.certificates() for ln in c.lines}
    for ln in used.values():
        assert 0 <= ln.used <= ln.issued
    net: Counter[tuple[str, str]] = Counter()
    per_entry: Counter[tuple[str, str, str]] = Counter()
    for j in ledger.journal():
        sign = 1 if j.action == "D" else -1
        net[(j.number, j.hts)] += sign * j.quantity
        per_entry[(j.entry_number, j.number, j.hts)] += sign * j.quantity
    assert {k: ln.used for k, ln in used.items() if ln.used} == +net
    claimed: Counter[tuple[str, str, str]] = Counter()
    for s in on_file.values():
        for c in s.claims:
            claimed[(s.entry_number, c.number, c.hts)] += c.quantity
    assert +per_entry == claimed  # exactly the accepted summaries' draws, once each
    total = sum(ln.used for ln in used.values())
    assert total > 0.9 * sum(ln.issued for ln in used.values())  # supply mostly used up
    assert ledger.pool_fills() == {("BEEF-AU", 2026): total}


@pytest.mark.postgres
def test_concurrent_claims_postgres(pg_ledger_url: str) -> None:
    hammer(pg_ledger_url)


def test_concurrent_claims_sqlite(tmp_path: Path) -> None:
    hammer(str(tmp_path / "ledger.db"))
