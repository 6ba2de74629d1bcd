"""Workloads and checks of the reliability suite, shared by tests/test_reliability.py (small
sizes) and bench/stress.py (full sizes, printed figures).

- Concurrent claims: several `ecert-abi process` workers draw on the same certificates in
  one ledger; `check_claims` counts overdraws, journal/balance mismatches and claims
  accepted more than once, from the ledger and every reply.
- Crashes: `crash_run` kills `ecert-abi process` with SIGKILL at a random point, checks that
  the ledger holds exactly the committed prefix of the input and that every reply written
  belongs to committed work, then resumes and compares with an uninterrupted run.
- Replay: `replay` sends batches again and counts changes and differing replies.
- Garbage: `garbage_cases` mutates valid batches and makes random bytes; `feed_garbage`
  counts exceptions and batches left without exactly one well-formed reply; `peak_rss`
  measures a `process` child fed a gigabyte line or a file without newlines.

Every check returns counts instead of asserting, so the benchmark can print them; the
tests assert the counts that must be zero.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import cast

import attrs

from ecert_abi.envelope import frame, input_batch
from ecert_abi.identifiers import check_digit
from ecert_abi.ledger import Ledger, MemoryLedger, snapshot
from ecert_abi.processor import Processor, digest
from ecert_abi.record import read_lines
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
    read_ax_reply,
)

AS_OF = dt.date(2026, 3, 2)
IOR_A = "98-7654321"
IOR_B = "12-3456789AB"
BEEF_HTS = ("0202305015", "0201305085")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


# --- common -----------------------------------------------------------------------------

def cli() -> list[str]:
    """The `ecert-abi` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("ecert-abi")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ecert_abi.cli import main; main()"]


def process_command(infile: str, db: str, output: str = "-") -> list[str]:
    return [*cli(), "process", infile, "--db", db, "--as-of", AS_OF.isoformat(),
            "--trust-senders", "--json-summary", "-o", output]


def encode(lines: Iterable[str]) -> bytes:
    return "".join(x + "\n" for x in lines).encode("latin-1")


def digests(data: bytes) -> list[str]:
    """The ledger key of every batch in `data`, as the processor frames it."""
    return [digest(b) for b in frame(read_lines(io.BytesIO(data)))]


def batches_of(data: bytes) -> list[bytes]:
    """`data` cut into its batches, as the processor frames them."""
    return [encode(r.text for r in b.records) for b in frame(read_lines(io.BytesIO(data)))]


def split_replies(data: bytes) -> tuple[list[list[str]], list[str]]:
    """Reply batches in `data` (each ends with its Z-record), and a torn tail, if any.

    No reply record but the trailer starts with Z, so this needs no framing.
    """
    replies: list[list[str]] = []
    current: list[str] = []
    for line in data.decode("latin-1").splitlines():
        current.append(line)
        if line.startswith("Z"):
            replies.append(current)
            current = []
    return replies, current


def entry(n: str) -> str:
    return n + str(check_digit("K9T", n))


def cert_number(country: str, i: int) -> str:
    return f"6{country}{i:06d}"


def broker_batch(application: str, records: Sequence[str], date: dt.date = AS_OF) -> bytes:
    """A batch from broker K9T at port 2704."""
    return encode(input_batch(site="2704", sender="K9T", password="K9TPAS",
                              application=application, date=date,
                              blocks=[("2704", "K9T", records)]))


def ae_batch(summaries: Sequence[EntrySummary], date: dt.date = AS_OF) -> bytes:
    return broker_batch("AE", [r for s in summaries for r in s.to_records()], date)


def va_batch(country: str, certs: Sequence[Certificate], date: dt.date) -> bytes:
    return encode(input_batch(site=f"E{country}1", sender=f"{country}C",
                              password=f"{country}PASS", application="VA", date=date,
                              blocks=[("2704", "ECT", [r for c in certs for r in c.to_records()])]))


def beef_cert(country: str, number: str, ior: str, lines: Sequence[tuple[str, int]],
              action: str = "A") -> Certificate:
    return Certificate(action, country, "05", number, ior, 2026, dt.date(2026, 1, 15),
                       dt.date(2026, 12, 31),
                       tuple(CertificateLine(h, q, "KG") for h, q in lines),
                       exporter=f"{country} MEAT EXPORTS")


def beef_line(line_id: str, country: str, number: str, hts: str, qty: int) -> EntryLine:
    return EntryLine(line_id, country, (Tariff(hts, Decimal(qty), "KG", Decimal("1.00"), 100),),
                     dt.date(2026, 2, 20), licence_type="05", licence_number=number)


def fingerprint(ledger: Ledger) -> str:
    """A short, store-independent digest of `snapshot(ledger)` (journal seq left out)."""
    return hashlib.sha256(repr(snapshot(ledger)).encode()).hexdigest()[:16]


# --- concurrent claims ----------------------------------------------------------------

@attrs.frozen
class Summary:
    """What a generated entry summary asks for: claims are (certificate, HTS, quantity)."""

    action: str
    entry: str
    claims: tuple[tuple[str, str, int], ...]


@attrs.frozen
class Sent:
    """One generated batch: its bytes, its summaries, and the worker that sends it (None:
    every worker sends it, byte for byte)."""

    data: bytes
    summaries: tuple[Summary, ...]
    worker: int | None


@attrs.frozen
class ClaimWorkload:
    certificates: bytes
    issued: dict[tuple[str, str], int]  # (certificate, HTS) -> issued quantity
    batches: tuple[tuple[Sent, ...], ...]  # per worker, in sending order

    @property
    def claims(self) -> int:
        return sum(len(s.claims) for w in self.batches for b in w for s in b.summaries)


def claim_workload(workers: int, claims: int, certs: int, *, per_batch: int = 100,
                   seed: int = 0) -> ClaimWorkload:
    """`claims` claims per worker (one entry summary line each) on `certs` certificates.

    Demand is about twice the supply, so balances run out and both outcomes happen. Every
    40th summary is contested: each worker files the same entry number under its own broker
    reference (the first to commit may be ADDED, the others B35). Every 10th batch is sent
    by every worker byte for byte (processed once, replayed to the others). Now and then a
    worker replaces or deletes one of its own earlier summaries (credits under contention).
    """
    numbers = [cert_number("AU" if i % 4 else "NZ", i) for i in range(certs)]
    lines = {n: BEEF_HTS[:1 + i % 2] for i, n in enumerate(numbers)}
    demand = workers * claims * 110  # quantities 20..200
    per_line = max(1, demand // 2 // sum(len(h) for h in lines.values()))
    issued = {(n, h): per_line for n in numbers for h in lines[n]}
    va = b"".join(
        va_batch(country, [beef_cert(country, n, IOR_A, [(h, per_line) for h in lines[n]])
                           for n in numbers[k:k + 500] if n[1:3] == country],
                 dt.date(2026, 2, 1))
        for k in range(0, certs, 500) for country in ("AU", "NZ")
        if any(n[1:3] == country for n in numbers[k:k + 500]))

    def asks(rnd: random.Random) -> tuple[tuple[str, str, int], ...]:
        out = []
        for _ in range(1 if rnd.random() < 0.9 else 2):
            n = rnd.choice(numbers)
            out.append((n, rnd.choice(lines[n]), rnd.randint(20, 200)))
        return tuple(out)

    def built(s: Summary, ref: str) -> EntrySummary:
        if s.action == "D":
            return EntrySummary("D", "K9T", s.entry, "2704", "02", None, (), ref)
        return EntrySummary(s.action, "K9T", s.entry, "2704", "02", IOR_A, tuple(
            beef_line(f"{j:03d}", n[1:3], n, h, q) for j, (n, h, q) in enumerate(s.claims, 1)),
            ref)

    shared: dict[int, Sent] = {}

    def shared_batch(j: int) -> Sent:
        if j not in shared:
            rnd = random.Random(f"{seed}-shared-{j}")
            sums = [Summary("A", entry(f"0{j:03d}{i:03d}"), asks(rnd)) for i in range(per_batch)]
            shared[j] = Sent(ae_batch([built(s, "SHARED") for s in sums]), tuple(sums), None)
        return shared[j]

    per_worker = []
    for w in range(workers):
        rnd = random.Random(f"{seed}-worker-{w}")
        own: list[str] = []  # own entries of earlier batches, on file perhaps
        refs: dict[str, str] = {}
        sent: list[Sent] = []
        k = drawn = 0
        j = 0
        while drawn < claims:
            if j % 10 == 9:
                b = shared_batch(j)
            else:
                sums, texts, fresh = [], [], []
                for _ in range(per_batch):
                    k += 1
                    if k % 40 == 0:
                        s = Summary("A", entry(f"9{k:06d}"), asks(random.Random(f"{seed}-{k}")))
                        ref = f"W{w}-{k}"
                    elif k % 53 == 0 and own:
                        n = rnd.choice(own)
                        s, ref = Summary("R", n, asks(rnd)), refs[n]
                    elif k % 71 == 0 and own:
                        n = own.pop(rnd.randrange(len(own)))
                        s, ref = Summary("D", n, ()), refs[n]
                    else:
                        s, ref = Summary("A", entry(f"{w + 1}{k:06d}"), asks(rnd)), f"W{w}-{k}"
                        fresh.append(s.entry)
                        refs[s.entry] = ref
                    sums.append(s)
                    texts.append(built(s, ref))
                b = Sent(ae_batch(texts), tuple(sums), w)
                own += fresh  # so that a batch's journal rows per entry are one summary's
            sent.append(b)
            drawn += sum(len(s.claims) for s in b.summaries)
            j += 1
        per_worker.append(tuple(sent))
    return ClaimWorkload(va, issued, tuple(per_worker))


def ping(worker: int) -> bytes:
    """A cheap importer query, distinct per worker: its reply shows the worker is up."""
    return broker_batch("EC", UsageQuery("importer", ior=f"11-{worker:07d}").to_records())


class CliWorker:
    """`ecert-abi process -` in a child process, fed through a pipe.

    `start()` returns once the child has answered a ping (imports done, ledger open). Then
    either `feed()` writes all batches from a thread while another collects the replies, or
    `send()`/`receive()` go one batch at a time.
    """

    def __init__(self, db: str, worker: int) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the child)
        self.proc = subprocess.Popen(process_command("-", db), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.worker = worker
        self.out = bytearray()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.send(ping(self.worker))
        self.receive()
        self.out.clear()

    def send(self, batch: bytes) -> None:
        self.stdin.write(batch)
        self.stdin.flush()

    def receive(self) -> None:
        """Read up to the end of the next reply batch."""
        while not (line := self.stdout.readline()).startswith(b"Z"):
            if not line:
                raise RuntimeError(f"worker {self.worker} died: {self.stderr()[-2000:]}")
            self.out += line
        self.out += line

    def feed(self, batches: Sequence[bytes]) -> None:
        def write() -> None:
            try:
                for b in batches:
                    self.stdin.write(b)
            except BrokenPipeError:
                pass  # the child died; wait() reports it
            finally:
                self.stdin.close()

        def read() -> None:
            while chunk := cast(io.BufferedReader, self.stdout).read1(1 << 16):
                self.out += chunk

        self.threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in self.threads:
            t.start()

    def wait(self) -> tuple[int, list[list[str]]]:
        """Exit code and the replies to the batches sent."""
        if not self.threads:
            self.stdin.close()
            self.out += self.stdout.read()
        for t in self.threads:
            t.join()
        rc = self.proc.wait()
        replies, _ = split_replies(bytes(self.out))
        return rc, replies

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")


def run_workers(db: str, batches: Sequence[Sequence[bytes]], *, lockstep: bool = False
                ) -> tuple[list[list[list[str]]], float]:
    """Run one CLI worker per batch list, all at once; their replies and the seconds from
    the first batch sent to the last reply. A worker that fails raises RuntimeError.

    `lockstep` hands every worker its next batch at the same moment and waits for all
    replies before the next round, so that even a small workload has the workers
    contending for the ledger in every round (free-running small workers may well run one
    after the other on a busy machine).
    """
    workers = [CliWorker(db, w) for w in range(len(batches))]
    for w in workers:
        w.start()
    t = time.perf_counter()
    if lockstep:
        for i in range(max(map(len, batches))):
            live = [w for w, bs in zip(workers, batches, strict=True) if i < len(bs)]
            for w in live:
                w.send(batches[w.worker][i])
            for w in live:
                w.receive()
    else:
        for w, bs in zip(workers, batches, strict=True):
            w.feed(bs)
    results = [w.wait() for w in workers]
    elapsed = time.perf_counter() - t
    for w, (rc, _) in zip(workers, results, strict=True):
        if rc != 0:
            raise RuntimeError(f"worker {w.worker} exited {rc}: {w.stderr()[-2000:]}")
    return [r for _, r in results], elapsed


def setup_ledger(db: str, data: bytes) -> list[list[str]]:
    """Process `data` in this process (certificates before the workers start)."""
    from ecert_abi.ledger import open_ledger

    ledger = open_ledger(db)
    try:
        return list(Processor(ledger, AS_OF, trust_senders=True).process_stream(
            io.BytesIO(data)))
    finally:
        ledger.close()


@attrs.define
class ClaimFigures:
    """What `check_claims` found. The first group must be zero."""

    overdraws: int = 0  # certificate lines whose balance ever went past issued (or below 0)
    journal_vs_used: int = 0  # lines where journal D - C differs from used
    claims_vs_used: int = 0  # lines where the summaries on file claim other than used
    pool_mismatches: int = 0  # pools whose fill is not the claims' pool shares
    double_accepts: int = 0  # entry numbers added (accepted) more than once
    journal_vs_reply: int = 0  # accepted adds without exactly their draws, rejected with any
    stray_journal: int = 0  # journal rows no accepted summary explains
    missing_replies: int = 0  # batches without a reply, or a reply with other summaries
    replies_differ: int = 0  # one batch, different replies (to different workers)
    uncommitted_replies: int = 0  # replies that are not the ledger's stored reply
    batches: int = 0
    distinct_batches: int = 0
    claims: int = 0
    claims_accepted: int = 0
    accepted: int = 0  # summaries
    rejected: int = 0
    contested_accepted: int = 0
    worker_switches: int = 0  # journal order: how often the next draw is another worker's

    def problems(self) -> dict[str, int]:
        names = ("overdraws", "journal_vs_used", "claims_vs_used", "pool_mismatches",
                 "double_accepts", "journal_vs_reply", "stray_journal", "missing_replies",
                 "replies_differ", "uncommitted_replies")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


def dispositions(reply: Sequence[str]) -> list[tuple[str, bool]]:
    return [(f"{d.entry_number}", d.accepted) for b in frame(read_lines(io.BytesIO(
        encode(reply)))) for d in read_ax_reply(b.records)]


def check_claims(ledger: Ledger, work: ClaimWorkload, replies: Sequence[Sequence[list[str]]]
                 ) -> ClaimFigures:
    """Everything the ledger and the workers' replies must agree on after a run."""
    f = ClaimFigures()
    reply_of: dict[str, list[str]] = {}
    sent_of: dict[str, Sent] = {}
    for batches, got in zip(work.batches, replies, strict=True):
        f.batches += len(batches)
        f.missing_replies += abs(len(batches) - len(got))
        for b, r in zip(batches, got, strict=False):
            (key,) = digests(b.data)
            sent_of[key] = b
            if reply_of.setdefault(key, r) != r:
                f.replies_differ += 1
    f.distinct_batches = len(sent_of)
    for key, r in reply_of.items():
        if ledger.stored_reply(key) != r:
            f.uncommitted_replies += 1

    journal = ledger.journal()
    rows: dict[tuple[str, str], list[tuple[str, str, str, int]]] = defaultdict(list)
    for j in journal:
        rows[(j.batch_digest, j.entry_number)].append((j.number, j.hts, j.action, j.quantity))
    explained: set[tuple[str, str]] = set()
    added: Counter[str] = Counter()
    for key, b in sent_of.items():
        decided = dispositions(reply_of[key])
        if [e for e, _ in decided] != [s.entry for s in b.summaries]:
            f.missing_replies += 1
            continue
        for s, (_, ok) in zip(b.summaries, decided, strict=True):
            f.claims += len(s.claims)
            f.claims_accepted += len(s.claims) if ok else 0
            f.accepted += ok
            f.rejected += not ok
            drawn = sorted(rows.get((key, s.entry), []))
            if s.action != "A":
                explained.add((key, s.entry))  # replace/delete: credits, checked in total
                continue
            if ok:
                added[s.entry] += 1
                f.contested_accepted += s.entry.startswith("9")
                explained.add((key, s.entry))
                f.journal_vs_reply += drawn != sorted((n, h, "D", q) for n, h, q in s.claims)
            else:
                f.journal_vs_reply += bool(drawn)
    f.double_accepts = sum(1 for n in added.values() if n > 1)
    f.stray_journal = sum(len(v) for k, v in rows.items() if k not in explained)

    running: Counter[tuple[str, str]] = Counter()
    over: set[tuple[str, str]] = set()
    for j in journal:  # seq order is commit order: the balance as each writer saw it
        k = (j.number, j.hts)
        running[k] += j.quantity if j.action == "D" else -j.quantity
        if not 0 <= running[k] <= work.issued.get(k, 0):
            over.add(k)
    used = {(c.number, ln.hts): ln for c in ledger.certificates() for ln in c.lines}
    over |= {k for k, ln in used.items() if not 0 <= ln.used <= ln.issued}
    f.overdraws = len(over)
    f.journal_vs_used = sum(1 for k, ln in used.items() if running[k] != ln.used)
    f.journal_vs_used += sum(1 for k in running if k not in used)
    claimed: Counter[tuple[str, str]] = Counter()
    pools: Counter[tuple[str, int]] = Counter()
    for held in ledger.summaries():
        for cl in held.claims:
            claimed[(cl.number, cl.hts)] += cl.quantity
            for pool, year, amount in cl.pools:
                pools[(pool, year)] += amount
    f.claims_vs_used = sum(1 for k, ln in used.items() if claimed[k] != ln.used)
    fills = ledger.pool_fills()
    f.pool_mismatches = len(set(fills.items()) ^ set((+pools).items()))

    owner = {k: b.worker for k, b in sent_of.items() if b.worker is not None}
    last = None
    for j in journal:
        w = owner.get(j.batch_digest)
        if w is not None:
            f.worker_switches += last is not None and w != last
            last = w
    return f


# --- replay ---------------------------------------------------------------------------

@attrs.define
class ReplayFigures:
    batches: int = 0
    replayed: int = 0
    changed: int = 0  # 1 if the ledger changed at all
    replies_differ: int = 0
    seconds: float = 0.0

    def problems(self) -> dict[str, int]:
        out = {"changed": self.changed, "replies_differ": self.replies_differ,
               "not_replayed": self.batches - self.replayed}
        return {k: v for k, v in out.items() if v}


def replay(ledger: Ledger, sent: Sequence[tuple[bytes, list[str]]]) -> ReplayFigures:
    """Send every (batch, its first reply) again: the same reply, nothing changed."""
    f = ReplayFigures(batches=len(sent))
    before = fingerprint(ledger)
    proc = Processor(ledger, AS_OF, trust_senders=True)
    t = time.perf_counter()
    for data, first in sent:
        again = list(proc.process_stream(io.BytesIO(data)))
        f.replies_differ += again != [first]
    f.seconds = time.perf_counter() - t
    f.replayed = proc.tally.replayed
    f.changed = int(fingerprint(ledger) != before)
    return f


# --- crashes ----------------------------------------------------------------------------

def crash_workload(batches: int, seed: int = 0, per_batch: int = 20) -> bytes:
    """About `batches` input batches of every kind the ledger handles, in order: certificate
    registrations (beef of four countries), entry summaries (adds of 1-3 lines, replaces,
    deletes; some over the balance, for another importer or on unknown certificates),
    certificate replacements and cancellations, usage queries, batches rejected whole
    (Z-record differs from the A) and exact repeats of earlier batches."""
    rnd = random.Random(f"crash-{seed}")
    # a transmission date per batch, so that only deliberate repeats share a digest
    day = (dt.date(2026, 1, 1) + dt.timedelta(days=i % 360) for i in itertools.count())
    out: list[bytes] = []
    certs: dict[str, tuple[str, str, list[tuple[str, int]]]] = {}  # number -> country, ior
    for country in ("AU", "NZ", "UY", "AR"):
        batch = []
        for i in range(8 if country == "AU" else 4):
            n = cert_number(country, i)
            lines = [(h, rnd.choice([20000, 60000, 200000]))
                     for h in BEEF_HTS[:rnd.randint(1, 2)]]
            certs[n] = (country, rnd.choice([IOR_A, IOR_A, IOR_B]), lines)
            batch.append(beef_cert(country, n, certs[n][1], lines))
        out.append(va_batch(country, batch, next(day)))
    filed: dict[str, str] = {}  # entry -> broker reference
    serial = 0
    while len(out) < batches:
        kind = rnd.random()
        if kind < 0.72:
            sums = []
            for _ in range(rnd.randint(per_batch // 2, per_batch)):
                what = rnd.random()
                if what < 0.12 and filed:
                    n = rnd.choice(sorted(filed))
                    sums.append(EntrySummary("D", "K9T", n, "2704", "02", None, (), filed.pop(n)))
                    continue
                if what < 0.3 and filed:
                    n, action = rnd.choice(sorted(filed)), "R"
                else:
                    serial += 1
                    n, action = entry(f"{serial:07d}"), "A"
                    filed[n] = f"C{serial}"
                ior = rnd.choice([IOR_A, IOR_A, IOR_B])
                mine = sorted(k for k, v in certs.items() if v[1] == ior or rnd.random() < 0.03)
                items = []
                for j in range(rnd.randint(1, 3)):
                    num = rnd.choice(mine)
                    if rnd.random() < 0.03:
                        num = num[:3] + "999999"  # not registered: L01
                    country, _, held = certs.get(num, (num[1:3], "", [(BEEF_HTS[0], 0)]))
                    items.append(beef_line(f"{j + 1:03d}", country, num,
                                           rnd.choice(held)[0], rnd.randint(100, 5000)))
                sums.append(EntrySummary(action, "K9T", n, "2704", "02", ior, tuple(items),
                                         filed.get(n)))
            out.append(ae_batch(sums, next(day)))
        elif kind < 0.8:
            n = rnd.choice(sorted(certs))
            country, ior, lines = certs[n]
            if rnd.random() < 0.3:
                c = Certificate("C", country, "05", n, None, None, None, None)
            else:
                lines = [(h, q + rnd.choice([0, 5000, 20000])) for h, q in lines]
                certs[n] = (country, ior, lines)
                c = beef_cert(country, n, ior, lines, "R")
            out.append(va_batch(country, [c], next(day)))
        elif kind < 0.86:
            if rnd.random() < 0.5:
                q = UsageQuery("importer", ior=rnd.choice([IOR_A, IOR_B]))
                out.append(broker_batch("EC", q.to_records(), next(day)))
            else:
                country = rnd.choice(["AU", "NZ"])
                q = UsageQuery("country", country=country)
                out.append(encode(input_batch(
                    site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                    application="VQ", date=next(day), blocks=[("2704", "ECT", q.to_records())])))
        elif kind < 0.92:
            texts = out[rnd.randrange(4, len(out))].decode("latin-1").splitlines() \
                if len(out) > 4 else []
            if texts and texts[-1].startswith("Z"):
                z = texts[-1]
                texts[-1] = z[:1] + "9999" + z[5:]  # Z site differs from the A's: X14
                out.append(encode(texts))
        else:
            out.append(out[rnd.randrange(len(out))])  # sent again: answered from storage
    return b"".join(out)


def mask_sequences(reply: Sequence[str]) -> list[str]:
    """Reply lines with journal sequence numbers blanked (UU 70-79, UE continuation key):
    a PostgreSQL sequence skips the numbers of rolled-back transactions, so after a crash
    they may differ from an uninterrupted run's without anything being wrong."""
    out = []
    for x in reply:
        if x.startswith("UU"):
            x = x[:69] + " " * 10 + x[79:]
        elif x.startswith("UE"):
            x = x[:15] + " " * 20 + x[35:]
        out.append(x)
    return out


@attrs.frozen
class Reference:
    """An uninterrupted run: ledger fingerprint after every batch prefix, and replies."""

    data: bytes
    keys: tuple[str, ...]  # digest per input batch
    prefix: tuple[str, ...]  # prefix[k]: fingerprint after the first k batches
    replies: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls, data: bytes) -> Reference:
        ledger = MemoryLedger()
        proc = Processor(ledger, AS_OF, trust_senders=True)
        prefix = [fingerprint(ledger)]
        replies, keys = [], []
        for b in frame(read_lines(io.BytesIO(data))):
            keys.append(digest(b))
            replies.append(tuple(proc.process(b)))
            prefix.append(fingerprint(ledger))
        return cls(data, tuple(keys), tuple(prefix), tuple(replies))


@attrs.define
class CrashFigures:
    runs: int = 0
    kills: int = 0  # SIGKILLs that hit a running worker
    missed: int = 0  # workers that finished before their kill point
    committed_at_kill: list[int] = attrs.field(factory=list)  # batches committed per kill
    not_a_prefix: int = 0  # committed batches that are not a prefix of the input
    ledger_not_prefix: int = 0  # ledger after a kill differs from that prefix's
    uncommitted_replies: int = 0  # replies written for work that is not committed
    torn_replies: int = 0  # a reply cut short in the output
    unequal: int = 0  # resumed runs whose ledger differs from the uninterrupted run's
    replies_differ: int = 0  # resumed runs whose replies differ
    resume_failures: int = 0  # resumed workers that did not exit 0 or 1
    seconds: float = 0.0  # killed and resumed runs, wall time

    def problems(self) -> dict[str, int]:
        names = ("not_a_prefix", "ledger_not_prefix", "uncommitted_replies", "torn_replies",
                 "unequal", "replies_differ", "resume_failures")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


def run_until(cmd: list[str], replies: int, delay: float) -> tuple[bytes, int, str]:
    """Run `cmd`; `delay` seconds after its `replies`-th reply batch (or after the start
    when 0), SIGKILL it. Returns everything it wrote to stdout, its exit code (-9 when
    killed) and its stderr."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert p.stdout is not None
        fd = p.stdout.fileno()
        out = bytearray()
        seen, prev = 0, b"\n"
        deadline = time.monotonic() + delay if replies == 0 else None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                p.send_signal(signal.SIGKILL)
                break
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            seen += (prev + chunk).count(b"\nZ")
            prev = chunk[-1:]
            out += chunk
            if deadline is None and seen >= replies:
                deadline = time.monotonic() + delay
        while chunk := os.read(fd, 1 << 16):  # what it wrote before it died
            out += chunk
        p.stdout.close()
        rc = p.wait()
        err.seek(0)
        return bytes(out), rc, err.read().decode("utf-8", "replace")


def crash_run(db: str, ref: Reference, rnd: random.Random, figures: CrashFigures,
              open_ledger: Callable[[str], Ledger], kills: int = 1) -> None:
    """Kill `process` `kills` times at random points on a fresh ledger `db`, checking after
    each kill, then let it finish and compare with the reference."""
    with tempfile.NamedTemporaryFile(suffix=".abi") as f:
        f.write(ref.data)
        f.flush()
        cmd = process_command(f.name, db)
        n = len(ref.keys)
        t = time.perf_counter()
        figures.runs += 1
        for _ in range(kills):
            target = rnd.randrange(max(1, n - 3))  # not so late that the worker may finish
            delay = rnd.uniform(0, 0.6) if target == 0 else rnd.uniform(0, 0.03)
            out, rc, _ = run_until(cmd, target, delay)
            if rc != -signal.SIGKILL:
                figures.missed += 1
                break
            figures.kills += 1
            _after_kill(db, ref, out, figures, open_ledger)
        out, rc, err = run_until(cmd, n + 1, 0.0)  # no kill: runs to the end
        figures.seconds += time.perf_counter() - t
        if rc not in (0, 1):
            figures.resume_failures += 1
            raise RuntimeError(f"resumed worker exited {rc}: {err[-2000:]}")
        replies, torn = split_replies(out)
        figures.torn_replies += bool(torn)
        if [mask_sequences(r) for r in replies] != [mask_sequences(r) for r in ref.replies]:
            figures.replies_differ += 1
        ledger = open_ledger(db)
        try:
            figures.unequal += fingerprint(ledger) != ref.prefix[-1]
        finally:
            ledger.close()


def _settle(db: str) -> None:
    """Wait until the server has finished with the killed client's session: a COMMIT it
    had sent may still land, and the checks must see the ledger as it stays."""
    if not db.startswith(("postgresql://", "postgres://")):
        return  # SQLite: the writer was in-process, nothing outlives it
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        for _ in range(500):
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                               " current_database() AND pid <> pg_backend_pid()").fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.02)
    raise RuntimeError("the killed worker's session did not end")


def _after_kill(db: str, ref: Reference, out: bytes, figures: CrashFigures,
                open_ledger: Callable[[str], Ledger]) -> None:
    _settle(db)
    ledger = open_ledger(db)
    try:
        stored = [ledger.stored_reply(k) for k in ref.keys]
        k = next((i for i, s in enumerate(stored) if s is None), len(stored))
        earlier = set(ref.keys[:k])
        # one worker goes in input order: only the first k batches (or repeats of them)
        figures.not_a_prefix += sum(1 for i in range(k, len(stored))
                                    if stored[i] is not None and ref.keys[i] not in earlier)
        figures.committed_at_kill.append(k)
        figures.ledger_not_prefix += fingerprint(ledger) != ref.prefix[k]
        replies, torn = split_replies(out)
        for i, r in enumerate(replies):
            figures.uncommitted_replies += i >= len(stored) or stored[i] != r
        if torn:
            figures.torn_replies += 1
            nxt = stored[len(replies)] if len(replies) < len(stored) else None
            figures.uncommitted_replies += nxt is None or nxt[:len(torn)] != torn
    finally:
        ledger.close()


# --- garbage ----------------------------------------------------------------------------

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
RECORD_IDS = ("A", "B", "Y", "Z", "10", "11", "40", "50", "51", "52", "90", "CH", "CL", "UQ",
              "CQ", "E0", "E1", "C1", "X0", "X1", "UC", "UU", "UE", "", " ", "9")


def seed_batches() -> list[list[str]]:
    """Valid batches to mutate: the sample fixtures, generated ones, and their replies."""
    data = b"".join(p.read_bytes() for p in sorted(FIXTURES.glob("0*.abi")))
    data += crash_workload(30, seed=99, per_batch=4)
    batches = [[r.text for r in b.records] for b in frame(read_lines(io.BytesIO(data)))]
    ledger = MemoryLedger()
    replies = list(Processor(ledger, AS_OF, trust_senders=True).process_stream(
        io.BytesIO(data)))
    return batches * 4 + replies  # replies sent back as input: some, not half


# Mutations that keep every line 80 printable upper-case characters, so that the batch
# often passes the envelope and reaches the engine.
GENTLE = (0, 5, 6, 7, 12, 13, 14)
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"


def _mutate_once(rnd: random.Random, lines: list[str], seeds: Sequence[list[str]],
                 gentle: bool) -> None:
    if not lines:
        lines.append("")
    i = rnd.randrange(len(lines))
    x = lines[i]
    p = rnd.randrange(len(x) + 1)
    op = rnd.choice(GENTLE) if gentle else rnd.randrange(20)
    if op == 0:  # flip a character
        lines[i] = x[:p] + rnd.choice(UPPER if gentle else PRINTABLE) + x[p + 1:]
        lines[i] = lines[i][:max(len(x), 1)] if gentle else lines[i]
    elif op == 1:  # insert a character
        lines[i] = x[:p] + rnd.choice(PRINTABLE) + x[p:]
    elif op == 2:  # delete characters
        lines[i] = x[:p] + x[p + rnd.randint(1, 3):]
    elif op == 3:  # truncate the line
        lines[i] = x[:p]
    elif op == 4:  # truncate the batch
        del lines[rnd.randrange(len(lines)):]
    elif op == 5:  # duplicate a line
        lines.insert(i, x)
    elif op == 6:  # drop a line
        del lines[i]
    elif op == 7:  # reorder lines
        j = rnd.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 8:  # a byte that is not ASCII (latin-1, or UTF-8 read as latin-1)
        c = rnd.choice([chr(rnd.randint(0x80, 0xFF)), "É".encode().decode("latin-1"), "\ufeff"
                        .encode().decode("latin-1")])
        lines[i] = x[:p] + c + x[p + 1:]
    elif op == 9:  # NUL and other control characters
        lines[i] = x[:p] + rnd.choice("\x00\t\x1b\x7f\r\x0c") + x[p + 1:]
    elif op == 10:  # a very long line
        lines[i] = x + rnd.choice(PRINTABLE) * rnd.choice([1, 20, 1000, 70_000])
    elif op == 11:  # lower case
        lines[i] = x.lower()
    elif op == 12:  # a line from another batch
        other = rnd.choice(seeds)
        lines[i] = rnd.choice(other) if other else x
    elif op == 13:  # another record identifier
        rid = rnd.choice(RECORD_IDS)
        lines[i] = rid + x[len(rid):] if gentle or rnd.random() < 0.5 else rid + x[2:]
    elif op == 14:  # a run of digits: all 9s or 0s (quantities, dates, counts)
        j = p
        while j < len(x) and x[j].isdigit():
            j += 1
        lines[i] = x[:p] + rnd.choice("90") * (j - p) + x[j:]
    elif op == 15:  # blank or whitespace lines
        lines.insert(i, rnd.choice(["", " ", " " * 80, "\t"]))
    elif op == 16:  # another batch before or after (or inside)
        other = list(rnd.choice(seeds))
        lines[i:i] = other
    elif op == 17:  # trailing spaces lost or added
        lines[i] = x.rstrip() if rnd.random() < 0.5 else x + " " * rnd.randint(1, 20)
    elif op == 18:  # a field's digits shifted into its neighbour
        lines[i] = x[:p] + " " + x[p:79]
    else:  # random printable text with a record identifier
        lines[i] = rnd.choice(RECORD_IDS) + "".join(rnd.choice(PRINTABLE)
                                                     for _ in range(rnd.randint(0, 90)))


def mutated(rnd: random.Random, seeds: Sequence[list[str]]) -> bytes:
    lines = list(rnd.choice(seeds))
    gentle = rnd.random() < 0.5
    for _ in range(rnd.choice([1, 1, 1, 2, 2, 3, 5, 12])):
        _mutate_once(rnd, lines, seeds, gentle)
    newline = rnd.choice(["\n"] * 8 + ["\r\n", "\r"])
    text = newline.join(lines) + (newline if rnd.random() < 0.9 else "")
    return text.encode("latin-1")


def random_bytes(rnd: random.Random) -> bytes:
    if rnd.random() < 0.5:
        return rnd.randbytes(rnd.choice([0, 1, 80, 81, 500, 5000]))
    # record-shaped noise: identifiers and printable characters, in lines
    lines = [rnd.choice(RECORD_IDS) + "".join(rnd.choice(PRINTABLE) for _ in range(
        rnd.choice([0, 10, 78, 79, 80, 81]))) for _ in range(rnd.randint(1, 30))]
    return ("\n".join(lines) + "\n").encode("latin-1")


def garbage_cases(n: int, seed: int = 0) -> Iterator[bytes]:
    """`n` inputs: 9 in 10 mutated valid batches, 1 in 10 random bytes."""
    rnd = random.Random(f"garbage-{seed}")
    seeds = seed_batches()
    for _ in range(n):
        yield random_bytes(rnd) if rnd.random() < 0.1 else mutated(rnd, seeds)


@attrs.define
class GarbageFigures:
    inputs: int = 0
    batches: int = 0  # as framed
    replies: int = 0
    exceptions: int = 0
    wrong_reply_count: int = 0  # inputs whose batches did not get exactly one reply each
    lost_lines: int = 0  # inputs where framing did not put every line in one batch
    malformed_replies: int = 0  # replies not A ... Z of 80 printable ASCII characters
    replay_differs: int = 0  # second processing gave another reply
    first_failures: list[str] = attrs.field(factory=list)  # a few examples, for the report
    kinds: Counter[str] = attrs.field(factory=Counter)  # exception types
    process_seconds: float = 0.0
    frame_seconds: float = 0.0

    def problems(self) -> dict[str, int]:
        names = ("exceptions", "wrong_reply_count", "lost_lines", "malformed_replies",
                 "replay_differs")
        return {n: getattr(self, n) for n in names if getattr(self, n)}

    def merge(self, other: GarbageFigures) -> None:
        for a in attrs.fields(GarbageFigures):
            mine, theirs = getattr(self, a.name), getattr(other, a.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                mine += theirs[:5 - len(mine)]
            else:
                setattr(self, a.name, mine + theirs)


def well_formed(reply: Sequence[str]) -> bool:
    return bool(reply) and reply[0][:1] == "A" and reply[-1][:1] == "Z" and all(
        len(x) == 80 and all(" " <= c <= "~" for c in x) for x in reply)


def register_senders(ledger: Ledger) -> None:
    """The senders of the sample and generated batches, with their passwords, so that
    batches are authenticated and reach the application (mutated senders get X09)."""
    from ecert_abi.access import Participant, hash_password
    from ecert_abi.identifiers import normalise_ior

    with ledger.transaction() as tx:
        tx.put_participant(Participant("2704", "K9T", "filer", "K9T", hash_password("K9TPAS"),
                                       iors=frozenset(map(normalise_ior, (IOR_A, IOR_B)))))
        for c in ("AU", "NZ", "UY", "AR", "MX"):
            tx.put_participant(Participant(f"E{c}1", f"{c}C", "country", c,
                                           hash_password(f"{c}PASS")))


def feed_garbage(ledger: Ledger, cases: Iterable[bytes], *, replay_too: bool = True,
                 trust: bool = True) -> GarbageFigures:
    """Process each input in its own stream (a failure spoils only that input). Unless
    `trust`, senders are authenticated against `register_senders`' registry."""
    f = GarbageFigures()
    if not trust:
        register_senders(ledger)
    proc = Processor(ledger, AS_OF, trust_senders=trust)
    for data in cases:
        f.inputs += 1
        t = time.perf_counter()
        lines = sum(1 for _ in read_lines(io.BytesIO(data)))
        framed = list(frame(read_lines(io.BytesIO(data))))
        f.frame_seconds += time.perf_counter() - t
        f.batches += len(framed)
        f.lost_lines += sum(len(b.records) for b in framed) != lines
        t = time.perf_counter()
        try:
            replies = list(proc.process_stream(io.BytesIO(data)))
            again = list(proc.process_stream(io.BytesIO(data))) if replay_too else replies
        except Exception as e:  # what this suite is looking for
            f.exceptions += 1
            f.kinds[type(e).__name__] += 1
            if len(f.first_failures) < 5:
                f.first_failures.append(f"{data[:300]!r}\n{traceback.format_exc(limit=-3)}")
            continue
        finally:
            f.process_seconds += time.perf_counter() - t
        f.replies += len(replies)
        f.wrong_reply_count += len(replies) != len(framed)
        f.malformed_replies += sum(1 for r in replies if not well_formed(r))
        f.replay_differs += again != replies
    return f


# --- memory ---------------------------------------------------------------------------

def long_line_input(size: int) -> Iterator[bytes]:
    """A valid AE batch whose second summary record is `size` bytes long, streamed."""
    lines = ae_batch([EntrySummary("A", "K9T", entry("0000001"), "2704", "02", IOR_A, (
        beef_line("001", "AU", cert_number("AU", 1), BEEF_HTS[0], 100),), "BRK")]).split(b"\n")
    yield b"\n".join(lines[:3]) + b"\n"
    yield from _filler(size, lines[3][:2], printable=True)
    yield b"\n" + b"\n".join(lines[3:])


def no_newline_input(size: int) -> Iterator[bytes]:
    """`size` bytes that start like an A-record and never end a line."""
    yield from _filler(size, b"A")


def _filler(size: int, head: bytes, printable: bool = False) -> Iterator[bytes]:
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 " + (b"" if printable else b"\x00\xff\r")
    block = random.Random(size).randbytes(1 << 20).translate(
        bytes(alphabet[i % len(alphabet)] for i in range(256)))
    yield head
    left = size - len(head)
    while left > 0:
        yield block[:left]
        left -= len(block)


# `ecert-abi process` that reports its peak RSS on stderr as it exits. The kernel's VmHWM
# belongs to the program's own address space: getrusage/wait4 figures would also count the
# parent's pages as copied at fork time.
_MEASURED = """
import atexit, sys
from ecert_abi.cli import main

def peak() -> None:
    with open("/proc/self/status") as f:
        kb = next(x.split()[1] for x in f if x.startswith("VmHWM:"))
    sys.stderr.write(f"peak-rss-kb {kb}\\n")

atexit.register(peak)
sys.argv[0] = "ecert-abi"
main()
"""


def measured_process(db: str) -> list[str]:
    """`ecert-abi process -` (stdin to stdout) on ledger `db`, reporting its peak RSS."""
    return [sys.executable, "-c", _MEASURED, *process_command("-", db)[len(cli()):]]


def peak_rss(cmd: list[str], chunks: Iterable[bytes]) -> tuple[float, int, bytes, str]:
    """Run `measured_process(...)` with `chunks` streamed to its stdin: its peak RSS (MB),
    exit code, stdout and stderr. Nothing the size of the input is ever held here."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)
        assert p.stdin is not None
        try:
            for c in chunks:
                p.stdin.write(c)
            p.stdin.close()
        except BrokenPipeError:
            pass
        rc = p.wait()
        out.seek(0)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        kb = [int(x.split()[1]) for x in text.splitlines() if x.startswith("peak-rss-kb ")]
        return (kb[-1] / 1024 if kb else float("nan"), rc, out.read(), text)


def open_any(db: str) -> Ledger:
    from ecert_abi.ledger import open_ledger

    return open_ledger(db)

