"""Usage queries (EC importer, VQ country): the answer records UC, UU and UE.

What the requester may see is its `Scope` (see access.py): entries outside it are never
read into an answer, and a question outside it is refused from the scope alone.

An answer is computed whole inside the batch's ledger transaction, so it shows one
consistent state. One longer than a page is stored in the ledger with its requester;
the continuation key names the stored answer (16 digits derived from the batch digest
and the query's place in the batch) and the next page (4 digits). Later pages are read
from storage: the same snapshot, whatever changed since, and a key is worth nothing to
anyone but the sender who asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import attrs

from .access import UNLIMITED, Scope
from .conditions import narrative
from .identifiers import normalise_ior
from .ledger import JournalEntry, LedgerTx, StoredAnswer
from .record import Catalogue
from .transactions import UsageQuery

PAGE = 500


def answer_token(seed: str) -> str:
    """The stored answer's name: 16 digits of a hash of the batch digest and the query's
    place in the batch (reproducible, so a replayed batch names the same answer)."""
    return f"{int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]) % 10**16:016d}"


def answer_query(q: UsageQuery, tx: LedgerTx, cat: Catalogue, scope: Scope = UNLIMITED, *,
                 requester: tuple[str, str] = ("", ""), seed: str = "",
                 page: int | None = None) -> tuple[list[str], bool, list[str]]:
    """(reply lines, answered?, condition codes) for one query, within `scope`.

    `requester` is the sender (site, ID) a stored answer is bound to; `seed` names it.
    """
    lay = cat.layout
    page = page or PAGE

    def end(code: str | None, ok: bool, certs: int = 0, uses: int = 0,
            more: str | None = None) -> tuple[list[str], bool, list[str]]:
        line = lay("UE").emit({
            "certificate_count": certs, "usage_count": uses,
            "more_indicator": "Y" if more else None, "continuation_key": more,
            "disposition_type_code": "A" if ok else "R", "condition_code": code,
            "narrative_text": narrative(code) if code else "QUERY ANSWERED"})
        return [line], ok, [code] if code else []

    def paged(items: list[str], token: str, n: int) -> tuple[list[str], bool, list[str]]:
        lines = items[n * page:(n + 1) * page]
        more = f"{token}{n + 1:04d}" if (n + 1) * page < len(items) else None
        certs = sum(1 for x in lines if x.startswith("UC"))
        tail, ok, codes = end(None, True, certs, len(lines) - certs, more)
        return lines + tail, ok, codes

    for r in q.records:
        for d in r.defects:
            return end("V91" if d.rule == "mandatory" else "V90", False)
    if q.issues:
        return end(q.issues[0].code, False)
    if q.from_date and q.to_date and q.from_date > q.to_date:
        return end("V24", False)
    denied = scope.refusal(q)
    if denied:
        return end(denied, False)
    question = _question(q)
    if q.continuation:
        k = q.continuation
        stored = tx.stored_answer(k[:16]) if len(k) == 20 and k.isdigit() else None
        if (stored is None or stored.requester != requester or stored.question != question
                or not 0 < int(k[16:]) * page < len(stored.items)):
            # unknown, expired, someone else's, another query's, or past the end
            return end("V23", False)
        return paged(stored.items, k[:16], int(k[16:]))

    # past the refusal above, the scope's country (if any) is the query's, and a filer's
    # query names an importer inside its scope: these filters are the whole answer
    ior = normalise_ior(q.ior) if q.kind == "importer" or q.ior else None
    certs = tx.certificates(country=scope.country or q.country, ior=ior,
                            programme=q.programme, number=q.number)
    journal = sorted((j for c in certs for j in tx.journal(programme=c.programme,
                                                           number=c.number)),
                     key=lambda j: j.seq)
    items: list[str] = []
    for c in sorted(certs, key=lambda c: (c.country, c.programme, c.number)):
        for ln in c.lines:
            items.append(lay("UC").emit({
                "country_code": c.country, "programme_code": c.programme,
                "certificate_number": c.number, "hts_number": ln.hts,
                "issued_quantity": ln.issued, "used_quantity": ln.used,
                "remaining_quantity": ln.issued - ln.used, "unit_of_measure_code": ln.unit,
                "status_code": c.status, "quota_year": c.quota_year,
                "expiry_date": c.expiry}))
    items += [_uu(lay, j) for j in _filter_usage(journal, q)]
    if not items:
        return end("V20", True)
    token = answer_token(seed)
    if len(items) > page:
        tx.store_answer(token, StoredAnswer(requester, question, items))
    return paged(items, token, 0)


def _question(q: UsageQuery) -> str:
    """The query, continuation key left out: what a stored answer answers."""
    return repr(attrs.astuple(attrs.evolve(q, continuation=None, records=(), issues=())))


def _filter_usage(entries: Sequence[JournalEntry], q: UsageQuery) -> list[JournalEntry]:
    return [j for j in entries
            if (q.from_date is None or j.as_of >= q.from_date)
            and (q.to_date is None or j.as_of <= q.to_date)
            and (q.since is None or j.seq > q.since)]


def _uu(lay: Callable[[str], object], j: JournalEntry) -> str:
    layout = lay("UU")
    return layout.emit({  # type: ignore[attr-defined, no-any-return]
        "programme_code": j.programme, "certificate_number": j.number, "hts_number": j.hts,
        "entry_filer_code": j.filer, "entry_number": j.entry_number,
        "line_item_identifier": j.line_id, "usage_action_code": j.action,
        "quantity": j.quantity, "usage_date": j.as_of,
        "importer_of_record_number": j.ior.rstrip() if j.ior else None,
        "journal_sequence": j.seq})
