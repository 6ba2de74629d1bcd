"""SQLite ledger schema: forward-only migrations, and the database's own refusal to overdraw.

- an empty file migrates to the latest version (every table and index present);
- a database created at each earlier version k (`migrate(conn, k)`), holding rows valid at
  that version, migrates to the latest and its data survive, readable by SqliteLedger and
  usable by the Processor;
- a database newer than the code is refused with a clear error, untouched;
- the CHECK constraints and the conditional update refuse an overdraw even when Python
  asks for it directly (SqliteLedger.apply inside transaction()): LedgerConflict, and
  nothing of the transaction stays.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from engine_cases import (
    EntrySummary,
    beef_cert,
    beef_line,
    case_rules,
    certs_batch,
    entry,
    process_lines,
    summaries_batch,
    summary,
)

from ecert_abi.engine import (
    CertLine,
    CertState,
    Claim,
    Credit,
    Decrement,
    PutCertificate,
    SummaryState,
)
from ecert_abi.ledger import JournalEntry, LedgerConflict, snapshot
from ecert_abi.sqlite_ledger import MIGRATIONS, SqliteLedger, migrate

D = dt.date
LATEST = len(MIGRATIONS)
TABLES = {"certificate", "certificate_line", "summary", "claim", "pool_fill", "journal",
          "processed_batch"}
TABLES_3 = {"participant", "participant_ior", "auth_attempt"}


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def objects(conn: sqlite3.Connection, kind: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'", (kind,))}


# --- migrating ---------------------------------------------------------------------------

def test_migrations_are_numbered_steps() -> None:
    assert LATEST >= 2
    assert all(m and all(isinstance(s, str) and s.strip() for s in m) for m in MIGRATIONS)


def test_empty_file_migrates_to_latest(tmp_path: Path) -> None:
    conn = connect(tmp_path / "new.db")
    try:
        assert user_version(conn) == 0
        assert migrate(conn) == LATEST
        assert user_version(conn) == LATEST
        assert objects(conn, "table") >= TABLES | TABLES_3
        assert {"journal_by_certificate", "journal_by_ior", "summary_by_filer",
                "journal_by_filer"} <= objects(conn, "index")
        # Running again is a no-op; asking for an older version never goes back.
        assert migrate(conn) == LATEST
        assert migrate(conn, 1) == LATEST
        assert user_version(conn) == LATEST
        assert not conn.in_transaction
    finally:
        conn.close()


def test_sqlite_ledger_migrates_a_new_file(tmp_path: Path) -> None:
    led = SqliteLedger(str(tmp_path / "fresh.db"))
    try:
        assert user_version(led.conn) == LATEST
        assert snapshot(led) == {"certificates": [], "summaries": [], "pools": {},
                                 "journal": []}
    finally:
        led.close()


@pytest.mark.parametrize("k", range(LATEST + 1))
def test_migrate_stops_at_each_version(k: int, tmp_path: Path) -> None:
    conn = connect(tmp_path / f"v{k}.db")
    try:
        assert migrate(conn, k) == k
        assert user_version(conn) == k
        tables = objects(conn, "table")
        assert (tables >= TABLES) if k >= 1 else not tables
        if k >= 1:
            indexes = objects(conn, "index")
            assert ("journal_by_certificate" in indexes) == (k >= 2)
            assert (tables >= TABLES_3) == (k >= 3)
    finally:
        conn.close()


NOW = "2026-03-02T10:00:00.000000+00:00"


def _rows_at_version_1(conn: sqlite3.Connection) -> None:
    """Rows written with the columns of schema version 1 (valid at every later version)."""
    x = conn.execute
    x("BEGIN")
    x("INSERT INTO certificate (programme, number, country, ior, quota_year, effective,"
      " expiry, status, exporter) VALUES ('05', '6AU123456', 'AU', '98-7654321  ', 2026,"
      " '2026-01-15', '2026-12-31', 'A', 'AU MEAT EXPORTS PTY')")
    x("INSERT INTO certificate_line (programme, number, hts, issued, used, unit,"
      " preference_hts) VALUES ('05', '6AU123456', '0202305015', 50000, 18500, 'KG', NULL)")
    x("INSERT INTO summary (filer, entry_number, port, broker_reference, ior, version)"
      " VALUES ('K9T', '04172033', '2704', 'BRK-0815', '98-7654321', 100)")
    x("INSERT INTO claim (filer, entry_number, ordinal, programme, number, hts, line_id,"
      " quantity, pools) VALUES ('K9T', '04172033', 0, '05', '6AU123456', '0202305015',"
      " '001', 18500, 'BEEF-AU,2026,18500')")
    x("INSERT INTO pool_fill (pool, year, used) VALUES ('BEEF-AU', 2026, 18500)")
    x("INSERT INTO journal (batch_digest, filer, entry_number, line_id, programme, number,"
      " hts, action, quantity, as_of, ior, recorded_at) VALUES ('d1', 'K9T', '04172033',"
      " '001', '05', '6AU123456', '0202305015', 'D', 18500, '2026-03-02', '98-7654321', ?)",
      (NOW,))
    x("INSERT INTO processed_batch (digest, reply, as_of, recorded_at) VALUES"
      " ('d1', 'REPLY LINE 1\nREPLY LINE 2', '2026-03-02', ?)", (NOW,))
    x("COMMIT")


CLAIM = Claim("05", "6AU123456", "0202305015", "001", 18500, (("BEEF-AU", 2026, 18500),))
CERT = CertState("05", "6AU123456", "AU", "98-7654321  ", 2026, D(2026, 1, 15),
                 D(2026, 12, 31), "A", (CertLine("0202305015", 50000, 18500, "KG", None),),
                 "AU MEAT EXPORTS PTY")


@pytest.mark.parametrize("k", range(LATEST))
def test_data_survive_migration_from_each_earlier_version(k: int, tmp_path: Path) -> None:
    path = tmp_path / f"from{k}.db"
    conn = connect(path)
    assert migrate(conn, k) == k
    if k >= 1:
        _rows_at_version_1(conn)
    conn.close()

    led = SqliteLedger(str(path))  # migrates to the latest version
    try:
        assert user_version(led.conn) == LATEST
        if k == 0:
            assert led.certificates() == [] and led.journal() == []
            return
        assert led.certificates() == [CERT]
        assert led.summaries() == [SummaryState("K9T", "04172033", "2704", "BRK-0815",
                                                "98-7654321", (CLAIM,), 100)]
        assert led.pool_fills() == {("BEEF-AU", 2026): 18500}
        assert led.journal() == [JournalEntry(1, "d1", "K9T", "04172033", "001", "05",
                                              "6AU123456", "0202305015", "D", 18500,
                                              D(2026, 3, 2), "98-7654321")]
        assert led.stored_reply("d1") == ["REPLY LINE 1", "REPLY LINE 2"]
        # The migrated ledger keeps working: deleting the summary credits its claim back.
        delete = EntrySummary("D", "K9T", entry("0417203"), "2704", "02", None, (),
                              "BRK-0815")
        reply = process_lines(led, summaries_batch(delete, date=D(2026, 3, 3)), D(2026, 3, 3))
        assert any("ENTRY SUMMARY DELETED" in r for r in reply)
        assert led.certificates()[0].lines[0].used == 0
        assert led.summaries() == [] and led.pool_fills() == {}
        assert [(j.seq, j.action, j.quantity) for j in led.journal()] == [
            (1, "D", 18500), (2, "C", 18500)]
    finally:
        led.close()


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = connect(path)
    migrate(conn)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()

    with pytest.raises(RuntimeError, match=r"newer than this ecert-abi.*upgrade ecert-abi"):
        SqliteLedger(str(path))
    conn = connect(path)
    try:
        with pytest.raises(RuntimeError, match=rf"schema {LATEST + 1} is newer"):
            migrate(conn)
        assert user_version(conn) == LATEST + 1  # untouched
    finally:
        conn.close()


def test_migrate_to_an_unknown_version_is_a_clear_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "beyond.db")
    try:
        with pytest.raises(ValueError, match="no ledger schema version"):
            migrate(conn, LATEST + 1)
        assert not conn.in_transaction
        assert user_version(conn) == 0
    finally:
        conn.close()


def test_a_failed_step_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "clash.db")
    try:
        migrate(conn, 2)
        conn.execute("CREATE TABLE participant (x INTEGER)")  # step 3 will collide
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(conn)
        assert not conn.in_transaction
        assert user_version(conn) == 2
        assert "auth_attempt" not in objects(conn, "table")  # nothing of step 3 stayed
    finally:
        conn.close()


def _open_and_migrate(path: str, barrier: threading.Barrier) -> int:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        barrier.wait()
        return migrate(conn)
    finally:
        conn.close()


def test_concurrent_first_open_migrates_once(tmp_path: Path) -> None:
    """Eight connections opening one new file at once: each reads the version inside its
    own write transaction, so exactly one runs the steps and the others see them done."""
    for round_ in range(5):
        path = str(tmp_path / f"race{round_}.db")
        barrier = threading.Barrier(8)
        with ThreadPoolExecutor(8) as pool:
            reached = list(pool.map(_open_and_migrate, [path] * 8, [barrier] * 8))
        assert reached == [LATEST] * 8
        conn = connect(Path(path))
        assert user_version(conn) == LATEST
        conn.close()


# --- the database refuses an overdraw ---------------------------------------------------------

@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    rules = case_rules(limits={"BEEF-AU": 60000})
    led = SqliteLedger(str(tmp_path / "guard.db"), rules)
    with led.transaction() as tx:
        tx.apply(PutCertificate(attrs.evolve(CERT, lines=(
            CertLine("0202305015", 50000, 0, "KG"),))), digest="setup", as_of=D(2026, 2, 1))
        tx.apply(Decrement(attrs.evolve(CLAIM, quantity=18500,
                                        pools=(("BEEF-AU", 2026, 18500),)),
                           "K9T", "04172033", "98-7654321"), digest="setup",
                 as_of=D(2026, 3, 2))
    yield led
    led.close()


def _used(led: SqliteLedger) -> int:
    return led.certificates()[0].lines[0].used


def test_check_constraint_refuses_used_above_issued(ledger: SqliteLedger) -> None:
    before = snapshot(ledger)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        ledger.conn.execute("UPDATE certificate_line SET used = issued + 1")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        ledger.conn.execute("UPDATE certificate_line SET used = -1")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        ledger.conn.execute("UPDATE pool_fill SET used = -1")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        ledger.conn.execute("UPDATE certificate_line SET issued = 0")
    assert snapshot(ledger) == before


@pytest.mark.parametrize(("change", "why"), [
    (Decrement(attrs.evolve(CLAIM, quantity=31501, pools=()), "K9T", "04172041",
               "98-7654321"), "balance"),
    (Credit(attrs.evolve(CLAIM, quantity=18501, pools=()), "K9T", "04172033",
            "98-7654321"), "balance"),
    (Decrement(attrs.evolve(CLAIM, quantity=1, pools=(("BEEF-AU", 2026, 41501),)),
               "K9T", "04172041", "98-7654321"), "pool"),
    (Decrement(attrs.evolve(CLAIM, number="6AU999999", quantity=1, pools=()), "K9T",
               "04172041", "98-7654321"), "balance"),
], ids=["decrement-over-balance", "credit-below-zero", "pool-over-limit", "no-such-line"])
def test_apply_refuses_an_overdraw(ledger: SqliteLedger, change: object, why: str) -> None:
    before = snapshot(ledger)
    with pytest.raises(LedgerConflict, match=why), ledger.transaction() as tx:
        tx.apply(change, digest="x", as_of=D(2026, 3, 3))  # type: ignore[arg-type]
    assert snapshot(ledger) == before
    assert _used(ledger) == 18500
    assert not ledger.conn.in_transaction


def test_refused_overdraw_rolls_back_the_whole_transaction(ledger: SqliteLedger) -> None:
    """A good decrement, a stored reply, then an overdraw in one transaction: nothing stays."""
    before = snapshot(ledger)
    with pytest.raises(LedgerConflict), ledger.transaction() as tx:
        tx.apply(Decrement(attrs.evolve(CLAIM, quantity=30000, pools=()), "K9T", "04172041",
                           "98-7654321"), digest="y", as_of=D(2026, 3, 3))
        assert _used(ledger) == 48500  # visible inside the transaction
        tx.store_reply("y", ["A REPLY"], D(2026, 3, 3))
        tx.apply(Decrement(attrs.evolve(CLAIM, quantity=1501, pools=()), "K9T", "04172058",
                           "98-7654321"), digest="y", as_of=D(2026, 3, 3))
    assert snapshot(ledger) == before
    assert ledger.stored_reply("y") is None


def test_exact_balance_is_allowed(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        tx.apply(Decrement(attrs.evolve(CLAIM, quantity=31500, pools=()), "K9T", "04172041",
                           "98-7654321"), digest="z", as_of=D(2026, 3, 3))
    assert _used(ledger) == 50000


def test_processor_never_overdraws(tmp_path: Path) -> None:
    """End to end on a file: a summary over the balance is L15, nothing drawn."""
    led = SqliteLedger(str(tmp_path / "e2e.db"))
    try:
        process_lines(led, certs_batch(beef_cert("AU", "6AU123457", 20000)), D(2026, 2, 1))
        reply = process_lines(led, summaries_batch(summary(
            "0417203", beef_line("001", "AU", "6AU123457", "20001"))), D(2026, 3, 2))
        assert any(r.startswith("E1 FL15") for r in reply)
        assert led.certificates()[0].lines[0].used == 0
    finally:
        led.close()
