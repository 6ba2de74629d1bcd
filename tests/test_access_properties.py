"""Property: every usage answer is exactly the requester's scope.

Random ledgers over three countries, four importers and three filers are built through
the processor (every batch authenticated); then each filer asks about every importer
and each country about itself (and sometimes another), with random filters, one reply
batch per requester. The expected answer comes from an oracle written from the query
chapters: it reads only the ledger's certificates(), journal() and summaries() and the
registry's grants, never queries.py. The reply must equal it record for record (nothing
missing, nothing from anyone else), and the quantities in it must add up to the ledger's.
Asked again in pages of a random size, walked with the keys the replies give, each answer
comes out the same, record for record, and no key serves another requester.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from unittest import mock

import attrs
from engine_cases import (
    BEEF_HTS,
    EXPORTED,
    IOR_A,
    IOR_B,
    beef_cert,
    beef_line,
    cancel,
    summary,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_access import participant, process, put, uc_line, ue_line, uu_line

from ecert_abi import queries
from ecert_abi.engine import CertState
from ecert_abi.envelope import input_batch
from ecert_abi.identifiers import normalise_ior
from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.transactions import EntryLine, Tariff, UsageQuery

COUNTRIES = ("AU", "NZ", "UY")
IORS = (IOR_A, IOR_B, "11-1111111", "22-3334444")
FILERS = {"K9T": "2704", "ZZ9": "2705", "A7Q": "2706"}  # filer code -> site code
SECOND_HTS = "0201305085"
D = dt.date
REGISTERED, CORRECTED, ASKED, PAGED = D(2026, 2, 1), D(2026, 3, 5), D(2026, 3, 6), D(2026, 3, 7)
DATES = st.one_of(st.none(), st.integers(1, 6).map(lambda d: D(2026, 3, d)))


@attrs.frozen
class World:
    certs: tuple[tuple[str, str, int, bool], ...]  # country, IOR, thousands, two lines?
    filings: tuple[tuple[str, str, tuple[tuple[int, bool, int], ...], int, str], ...]
    grants: dict[str, frozenset[str]]
    cancelled: frozenset[int]
    filer_queries: tuple[tuple[str, UsageQuery], ...]
    country_queries: tuple[tuple[str, UsageQuery], ...]
    page: int  # items per page when the answers are asked again in pages

    def number(self, k: int) -> str:
        return f"6{self.certs[k][0]}{100000 + k}"


@st.composite
def worlds(draw: st.DrawFn) -> World:
    certs = draw(st.lists(st.tuples(st.sampled_from(COUNTRIES), st.sampled_from(IORS),
                                    st.integers(1, 5), st.booleans()), min_size=1, max_size=6))
    k = st.integers(0, len(certs) - 1)
    filings = []
    for _ in range(draw(st.integers(0, 6))):
        claims = tuple(draw(st.lists(st.tuples(k, st.booleans(), st.integers(1, 3000)),
                                     max_size=3)))
        # mostly the importer of the first certificate claimed, so that many claims pass
        owner = [certs[claims[0][0]][1]] * 2 if claims else []
        filings.append((draw(st.sampled_from(sorted(FILERS))),
                        draw(st.sampled_from([*owner, *IORS])), claims,
                        draw(st.integers(1, 4)),
                        draw(st.sampled_from(["keep", "keep", "replace", "delete"]))))
    grants = draw(st.fixed_dictionaries(
        {f: st.frozensets(st.sampled_from(IORS), max_size=2) for f in FILERS}))
    numbers = [f"6{c[0]}{100000 + i}" for i, c in enumerate(certs)] + ["6AU999999"]
    some_number = st.one_of(st.none(), st.sampled_from(numbers))
    programme = st.sampled_from([None, None, "05", "30"])
    filer_queries = draw(st.lists(st.builds(
        lambda f, ior, country, prog, number, start, end: (f, UsageQuery(
            "importer", ior=ior, country=country, programme=prog, number=number,
            from_date=start, to_date=end)),
        st.sampled_from(sorted(FILERS)), st.sampled_from(IORS),
        st.one_of(st.none(), st.sampled_from(COUNTRIES)), programme, some_number, DATES,
        DATES), max_size=4))
    country_queries = draw(st.lists(st.builds(
        lambda sender, other, prog, number, ior, start, end, since: (sender, UsageQuery(
            "country", country=other or sender, programme=prog, number=number, ior=ior,
            from_date=start, to_date=end, since=since)),
        st.sampled_from(COUNTRIES), st.sampled_from([None, None, None, *COUNTRIES]),
        programme, some_number, st.one_of(st.none(), st.sampled_from(IORS)), DATES, DATES,
        st.one_of(st.none(), st.integers(0, 12))), max_size=4))
    return World(tuple(certs), tuple(filings), grants,
                 frozenset(draw(st.sets(k, max_size=2))), tuple(filer_queries),
                 tuple(country_queries), draw(st.integers(1, 4)))


# --- building the ledger through the processor ------------------------------------------

def country_batch(cc: str, records: Sequence[str], date: D) -> list[str]:
    return input_batch(site=f"E{cc}1", sender=f"{cc}C", password=f"{cc}PASS",
                       application="VA", date=date, blocks=[("2704", "ECT", list(records))])


def filer_batch(filer: str, application: str, records: Sequence[str], date: D) -> list[str]:
    return input_batch(site=FILERS[filer], sender=filer, password=f"{filer}PAS",
                       application=application, date=date,
                       blocks=[("2704", filer, list(records))])


def build(w: World) -> Ledger:
    ledger = put(MemoryLedger(), *[participant(f"E{cc}1", f"{cc}C", "country", cc, f"{cc}PASS")
                                   for cc in COUNTRIES],
                 *[participant(site, f, "filer", f, f"{f}PAS", iors=sorted(w.grants[f]))
                   for f, site in FILERS.items()])
    for cc in COUNTRIES:
        mine = [beef_cert(cc, w.number(k), q * 1000,
                          *((BEEF_HTS, SECOND_HTS) if two else (BEEF_HTS,)), ior=ior)
                for k, (c, ior, q, two) in enumerate(w.certs) if c == cc]
        if mine:
            process(ledger, country_batch(cc, [r for c in mine for r in c.to_records()],
                                          REGISTERED), REGISTERED)

    def lines(claims: Sequence[tuple[int, bool, int]]) -> list[EntryLine]:
        out = [beef_line(f"{i:03d}", w.certs[k][0], w.number(k), str(qty),
                         hts=SECOND_HTS if second and w.certs[k][3] else BEEF_HTS)
               for i, (k, second, qty) in enumerate(claims, 1)]
        # a summary without certificate lines: one plain line, entry type 01
        return out or [EntryLine("001", "AU", (Tariff(BEEF_HTS, Decimal("100"), "KG",
                                                      Decimal("1234.56"), 45000),), EXPORTED)]

    order = sorted(range(len(w.filings)), key=lambda i: w.filings[i][3])
    for i in order:
        filer, ior, claims, day, _ = w.filings[i]
        s = summary(f"{4172000 + i:07d}", *lines(claims), ior=ior, filer=filer,
                    entry_type="02" if claims else "01")
        process(ledger, filer_batch(filer, "AE", s.to_records(), D(2026, 3, day)),
                D(2026, 3, day))
    for i in order:
        filer, ior, claims, _, then = w.filings[i]
        if then == "keep":
            continue
        s = summary(f"{4172000 + i:07d}", *lines(claims[:1]), ior=ior, filer=filer,
                    entry_type="02" if claims else "01",
                    action="R" if then == "replace" else "D")
        process(ledger, filer_batch(filer, "AE", s.to_records(), CORRECTED), CORRECTED)
    for k in sorted(w.cancelled):
        cc = w.certs[k][0]
        process(ledger, country_batch(cc, cancel(cc, w.number(k)).to_records(), CORRECTED),
                CORRECTED)
    return ledger


# --- the oracle -------------------------------------------------------------------------------

def filer_scope(ledger: Ledger, w: World, filer: str) -> set[str]:
    """Granted IORs, those of its summaries on file, those of the claims it drew."""
    return ({normalise_ior(i) for i in w.grants[filer]}
            | {normalise_ior(s.ior) for s in ledger.summaries() if s.filer == filer and s.ior}
            | {normalise_ior(j.ior) for j in ledger.journal()
               if j.filer == filer and j.action == "D" and j.ior})


def country_scope(cc: str) -> Callable[[CertState], bool]:
    return lambda c: c.country == cc


def expected(ledger: Ledger, q: UsageQuery, allowed: Callable[[CertState], bool] | None,
             refusal: str) -> list[str]:
    """The records answering `q`; `allowed` is the requester's scope (None: refused)."""
    if q.from_date and q.to_date and q.from_date > q.to_date:
        return [ue_line(code="V24")]
    if allowed is None:
        return [ue_line(code=refusal)]

    def wanted(c: CertState) -> bool:
        return (allowed(c) and (q.ior is None or normalise_ior(c.ior) == normalise_ior(q.ior))
                and q.country in (None, c.country) and q.programme in (None, c.programme)
                and q.number in (None, c.number))

    certs = sorted(filter(wanted, ledger.certificates()),
                   key=lambda c: (c.country, c.programme, c.number))
    held = {(c.programme, c.number) for c in certs}
    uc = [uc_line(c, ln, ln.used) for c in certs for ln in sorted(c.lines, key=lambda x: x.hts)]
    uu = [uu_line(j) for j in sorted(ledger.journal(), key=lambda j: j.seq)
          if (j.programme, j.number) in held
          and (q.from_date is None or j.as_of >= q.from_date)
          and (q.to_date is None or j.as_of <= q.to_date)
          and (q.since is None or j.seq > q.since)]
    if not uc and not uu:
        return [ue_line(code="V20")]
    return [*uc, *uu, ue_line(len(uc), len(uu))]


def ask(ledger: Ledger, batch: list[str]) -> list[str]:
    reply = process(ledger, batch, ASKED)
    assert reply[1][:2] == "B " and reply[-1][:1] == "Z", reply[:3]
    return reply[2:-2]


def check_totals(ledger: Ledger, records: list[str]) -> None:
    """In an answer without date or sequence filters, each UC's used quantity is the
    ledger's and the sum of its UU decrements less credits."""
    used = {(c.number, ln.hts): ln.used for c in ledger.certificates() for ln in c.lines}
    drawn: dict[tuple[str, str], int] = {}
    for r in records:
        if r[:2] == "UU":
            key = (r[4:14].rstrip(), r[14:24])
            drawn[key] = drawn.get(key, 0) + int(r[39:51]) * (1 if r[38] == "D" else -1)
    for r in records:
        if r[:2] == "UC":
            key = (r[6:16].rstrip(), r[16:26])
            assert int(r[38:50]) == used[key] == drawn.get(key, 0), r
            assert int(r[26:38]) - int(r[38:50]) == int(r[50:62])


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_every_answer_is_exactly_the_requesters_scope(w: World) -> None:
    ledger = build(w)
    # the ledger agrees with itself: used = decrements - credits, per certificate line
    for c in ledger.certificates():
        for ln in c.lines:
            assert ln.used == sum((j.quantity if j.action == "D" else -j.quantity)
                                  for j in ledger.journal(programme=c.programme, number=c.number)
                                  if j.hts == ln.hts)

    event(f"journal entries: {min(len(ledger.journal()), 5)}+")
    event(f"summaries on file: {min(len(ledger.summaries()), 3)}+")
    for filer in FILERS:
        scope = filer_scope(ledger, w, filer)
        asked = [UsageQuery("importer", ior=ior) for ior in IORS]
        asked += [q for f, q in w.filer_queries if f == filer]
        got = ask(ledger, filer_batch(filer, "EC", [q.to_records()[0] for q in asked], ASKED))
        want: list[str] = []
        for q in asked:
            ok = normalise_ior(q.ior) in scope
            want += expected(ledger, q, (lambda c: True) if ok else None, "V21")
        assert got == want, (filer, sorted(scope))
        for code in ("V20", "V21", "V24"):
            if any(r[:2] == "UE" and r[36:39] == code for r in got):
                event(f"filer answer {code}")
        if any(r[:2] == "UU" for r in got):
            event("filer answer with UU")
        # records shown only for importers in scope
        assert all(normalise_ior(q.ior) in scope
                   for q, answer in zip(asked, answers(got), strict=True) if len(answer) > 1)
        check_totals(ledger, [r for a in answers(got)[:len(IORS)] for r in a])

    for cc in COUNTRIES:
        asked = [UsageQuery("country", country=cc)]
        asked += [q for sender, q in w.country_queries if sender == cc]
        got = ask(ledger, input_batch(
            site=f"E{cc}1", sender=f"{cc}C", password=f"{cc}PASS", application="VQ",
            date=ASKED, blocks=[("2704", "ECT", [q.to_records()[0] for q in asked])]))
        want = []
        for q in asked:
            want += expected(ledger, q, country_scope(cc) if q.country == cc else None, "V22")
        assert got == want, cc
        for code in ("V20", "V22", "V24"):
            if any(r[:2] == "UE" and r[36:39] == code for r in got):
                event(f"country answer {code}")
        if any(r[:2] == "UU" for r in got):
            event("country answer with UU")
        assert all(r[2:4] == cc for r in got if r[:2] == "UC")
        check_totals(ledger, answers(got)[0])

    # the unfiltered answers again, in pages of w.page items (sent on another day: the same
    # batch sent again would get its stored reply); each key refused to the others
    def filer_asks(f: str) -> Callable[[str | None], list[str]]:
        q = UsageQuery("importer", ior=IOR_A)
        return lambda key: filer_batch(f, "EC", attrs.evolve(q, continuation=key).to_records(),
                                       PAGED)

    def country_asks(cc: str) -> Callable[[str | None], list[str]]:
        q = UsageQuery("country", country=cc)
        return lambda key: input_batch(
            site=f"E{cc}1", sender=f"{cc}C", password=f"{cc}PASS", application="VQ",
            date=PAGED, blocks=[("2704", "ECT", attrs.evolve(q, continuation=key).to_records())])

    with mock.patch.object(queries, "PAGE", w.page):
        for cc in COUNTRIES:
            others = [country_asks(o) for o in COUNTRIES if o != cc]
            paged = walk(ledger, w, country_asks(cc), others)
            q = UsageQuery("country", country=cc)
            assert paged == expected(ledger, q, country_scope(cc), "V22")[:-1]
            if len(paged) > w.page:
                event("country answer in pages")
        granted = [f for f in FILERS if normalise_ior(IOR_A) in filer_scope(ledger, w, f)]
        for filer in granted:
            others = [filer_asks(o) for o in granted if o != filer]
            paged = walk(ledger, w, filer_asks(filer), others)
            q = UsageQuery("importer", ior=IOR_A)
            assert paged == expected(ledger, q, lambda c: True, "V21")[:-1]
            if len(paged) > w.page:
                event("filer answer in pages")


def walk(ledger: Ledger, w: World, batch: Callable[[str | None], list[str]],
         others: Sequence[Callable[[str | None], list[str]]]) -> list[str]:
    """The records of one answer asked in pages of `w.page` items, `batch(key)` being the
    query batch for a page (the key from the previous reply), each page's UE checked: its
    counts, and a key (the stored answer's name, then the next page's number) on every
    page but the last. Each key is V23 for the `others`, who ask it of their own scope."""
    out: list[str] = []
    key: str | None = None
    for n in range(1, 100):
        page = ask(ledger, batch(key))
        *items, ue = page
        uc = sum(r[:2] == "UC" for r in items)
        assert len(items) <= w.page and ue[:14] == f"UE{uc:06d}{len(items) - uc:06d}", page
        out += items
        if ue[14] != "Y":
            assert ue == (ue_line(uc, len(items) - uc) if items else ue_line(code="V20")), ue
            return out
        name = (key or ue[15:31])[:16]
        assert len(items) == w.page and ue == ue_line(uc, len(items) - uc, f"{name}{n:04d}")
        key = ue[15:35]
        for other in others:
            assert ask(ledger, other(key)) == [ue_line(code="V23")]
    raise AssertionError("more than 100 pages")


def answers(records: list[str]) -> list[list[str]]:
    """The records of a reply batch split into answers, each ending with its UE."""
    out: list[list[str]] = [[]]
    for r in records:
        out[-1].append(r)
        if r[:2] == "UE":
            out.append([])
    assert out[-1] == []
    return out[:-1]
