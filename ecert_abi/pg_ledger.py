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

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from .engine import (
    CancelCertificate,
    CertLine,
    CertState,
    Change,
    Claim,
    Credit,
    Decrement,
    DeleteSummary,
    PutCertificate,
    PutSummary,
    Rules,
    SummaryState,
)
from .ledger import JournalEntry, LedgerConflict, pool_limits
from .sqlite_ledger import _pools_parse, _pools_text  # the same claim.pools text

WRITE_LOCK = 0x6563_6572_7401  # advisory lock key of the ledger's writers ("ecert" 1)
MIGRATE_LOCK = 0x6563_6572_7402  # ... and of schema migrations
CONNECT_TRIES = 4
NO_LIMIT = 1 << 62
T = TypeVar("T")

# Forward-only: a database at version n runs MIGRATIONS[n:]; never edit a released step.
MIGRATIONS: tuple[str, ...] = (
    # 1: certificates, summaries and their claims, quota pools, journal, processed batches
    """
    CREATE TABLE certificate (
        programme TEXT NOT NULL, number TEXT NOT NULL, country TEXT NOT NULL,
        ior TEXT NOT NULL, quota_year INTEGER NOT NULL, effective DATE NOT NULL,
        expiry DATE NOT NULL, status TEXT NOT NULL CHECK (status IN ('A', 'C')),
        exporter TEXT, PRIMARY KEY (programme, number));
    CREATE TABLE certificate_line (
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        issued BIGINT NOT NULL CHECK (issued > 0),
        used BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= issued),
        unit TEXT NOT NULL, preference_hts TEXT,
        PRIMARY KEY (programme, number, hts),
        FOREIGN KEY (programme, number) REFERENCES certificate (programme, number));
    CREATE TABLE summary (
        filer TEXT NOT NULL, entry_number TEXT NOT NULL, port TEXT NOT NULL,
        broker_reference TEXT, ior TEXT, version INTEGER NOT NULL,
        PRIMARY KEY (filer, entry_number));
    CREATE TABLE claim (
        filer TEXT NOT NULL, entry_number TEXT NOT NULL, ordinal INTEGER NOT NULL,
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        line_id TEXT NOT NULL, quantity BIGINT NOT NULL CHECK (quantity > 0),
        pools TEXT NOT NULL, PRIMARY KEY (filer, entry_number, ordinal));
    CREATE TABLE pool_fill (
        pool TEXT NOT NULL, year INTEGER NOT NULL, used BIGINT NOT NULL CHECK (used >= 0),
        PRIMARY KEY (pool, year));
    CREATE TABLE journal (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, batch_digest TEXT NOT NULL,
        filer TEXT NOT NULL, entry_number TEXT NOT NULL, line_id TEXT NOT NULL,
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('D', 'C')), quantity BIGINT NOT NULL,
        as_of DATE NOT NULL, ior TEXT, recorded_at TIMESTAMPTZ NOT NULL);
    CREATE TABLE processed_batch (
        digest TEXT PRIMARY KEY, reply TEXT NOT NULL, as_of DATE NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL);
    """,
    # 2: journal lookups by certificate and by importer (usage queries)
    """
    CREATE INDEX journal_by_certificate ON journal (programme, number);
    CREATE INDEX journal_by_ior ON journal (ior);
    """,
)


def migrate(conn: psycopg.Connection[Any], target: int | None = None) -> int:
    """Bring the schema to `target` (default: latest) in one transaction under an advisory
    lock, so workers starting together migrate once; returns the version reached."""
    target = len(MIGRATIONS) if target is None else target
    if not 0 <= target <= len(MIGRATIONS):
        raise ValueError(f"no ledger schema version {target} (latest: {len(MIGRATIONS)})")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                     " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(f"ledger schema {version} is newer than this ecert-abi "
                               f"({len(MIGRATIONS)}); upgrade ecert-abi")
        for step in range(version, target):
            for stmt in filter(str.strip, MIGRATIONS[step].split(";")):
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


class PgTx:
    """Reads (and, inside `PostgresLedger.transaction()`, writes) on one connection."""

    def __init__(self, conn: psycopg.Connection[Any], limits: dict[str, int],
                 writable: bool = False) -> None:
        self.conn = conn
        self.limits = limits
        self.writable = writable

    # Orderings are COLLATE "C" (bytes, as SQLite and Python sort), whatever the database's.
    def _q(self, sql: str, *args: Any) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    # --- reads ---
    def certificate(self, programme: str, number: str) -> CertState | None:
        rows = self._q("SELECT programme, number, country, ior, quota_year, effective, expiry,"
                       " status, exporter FROM certificate WHERE programme = %s AND number = %s",
                       programme, number)
        return self._cert(rows[0]) if rows else None

    def _cert(self, row: Any) -> CertState:
        p, n, country, ior, year, eff, exp, status, exporter = row
        lines = tuple(CertLine(h, i, u, unit, pref) for h, i, u, unit, pref in self._q(
            "SELECT hts, issued, used, unit, preference_hts FROM certificate_line"
            ' WHERE programme = %s AND number = %s ORDER BY hts COLLATE "C"', p, n))
        return CertState(p, n, country, ior, year, eff, exp, status, lines, exporter)

    def summary(self, filer: str, entry_number: str) -> SummaryState | None:
        rows = self._q("SELECT port, broker_reference, ior, version FROM summary"
                       " WHERE filer = %s AND entry_number = %s", filer, entry_number)
        if not rows:
            return None
        port, ref, ior, version = rows[0]
        claims = tuple(Claim(p, n, h, lid, q, _pools_parse(pools)) for p, n, h, lid, q, pools
                       in self._q("SELECT programme, number, hts, line_id, quantity, pools"
                                  " FROM claim WHERE filer = %s AND entry_number = %s"
                                  " ORDER BY ordinal", filer, entry_number))
        return SummaryState(filer, entry_number, port, ref, ior, claims, version)

    def pool_fill(self, pool: str, year: int) -> int:
        rows = self._q("SELECT used FROM pool_fill WHERE pool = %s AND year = %s", pool, year)
        return int(rows[0][0]) if rows else 0

    def stored_reply(self, digest: str) -> list[str] | None:
        rows = self._q("SELECT reply FROM processed_batch WHERE digest = %s", digest)
        return str(rows[0][0]).split("\n") if rows else None

    def certificates(self) -> list[CertState]:
        return [self._cert(r) for r in self._q(
            "SELECT programme, number, country, ior, quota_year, effective, expiry, status,"
            ' exporter FROM certificate ORDER BY programme COLLATE "C", number COLLATE "C"')]

    def summaries(self) -> list[SummaryState]:
        out = []
        for f, e in self._q("SELECT filer, entry_number FROM summary"
                            ' ORDER BY filer COLLATE "C", entry_number COLLATE "C"'):
            s = self.summary(f, e)
            assert s is not None
            out.append(s)
        return out

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]:
        return [JournalEntry(*r) for r in self._q(
            "SELECT seq, batch_digest, filer, entry_number, line_id, programme, number, hts,"
            " action, quantity, as_of, ior FROM journal"
            " WHERE (%s::text IS NULL OR programme = %s) AND (%s::text IS NULL OR number = %s)"
            " ORDER BY seq", programme, programme, number, number)]

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return {(p, y): u for p, y, u in self._q("SELECT pool, year, used FROM pool_fill"
                                                 " WHERE used <> 0")}

    # --- writes ---
    def store_reply(self, digest: str, lines: Sequence[str], as_of: dt.date) -> None:
        assert self.writable, "store_reply() outside transaction()"
        self.conn.execute("INSERT INTO processed_batch VALUES (%s, %s, %s, now())",
                          (digest, "\n".join(lines), as_of))

    def apply(self, change: Change, *, digest: str, as_of: dt.date) -> None:
        assert self.writable, "apply() outside transaction()"
        x = self.conn.execute
        match change:
            case PutCertificate(cert=c):
                x("INSERT INTO certificate VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT"
                  " (programme, number) DO UPDATE SET country = excluded.country,"
                  " ior = excluded.ior, quota_year = excluded.quota_year,"
                  " effective = excluded.effective, expiry = excluded.expiry,"
                  " status = excluded.status, exporter = excluded.exporter",
                  (c.programme, c.number, c.country, c.ior, c.quota_year, c.effective,
                   c.expiry, c.status, c.exporter))
                keep = [ln.hts for ln in c.lines]
                x("DELETE FROM certificate_line WHERE programme = %s AND number = %s"
                  " AND used = 0 AND hts <> ALL(%s::text[])", (c.programme, c.number, keep))
                left = self._q("SELECT count(*) FROM certificate_line WHERE programme = %s AND"
                               " number = %s AND hts <> ALL(%s::text[])",
                               c.programme, c.number, keep)[0][0]
                if left:
                    raise LedgerConflict(f"{c.number}: a used line would be dropped")
                for ln in c.lines:
                    try:
                        x("INSERT INTO certificate_line (programme, number, hts, issued, used,"
                          " unit, preference_hts) VALUES (%s, %s, %s, %s, 0, %s, %s) ON CONFLICT"
                          " (programme, number, hts) DO UPDATE SET issued = excluded.issued,"
                          " unit = excluded.unit, preference_hts = excluded.preference_hts",
                          (c.programme, c.number, ln.hts, ln.issued, ln.unit, ln.preference_hts))
                    except psycopg.IntegrityError as e:
                        raise LedgerConflict(f"{c.number} {ln.hts}: {e}") from None
            case CancelCertificate(programme=p, number=n):
                x("UPDATE certificate SET status = 'C' WHERE programme = %s AND number = %s",
                  (p, n))
            case Decrement() | Credit():
                self._draw(change, digest, as_of)
            case PutSummary(summary=s):
                x("INSERT INTO summary VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT"
                  " (filer, entry_number) DO UPDATE SET port = excluded.port,"
                  " broker_reference = excluded.broker_reference, ior = excluded.ior,"
                  " version = excluded.version",
                  (s.filer, s.entry_number, s.port, s.broker_reference, s.ior, s.version))
                x("DELETE FROM claim WHERE filer = %s AND entry_number = %s",
                  (s.filer, s.entry_number))
                self.conn.cursor().executemany(
                    "INSERT INTO claim VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(s.filer, s.entry_number, i, c.programme, c.number, c.hts, c.line_id,
                      c.quantity, _pools_text(c.pools)) for i, c in enumerate(s.claims)])
            case DeleteSummary(filer=f, entry_number=e):
                x("DELETE FROM claim WHERE filer = %s AND entry_number = %s", (f, e))
                x("DELETE FROM summary WHERE filer = %s AND entry_number = %s", (f, e))

    def _draw(self, change: Decrement | Credit, digest: str, as_of: dt.date) -> None:
        c = change.claim
        q = c.quantity if isinstance(change, Decrement) else -c.quantity
        # The database checks the balance itself: no row changes unless it stays in range.
        cur = self.conn.execute(
            "UPDATE certificate_line SET used = used + %s WHERE programme = %s AND number = %s"
            " AND hts = %s AND used + %s BETWEEN 0 AND issued",
            (q, c.programme, c.number, c.hts, q))
        if cur.rowcount != 1:
            raise LedgerConflict(f"{c.number} {c.hts}: balance refuses {q:+d}")
        for pool, year, amount in c.pools:
            a = amount if q > 0 else -amount
            limit = self.limits.get(pool, NO_LIMIT)
            self.conn.execute("INSERT INTO pool_fill VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                              (pool, year))
            cur = self.conn.execute(
                "UPDATE pool_fill SET used = used + %s WHERE pool = %s AND year = %s"
                " AND used + %s BETWEEN 0 AND %s",
                (a, pool, year, a, limit if a > 0 else NO_LIMIT))
            if cur.rowcount != 1:
                raise LedgerConflict(f"pool {pool} {year} refuses {a:+d}")
        self.conn.execute(
            "INSERT INTO journal (batch_digest, filer, entry_number, line_id, programme, number,"
            " hts, action, quantity, as_of, ior, recorded_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
            (digest, change.filer, change.entry_number, c.line_id, c.programme, c.number, c.hts,
             "D" if q > 0 else "C", c.quantity, as_of, change.ior))


class PostgresLedger:
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
    def _tx(self, writable: bool) -> Iterator[PgTx]:
        with self.pool.connection() as conn:
            tx = PgTx(conn, self.limits, writable)
            try:
                with conn.transaction():
                    if writable:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    else:  # one consistent snapshot for multi-statement reads
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield tx
            except psycopg.OperationalError as e:
                # class 40: serialization failure, deadlock (psycopg 3 raises them as
                # OperationalError subclasses, not TransactionRollback)
                if (e.sqlstate or "").startswith("40") or conn.broken:
                    raise LedgerConflict(f"transaction not committed: {e}") from e
                raise
            finally:
                tx.writable = False

    def transaction(self) -> AbstractContextManager[PgTx]:
        return self._tx(writable=True)

    def _read(self, what: Callable[[PgTx], T]) -> T:
        """A read outside transaction(): one snapshot, retried if the connection drops."""
        for attempt in range(CONNECT_TRIES):
            try:
                with self._tx(writable=False) as r:
                    return what(r)
            except LedgerConflict:
                if attempt == CONNECT_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def stored_reply(self, digest: str) -> list[str] | None:
        return self._read(lambda r: r.stored_reply(digest))

    def certificates(self) -> list[CertState]:
        return self._read(PgTx.certificates)

    def summaries(self) -> list[SummaryState]:
        return self._read(PgTx.summaries)

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]:
        return self._read(lambda r: r.journal(programme=programme, number=number))

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return self._read(PgTx.pool_fills)
