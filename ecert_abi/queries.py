"""Usage queries (EC importer, VQ country): the answer records UC, UU and UE.

An answer is read from one consistent point of the ledger: the last journal sequence of
the certificates asked about when the first page was asked is part of the continuation
key, and every page (and the used quantities it shows) is computed from the journal up to
that sequence. What the requester may see is its `Scope` (see access.py): entries outside
it are never read into an answer, and a question outside it is refused from the scope
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .access import UNLIMITED, Scope
from .conditions import narrative
from .identifiers import normalise_ior
from .ledger import JournalEntry, LedgerTx
from .record import Catalogue
from .transactions import UsageQuery

PAGE = 500


def _key(snapshot: int, offset: int) -> str:
    return f"{snapshot:010d}{offset:010d}"


def answer_query(q: UsageQuery, tx: LedgerTx, cat: Catalogue, scope: Scope = UNLIMITED
                 ) -> tuple[list[str], bool, list[str]]:
    """(reply lines, answered?, condition codes) for one query, within `scope`."""
    lay = cat.layout

    def end(code: str | None, ok: bool, certs: int = 0, uses: int = 0,
            more: str | None = None) -> tuple[list[str], bool, list[str]]:
        line = lay("UE").emit({
            "certificate_count": certs, "usage_count": uses,
            "more_indicator": "Y" if more else None, "continuation_key": more,
            "disposition_type_code": "A" if ok else "R", "condition_code": code,
            "narrative_text": narrative(code) if code else "QUERY ANSWERED"})
        return [line], ok, [code] if code else []

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

    def wanted(c_ior: str, country: str, programme: str, number: str) -> bool:
        if not scope.covers(country, c_ior):
            return False
        if (q.kind == "importer" or q.ior) and normalise_ior(c_ior) != normalise_ior(q.ior):
            return False
        return ((q.country is None or country == q.country)
                and (q.programme is None or programme == q.programme)
                and (q.number is None or number == q.number))

    certs = [c for c in tx.certificates() if wanted(c.ior, c.country, c.programme, c.number)]
    journal = sorted((j for c in certs for j in tx.journal(programme=c.programme,
                                                           number=c.number)),
                     key=lambda j: j.seq)
    current = journal[-1].seq if journal else 0
    snapshot, offset = current, 0
    if q.continuation:
        k = q.continuation
        if len(k) != 20 or not k.isdigit() or int(k[:10]) > current:
            return end("V23", False)
        snapshot, offset = int(k[:10]), int(k[10:])

    upto = [j for j in journal if j.seq <= snapshot]
    used: dict[tuple[str, str, str], int] = {}
    for j in upto:
        k3 = (j.programme, j.number, j.hts)
        used[k3] = used.get(k3, 0) + (j.quantity if j.action == "D" else -j.quantity)
    items: list[str] = []
    for c in sorted(certs, key=lambda c: (c.country, c.programme, c.number)):
        for ln in c.lines:
            u = used.get((c.programme, c.number, ln.hts), 0)
            items.append(lay("UC").emit({
                "country_code": c.country, "programme_code": c.programme,
                "certificate_number": c.number, "hts_number": ln.hts,
                "issued_quantity": ln.issued, "used_quantity": u,
                "remaining_quantity": max(ln.issued - u, 0), "unit_of_measure_code": ln.unit,
                "status_code": c.status, "quota_year": c.quota_year,
                "expiry_date": c.expiry}))
    n_certs = len(items)
    items += [_uu(lay, j) for j in _filter_usage(upto, q)]
    if not items:
        return end("V20", True)
    if offset >= len(items) and offset:
        return end("V23", False)
    page = items[offset:offset + PAGE]
    more = _key(snapshot, offset + PAGE) if offset + PAGE < len(items) else None
    page_certs = sum(1 for i in range(offset, offset + len(page)) if i < n_certs)
    lines, ok, codes = end(None, True, page_certs, len(page) - page_certs, more)
    return page + lines, ok, codes


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
