"""Every ledger kind behaves like the in-memory reference model (MemoryLedger)."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from participants_support import register

from ecert_abi.engine import Claim, Credit, Decrement
from ecert_abi.ledger import Ledger, LedgerConflict, MemoryLedger, snapshot
from ecert_abi.processor import Processor

FIXTURES = Path(__file__).parent.parent / "fixtures"
AS_OF = dt.date(2026, 3, 2)
Factory = Callable[[], Ledger]


def fixture_stream() -> bytes:
    """`cat fixtures/0*.abi`"""
    return b"".join(p.read_bytes() for p in sorted(FIXTURES.glob("0*.abi")))


def run(ledger: Ledger, data: bytes) -> tuple[list[list[str]], Processor]:
    proc = Processor(register(ledger), as_of=AS_OF)
    return list(proc.process_stream(io.BytesIO(data))), proc


@pytest.fixture(scope="module")
def reference() -> tuple[list[list[str]], dict[str, object]]:
    ledger = MemoryLedger()
    replies, _ = run(ledger, fixture_stream())
    return replies, snapshot(ledger)


def test_fixtures_match_reference(ledger_factory: Factory,
                                  reference: tuple[list[list[str]], dict[str, object]]) -> None:
    ledger = ledger_factory()
    replies, proc = run(ledger, fixture_stream())
    ref_replies, ref_snap = reference
    assert len(replies) == 9 and proc.tally.replayed == 0
    assert replies == ref_replies
    snap = snapshot(ledger)
    assert snap == ref_snap
    # the fixtures really exercise the ledger: draws, credits, pools, a journal
    assert snap["journal"] and snap["pools"] and snap["summaries"]
    assert {j[7] for j in snap["journal"]} == {"D", "C"}  # type: ignore[attr-defined]
    for c in ledger.certificates():
        assert isinstance(c.effective, dt.date) and isinstance(c.expiry, dt.date)
    assert all(isinstance(j.as_of, dt.date) and j.as_of == AS_OF for j in ledger.journal())


def test_replay_changes_nothing(ledger_factory: Factory) -> None:
    ledger = ledger_factory()
    first, _ = run(ledger, fixture_stream())
    before = snapshot(ledger)
    again, proc = run(ledger, fixture_stream())
    assert again == first
    assert proc.tally.replayed == len(first) and proc.tally.accepted == 0
    assert snapshot(ledger) == before


def test_journal_filters(ledger_factory: Factory) -> None:
    ledger = ledger_factory()
    run(ledger, fixture_stream())
    everything = ledger.journal()
    one = ledger.journal(programme="05", number="6AU123456")
    assert one == [j for j in everything if j.programme == "05" and j.number == "6AU123456"]
    assert one and ledger.journal(programme="30") == [j for j in everything
                                                      if j.programme == "30"]
    assert [j.seq for j in everything] == sorted(j.seq for j in everything)


def _room(ledger: Ledger, number: str = "6AU123457") -> tuple[str, int, int]:
    cert = next(c for c in ledger.certificates() if c.number == number)
    ln = cert.lines[0]
    return ln.hts, ln.issued, ln.used


def test_overdraw_is_refused_and_rolled_back(ledger_factory: Factory) -> None:
    ledger = ledger_factory()
    run(ledger, fixture_stream())
    before = snapshot(ledger)
    hts, issued, used = _room(ledger)
    assert issued - used > 0

    def draw(q: int, kind: type[Decrement] | type[Credit] = Decrement) -> Decrement | Credit:
        return kind(Claim("05", "6AU123457", hts, "001", q, (("BEEF-AU", 2026, q),)),
                    "K9T", "0000001", "98-7654321")

    with pytest.raises(LedgerConflict), ledger.transaction() as tx:
        tx.apply(draw(issued - used + 1), digest="overdraw", as_of=AS_OF)
    assert snapshot(ledger) == before
    # a good draw followed by a refused one in the same transaction: neither lands
    with pytest.raises(LedgerConflict), ledger.transaction() as tx:
        tx.apply(draw(1), digest="half", as_of=AS_OF)
        assert tx.certificate("05", "6AU123457").line(hts).used == used + 1  # type: ignore[union-attr]
        tx.apply(draw(issued - used), digest="half", as_of=AS_OF)
        tx.store_reply("half", ["never"], AS_OF)
    assert snapshot(ledger) == before
    assert ledger.stored_reply("half") is None
    # credit below zero, and a draw on a line that does not exist
    with pytest.raises(LedgerConflict), ledger.transaction() as tx:
        tx.apply(draw(used + 1, Credit), digest="credit", as_of=AS_OF)
    with pytest.raises(LedgerConflict), ledger.transaction() as tx:
        tx.apply(Decrement(Claim("05", "6AU123457", "0000000000", "001", 1), "K9T", "1", None),
                 digest="nowhere", as_of=AS_OF)
    assert snapshot(ledger) == before
    # and the ledger still works afterwards: exactly the room left can be drawn
    with ledger.transaction() as tx:
        tx.apply(draw(issued - used), digest="exact", as_of=AS_OF)
    assert _room(ledger)[2] == issued


def test_stored_reply_round_trip(ledger_factory: Factory) -> None:
    ledger = ledger_factory()
    assert ledger.stored_reply("d") is None
    with ledger.transaction() as tx:
        tx.store_reply("d", ["A line", "", "Z line"], AS_OF)
        assert tx.stored_reply("d") == ["A line", "", "Z line"]
    assert ledger.stored_reply("d") == ["A line", "", "Z line"]


def test_factory_makes_fresh_ledgers(ledger_factory: Factory) -> None:
    first = ledger_factory()
    run(first, fixture_stream())
    second = ledger_factory()
    assert snapshot(second) == snapshot(MemoryLedger())


# --- PostgreSQL schema migrations ------------------------------------------------------

def _pg_version(url: str) -> tuple[int, list[int]]:
    import psycopg

    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version"
                                               " ORDER BY version")]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname IN"
                               " ('journal_by_certificate', 'journal_by_ior')").fetchone()
    assert indexes is not None
    return int(indexes[0]), versions


@pytest.mark.postgres
def test_pg_migrates_from_empty(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import MIGRATIONS, PostgresLedger

    PostgresLedger(pg_ledger_url).close()
    assert _pg_version(pg_ledger_url) == (2, list(range(1, len(MIGRATIONS) + 1)))
    PostgresLedger(pg_ledger_url).close()  # idempotent
    assert _pg_version(pg_ledger_url) == (2, list(range(1, len(MIGRATIONS) + 1)))


@pytest.mark.postgres
def test_pg_migrates_from_version_1(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import MIGRATIONS, PostgresLedger, connect, migrate

    with connect(pg_ledger_url) as conn:
        assert migrate(conn, 1) == 1
        conn.execute("INSERT INTO processed_batch VALUES ('old', 'kept', '2026-01-02', now())")
    assert _pg_version(pg_ledger_url) == (0, [1])
    ledger = PostgresLedger(pg_ledger_url)
    try:
        assert _pg_version(pg_ledger_url) == (2, list(range(1, len(MIGRATIONS) + 1)))
        assert ledger.stored_reply("old") == ["kept"]
        replies, _ = run(ledger, fixture_stream())
        assert replies == run(MemoryLedger(), fixture_stream())[0]
    finally:
        ledger.close()


@pytest.mark.postgres
def test_pg_refuses_newer_schema(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import MIGRATIONS, PostgresLedger

    PostgresLedger(pg_ledger_url).close()
    import psycopg

    with psycopg.connect(pg_ledger_url) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(RuntimeError, match="newer"):
        PostgresLedger(pg_ledger_url)


@pytest.mark.postgres
def test_pg_migrate_to_unknown_version(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import MIGRATIONS, connect, migrate

    with connect(pg_ledger_url) as conn:
        with pytest.raises(ValueError, match="no ledger schema version"):
            migrate(conn, len(MIGRATIONS) + 1)
        assert conn.info.transaction_status == 0  # idle: nothing left open
        assert migrate(conn) == len(MIGRATIONS)


@pytest.mark.postgres
def test_pg_concurrent_start_migrates_once(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import MIGRATIONS, PostgresLedger

    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def open_close() -> None:
        try:
            start.wait()
            PostgresLedger(pg_ledger_url).close()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=open_close) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _pg_version(pg_ledger_url) == (2, list(range(1, len(MIGRATIONS) + 1)))


# --- PostgreSQL failures: the processor's retry sees LedgerConflict --------------------

def _terminate(url: str, pid: int | None = None) -> int:
    """Ends the backend `pid`, or every other backend on the database; returns how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND pid <> pg_backend_pid() AND (%s::int IS NULL OR pid = %s)",
            (pid, pid)).fetchall()
    return len(rows)


@pytest.mark.postgres
def test_pg_serialization_failure_is_a_conflict(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import PostgresLedger

    ledger = PostgresLedger(pg_ledger_url)
    try:
        for code in ("40001", "40P01"):  # serialization failure, deadlock detected
            with pytest.raises(LedgerConflict), ledger.transaction() as tx:
                tx.store_reply(code, ["x"], AS_OF)
                tx.conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{code}';"
                                " END $$")
            assert ledger.stored_reply(code) is None
    finally:
        ledger.close()


@pytest.mark.postgres
def test_pg_lost_connection(pg_ledger_url: str) -> None:
    from ecert_abi.pg_ledger import PostgresLedger

    ledger = PostgresLedger(pg_ledger_url)
    try:
        data = fixture_stream()
        # killed inside a transaction: a conflict, nothing committed
        with pytest.raises(LedgerConflict), ledger.transaction() as tx:
            tx.store_reply("lost", ["x"], AS_OF)
            assert _terminate(pg_ledger_url, tx.conn.info.backend_pid) == 1
            tx.conn.execute("SELECT 1")
        assert ledger.stored_reply("lost") is None
        # pooled connections killed while idle: replaced without the caller noticing
        first, _ = run(ledger, data)
        assert _terminate(pg_ledger_url) >= 1
        again, proc = run(ledger, data)
        assert again == first and proc.tally.replayed == len(first)
    finally:
        ledger.close()


def test_certificate_filters(ledger_factory: Factory) -> None:
    """Usage queries read only the certificates they ask about; every store filters alike."""
    ledger = ledger_factory()
    run(ledger, fixture_stream())
    every = ledger.certificates()
    assert len(every) >= 7
    with ledger.transaction() as tx:
        assert tx.certificates() == every
        for match in ({"country": "AU"}, {"ior": "98-7654321  "}, {"programme": "30"},
                      {"country": "AU", "ior": "12-3456789AB"}, {"number": "6AU123456"},
                      {"country": "AU", "number": "6NZ000101"}, {"country": None}):
            want = [c for c in every
                    if all(v is None or getattr(c, k) == v for k, v in match.items())]
            assert tx.certificates(**match) == want, match
        assert [c.number for c in tx.certificates(country="AU")] == [
            "6AU123456", "6AU123457", "6AU123458"]
