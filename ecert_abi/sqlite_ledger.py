"""The embedded default ledger: one SQLite file, WAL, forward-only migrations.

Each `transaction()` is one BEGIN IMMEDIATE ... COMMIT, so a batch's changes and its stored
reply land together. Decrements are conditional updates (`used + q <= issued`) backed by
CHECK constraints: the database refuses an overdraw even if Python got it wrong.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

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

# Forward-only: a database at version n runs MIGRATIONS[n:]; never edit a released step.
MIGRATIONS: tuple[str, ...] = (
    # 1: certificates, summaries and their claims, quota pools, journal, processed batches
    """
    CREATE TABLE certificate (
        programme TEXT NOT NULL, number TEXT NOT NULL, country TEXT NOT NULL,
        ior TEXT NOT NULL, quota_year INTEGER NOT NULL, effective TEXT NOT NULL,
        expiry TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('A', 'C')),
        exporter TEXT, PRIMARY KEY (programme, number));
    CREATE TABLE certificate_line (
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        issued INTEGER NOT NULL CHECK (issued > 0),
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= issued),
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
        line_id TEXT NOT NULL, quantity INTEGER NOT NULL CHECK (quantity > 0),
        pools TEXT NOT NULL, PRIMARY KEY (filer, entry_number, ordinal));
    CREATE TABLE pool_fill (
        pool TEXT NOT NULL, year INTEGER NOT NULL, used INTEGER NOT NULL CHECK (used >= 0),
        PRIMARY KEY (pool, year));
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_digest TEXT NOT NULL,
        filer TEXT NOT NULL, entry_number TEXT NOT NULL, line_id TEXT NOT NULL,
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('D', 'C')), quantity INTEGER NOT NULL,
        as_of TEXT NOT NULL, ior TEXT, recorded_at TEXT NOT NULL);
    CREATE TABLE processed_batch (
        digest TEXT PRIMARY KEY, reply TEXT NOT NULL, as_of TEXT NOT NULL,
        recorded_at TEXT NOT NULL);
    """,
    # 2: journal lookups by certificate and by importer (usage queries)
    """
    CREATE INDEX journal_by_certificate ON journal (programme, number);
    CREATE INDEX journal_by_ior ON journal (ior);
    """,
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _pools_text(pools: tuple[tuple[str, int, int], ...]) -> str:
    return ";".join(f"{p},{y},{a}" for p, y, a in pools)


def _pools_parse(text: str) -> tuple[tuple[str, int, int], ...]:
    out = []
    for part in filter(None, text.split(";")):
        p, y, a = part.split(",")
        out.append((p, int(y), int(a)))
    return tuple(out)


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Bring the schema to `target` (default: latest); returns the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    target = len(MIGRATIONS) if target is None else target
    if version > len(MIGRATIONS):
        raise RuntimeError(f"ledger schema {version} is newer than this ecert-abi "
                           f"({len(MIGRATIONS)}); upgrade ecert-abi")
    for step in range(version, target):
        conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(str.strip, MIGRATIONS[step].split(";")):
            conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    return int(max(version, target))


class SqliteLedger:
    """Ledger in one SQLite file (WAL). Safe for several processes on one machine."""

    def __init__(self, path: str, rules: Rules | None = None, *, timeout: float = 60.0) -> None:
        self.path = path
        self.limits = pool_limits(rules)
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        migrate(self.conn)
        self._in_tx = False

    def close(self) -> None:
        self.conn.close()

    def _q(self, sql: str, *args: Any) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[SqliteLedger]:
        self.conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._in_tx = False

    # --- reads ---
    def certificate(self, programme: str, number: str) -> CertState | None:
        rows = self._q("SELECT programme, number, country, ior, quota_year, effective, expiry,"
                       " status, exporter FROM certificate WHERE programme = ? AND number = ?",
                       programme, number)
        if not rows:
            return None
        return self._cert(rows[0])

    def _cert(self, row: Any) -> CertState:
        p, n, country, ior, year, eff, exp, status, exporter = row
        lines = tuple(CertLine(h, i, u, unit, pref) for h, i, u, unit, pref in self._q(
            "SELECT hts, issued, used, unit, preference_hts FROM certificate_line"
            " WHERE programme = ? AND number = ? ORDER BY hts", p, n))
        return CertState(p, n, country, ior, year, dt.date.fromisoformat(eff),
                         dt.date.fromisoformat(exp), status, lines, exporter)

    def summary(self, filer: str, entry_number: str) -> SummaryState | None:
        rows = self._q("SELECT port, broker_reference, ior, version FROM summary"
                       " WHERE filer = ? AND entry_number = ?", filer, entry_number)
        if not rows:
            return None
        port, ref, ior, version = rows[0]
        claims = tuple(Claim(p, n, h, lid, q, _pools_parse(pools)) for p, n, h, lid, q, pools
                       in self._q("SELECT programme, number, hts, line_id, quantity, pools"
                                  " FROM claim WHERE filer = ? AND entry_number = ?"
                                  " ORDER BY ordinal", filer, entry_number))
        return SummaryState(filer, entry_number, port, ref, ior, claims, version)

    def pool_fill(self, pool: str, year: int) -> int:
        rows = self._q("SELECT used FROM pool_fill WHERE pool = ? AND year = ?", pool, year)
        return int(rows[0][0]) if rows else 0

    def stored_reply(self, digest: str) -> list[str] | None:
        rows = self._q("SELECT reply FROM processed_batch WHERE digest = ?", digest)
        return str(rows[0][0]).split("\n") if rows else None

    def certificates(self) -> list[CertState]:
        return [self._cert(r) for r in self._q(
            "SELECT programme, number, country, ior, quota_year, effective, expiry, status,"
            " exporter FROM certificate ORDER BY programme, number")]

    def summaries(self) -> list[SummaryState]:
        out = []
        for f, e in self._q("SELECT filer, entry_number FROM summary ORDER BY filer, entry_number"):
            s = self.summary(f, e)
            assert s is not None
            out.append(s)
        return out

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]:
        sql = ("SELECT seq, batch_digest, filer, entry_number, line_id, programme, number, hts,"
               " action, quantity, as_of, ior FROM journal WHERE 1 = 1")
        args: list[Any] = []
        if programme is not None:
            sql += " AND programme = ?"
            args.append(programme)
        if number is not None:
            sql += " AND number = ?"
            args.append(number)
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                             dt.date.fromisoformat(r[10]), r[11])
                for r in self._q(sql + " ORDER BY seq", *args)]

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return {(p, y): u for p, y, u in self._q("SELECT pool, year, used FROM pool_fill"
                                                 " WHERE used <> 0")}

    # --- writes (inside transaction()) ---
    def store_reply(self, digest: str, lines: Sequence[str], as_of: dt.date) -> None:
        self.conn.execute("INSERT INTO processed_batch VALUES (?, ?, ?, ?)",
                          (digest, "\n".join(lines), as_of.isoformat(), _now()))

    def apply(self, change: Change, *, digest: str, as_of: dt.date) -> None:
        assert self._in_tx, "apply() outside transaction()"
        x = self.conn.execute
        match change:
            case PutCertificate(cert=c):
                x("INSERT INTO certificate VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                  " (programme, number) DO UPDATE SET country = excluded.country,"
                  " ior = excluded.ior, quota_year = excluded.quota_year,"
                  " effective = excluded.effective, expiry = excluded.expiry,"
                  " status = excluded.status, exporter = excluded.exporter",
                  (c.programme, c.number, c.country, c.ior, c.quota_year,
                   c.effective.isoformat(), c.expiry.isoformat(), c.status, c.exporter))
                keep = [ln.hts for ln in c.lines]
                dropped = x("DELETE FROM certificate_line WHERE programme = ? AND number = ?"
                            f" AND used = 0 AND hts NOT IN ({','.join('?' * len(keep))})",
                            (c.programme, c.number, *keep))
                del dropped
                left = self._q("SELECT count(*) FROM certificate_line WHERE programme = ? AND"
                               f" number = ? AND hts NOT IN ({','.join('?' * len(keep))})",
                               c.programme, c.number, *keep)[0][0]
                if left:
                    raise LedgerConflict(f"{c.number}: a used line would be dropped")
                for ln in c.lines:
                    try:
                        x("INSERT INTO certificate_line VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT"
                          " (programme, number, hts) DO UPDATE SET issued = excluded.issued,"
                          " unit = excluded.unit, preference_hts = excluded.preference_hts",
                          (c.programme, c.number, ln.hts, ln.issued, ln.unit, ln.preference_hts))
                    except sqlite3.IntegrityError as e:
                        raise LedgerConflict(f"{c.number} {ln.hts}: {e}") from None
            case CancelCertificate(programme=p, number=n):
                x("UPDATE certificate SET status = 'C' WHERE programme = ? AND number = ?", (p, n))
            case Decrement() | Credit():
                self._draw(change, digest, as_of)
            case PutSummary(summary=s):
                x("INSERT OR REPLACE INTO summary VALUES (?, ?, ?, ?, ?, ?)",
                  (s.filer, s.entry_number, s.port, s.broker_reference, s.ior, s.version))
                x("DELETE FROM claim WHERE filer = ? AND entry_number = ?",
                  (s.filer, s.entry_number))
                self.conn.executemany(
                    "INSERT INTO claim VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(s.filer, s.entry_number, i, c.programme, c.number, c.hts, c.line_id,
                      c.quantity, _pools_text(c.pools)) for i, c in enumerate(s.claims)])
            case DeleteSummary(filer=f, entry_number=e):
                x("DELETE FROM claim WHERE filer = ? AND entry_number = ?", (f, e))
                x("DELETE FROM summary WHERE filer = ? AND entry_number = ?", (f, e))

    def _draw(self, change: Decrement | Credit, digest: str, as_of: dt.date) -> None:
        c = change.claim
        q = c.quantity if isinstance(change, Decrement) else -c.quantity
        # The database checks the balance itself: no row changes unless it stays in range.
        cur = self.conn.execute(
            "UPDATE certificate_line SET used = used + ? WHERE programme = ? AND number = ?"
            " AND hts = ? AND used + ? BETWEEN 0 AND issued", (q, c.programme, c.number, c.hts, q))
        if cur.rowcount != 1:
            raise LedgerConflict(f"{c.number} {c.hts}: balance refuses {q:+d}")
        for pool, year, amount in c.pools:
            a = amount if q > 0 else -amount
            limit = self.limits.get(pool, 1 << 62)
            self.conn.execute("INSERT OR IGNORE INTO pool_fill VALUES (?, ?, 0)", (pool, year))
            cur = self.conn.execute(
                "UPDATE pool_fill SET used = used + ? WHERE pool = ? AND year = ?"
                " AND used + ? BETWEEN 0 AND ?", (a, pool, year, a, limit if a > 0 else 1 << 62))
            if cur.rowcount != 1:
                raise LedgerConflict(f"pool {pool} {year} refuses {a:+d}")
        self.conn.execute(
            "INSERT INTO journal (batch_digest, filer, entry_number, line_id, programme, number,"
            " hts, action, quantity, as_of, ior, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (digest, change.filer, change.entry_number, c.line_id, c.programme, c.number, c.hts,
             "D" if q > 0 else "C", c.quantity, as_of.isoformat(), change.ior, _now()))
