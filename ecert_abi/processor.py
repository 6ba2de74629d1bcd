"""The one place the pipeline is glued: lines -> batches -> transactions -> decisions ->
ledger -> reply lines.

Every input batch gets exactly one reply batch. A batch is processed inside one ledger
transaction that also stores its reply under the batch digest, so the reply exists only
for committed work, and a batch sent again (same records, byte for byte) is answered
with the stored reply and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import attrs

from .conditions import narrative
from .engine import Decision, Finding, Rules, decide_certificate, decide_summary, default_rules
from .envelope import Batch, Fault, frame, reject_reply, reply_envelope
from .layout import Defect
from .ledger import Ledger, LedgerConflict, LedgerTx
from .queries import answer_query
from .record import Catalogue, Record, catalogue, read_lines
from .transactions import ASSEMBLERS, Certificate, EntrySummary, UsageQuery

FINAL_AE = {"ADDED": "SUMMARY HAS BEEN ADDED", "REPLACED": "SUMMARY HAS BEEN REPLACED",
            "DELETED": "ENTRY SUMMARY DELETED", "REJECTED": "TRANSACTION DATA REJECTED"}
FINAL_CERT = {"ADDED": "CERTIFICATE ADDED", "REPLACED": "CERTIFICATE REPLACED",
              "CANCELLED": "CERTIFICATE CANCELLED", "REJECTED": "TRANSACTION DATA REJECTED"}
RETRIES = 5


@attrs.define
class Tally:
    """What `process` reports at the end."""

    batches: int = 0
    rejected_batches: int = 0
    replayed: int = 0
    accepted: int = 0
    rejected: int = 0
    conditions: Counter[str] = attrs.field(factory=Counter)


def digest(batch: Batch) -> str:
    h = hashlib.sha256()
    for r in batch.records:
        h.update(r.text.encode("latin-1") + b"\n")
    return h.hexdigest()


def _final_severity(decision: Decision) -> str | None:
    if not decision.accepted:
        return "F"
    return "I" if decision.findings else None


class Processor:
    """Processes batches against one ledger.

    `sender_country` maps an A-record's (site, ID) to the participating country it speaks
    for; None skips that check (no participants registry).
    """

    def __init__(self, ledger: Ledger, as_of: dt.date, rules: Rules | None = None, *,
                 cat: Catalogue | None = None,
                 sender_country: Callable[[Record], str | None] | None = None) -> None:
        self.ledger = ledger
        self.as_of = as_of
        self.rules = rules or default_rules()
        self.cat = cat or catalogue()
        self.sender_country = sender_country or (lambda _a: None)
        self.tally = Tally()

    def process_stream(self, stream: IO[bytes]) -> Iterator[list[str]]:
        """One reply batch (its lines) per input batch, streamed."""
        for batch in frame(read_lines(stream), self.cat):
            yield self.process(batch)

    def process(self, batch: Batch) -> list[str]:
        self.tally.batches += 1
        key = digest(batch)
        stored = self.ledger.stored_reply(key)
        if stored is not None:
            self.tally.replayed += 1
            return stored
        batch = self._applicable(batch)
        for attempt in range(RETRIES):
            counts = Tally()
            try:
                with self.ledger.transaction() as tx:
                    again = tx.stored_reply(key)  # another worker may have just done it
                    if again is not None:
                        self.tally.replayed += 1
                        return again
                    reply = self._reply(batch, tx, counts, key)
                    tx.store_reply(key, reply, self.as_of)
                break
            except LedgerConflict:
                if attempt == RETRIES - 1:
                    raise
        self.tally.rejected_batches += counts.rejected_batches
        self.tally.accepted += counts.accepted
        self.tally.rejected += counts.rejected
        self.tally.conditions.update(counts.conditions)
        return reply

    def _applicable(self, batch: Batch) -> Batch:
        if batch.rejected or (batch.chapter is not None and batch.direction == "input"):
            return batch
        a = batch.header
        line = a.line if a else 0
        fault = Fault(Defect(line, 26, 27, "application_identifier_code", "application",
                             "not an input application ecert-abi processes", "X12"))
        return attrs.evolve(batch, faults=(fault,))

    def _reply(self, batch: Batch, tx: LedgerTx, counts: Tally, key: str) -> list[str]:
        if batch.rejected:
            counts.rejected_batches += 1
            counts.conditions.update(f.defect.code or "X40" for f in batch.faults)
            return reject_reply(batch, self.cat)
        ch = batch.chapter
        assert ch is not None and ch.response and batch.header is not None
        assemble = ASSEMBLERS[ch.name]
        country = self.sender_country(batch.header)
        blocks = []
        for blk in batch.blocks:
            lines: list[str] = []
            filer = blk.header.get("processing_filer_code")
            for k, records in enumerate(blk.transactions(ch.transaction_header), 1):
                txn = assemble(records)
                if isinstance(txn, EntrySummary):
                    d = decide_summary(txn, tx, self.as_of, self.rules, block_filer=filer)
                    lines += self._ax(k, txn, d)
                elif isinstance(txn, Certificate):
                    d = decide_certificate(txn, tx, self.as_of, self.rules,
                                           sender_country=country)
                    lines += self._vb(k, txn, d)
                else:
                    assert isinstance(txn, UsageQuery)
                    out, ok, codes = answer_query(txn, tx, batch.header, self.cat)
                    lines += out
                    counts.accepted += ok
                    counts.rejected += not ok
                    counts.conditions.update(codes)
                    continue
                for change in d.changes:
                    tx.apply(change, digest=key, as_of=self.as_of)
                counts.accepted += d.accepted
                counts.rejected += not d.accepted
                counts.conditions.update(f.code for f in d.findings)
            blocks.append(lines)
        return reply_envelope(batch, ch.response, blocks, self.cat)

    # --- reply records ---
    def _conditions(self, findings: Iterable[Finding], locate: Callable[[str, int, str], list[str]],
                    condition: Callable[[Finding], str]) -> list[str]:
        """Header findings first, then per referenced item its E0/C0 records and findings."""
        out = [condition(f) for f in findings if f.ref is None]
        groups: dict[tuple[str, int, str], list[Finding]] = {}
        for f in findings:
            if f.ref is not None:
                groups.setdefault(f.ref, []).append(f)
        for ref in sorted(groups, key=lambda r: (r[1], r[0] != "LINITM")):
            out += locate(*ref)
            out += [condition(f) for f in groups[ref]]
        return out

    def _ax(self, k: int, s: EntrySummary, d: Decision) -> list[str]:
        lay = self.cat.layout
        ident = {"entry_filer_code": s.filer_code or None, "entry_number": s.entry_number or None}
        out = [lay("E0_summry").emit({"occurrence_position": k,
                                      "broker_reference_number": s.broker_reference, **ident})]

        def locate(kind: str, i: int, line_id: str) -> list[str]:
            recs = [lay("E0_linitm").emit({"occurrence_position": i,
                                           "line_item_identifier": line_id or None})]
            if kind == "LICNSE":
                ln = s.lines[i - 1]
                recs.append(lay("E0_licnse").emit({
                    "occurrence_position": 1,
                    "license_certificate_permit_type_code": ln.licence_type,
                    "license_certificate_permit_number": ln.licence_number}))
            return recs

        def condition(f: Finding) -> str:
            return lay("E1").emit({"severity_code": f.severity, "condition_code": f.code,
                                   "narrative_text": narrative(f.code), **ident})

        out += self._conditions(d.findings, locate, condition)
        out.append(lay("E1").emit({
            "disposition_type_code": "A" if d.accepted else "R",
            "severity_code": _final_severity(d), "narrative_text": FINAL_AE[d.outcome],
            "version_number": d.version if d.accepted and d.outcome != "DELETED" else None,
            "broker_reference_number": s.broker_reference, **ident}))
        return out

    def _vb(self, k: int, c: Certificate, d: Decision) -> list[str]:
        lay = self.cat.layout
        ident = {"country_code": c.country or None, "programme_code": c.programme or None,
                 "certificate_number": c.number or None}
        out = [lay("C0_certif").emit({"occurrence_position": k, "action_code": c.action or None,
                                      **ident})]

        def locate(kind: str, i: int, hts: str) -> list[str]:
            return [lay("C0_cerlin").emit({"occurrence_position": i, "hts_number": hts or None})]

        def condition(f: Finding) -> str:
            return lay("C1").emit({"severity_code": f.severity, "condition_code": f.code,
                                   "narrative_text": narrative(f.code), **ident})

        out += self._conditions(d.findings, locate, condition)
        out.append(lay("C1").emit({"disposition_type_code": "A" if d.accepted else "R",
                                   "severity_code": _final_severity(d),
                                   "narrative_text": FINAL_CERT[d.outcome], **ident}))
        return out
