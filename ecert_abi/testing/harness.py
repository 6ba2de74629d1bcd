"""A small harness for tests: fresh ledgers, processing anything batch-shaped, reading replies.

`Harness.process()` takes input batches (their lines), transactions (each wrapped in a
batch of its application), scenarios or raw bytes, runs them through a `Processor` with
senders trusted, and gives back one `Reply` per input batch. Without a `ledger` argument
every call starts from a fresh in-memory ledger, which is what a property test wants.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ..engine import Rules
from ..envelope import Batch, frame
from ..ledger import Ledger, MemoryLedger
from ..processor import Processor
from ..record import Record, read_lines
from ..sqlite_ledger import SqliteLedger
from ..transactions import Certificate, Disposition, EntrySummary, UsageQuery, read_ax_reply
from .cases import Case, load_case, parse_case, run_case
from .scenario import Scenario
from .strategies import batch_lines

LEDGER_KINDS = ("memory", "sqlite")


class Reply:
    """One reply batch: its lines, and what a test usually asks of it."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = tuple(lines)

    def __repr__(self) -> str:
        return f"<Reply {self.application or 'reject'}: {len(self.lines)} line(s)>"

    def __str__(self) -> str:
        return "\n".join(self.lines)

    @cached_property
    def batch(self) -> Batch:
        data = "".join(line + "\n" for line in self.lines).encode("latin-1")
        return next(frame(read_lines(io.BytesIO(data))))

    @property
    def records(self) -> tuple[Record, ...]:
        return self.batch.records

    @property
    def application(self) -> str:
        """AX, VB, EZ or VR; empty for the reply to a batch rejected whole."""
        return self.batch.application.strip()

    @property
    def rejected(self) -> bool:
        """Whether the whole batch was rejected (X1 ... 999 BATCH REJECTED)."""
        return any(r.id == "X1" and r.get("disposition_type_code") == "R"
                   for r in self.records)

    @property
    def conditions(self) -> list[str]:
        """Every condition code in the reply (X1, E1, C1 and UE records), in order;
        999 and final dispositions left out."""
        out = []
        for r in self.records:
            condition = r.id in ("X1", "E1", "C1") and r.get("disposition_type_code") is None
            if condition or (r.id == "UE" and r.get("condition_code")):
                out.append(str(r.get("condition_code")))
        return out

    @property
    def dispositions(self) -> list[Disposition]:
        """Per entry summary of an AX reply: accepted?, conditions and final narrative."""
        return read_ax_reply(self.records)


class Harness:
    """Ledgers and processing for tests; `as_of` is the default processing date and
    `ledger_kind` ("memory" or "sqlite", SQLite files made in `directory`) the kind of
    ledger `new_ledger()` opens."""

    def __init__(self, *, as_of: dt.date, ledger_kind: str = "memory",
                 directory: Path | None = None) -> None:
        if ledger_kind not in LEDGER_KINDS:
            raise ValueError(f"ledger kind {ledger_kind!r} is not one of {LEDGER_KINDS}")
        if ledger_kind == "sqlite" and directory is None:
            raise ValueError("a SQLite ledger needs a directory")
        self.as_of = as_of
        self.ledger_kind = ledger_kind
        self.directory = directory
        self._made = 0
        self._open: list[Ledger] = []

    def new_ledger(self, kind: str | None = None, rules: Rules | None = None) -> Ledger:
        """A fresh, empty ledger (closed by `close()`); `rules` give its pool limits."""
        kind = kind or self.ledger_kind
        ledger: Ledger
        if kind == "sqlite":
            assert self.directory is not None
            self._made += 1
            ledger = SqliteLedger(str(self.directory / f"ledger-{self._made}.db"), rules)
        elif kind == "memory":
            ledger = MemoryLedger(rules)
        else:
            raise ValueError(f"ledger kind {kind!r} is not one of {LEDGER_KINDS}")
        self._open.append(ledger)
        return ledger

    def processor(self, ledger: Ledger | None = None, *, as_of: dt.date | None = None
                  ) -> Processor:
        return Processor(ledger if ledger is not None else self.new_ledger(),
                         as_of or self.as_of, trust_senders=True)

    def process(self, *items: Any, ledger: Ledger | None = None,
                as_of: dt.date | None = None) -> list[Reply]:
        """One Reply per input batch in `items`, processed in order on `ledger` (default:
        a fresh in-memory ledger for this call).

        An item is a batch (a sequence of lines), an EntrySummary, Certificate or
        UsageQuery (sent alone in a batch of its application), a Scenario (its batches;
        its date unless `as_of` is given), or bytes (a raw stream).
        """
        day = as_of
        chunks: list[bytes] = []
        for item in items:
            if isinstance(item, Scenario):
                chunks.append(item.data())
                day = day or item.as_of
            else:
                chunks.append(_as_bytes(item))
        proc = Processor(ledger if ledger is not None else MemoryLedger(), day or self.as_of,
                         trust_senders=True)
        return [Reply(r) for r in proc.process_stream(io.BytesIO(b"".join(chunks)))]

    def assert_case(self, case: str | Path | Case, ledger: Ledger | None = None, *,
                    trust_senders: bool = True) -> None:
        """Run a case file (a path, the text of one, or a parsed Case) on `ledger`
        (default: a fresh one of this harness's kind), senders trusted unless
        `trust_senders` is False; CaseMismatch (an AssertionError) with a column-aligned
        diff when a reply, or the final ledger of a case with a `--- ledger` section,
        differs."""
        __tracebackhide__ = True  # under pytest the diff is the message
        if isinstance(case, Case):
            parsed = case
        elif isinstance(case, Path) or "\n" not in case:
            parsed = load_case(case)
        else:
            parsed = parse_case(case)
        run_case(parsed, ledger if ledger is not None else self.new_ledger(rules=parsed.rules()),
                 trust_senders=trust_senders)

    def close(self) -> None:
        for ledger in self._open:
            ledger.close()
        self._open.clear()


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, EntrySummary):
        lines = batch_lines("AE", [item])
    elif isinstance(item, Certificate):
        lines = batch_lines("VA", [item])
    elif isinstance(item, UsageQuery):
        lines = batch_lines("EC" if item.kind == "importer" else "VQ", [item])
    elif isinstance(item, Sequence) and not isinstance(item, str) and \
            all(isinstance(x, str) for x in item):
        lines = list(item)
    else:
        raise TypeError(f"cannot process {type(item).__name__}: pass batch lines, a "
                        "transaction, a Scenario or bytes")
    return "".join(line + "\n" for line in lines).encode("latin-1")
