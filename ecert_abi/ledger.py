"""The ledger seam: one small protocol, and the in-memory reference implementation.

A ledger holds certificates (with used quantities per HTS line), the entry summaries on
file with their claims, quota-pool fill, a journal row for every decrement and credit, and
the reply of every processed batch (keyed by the batch's digest, for replay safety), and
the participants registry with its journal of authentication attempts.
Work happens inside `ledger.transaction()`: everything applied in it commits together or
not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs

from .access import Attempt, Participant
from .engine import (
    CancelCertificate,
    CertLine,
    CertState,
    Change,
    Credit,
    Decrement,
    DeleteSummary,
    LedgerView,
    PutCertificate,
    PutSummary,
    Rules,
    SummaryState,
    default_rules,
)
from .identifiers import normalise_ior

KEEP_ANSWERS = dt.timedelta(days=30)  # how long the later pages of a query answer last


@attrs.frozen
class StoredAnswer:
    """A query answer longer than a page, kept for the requester's later pages."""

    requester: tuple[str, str]  # A-record site and sender ID
    question: str  # the query without its continuation key: a key serves only this query
    items: list[str]


class LedgerConflict(RuntimeError):
    """A change the store refused (e.g. a decrement past the issued quantity).

    The engine decides from the same transaction's reads, so this means a concurrent writer
    or a bug; the batch is rolled back and retried, never half-applied.
    """


@attrs.frozen
class JournalEntry:
    seq: int
    batch_digest: str
    filer: str
    entry_number: str
    line_id: str
    programme: str
    number: str
    hts: str
    action: str  # D decrement, C credit
    quantity: int
    as_of: dt.date
    ior: str | None


class LedgerTx(LedgerView, Protocol):
    def apply(self, change: Change, *, digest: str, as_of: dt.date) -> None: ...

    def store_reply(self, digest: str, lines: Sequence[str], as_of: dt.date) -> None: ...

    def stored_reply(self, digest: str) -> list[str] | None: ...

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]: ...

    def certificates(self, **match: str | None) -> list[CertState]:
        """All certificates, or those whose country, ior, programme or number equal the
        values given (None: any)."""
        ...

    def participant(self, site: str, sender_id: str) -> Participant | None: ...

    def put_participant(self, p: Participant) -> None: ...

    def record_attempt(self, site: str, sender_id: str, application: str, outcome: str,
                       batch_digest: str) -> None: ...

    def filer_iors(self, filer: str) -> set[str]:
        """IORs of the summaries `filer` has on file or has drawn certificates for."""
        ...

    def store_answer(self, token: str, answer: StoredAnswer) -> None:
        """Keep a long query answer for its later pages, for KEEP_ANSWERS."""
        ...

    def stored_answer(self, token: str) -> StoredAnswer | None: ...


class Ledger(Protocol):
    """What the processor needs of a store."""

    def transaction(self) -> AbstractContextManager[LedgerTx]: ...

    def stored_reply(self, digest: str) -> list[str] | None: ...

    def certificates(self) -> list[CertState]: ...

    def summaries(self) -> list[SummaryState]: ...

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]: ...

    def pool_fills(self) -> dict[tuple[str, int], int]: ...

    def participant(self, site: str, sender_id: str) -> Participant | None: ...

    def participants(self) -> list[Participant]: ...

    def attempts(self, *, last: int | None = None) -> list[Attempt]: ...

    def close(self) -> None: ...


def snapshot(ledger: Ledger) -> dict[str, Any]:
    """A store-independent picture of a ledger, for comparing implementations."""
    return {
        "certificates": sorted(attrs.astuple(c) for c in ledger.certificates()),
        "summaries": sorted(attrs.astuple(s) for s in ledger.summaries()),
        "pools": dict(sorted(ledger.pool_fills().items())),
        "journal": [attrs.astuple(j)[1:] for j in ledger.journal()],
    }


def pool_limits(rules: Rules | None = None) -> dict[str, int]:
    return {p.name: p.limit for p in (rules or default_rules()).pools}


class MemoryLedger:
    """The reference model: plain dicts, with all-or-nothing transactions by snapshot."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.limits = pool_limits(rules)
        self._certs: dict[tuple[str, str], CertState] = {}
        self._summaries: dict[tuple[str, str], SummaryState] = {}
        self._pools: dict[tuple[str, int], int] = {}
        self._journal: list[JournalEntry] = []
        self._replies: dict[str, list[str]] = {}
        self._participants: dict[tuple[str, str], Participant] = {}
        self._attempts: list[Attempt] = []
        self._answers: dict[str, tuple[dt.datetime, StoredAnswer]] = {}

    # reads (LedgerView)
    def certificate(self, programme: str, number: str) -> CertState | None:
        return self._certs.get((programme, number))

    def summary(self, filer: str, entry_number: str) -> SummaryState | None:
        return self._summaries.get((filer, entry_number))

    def pool_fill(self, pool: str, year: int) -> int:
        return self._pools.get((pool, year), 0)

    def stored_reply(self, digest: str) -> list[str] | None:
        return self._replies.get(digest)

    def certificates(self, **match: str | None) -> list[CertState]:
        given = {k: v for k, v in match.items() if v is not None}
        return [c for k, c in sorted(self._certs.items())
                if all(getattr(c, f) == v for f, v in given.items())]

    def summaries(self) -> list[SummaryState]:
        return [self._summaries[k] for k in sorted(self._summaries)]

    def journal(self, *, programme: str | None = None, number: str | None = None
                ) -> list[JournalEntry]:
        return [j for j in self._journal if (programme is None or j.programme == programme)
                and (number is None or j.number == number)]

    def pool_fills(self) -> dict[tuple[str, int], int]:
        return {k: v for k, v in self._pools.items() if v}

    def participant(self, site: str, sender_id: str) -> Participant | None:
        return self._participants.get((site, sender_id))

    def participants(self) -> list[Participant]:
        return [self._participants[k] for k in sorted(self._participants)]

    def attempts(self, *, last: int | None = None) -> list[Attempt]:
        return list(self._attempts) if last is None else self._attempts[-last:] if last else []

    def filer_iors(self, filer: str) -> set[str]:
        return ({normalise_ior(s.ior) for s in self._summaries.values()
                 if s.filer == filer and s.ior}
                | {normalise_ior(j.ior) for j in self._journal
                   if j.filer == filer and j.action == "D" and j.ior})

    @contextmanager
    def transaction(self) -> Iterator[MemoryLedger]:
        saved = (dict(self._certs), dict(self._summaries), dict(self._pools),
                 list(self._journal), dict(self._replies), dict(self._participants),
                 list(self._attempts), dict(self._answers))
        try:
            yield self
        except BaseException:
            (self._certs, self._summaries, self._pools, self._journal, self._replies,
             self._participants, self._attempts, self._answers) = saved
            raise

    def put_participant(self, p: Participant) -> None:
        self._participants[p.key] = p

    def store_answer(self, token: str, answer: StoredAnswer) -> None:
        self._answers[token] = (dt.datetime.now(dt.UTC), answer)

    def stored_answer(self, token: str) -> StoredAnswer | None:
        at, answer = self._answers.get(token, (None, None))
        fresh = at is not None and at >= dt.datetime.now(dt.UTC) - KEEP_ANSWERS
        return answer if fresh else None

    def record_attempt(self, site: str, sender_id: str, application: str, outcome: str,
                       batch_digest: str) -> None:
        self._attempts.append(Attempt(len(self._attempts) + 1, dt.datetime.now(dt.UTC), site,
                                      sender_id, application, outcome, batch_digest))

    def store_reply(self, digest: str, lines: Sequence[str], as_of: dt.date) -> None:
        self._replies[digest] = list(lines)

    def apply(self, change: Change, *, digest: str, as_of: dt.date) -> None:
        match change:
            case PutCertificate(cert=cert):
                old = self._certs.get((cert.programme, cert.number))
                used = {ln.hts: ln.used for ln in old.lines} if old else {}
                lines = tuple(attrs.evolve(ln, used=used.get(ln.hts, 0))
                              for ln in sorted(cert.lines, key=lambda x: x.hts))
                for ln in lines:
                    if ln.used > ln.issued:
                        raise LedgerConflict(f"{cert.number} {ln.hts}: issued below used")
                if any(u for h, u in used.items() if h not in {ln.hts for ln in lines}):
                    raise LedgerConflict(f"{cert.number}: a used line would be dropped")
                self._certs[(cert.programme, cert.number)] = attrs.evolve(cert, lines=lines)
            case CancelCertificate(programme=p, number=n):
                self._certs[(p, n)] = attrs.evolve(self._certs[(p, n)], status="C")
            case Decrement() | Credit():
                sign = 1 if isinstance(change, Decrement) else -1
                c = change.claim
                held = self._certs.get((c.programme, c.number))
                line = held.line(c.hts) if held else None
                if held is None or line is None:
                    raise LedgerConflict(f"no certificate line {c.number} {c.hts}")
                now_used = line.used + sign * c.quantity
                if not 0 <= now_used <= line.issued:
                    raise LedgerConflict(f"{c.number} {c.hts}: used would be {now_used}")
                new_line: CertLine = attrs.evolve(line, used=now_used)
                self._certs[(c.programme, c.number)] = attrs.evolve(
                    held, lines=tuple(new_line if x.hts == c.hts else x for x in held.lines))
                for pool, year, amount in c.pools:
                    fill = self._pools.get((pool, year), 0) + sign * amount
                    if sign > 0 and fill > self.limits.get(pool, fill):
                        raise LedgerConflict(f"pool {pool} {year} over its limit")
                    self._pools[(pool, year)] = fill
                self._journal.append(JournalEntry(
                    len(self._journal) + 1, digest, change.filer, change.entry_number,
                    c.line_id, c.programme, c.number, c.hts, "D" if sign > 0 else "C",
                    c.quantity, as_of, change.ior))
            case PutSummary(summary=s):
                self._summaries[(s.filer, s.entry_number)] = s
            case DeleteSummary(filer=f, entry_number=e):
                del self._summaries[(f, e)]

    def close(self) -> None:
        pass


class LedgerUnavailable(RuntimeError):
    """The ledger cannot be opened or reached; the message names it without a password."""


def shown(url: str) -> str:
    """A ledger URL fit for messages and logs: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_ledger(url: str | None, rules: Rules | None = None) -> Ledger:
    """The store a URL names: None or a path -> SQLite file; ':memory:' -> in memory;
    postgresql://... -> PostgreSQL (needs the `postgres` extra). LedgerUnavailable when
    the store cannot be opened."""
    if url == ":memory:":
        return MemoryLedger(rules)
    if url and url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg

            from .pg_ledger import PostgresLedger  # type: ignore[import-not-found, unused-ignore]
        except ImportError as e:  # psycopg missing
            raise RuntimeError("PostgreSQL needs the extra: pip install 'ecert-abi[postgres]'"
                               f" ({e})") from None
        try:
            return PostgresLedger(url, rules)  # type: ignore[no-any-return, unused-ignore]
        except psycopg.Error as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LedgerUnavailable(f"cannot open the ledger {shown(url)}: {reason}") from None
    import sqlite3

    from .sqlite_ledger import SqliteLedger

    path = url or "ecert-ledger.db"
    try:
        return SqliteLedger(path, rules)
    except sqlite3.Error as e:
        raise LedgerUnavailable(f"cannot open the ledger {path}: {e}") from None
