"""The embedded default ledger: one SQLite file, WAL, forward-only migrations.

Each `transaction()` is one BEGIN IMMEDIATE ... COMMIT, so a batch's changes and its stored
reply land together. Decrements are conditional updates (`used + q <= issued`) backed by
CHECK constraints: the database refuses an overdraw even if Python got it wrong.
`synchronous = FULL`: a reply is written only after its commit is on disk, so a power
failure cannot take back work that was already answered.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .engine import CertState, Rules, SummaryState
from .ledger import pool_limits
from .sql_store import Dialect, SqlReads, SqlTx, check_versions

T = TypeVar("T")

SQLITE = Dialect(
    name="sqlite",
    types={"date": "TEXT", "int8": "INTEGER", "stamp": "TEXT",
           "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    param="?", collate=False, integrity_error=sqlite3.IntegrityError,
    date=dt.date.isoformat, read_date=dt.date.fromisoformat,
    stamp=lambda t: t.isoformat(timespec="microseconds"), read_stamp=dt.datetime.fromisoformat,
)
MIGRATIONS = tuple(SQLITE.steps())


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Bring the schema to `target` (default: latest) in one write transaction, so two
    processes opening a new file at once migrate it once; returns the version reached."""
    if target is not None:
        check_versions(0, target)  # before taking the write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        target = check_versions(version, target)
        for step in range(version, target):
            for stmt in MIGRATIONS[step]:
                conn.execute(stmt)
        if target > version:
            conn.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return max(version, target)


class SqliteLedger(SqlReads):
    """Ledger in one SQLite file (WAL). Safe for several processes on one machine."""

    def __init__(self, path: str, rules: Rules | None = None, *, timeout: float = 60.0) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        migrate(self.conn)
        self.tx = SqlTx(self.conn, SQLITE, pool_limits(rules))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        self.conn.execute("BEGIN IMMEDIATE")
        self.tx.writable = True
        try:
            yield self.tx
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self.tx.writable = False

    def _read(self, what: Callable[[SqlTx], T]) -> T:
        if self.conn.in_transaction:  # already inside transaction()
            return what(self.tx)
        self.conn.execute("BEGIN")  # one snapshot for the statements of this read
        try:
            return what(self.tx)
        finally:
            self.conn.execute("COMMIT")

    # the LedgerView reads, for callers deciding outside transaction()
    def certificate(self, programme: str, number: str) -> CertState | None:
        return self._read(lambda r: r.certificate(programme, number))

    def summary(self, filer: str, entry_number: str) -> SummaryState | None:
        return self._read(lambda r: r.summary(filer, entry_number))

    def pool_fill(self, pool: str, year: int) -> int:
        return self._read(lambda r: r.pool_fill(pool, year))
