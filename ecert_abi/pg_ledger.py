"""The PostgreSQL ledger: the SQLite ledger's schema and behaviour on a shared server.

Locking: every `transaction()` first takes ONE transaction-scoped advisory lock
(`pg_advisory_xact_lock(WRITE_LOCK)`), so writers run one at a time across all processes,
exactly like SQLite's BEGIN IMMEDIATE. Under READ COMMITTED each statement then sees every
transaction committed before the lock was granted, so the engine's reads stay true until
COMMIT. Row locks (SELECT ... FOR UPDATE) were rejected: the engine also decides on rows
that do not exist (a summary not on file, a batch digest not stored yet), which no row
lock covers, so two workers could both add one entry or both process one batch; every
beef claim updates the same pool_fill row, so writers serialise there anyway; and taking
the lock first keeps journal.seq in commit order, which the usage queries' continuation
keys rely on. The conditional updates and CHECK constraints stay as
the second line of defence. Serialization failures, deadlocks and a connection lost in a
transaction raise LedgerConflict, and the processor retries the batch (the batch digest
makes a retry after a commit that did land answer from the stored reply).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from .engine import Rules
from .ledger import LedgerConflict, pool_limits
from .sql_store import Dialect, SqlReads, SqlTx, check_versions

WRITE_LOCK = 0x6563_6572_7401  # advisory lock key of the ledger's writers ("ecert" 1)
MIGRATE_LOCK = 0x6563_6572_7402  # ... and of schema migrations
CONNECT_TRIES = 4
T = TypeVar("T")


def _same(v: Any) -> Any:
    return v


POSTGRES = Dialect(
    name="postgresql",
    types={"date": "DATE", "int8": "BIGINT", "stamp": "TIMESTAMPTZ",
           "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
    param="%s", collate=True, integrity_error=psycopg.IntegrityError,
    date=_same, read_date=_same, stamp=_same, read_stamp=_same,
)
MIGRATIONS = tuple(POSTGRES.steps())


def migrate(conn: psycopg.Connection[Any], target: int | None = None) -> int:
    """Bring the schema to `target` (default: latest) in one transaction under an advisory
    lock, so workers starting together migrate once; returns the version reached."""
    if target is not None:
        check_versions(0, target)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                     " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        target = check_versions(version, target)
        for step in range(version, target):
            for stmt in MIGRATIONS[step]:
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (step + 1,))
    return max(version, target)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection, retried with backoff while the server is unreachable."""
    for attempt in range(CONNECT_TRIES):
        try:
            return psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError:
            if attempt == CONNECT_TRIES - 1:
                raise
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


class PostgresLedger(SqlReads):
    """Ledger in one PostgreSQL database. Safe for any number of processes and machines."""

    def __init__(self, url: str, rules: Rules | None = None, *, max_size: int = 4) -> None:
        self.url = url
        self.limits = pool_limits(rules)
        with connect(url) as conn:
            migrate(conn)
        # check: a pooled connection the server dropped is replaced, not handed out
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=True,
                                   kwargs={"autocommit": True},
                                   check=ConnectionPool.check_connection)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def _tx(self, writable: bool) -> Iterator[SqlTx]:
        with self.pool.connection() as conn:
            tx = SqlTx(conn, POSTGRES, self.limits)
            try:
                with conn.transaction():
                    if writable:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    else:  # one consistent snapshot for multi-statement reads
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    tx.writable = writable
                    yield tx
            except psycopg.OperationalError as e:
                # class 40: serialization failure, deadlock (psycopg 3 raises them as
                # OperationalError subclasses, not TransactionRollback)
                if (e.sqlstate or "").startswith("40") or conn.broken:
                    raise LedgerConflict(f"transaction not committed: {e}") from e
                raise
            finally:
                tx.writable = False

    def transaction(self) -> AbstractContextManager[SqlTx]:
        return self._tx(writable=True)

    def _read(self, what: Callable[[SqlTx], T]) -> T:
        """A read outside transaction(): one snapshot, retried if the connection drops."""
        for attempt in range(CONNECT_TRIES):
            try:
                with self._tx(writable=False) as r:
                    return what(r)
            except LedgerConflict:
                if attempt == CONNECT_TRIES - 1:
                    raise
        raise AssertionError("unreachable")
