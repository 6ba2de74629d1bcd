"""Reliability on SQLite and PostgreSQL: concurrent workers, crashes, replay, garbage, memory.

A fast subset of `bench/stress.py`, which runs the full sizes and prints the figures; the
workloads and the checks are shared (tests/reliability_support.py). Workers and crashed
runs are real `ecert-abi process` child processes, as an operator would start them.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from reliability_support import (
    AS_OF,
    IOR_A,
    CrashFigures,
    Reference,
    ae_batch,
    batches_of,
    check_claims,
    claim_workload,
    crash_run,
    crash_workload,
    digests,
    entry,
    feed_garbage,
    garbage_cases,
    long_line_input,
    measured_process,
    no_newline_input,
    open_any,
    peak_rss,
    replay,
    run_workers,
    setup_ledger,
    split_replies,
    well_formed,
)

from ecert_abi.envelope import Fault, frame, reject_reply
from ecert_abi.layout import Defect
from ecert_abi.processor import Processor
from ecert_abi.record import read_lines
from ecert_abi.transactions import EntrySummary

NewDb = Callable[[], str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDb]:
    """A callable giving the URL of a fresh, empty ledger of the parametrised kind."""
    made: list[str] = []
    pg = request.getfixturevalue("new_database") if request.param == "postgres" else None

    def make() -> str:
        made.append(pg() if pg else str(tmp_path / f"ledger{len(made)}.db"))
        return made[-1]

    yield make


def test_concurrent_workers_share_one_ledger(new_db: NewDb) -> None:
    work = claim_workload(4, 200, 20, per_batch=10, seed=1)
    db = new_db()
    setup_ledger(db, work.certificates)
    replies, _ = run_workers(db, [[b.data for b in bs] for bs in work.batches],
                             lockstep=True)
    ledger = open_any(db)
    try:
        f = check_claims(ledger, work, replies)
        assert f.problems() == {}
        assert f.accepted and f.rejected and f.contested_accepted  # balances ran out
        assert f.worker_switches > 20  # the workers really took turns
        sent = {b.data: r for bs, rs in zip(work.batches, replies, strict=True)
                for b, r in zip(bs, rs, strict=True)}
        again = replay(ledger, list(sent.items()))
        assert again.problems() == {} and again.replayed == f.distinct_batches
    finally:
        ledger.close()


def test_killed_worker_resumes_to_the_same_ledger(new_db: NewDb) -> None:
    ref = Reference.build(crash_workload(30, seed=2, per_batch=8))
    figures = CrashFigures()
    rnd = random.Random(2)
    for kills in (1, 2):
        crash_run(new_db(), ref, rnd, figures, open_any, kills=kills)
    assert figures.problems() == {}
    assert figures.kills >= 2 and figures.runs == 2


def test_every_batch_twice(new_db: NewDb) -> None:
    data = crash_workload(30, seed=3, per_batch=12)
    ledger = open_any(new_db())
    try:
        first = list(Processor(ledger, AS_OF, trust_senders=True).process_stream(
            io.BytesIO(data)))
        assert len(first) == len(digests(data))
        f = replay(ledger, list(zip(batches_of(data), first, strict=True)))
        assert f.problems() == {}
    finally:
        ledger.close()


@pytest.mark.parametrize("trust", [True, False], ids=["trusted", "authenticated"])
def test_garbage_gets_one_reply_per_batch(new_db: NewDb, trust: bool) -> None:
    ledger = open_any(new_db())
    try:
        f = feed_garbage(ledger, garbage_cases(200 if trust else 60, seed=4), trust=trust)
    finally:
        ledger.close()
    assert f.problems() == {}, "\n".join(f.first_failures)
    assert f.replies == f.batches > f.inputs  # mutations join and split batches


@pytest.mark.postgres
def test_nul_in_the_sender_columns_is_answered(pg_ledger_url: str) -> None:
    data = ae_batch([EntrySummary("A", "K9T", entry("0000001"), "2704", "02", IOR_A, (),
                                  "BRK")])
    ledger = open_any(pg_ledger_url)
    try:
        replies = list(Processor(ledger, AS_OF).process_stream(io.BytesIO(
            data[:2] + b"\x00" + data[3:])))  # A-record column 3: the site code
    finally:
        ledger.close()
    assert len(replies) == 1 and well_formed(replies[0])


@pytest.mark.parametrize("shape", [long_line_input, no_newline_input],
                         ids=["one-long-line", "no-newline"])
def test_memory_is_bounded(shape: Callable[[int], Iterator[bytes]], tmp_path: Path) -> None:
    size = 64 << 20
    cmd = measured_process(str(tmp_path / "ledger.db"))
    small, rc, out, err = peak_rss(cmd, shape(4096))
    assert rc in (0, 1), err
    big, rc, out, err = peak_rss(cmd, shape(size))
    assert rc == 1, err  # rejected whole (X40: record too long)
    replies, torn = split_replies(out)
    assert len(replies) == 1 and not torn
    assert big - small < 16, f"peak RSS {big:.0f} MB for 64 MB, {small:.0f} MB for 4 KB"


class TooSlow(AssertionError):
    """Only this failure is the known bug below; any other assertion fails the test."""


def test_reject_reply_time_is_linear_in_faults() -> None:
    (batch,) = frame(read_lines(io.BytesIO(ae_batch([EntrySummary(
        "A", "K9T", entry("0000001"), "2704", "02", IOR_A, (), "BRK")]))))

    def seconds(n: int) -> float:
        faulty = attrs.evolve(batch, faults=tuple(
            Fault(Defect(3 + i, 1, 80, None, "non-displayable", "NUL", "X40"), 1, 1 + i, 3 + i)
            for i in range(n)))
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            assert len(reject_reply(faulty)) == 2 * n + 6
            best = min(best, time.perf_counter() - t)
        return best

    small, big = seconds(400), seconds(1600)
    if big > 8 * small:  # 4x the faults: about 4x the time, not 16x
        raise TooSlow(f"{big:.2f} s for 1,600 faults, {small:.2f} s for 400")
