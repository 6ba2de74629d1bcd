"""What the SQLite and PostgreSQL ledgers share: one schema, one set of statements.

Statements are written once, in SQLite's `?` parameter style and with PostgreSQL's
explicit `COLLATE "C"` (byte order, as Python sorts; SQLite's default collation is
already that); each `Dialect` adapts them. The schema is written once with type
placeholders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, Protocol, TypeVar

import attrs

from .access import Attempt, Participant
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
    SummaryState,
)
from .identifiers import normalise_ior
from .ledger import KEEP_ANSWERS, JournalEntry, LedgerConflict, StoredAnswer

NO_LIMIT = 1 << 62
T = TypeVar("T")

# Forward-only: a database at version n runs MIGRATIONS[n:]; never edit a released step.
# {date} {int8} {serial} {stamp} are the types each dialect names differently.
MIGRATIONS: tuple[str, ...] = (
    # 1: certificates, summaries and their claims, quota pools, journal, processed batches
    """
    CREATE TABLE certificate (
        programme TEXT NOT NULL, number TEXT NOT NULL, country TEXT NOT NULL,
        ior TEXT NOT NULL, quota_year INTEGER NOT NULL, effective {date} NOT NULL,
        expiry {date} NOT NULL, status TEXT NOT NULL CHECK (status IN ('A', 'C')),
        exporter TEXT, PRIMARY KEY (programme, number));
    CREATE TABLE certificate_line (
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        issued {int8} NOT NULL CHECK (issued > 0),
        used {int8} NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= issued),
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
        line_id TEXT NOT NULL, quantity {int8} NOT NULL CHECK (quantity > 0),
        pools TEXT NOT NULL, PRIMARY KEY (filer, entry_number, ordinal));
    CREATE TABLE pool_fill (
        pool TEXT NOT NULL, year INTEGER NOT NULL, used {int8} NOT NULL CHECK (used >= 0),
        PRIMARY KEY (pool, year));
    CREATE TABLE journal (
        seq {serial}, batch_digest TEXT NOT NULL,
        filer TEXT NOT NULL, entry_number TEXT NOT NULL, line_id TEXT NOT NULL,
        programme TEXT NOT NULL, number TEXT NOT NULL, hts TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('D', 'C')), quantity {int8} NOT NULL,
        as_of {date} NOT NULL, ior TEXT, recorded_at {stamp} NOT NULL);
    CREATE TABLE processed_batch (
        digest TEXT PRIMARY KEY, reply TEXT NOT NULL, as_of {date} NOT NULL,
        recorded_at {stamp} NOT NULL);
    """,
    # 2: journal lookups by certificate and by importer (usage queries)
    """
    CREATE INDEX journal_by_certificate ON journal (programme, number);
    CREATE INDEX journal_by_ior ON journal (ior);
    """,
    # 3: participants (senders), the IORs granted to filers, authentication attempts;
    # lookups of what a filer has filed (query scope)
    """
    CREATE TABLE participant (
        site TEXT NOT NULL, sender_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('country', 'filer')), code TEXT NOT NULL,
        password_hash TEXT NOT NULL, enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        PRIMARY KEY (site, sender_id));
    CREATE TABLE participant_ior (
        site TEXT NOT NULL, sender_id TEXT NOT NULL, ior TEXT NOT NULL,
        PRIMARY KEY (site, sender_id, ior),
        FOREIGN KEY (site, sender_id) REFERENCES participant (site, sender_id));
    CREATE TABLE auth_attempt (
        seq {serial}, at {stamp} NOT NULL, site TEXT NOT NULL, sender_id TEXT NOT NULL,
        application TEXT NOT NULL, outcome TEXT NOT NULL, batch_digest TEXT NOT NULL);
    CREATE INDEX summary_by_filer ON summary (filer);
    CREATE INDEX journal_by_filer ON journal (filer);
    """,
    # 4: long query answers, kept for their later pages; certificates looked up by importer
    # and by country (usage queries)
    """
    CREATE INDEX certificate_by_ior ON certificate (ior);
    CREATE INDEX certificate_by_country ON certificate (country);
    CREATE TABLE query_answer (
        token TEXT PRIMARY KEY, site TEXT NOT NULL, sender_id TEXT NOT NULL,
        question TEXT NOT NULL, items TEXT NOT NULL, stored_at {stamp} NOT NULL);
    CREATE INDEX query_answer_by_age ON query_answer (stored_at);
    """,
)


def check_versions(version: int, target: int | None) -> int:
    """The version to migrate to, refusing a database newer than this code and a target
    that does not exist."""
    latest = len(MIGRATIONS)
    if version > latest:
        raise RuntimeError(f"ledger schema {version} is newer than this ecert-abi ({latest});"
                           " upgrade ecert-abi")
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ValueError(f"no ledger schema version {target} (latest: {latest})")
    return target


@attrs.frozen
class Dialect:
    name: str
    types: dict[str, str]
    param: str  # the parameter marker
    collate: bool  # spell out COLLATE "C" (SQLite's default collation is already bytes)
    integrity_error: type[Exception]
    date: Callable[[dt.date], Any]  # Python -> database
    read_date: Callable[[Any], dt.date]
    stamp: Callable[[dt.datetime], Any]
    read_stamp: Callable[[Any], dt.datetime]

    def steps(self) -> list[list[str]]:
        """The migrations as statements of this dialect."""
        return [[s.strip() for s in step.format(**self.types).split(";") if s.strip()]
                for step in MIGRATIONS]

    def sql(self, text: str) -> str:
        return _adapt(text, self.param, self.collate)


@cache
def _adapt(text: str, param: str, collate: bool) -> str:
    if not collate:
        text = text.replace(' COLLATE "C"', "")
    return text.replace("?", param) if param != "?" else text


def _pools_text(pools: tuple[tuple[str, int, int], ...]) -> str:
    return ";".join(f"{p},{y},{a}" for p, y, a in pools)


def _pools_parse(text: str) -> tuple[tuple[str, int, int], ...]:
    out = []
    for part in filter(None, text.split(";")):
        p, y, a = part.split(",")
        out.append((p, int(y), int(a)))
    return tuple(out)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Connection(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


CERT_FILTERS = frozenset({"country", "ior", "programme", "number"})
CERT_JOIN = ("SELECT c.programme, c.number, c.country, c.ior, c.quota_year, c.effective,"
             " c.expiry, c.status, c.exporter, l.hts, l.issued, l.used, l.unit,"
             " l.preference_hts FROM certificate c LEFT JOIN certificate_line l"
             " ON l.programme = c.programme AND l.number = c.number")


class SqlTx:
    """The ledger's reads and writes on one connection of either dialect.

    Writes are valid only inside the owning ledger's `transaction()` (`writable`).
    """

    def __init__(self, conn: Connection, dialect: Dialect, limits: dict[str, int]) -> None:
        self.conn = conn
        self.dialect = dialect
        self.limits = limits
        self.writable = False

    def _x(self, sql: str, *args: Any) -> Any:
        return self.conn.execute(self.dialect.sql(sql), args)

    def _q(self, sql: str, *args: Any) -> list[Any]:
        return list(self._x(sql, *args).fetchall())

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self._x(sql, *row)

    # --- reads ---
    def certificate(self, programme: str, number: str) -> CertState | None:
        found = self._certs(" WHERE c.programme = ? AND c.number = ?", programme, number)
        return found[0] if found else None

    def _certs(self, where: str, *args: Any) -> list[CertState]:
        """Certificates with their lines, in one query (one round trip on a server)."""
        d = self.dialect.read_date
        out: list[CertState] = []
        lines: list[CertLine] = []
        for row in self._q(CERT_JOIN + where + ' ORDER BY c.programme COLLATE "C",'
                           ' c.number COLLATE "C", l.hts COLLATE "C"', *args):
            p, n, country, ior, year, eff, exp, status, exporter = row[:9]
            if not out or (out[-1].programme, out[-1].number) != (p, n):
                if out:
                    out[-1] = attrs.evolve(out[-1], lines=tuple(lines))
                out.append(CertState(p, n, country, ior, year, d(eff), d(exp), status, (),
                                     exporter))
                lines = []
            if row[9] is not None:
                lines.append(CertLine(*row[9:]))
        if out:
            out[-1] = attrs.evolve(out[-1], lines=tuple(lines))
        return out

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

    def certificates(self, **match: str | None) -> list[CertState]:
        """Every certificate, or those whose country, ior, programme or number equal the
        values given (None: any)."""
        given = {k: v for k, v in match.items() if v is not None}
        if given.keys() - CERT_FILTERS:
            raise TypeError(f"no certificate filter {sorted(given.keys() - CERT_FILTERS)}")
        where = " AND ".join(f"c.{k} = ?" for k in given)
        return self._certs(f" WHERE {where}" if where else "", *given.values())

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
        sql = ("SELECT seq, batch_digest, filer, entry_number, line_id, programme, number, hts,"
               " action, quantity, as_of, ior FROM journal WHERE 1 = 1")
        args: list[Any] = []
        if programme is not None:
            sql += " AND programme = ?"
            args.append(programme)
        if number is not None:
            sql += " AND number = ?"
            args.append(number)
        d = self.dialect.read_date
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                             d(r[10]), r[11])
                for r in self._q(sql + " ORDER BY seq", *args)]

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return {(p, y): u for p, y, u in self._q("SELECT pool, year, used FROM pool_fill"
                                                 " WHERE used <> 0")}

    def participant(self, site: str, sender_id: str) -> Participant | None:
        rows = self._q("SELECT site, sender_id, role, code, password_hash, enabled"
                       " FROM participant WHERE site = ? AND sender_id = ?", site, sender_id)
        return self._participant(rows[0]) if rows else None

    def _participant(self, row: Any) -> Participant:
        site, sid, role, code, pw, enabled = row
        iors = frozenset(r[0] for r in self._q(
            "SELECT ior FROM participant_ior WHERE site = ? AND sender_id = ?", site, sid))
        return Participant(site, sid, role, code, pw, bool(enabled), iors)

    def participants(self) -> list[Participant]:
        return [self._participant(r) for r in self._q(
            "SELECT site, sender_id, role, code, password_hash, enabled FROM participant"
            ' ORDER BY site COLLATE "C", sender_id COLLATE "C"')]

    def attempts(self, *, last: int | None = None) -> list[Attempt]:
        rows = self._q("SELECT seq, at, site, sender_id, application, outcome, batch_digest"
                       " FROM auth_attempt ORDER BY seq DESC LIMIT ?",
                       NO_LIMIT if last is None else last)
        s = self.dialect.read_stamp
        return [Attempt(r[0], s(r[1]), *r[2:]) for r in reversed(rows)]

    def stored_answer(self, token: str) -> StoredAnswer | None:
        rows = self._q("SELECT site, sender_id, question, items, stored_at FROM query_answer"
                       " WHERE token = ? AND stored_at >= ?", token,
                       self.dialect.stamp(now() - KEEP_ANSWERS))
        if not rows:
            return None
        site, sender, question, items, _ = rows[0]
        return StoredAnswer((site, sender), question, str(items).split("\n"))

    def filer_iors(self, filer: str) -> set[str]:
        return {normalise_ior(r[0]) for r in self._q(
            "SELECT ior FROM summary WHERE filer = ? AND ior IS NOT NULL UNION"
            " SELECT ior FROM journal WHERE filer = ? AND action = 'D' AND ior IS NOT NULL",
            filer, filer)}

    # --- writes ---
    def _writing(self) -> None:
        if not self.writable:
            raise RuntimeError("ledger writes happen inside ledger.transaction()")

    def store_reply(self, digest: str, lines: Sequence[str], as_of: dt.date) -> None:
        self._writing()
        self._x("INSERT INTO processed_batch VALUES (?, ?, ?, ?)",
                digest, "\n".join(lines), self.dialect.date(as_of), self.dialect.stamp(now()))

    def put_participant(self, p: Participant) -> None:
        self._writing()
        self._x("INSERT INTO participant VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, sender_id)"
                " DO UPDATE SET role = excluded.role, code = excluded.code,"
                " password_hash = excluded.password_hash, enabled = excluded.enabled",
                p.site, p.sender_id, p.role, p.code, p.password_hash, int(p.enabled))
        self._x("DELETE FROM participant_ior WHERE site = ? AND sender_id = ?",
                p.site, p.sender_id)
        self._many("INSERT INTO participant_ior VALUES (?, ?, ?)",
                   [(p.site, p.sender_id, ior) for ior in sorted(p.iors)])

    def store_answer(self, token: str, answer: StoredAnswer) -> None:
        self._writing()
        at = now()
        self._x("DELETE FROM query_answer WHERE stored_at < ?",
                self.dialect.stamp(at - KEEP_ANSWERS))
        self._x("INSERT INTO query_answer VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token) DO"
                " UPDATE SET site = excluded.site, sender_id = excluded.sender_id,"
                " question = excluded.question, items = excluded.items,"
                " stored_at = excluded.stored_at", token, *answer.requester, answer.question,
                "\n".join(answer.items), self.dialect.stamp(at))

    def record_attempt(self, site: str, sender_id: str, application: str, outcome: str,
                       batch_digest: str) -> None:
        self._writing()
        self._x("INSERT INTO auth_attempt (at, site, sender_id, application, outcome,"
                " batch_digest) VALUES (?, ?, ?, ?, ?, ?)", self.dialect.stamp(now()),
                site, sender_id, application, outcome, batch_digest)

    def apply(self, change: Change, *, digest: str, as_of: dt.date) -> None:
        self._writing()
        x, d = self._x, self.dialect.date
        match change:
            case PutCertificate(cert=c):
                x("INSERT INTO certificate VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                  " (programme, number) DO UPDATE SET country = excluded.country,"
                  " ior = excluded.ior, quota_year = excluded.quota_year,"
                  " effective = excluded.effective, expiry = excluded.expiry,"
                  " status = excluded.status, exporter = excluded.exporter",
                  c.programme, c.number, c.country, c.ior, c.quota_year, d(c.effective),
                  d(c.expiry), c.status, c.exporter)
                keep = [ln.hts for ln in c.lines] or [""]
                marks = ", ".join("?" * len(keep))
                x(f"DELETE FROM certificate_line WHERE programme = ? AND number = ?"
                  f" AND used = 0 AND hts NOT IN ({marks})", c.programme, c.number, *keep)
                if self._q(f"SELECT count(*) FROM certificate_line WHERE programme = ? AND"
                           f" number = ? AND hts NOT IN ({marks})",
                           c.programme, c.number, *keep)[0][0]:
                    raise LedgerConflict(f"{c.number}: a used line would be dropped")
                for ln in c.lines:
                    try:
                        x("INSERT INTO certificate_line (programme, number, hts, issued, used,"
                          " unit, preference_hts) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT"
                          " (programme, number, hts) DO UPDATE SET issued = excluded.issued,"
                          " unit = excluded.unit, preference_hts = excluded.preference_hts",
                          c.programme, c.number, ln.hts, ln.issued, ln.unit, ln.preference_hts)
                    except self.dialect.integrity_error as e:
                        raise LedgerConflict(f"{c.number} {ln.hts}: {e}") from None
            case CancelCertificate(programme=p, number=n):
                x("UPDATE certificate SET status = 'C' WHERE programme = ? AND number = ?", p, n)
            case Decrement() | Credit():
                self._draw(change, digest, as_of)
            case PutSummary(summary=s):
                x("INSERT INTO summary VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT"
                  " (filer, entry_number) DO UPDATE SET port = excluded.port,"
                  " broker_reference = excluded.broker_reference, ior = excluded.ior,"
                  " version = excluded.version",
                  s.filer, s.entry_number, s.port, s.broker_reference, s.ior, s.version)
                x("DELETE FROM claim WHERE filer = ? AND entry_number = ?",
                  s.filer, s.entry_number)
                self._many("INSERT INTO claim VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(s.filer, s.entry_number, i, c.programme, c.number, c.hts,
                             c.line_id, c.quantity, _pools_text(c.pools))
                            for i, c in enumerate(s.claims)])
            case DeleteSummary(filer=f, entry_number=e):
                x("DELETE FROM claim WHERE filer = ? AND entry_number = ?", f, e)
                x("DELETE FROM summary WHERE filer = ? AND entry_number = ?", f, e)

    def _draw(self, change: Decrement | Credit, digest: str, as_of: dt.date) -> None:
        c = change.claim
        q = c.quantity if isinstance(change, Decrement) else -c.quantity
        # The database checks the balance itself: no row changes unless it stays in range.
        cur = self._x("UPDATE certificate_line SET used = used + ? WHERE programme = ? AND"
                      " number = ? AND hts = ? AND used + ? BETWEEN 0 AND issued",
                      q, c.programme, c.number, c.hts, q)
        if cur.rowcount != 1:
            raise LedgerConflict(f"{c.number} {c.hts}: balance refuses {q:+d}")
        for pool, year, amount in c.pools:
            a = amount if q > 0 else -amount
            limit = self.limits.get(pool, NO_LIMIT) if a > 0 else NO_LIMIT
            # a decrement creates the pool's row or adds to it, only while it stays within
            # the limit; a credit needs the row (fills are never below 0)
            if a < 0:
                cur = self._x("UPDATE pool_fill SET used = used + ? WHERE pool = ? AND"
                              " year = ? AND used + ? >= 0", a, pool, year, a)
            elif a <= limit:
                cur = self._x("INSERT INTO pool_fill VALUES (?, ?, ?) ON CONFLICT (pool, year)"
                              " DO UPDATE SET used = pool_fill.used + excluded.used"
                              " WHERE pool_fill.used + excluded.used <= ?", pool, year, a, limit)
            else:
                cur = None
            if cur is None or cur.rowcount != 1:
                raise LedgerConflict(f"pool {pool} {year} refuses {a:+d}")
        self._x("INSERT INTO journal (batch_digest, filer, entry_number, line_id, programme,"
                " number, hts, action, quantity, as_of, ior, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                digest, change.filer, change.entry_number, c.line_id, c.programme, c.number,
                c.hts, "D" if q > 0 else "C", c.quantity, self.dialect.date(as_of),
                change.ior, self.dialect.stamp(now()))


class SqlReads:
    """A ledger's reads outside `transaction()`, each on one consistent snapshot."""

    def _read(self, what: Callable[[SqlTx], T]) -> T:
        raise NotImplementedError

    def stored_reply(self, digest: str) -> list[str] | None:
        return self._read(lambda r: r.stored_reply(digest))

    def certificates(self) -> list[CertState]:
        return self._read(SqlTx.certificates)

    def summaries(self) -> list[SummaryState]:
        return self._read(SqlTx.summaries)

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]:
        return self._read(lambda r: r.journal(programme=programme, number=number))

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return self._read(SqlTx.pool_fills)

    def participant(self, site: str, sender_id: str) -> Participant | None:
        return self._read(lambda r: r.participant(site, sender_id))

    def participants(self) -> list[Participant]:
        return self._read(SqlTx.participants)

    def attempts(self, *, last: int | None = None) -> list[Attempt]:
        return self._read(lambda r: r.attempts(last=last))
