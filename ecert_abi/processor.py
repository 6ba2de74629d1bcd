"""The one place the pipeline is glued: lines -> batches -> transactions -> decisions ->
ledger -> reply lines.

Every input batch gets exactly one reply batch. Its sender is authenticated first (unless
the processor is told to trust senders): an unknown or disabled sender, a wrong password
or an application outside the sender's role rejects the whole batch with X09, and every
attempt is journaled. A batch is processed inside one ledger transaction that also stores
its reply under the batch digest, so the reply exists only for committed work, and a
batch sent again (same records, byte for byte) is answered with the stored reply and
changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import attrs

from .access import UNLIMITED, Authenticator, Participant, Scope
from .conditions import narrative
from .engine import Decision, Finding, Rules, decide_certificate, decide_summary, default_rules
from .envelope import Batch, Fault, frame, reject_reply, reply_envelope
from .layout import Defect
from .ledger import Ledger, LedgerConflict, LedgerTx, LedgerUnavailable
from .queries import answer_query
from .record import Catalogue, catalogue, read_lines
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
    """The batch's identity for replay: its records, with the communication password
    (A and Z columns 9-14) left out, so the stored digest cannot be searched for it."""
    h = hashlib.sha256()
    for r in batch.records:
        text = r.text
        if r.id in ("A", "Z"):
            text = text[:8] + " " * 6 + text[14:]
        h.update(text.encode("latin-1", "replace") + b"\n")
    return h.hexdigest()


def _first_line(batch: Batch) -> int:
    return batch.records[0].line if batch.records else 0


def _sender(batch: Batch) -> tuple[str, str, str, str] | None:
    """(site, ID, password, application) of the A-record, or None if it names no sender."""
    a = batch.header
    if a is None or a.id != "A":
        return None
    # what no registered code can contain (NUL, control, non-ASCII) becomes '?': it is
    # journaled as sent, as far as a database text column can hold it
    text = "".join(c if " " <= c <= "~" else "?" for c in a.text[:80].ljust(80))
    site, sender = text[1:5], text[5:8]
    if not site.strip() or not sender.strip():
        return None
    return site, sender, a.text[8:14].rstrip(), text[25:27]


def _scope(who: Participant | None, tx: LedgerTx) -> Scope:
    if who is None:  # trusted senders
        return UNLIMITED
    if who.role == "country":
        return Scope(country=who.code)
    return Scope(iors=frozenset(who.iors | tx.filer_iors(who.code)))


def _final_severity(decision: Decision) -> str | None:
    if not decision.accepted:
        return "F"
    return "I" if decision.findings else None


class Processor:
    """Processes batches against one ledger.

    `trust_senders` skips authentication and authorisation: every sender may send and see
    everything. It is for local validation against a scratch ledger, never for a ledger
    others share.
    """

    def __init__(self, ledger: Ledger, as_of: dt.date, rules: Rules | None = None, *,
                 cat: Catalogue | None = None, trust_senders: bool = False) -> None:
        self.ledger = ledger
        self.as_of = as_of
        self.rules = rules or default_rules()
        self.cat = cat or catalogue()
        self.auth = None if trust_senders else Authenticator(ledger.participant)
        self.tally = Tally()

    def process_stream(self, stream: IO[bytes]) -> Iterator[list[str]]:
        """One reply batch (its lines) per input batch, streamed."""
        for batch in frame(read_lines(stream), self.cat):
            yield self.process(batch)

    def process(self, batch: Batch) -> list[str]:
        self.tally.batches += 1
        key = digest(batch)
        who: Participant | None = None
        attempt_row: tuple[str, str, str, str] | None = None  # journaled with the work
        if self.auth is not None:
            sender = _sender(batch)
            if sender is not None:
                site, sender_id, password, app = sender
                who, outcome = self.auth.authenticate(site, sender_id, password, app)
                attempt_row = (site, sender_id, app, outcome)
                if who is None:
                    self._journal_attempt(attempt_row, key)
                    return self._refuse(batch)
            elif not batch.rejected:  # no sender codes: the envelope checks reject it
                return self._refuse(batch)
        stored = self.ledger.stored_reply(key)
        if stored is not None:
            self._journal_attempt(attempt_row, key)
            return self._replayed(stored)
        batch = self._applicable(batch, who)
        for attempt in range(RETRIES):
            counts = Tally()
            try:
                with self.ledger.transaction() as tx:
                    if attempt_row is not None:  # in the batch's own commit
                        tx.record_attempt(*attempt_row, key)
                    again = tx.stored_reply(key)  # another worker may have just done it
                    if again is not None:
                        return self._replayed(again)
                    reply = self._reply(batch, tx, counts, key, who)
                    tx.store_reply(key, reply, self.as_of)
                break
            except LedgerConflict as e:
                if attempt == RETRIES - 1:
                    raise LedgerUnavailable(f"batch at line {_first_line(batch)} not committed"
                                            f" after {RETRIES} tries ({e})") from e
        self.tally.rejected_batches += counts.rejected_batches
        self.tally.accepted += counts.accepted
        self.tally.rejected += counts.rejected
        self.tally.conditions.update(counts.conditions)
        return reply

    def _replayed(self, reply: list[str]) -> list[str]:
        self.tally.replayed += 1
        # a batch rejected whole stays rejected whole when sent again
        x1 = self.cat.layout("X1")
        _, start, end = x1.by_name["condition_code"]
        self.tally.rejected_batches += any(
            x1.accepts(line) and line[start:end] == "999" for line in reply)
        return reply

    def _journal_attempt(self, row: tuple[str, str, str, str] | None, key: str) -> None:
        """An authentication attempt journaled on its own (no batch work to join)."""
        if row is not None:
            with self.ledger.transaction() as tx:
                tx.record_attempt(*row, key)

    def _refuse(self, batch: Batch) -> list[str]:
        """X09 for the whole batch; the same reply whichever check failed, and not stored
        (the sender may be registered or corrected later)."""
        self.tally.rejected_batches += 1
        self.tally.conditions["X09"] += 1
        line = batch.header.line if batch.header is not None else 0
        fault = Fault(Defect(line, 2, 8, "sender_receiver_id_code", "authorised",
                             "sender not authorised for this application", "X09"))
        return reject_reply(attrs.evolve(batch, faults=(fault,)), self.cat)

    def _applicable(self, batch: Batch, who: Participant | None) -> Batch:
        if batch.rejected:
            return batch
        if batch.chapter is not None and batch.direction == "input":
            if who is None or who.role != "filer":
                return batch
            # a filer sends only for itself (B&B: X18, the A-record sender may not send
            # for the B-record's filer)
            faults = tuple(
                Fault(Defect(blk.header.line, 8, 10, "processing_filer_code", "authorised",
                             f"{who.site}/{who.sender_id} does not file for {filer!r}",
                             "X18"), i)
                for i, blk in enumerate(batch.blocks, 1)
                if (filer := str(blk.header.get("processing_filer_code") or "")) != who.code)
            return attrs.evolve(batch, faults=faults) if faults else batch
        a = batch.header
        line = a.line if a else 0
        fault = Fault(Defect(line, 26, 27, "application_identifier_code", "application",
                             "not an input application ecert-abi processes", "X12"))
        return attrs.evolve(batch, faults=(fault,))

    def _reply(self, batch: Batch, tx: LedgerTx, counts: Tally, key: str,
               who: Participant | None) -> list[str]:
        if batch.rejected:
            counts.rejected_batches += 1
            counts.conditions.update(f.defect.code or "X40" for f in batch.faults)
            return reject_reply(batch, self.cat)
        ch = batch.chapter
        assert ch is not None and ch.response and batch.header is not None
        assemble = ASSEMBLERS[ch.name]
        country = who.code if who is not None and who.role == "country" else None
        requester = (batch.header.text[1:5], batch.header.text[5:8])
        blocks = []
        for b, blk in enumerate(batch.blocks, 1):
            lines: list[list[str]] = []  # per transaction
            filer = blk.header.get("processing_filer_code")
            for k, records in enumerate(blk.transactions(ch.transaction_header), 1):
                txn = assemble(records)
                if isinstance(txn, EntrySummary):
                    d = decide_summary(txn, tx, self.as_of, self.rules, block_filer=filer)
                    lines.append(self._ax(k, txn, d))
                elif isinstance(txn, Certificate):
                    d = decide_certificate(txn, tx, self.as_of, self.rules,
                                           sender_country=country)
                    lines.append(self._vb(k, txn, d))
                else:
                    assert isinstance(txn, UsageQuery)
                    out, ok, codes = answer_query(txn, tx, self.cat, _scope(who, tx),
                                                  requester=requester, seed=f"{key}:{b}:{k}")
                    lines.append(out)
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
