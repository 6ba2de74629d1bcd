"""Hypothesis strategies for ABI records, transactions and batches, derived from the layouts.

Record strategies (`records`, `invalid_records`) work for every layout in the catalogue,
input or output, with nothing written per layout. Transaction strategies build the typed
values of `ecert_abi.transactions`; what they generate is *well-formed*: its records parse
without defects and assemble without grouping faults, entry numbers carry their check
digit and importer numbers are in a CBP format. Whether the ledger accepts them is another
matter: `ecert_abi.testing.scenario` generates whole exchanges with that in mind.

Conventions follow Hypothesis's own: configuration is keyword-only, arguments that describe
data take strategies (wrap a fixed value in `st.just`), and a bad argument raises
`hypothesis.errors.InvalidArgument`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..envelope import input_batch
from ..fieldclass import EncodeError
from ..identifiers import check_digit, ior_all_zero
from ..layout import WIDTH, Field, Layout
from ..record import catalogue
from ..transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
)
from .fieldtext import (
    DIGITS,
    FIELD_RULES,
    NON_DISPLAYABLE,
    RULES,
    UPPER,
    X_CHARS,
    broken_text,
    eligible,
    valid_text,
)

__all__ = [
    "APPLICATIONS",
    "batch_lines",
    "batches",
    "break_line",
    "breakable_rules",
    "certificate_lines",
    "certificates",
    "entry_lines",
    "entry_summaries",
    "importer_numbers",
    "invalid_records",
    "queries",
    "records",
    "tariffs",
]

# Input application -> the transaction type its blocks carry.
APPLICATIONS: dict[str, type] = {"AE": EntrySummary, "VA": Certificate, "EC": UsageQuery,
                                 "VQ": UsageQuery}
# Participating country -> eCERT programme (52-record type code).
PARTICIPANTS = {"AU": "05", "NZ": "05", "UY": "05", "AR": "05", "MX": "30"}
# In-quota beef: 10-digit numbers of headings 0201 and 0202; unit KG.
BEEF_HTS = ("0202305015", "0201305085", "0202305085", "0201105010", "0202205080")
# Mexican TPL goods (HTS of chapters 1-97 with their unit) and the chapter 98 numbers.
TPL_GOODS = (("6204624010", "DOZ"), ("6203424011", "DOZ"), ("5208520000", "M2"),
             ("6006220090", "KG"))
TPL_PREFERENCE = ("9823530100", "9823530200", "9823530300", "9823530400", "9823530500",
                  "9823530600")
UNITS = ("KG", "DOZ", "M2", "NO", "DPR", "L")
QUOTA_TYPES = ("02", "07", "12", "32", "38")
# Dates a claim or certificate plausibly carries; inside the two-digit-year window.
FIRST_YEAR, LAST_YEAR = 2000, 2067


def _layout(layout: Layout | str, where: str) -> Layout:
    if isinstance(layout, Layout):
        return layout
    if not isinstance(layout, str):
        raise InvalidArgument(f"{where}: layout must be a Layout or a layout name, got "
                              f"{type(layout).__name__}")
    try:
        return catalogue().layout(layout)
    except KeyError:
        names = ", ".join(sorted(lay.name for lay in catalogue().layouts()
                                 if not lay.opaque))
        raise InvalidArgument(f"{where}: no layout named {layout!r}; layouts: {names}"
                              ) from None


def _strategy(value: object, where: str) -> st.SearchStrategy[Any]:
    if not isinstance(value, st.SearchStrategy):
        raise InvalidArgument(f"{where} must be a strategy (wrap a fixed value in "
                              f"st.just()), got {value!r}")
    return value


def _size(min_size: int, max_size: int | None, where: str, floor: int = 0,
          names: tuple[str, str] = ("min_size", "max_size")) -> int:
    """The upper bound to use (default: 3 above the lower), after checking both."""
    lo, hi = names
    for name, v in ((lo, min_size), (hi, max_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidArgument(f"{where}: {name}={v!r} must be an integer")
    if min_size < floor:
        raise InvalidArgument(f"{where}: {lo}={min_size} must be at least {floor}")
    if max_size is not None and max_size < min_size:
        raise InvalidArgument(f"{where}: {hi}={max_size} < {lo}={min_size}")
    return max_size if max_size is not None else min_size + 3


# --- records ---------------------------------------------------------------------------

def records(layout: Layout | str, /, **overrides: st.SearchStrategy[Any]) -> \
        st.SearchStrategy[str]:
    """80-column lines that `layout` (a Layout or its name, e.g. "R52") accepts.

    Every field gets text its class, code list and designation allow (numbers right-
    justified with zeros or spaces, optional fields sometimes blank). `overrides` maps a
    field name to a strategy of typed values for it (str, int, Decimal, date or None, as
    `Record.values` gives them back); a drawn value that does not fit its field raises
    InvalidArgument naming the field.
    """
    lay = _layout(layout, "records()")
    parts: list[st.SearchStrategy[str]] = []
    for f in lay.fields:
        if f.name not in overrides:
            parts.append(valid_text(f))
            continue
        where = f"records({lay.name!r}, {f.name}=...)"
        strat = _strategy(overrides[f.name], where)
        if f.is_filler or f.const is not None:
            raise InvalidArgument(f"{where}: {f.name} is a "
                                  f"{'filler' if f.is_filler else 'constant'}")
        parts.append(strat.map(functools.partial(_encode, f, where=where)))
    unknown = set(overrides) - lay.names
    if unknown:
        raise InvalidArgument(f"records({lay.name!r}): no field {sorted(unknown)[0]!r}; "
                              f"fields: {', '.join(f.name for f in lay.fields)}")
    return st.tuples(*parts).map("".join)


def _encode(f: Field, value: object, *, where: str) -> str:
    try:
        return str(f.encode(value))
    except EncodeError as e:
        raise InvalidArgument(f"{where}: {value!r} does not fit: {e}") from None


def invalid_records(layout: Layout | str, /, *, broken: str, field: str | None = None
                    ) -> st.SearchStrategy[str]:
    """Lines for `layout` that break exactly one rule: parsing one gives exactly one defect,
    whose `rule` is `broken` (and whose `field` is `field` when given).

    Rules: "class" (a value outside its field's class), "code" (a well-formed value not in
    the field's code list), "constant" (a reference constant changed; the record
    identifier itself is never touched), "filler" (data in a filler), "mandatory" (a
    mandatory field left blank), "short" and "long" (the record is not 80 columns), and
    "non-displayable" (a control or non-ASCII character). `field` picks the field for the
    field rules; by default any field that can break the rule is chosen.
    """
    lay = _layout(layout, "invalid_records()")
    where = f"invalid_records({lay.name!r}, broken={broken!r})"
    if broken not in RULES:
        raise InvalidArgument(f"{where}: broken must be one of {', '.join(RULES)}")
    candidates = [f for f in lay.fields if eligible(f, broken)]
    if broken not in FIELD_RULES:
        if field is not None:
            raise InvalidArgument(f"{where}: rule {broken!r} concerns the whole line, "
                                  "not a field")
    elif field is not None:
        if field not in lay.names:
            raise InvalidArgument(f"{where}: no field {field!r} in {lay.name}")
        candidates = [f for f in candidates if f.name == field]
        if not candidates:
            raise InvalidArgument(f"{where}: field {field!r} cannot break rule {broken!r}")
    elif not candidates:
        raise InvalidArgument(f"{where}: no field of {lay.name} can break rule {broken!r}")
    return records(lay).flatmap(lambda line: _break(lay, line, broken, candidates))


def break_line(layout: Layout, line: str, rule: str) -> st.SearchStrategy[str]:
    """`line` (valid for `layout`) with one rule broken, as `invalid_records` does; the
    rule must be one of `breakable_rules(layout)`."""
    return _break(layout, line, rule, [f for f in layout.fields if eligible(f, rule)])


def _break(lay: Layout, line: str, rule: str, candidates: list[Field]
           ) -> st.SearchStrategy[str]:
    if rule not in FIELD_RULES:
        return _broken_line(lay, line, rule)
    return st.sampled_from(candidates).flatmap(
        lambda f: broken_text(f, rule).map(
            lambda text: line[:f.start - 1] + text + line[f.end:]))


def breakable_rules(layout: Layout | str) -> tuple[str, ...]:
    """The rules `invalid_records(layout, broken=...)` can break for this layout."""
    lay = _layout(layout, "breakable_rules()")
    return tuple(r for r in RULES
                 if r not in FIELD_RULES or any(eligible(f, r) for f in lay.fields))


def _broken_line(lay: Layout, line: str, rule: str) -> st.SearchStrategy[str]:
    keep = len(lay.id)  # the identifier stays, so the line is still read as this record
    if rule == "long":
        return st.text(X_CHARS, min_size=1, max_size=10).map(lambda extra: line + extra)
    if rule == "non-displayable":
        return st.builds(lambda i, c: line[:i] + c + line[i + 1:],
                         st.integers(keep, WIDTH - 1), st.sampled_from(NON_DISPLAYABLE))
    # short: cut where the columns lost are spaces or whole fields, so that only the
    # length is wrong (a cut through a value would also break that value).
    cuts = [n for n in range(max(keep, 1), WIDTH) if _clean_cut(lay, line, n)]
    return st.sampled_from(cuts).map(lambda n: line[:n])


def _clean_cut(lay: Layout, line: str, n: int) -> bool:
    for f in lay.fields:
        if f.start <= n + 1 <= f.end:
            return f.start == n + 1 or not line[n:f.end].strip()
    return True


# --- values ------------------------------------------------------------------------------

def importer_numbers() -> st.SearchStrategy[str]:
    """Importer-of-record numbers in the four CBP formats (IRS, IRS with suffix, SSN,
    CBP-assigned), never all zeros."""
    def digits(n: int) -> st.SearchStrategy[str]:
        return st.text(DIGITS, min_size=n, max_size=n)

    suffix = st.text(UPPER + DIGITS, min_size=2, max_size=2)
    forms = st.one_of(
        st.builds(lambda a, b: f"{a}-{b}", digits(2), digits(7)),
        st.builds(lambda a, b, s: f"{a}-{b}{s}", digits(2), digits(7), suffix),
        st.builds(lambda a, b, c: f"{a}-{b}-{c}", digits(3), digits(2), digits(4)),
        st.builds(lambda a, b: f"{a}-{b}", digits(6), digits(5)),
    )
    return forms.filter(lambda ior: not ior_all_zero(ior))


def _dates(first: dt.date = dt.date(FIRST_YEAR, 1, 1),
           last: dt.date = dt.date(LAST_YEAR, 12, 31)) -> st.SearchStrategy[dt.date]:
    return st.dates(first, last)


def _quantity(decimals: int = 2, digits: int = 12) -> st.SearchStrategy[Decimal]:
    return st.integers(0, 10**digits - 1).map(lambda n: Decimal(n).scaleb(-decimals))


def tariffs(*, units: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Tariff]:
    """One 50-record's worth: a 10-digit HTS number, duty, value and quantity with its unit
    (quantities have at most two decimals, as the 50-record carries them)."""
    unit = _strategy(units, "tariffs(units=...)") if units is not None \
        else st.sampled_from(UNITS)
    return st.builds(Tariff, st.text(DIGITS, min_size=10, max_size=10),
                     _quantity(), unit,
                     st.integers(0, 10**7).map(lambda n: Decimal(n).scaleb(-2)),
                     st.integers(0, 10**9))


def _certificate_number(programme: str, country: str, year: int
                        ) -> st.SearchStrategy[str]:
    if programme == "05":  # 19 CFR 132.15: year digit + country + 6-character serial
        return st.text(UPPER + DIGITS, min_size=6, max_size=6).map(
            lambda serial: f"{year % 10}{country}{serial}")
    return st.text(DIGITS, min_size=7, max_size=7).map(lambda s: f"{country}{s}")


@st.composite
def _entry_line(draw: st.DrawFn) -> EntryLine:
    kind = draw(st.sampled_from(("beef", "tpl", "plain")))
    exported = draw(st.one_of(st.none(), _dates()))
    quantity = draw(st.integers(1, 10**7).map(Decimal))
    value = draw(st.integers(0, 10**9))
    duty = Decimal(draw(st.integers(0, 10**7))).scaleb(-2)
    if kind == "beef":
        country = draw(st.sampled_from(("AU", "NZ", "UY", "AR")))
        number = draw(_certificate_number("05", country, draw(st.integers(2020, 2030))))
        hts = draw(st.sampled_from(BEEF_HTS))
        return EntryLine("001", country, (Tariff(hts, quantity, "KG", duty, value),), exported,
                         licence_type="05", licence_number=number)
    if kind == "tpl":
        goods, unit = draw(st.sampled_from(TPL_GOODS))
        number = draw(_certificate_number("30", "MX", 2026))
        return EntryLine("001", "MX", (Tariff(draw(st.sampled_from(TPL_PREFERENCE)), None,
                                              None), Tariff(goods, quantity, unit, duty, value)),
                         exported, licence_type="30", licence_number=number)
    country = draw(st.text(UPPER, min_size=2, max_size=2))
    tariff_list = tuple(draw(st.lists(tariffs(), min_size=1, max_size=2)))
    return EntryLine("001", country, tariff_list, exported)


def entry_lines() -> st.SearchStrategy[EntryLine]:
    """Entry summary lines: a beef claim (52-record type 05), a Mexican TPL claim (the
    chapter 98 number, then the goods with the quantity, type 30), or a line with no
    certificate. The line identifier is 001; `entry_summaries` numbers its lines."""
    return _entry_line()


@st.composite
def _summary(draw: st.DrawFn, action: st.SearchStrategy[str], filer_code: st.SearchStrategy[str],
             ior: st.SearchStrategy[str], entry_type: st.SearchStrategy[str],
             lines: st.SearchStrategy[EntryLine], min_lines: int, max_lines: int
             ) -> EntrySummary:
    act = draw(action)
    if act not in ("A", "R", "D"):
        raise InvalidArgument(f"entry_summaries(): action {act!r} is not A, R or D")
    filer = draw(filer_code)
    if len(filer) != 3 or not filer.isalnum() or filer != filer.upper():
        raise InvalidArgument(f"entry_summaries(): filer code {filer!r} is not 3 upper-case "
                              "letters or digits")
    number = draw(st.text(DIGITS, min_size=7, max_size=7))
    entry = number + str(check_digit(filer, number))
    port = draw(st.text(DIGITS, min_size=4, max_size=4))
    ref = draw(st.one_of(st.none(), st.text(UPPER + DIGITS + "-", min_size=1, max_size=9)
                         .filter(lambda r: r[0] != "-")))
    etype = draw(entry_type)
    if act == "D":
        return EntrySummary("D", filer, entry, port, etype, None, (), ref)
    drawn = draw(st.lists(lines, min_size=min_lines, max_size=max_lines))
    numbered = tuple(_renumber(ln, i) for i, ln in enumerate(drawn, 1))
    return EntrySummary(act, filer, entry, port, etype, draw(ior), numbered, ref)


def _renumber(line: EntryLine, i: int) -> EntryLine:
    if not isinstance(line, EntryLine):
        raise InvalidArgument(f"entry_summaries(lines=...) drew {line!r}, not an EntryLine")
    return EntryLine(f"{i:03d}", line.country_of_origin, line.tariffs, line.export_date,
                     line.visa_number, line.licence_type, line.licence_number)


def _filer_codes() -> st.SearchStrategy[str]:
    return st.text(UPPER + DIGITS, min_size=3, max_size=3)


def entry_summaries(*, action: st.SearchStrategy[str] | None = None,
                    filer_code: st.SearchStrategy[str] | None = None,
                    ior: st.SearchStrategy[str] | None = None,
                    entry_type: st.SearchStrategy[str] | None = None,
                    lines: st.SearchStrategy[EntryLine] | None = None,
                    min_lines: int = 1, max_lines: int | None = None
                    ) -> st.SearchStrategy[EntrySummary]:
    """Well-formed entry summaries (AE): add, replace or delete.

    Each argument is a strategy for that part (default: any well-formed value). `lines`
    draws each line; lines are numbered 001, 002, ... in order so that no identifier
    repeats. A delete (action D) is the 10-record alone, as CATAIR requires.
    """
    hi = _size(min_lines, max_lines, "entry_summaries()", floor=1,
               names=("min_lines", "max_lines"))
    return _summary(
        _strategy(action, "entry_summaries(action=...)") if action is not None
        else st.sampled_from(("A", "R", "D")),
        _strategy(filer_code, "entry_summaries(filer_code=...)") if filer_code is not None
        else _filer_codes(),
        _strategy(ior, "entry_summaries(ior=...)") if ior is not None else importer_numbers(),
        _strategy(entry_type, "entry_summaries(entry_type=...)") if entry_type is not None
        else st.sampled_from(sorted(catalogue().layout("R10").by_name["entry_type_code"][0]
                                    .codes or ())),
        _strategy(lines, "entry_summaries(lines=...)") if lines is not None else entry_lines(),
        min_lines, hi)


def certificate_lines(*, programme: str = "05") -> st.SearchStrategy[CertificateLine]:
    """One HTS line of a certificate: beef (programme 05, KG) or Mexican TPL (programme 30,
    with its chapter 98 number)."""
    if programme not in ("05", "30"):
        raise InvalidArgument(f"certificate_lines(): programme {programme!r} is not 05 or 30")
    qty = st.integers(1, 10**9)
    if programme == "05":
        return st.builds(CertificateLine, st.sampled_from(BEEF_HTS), qty, st.just("KG"))
    return st.builds(lambda goods, q, pref: CertificateLine(goods[0], q, goods[1], pref),
                     st.sampled_from(TPL_GOODS), qty, st.sampled_from(TPL_PREFERENCE))


@st.composite
def _certificate(draw: st.DrawFn, action: st.SearchStrategy[str],
                 country: st.SearchStrategy[str], ior: st.SearchStrategy[str],
                 min_lines: int, max_lines: int) -> Certificate:
    act = draw(action)
    if act not in ("A", "R", "C"):
        raise InvalidArgument(f"certificates(): action {act!r} is not A, R or C")
    where = draw(country)
    if where not in PARTICIPANTS:
        raise InvalidArgument(f"certificates(): country {where!r} is not a participant "
                              f"({', '.join(PARTICIPANTS)})")
    programme = PARTICIPANTS[where]
    year = draw(st.integers(FIRST_YEAR, LAST_YEAR))
    number = draw(_certificate_number(programme, where, year))
    if act == "C":
        return Certificate("C", where, programme, number, None, None, None, None)
    first = draw(_dates(dt.date(year, 1, 1), dt.date(year, 12, 31)))
    last = draw(_dates(first, dt.date(year, 12, 31)))
    lines = draw(st.lists(certificate_lines(programme=programme), min_size=min_lines,
                          max_size=max_lines, unique_by=lambda ln: ln.hts_number))
    exporter = draw(st.one_of(st.none(), st.text(UPPER + " ", min_size=1, max_size=35)
                              .map(str.strip).filter(bool)))
    return Certificate(act, where, programme, number, draw(ior), year, first, last,
                       tuple(lines), exporter)


def certificates(*, action: st.SearchStrategy[str] | None = None,
                 country: st.SearchStrategy[str] | None = None,
                 ior: st.SearchStrategy[str] | None = None,
                 min_lines: int = 1, max_lines: int | None = None
                 ) -> st.SearchStrategy[Certificate]:
    """Well-formed certificate transmissions (VA): add, replace or cancel.

    Adds and replaces are self-consistent (the number fits the country's programme and
    quota year, the validity lies inside the quota year, HTS numbers are of the programme
    and not repeated), so an add is accepted by a ledger that does not hold the number yet.
    A certificate has at most 4 lines (the distinct HTS numbers generated per programme).
    A cancel is the CH record alone.
    """
    hi = _size(min_lines, max_lines, "certificates()", floor=1,
               names=("min_lines", "max_lines"))
    if min_lines > len(TPL_GOODS):
        raise InvalidArgument(f"certificates(): min_lines={min_lines}; only "
                              f"{len(TPL_GOODS)} distinct HTS numbers are generated")
    return _certificate(
        _strategy(action, "certificates(action=...)") if action is not None
        else st.sampled_from(("A", "R", "C")),
        _strategy(country, "certificates(country=...)") if country is not None
        else st.sampled_from(tuple(PARTICIPANTS)),
        _strategy(ior, "certificates(ior=...)") if ior is not None else importer_numbers(),
        min_lines, min(hi, len(TPL_GOODS)))


@st.composite
def _query(draw: st.DrawFn, kind: str | None, ior: st.SearchStrategy[str],
           country: st.SearchStrategy[str]) -> UsageQuery:
    which = kind or draw(st.sampled_from(("importer", "country")))
    maybe = st.one_of
    programme = draw(maybe(st.none(), st.sampled_from(("05", "30"))))
    number = draw(maybe(st.none(), st.text(UPPER + DIGITS, min_size=1, max_size=10)))
    start = draw(maybe(st.none(), _dates()))
    end = draw(maybe(st.none(), _dates(start or dt.date(FIRST_YEAR, 1, 1))))
    if which == "importer":
        return UsageQuery("importer", ior=draw(ior),
                          country=draw(maybe(st.none(), st.sampled_from(tuple(PARTICIPANTS)))),
                          programme=programme, number=number, from_date=start, to_date=end)
    return UsageQuery("country", ior=draw(maybe(st.none(), ior)), country=draw(country),
                      programme=programme, number=number, from_date=start, to_date=end,
                      since=draw(maybe(st.none(), st.integers(0, 10**12 - 1))))


def queries(*, kind: str | None = None, ior: st.SearchStrategy[str] | None = None,
            country: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[UsageQuery]:
    """Well-formed usage queries: importer (EC, `kind="importer"`) or country (VQ,
    `kind="country"`); by default either. Optional filters are sometimes set; a date range
    never ends before it starts."""
    if kind not in (None, "importer", "country"):
        raise InvalidArgument(f"queries(): kind={kind!r} is not 'importer' or 'country'")
    return _query(kind,
                  _strategy(ior, "queries(ior=...)") if ior is not None else importer_numbers(),
                  _strategy(country, "queries(country=...)") if country is not None
                  else st.sampled_from(tuple(PARTICIPANTS)))


# --- batches -------------------------------------------------------------------------------

def _default_transactions(app: str) -> st.SearchStrategy[Any]:
    if app == "AE":
        return entry_summaries()
    if app == "VA":
        return certificates()
    return queries(kind="importer" if app == "EC" else "country")


def batch_lines(application: str, transactions: Sequence[Any], *,
                date: dt.date | None = None) -> list[str]:
    """The input batch carrying `transactions` (all of the application's type): entry
    summaries in one block per filer, certificates and queries in one block. The sender is
    the filer (AE, EC) or the country's eCERT office (VA, VQ)."""
    want = APPLICATIONS[application]
    for t in transactions:
        if not isinstance(t, want):
            raise InvalidArgument(f"batches(application={application!r}) drew {t!r}, "
                                  f"not a {want.__name__}")
    if application == "AE":
        blocks: list[tuple[str, str, list[str]]] = []
        for s in transactions:
            if not blocks or blocks[-1][1] != s.filer_code:
                blocks.append((s.port, s.filer_code, []))
            blocks[-1][2].extend(s.to_records())
        filer = blocks[0][1]
        return input_batch(site=blocks[0][0], sender=filer, password=f"{filer}PAS",
                           application="AE", date=date, blocks=blocks)
    recs = [r for t in transactions for r in t.to_records()]
    if application == "EC":
        return input_batch(site="2704", sender="K9T", password="K9TPAS", application="EC",
                           date=date, blocks=[("2704", "K9T", recs)])
    country = transactions[0].country or "AU"
    return input_batch(site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                       application=application, date=date, blocks=[("2704", "ECT", recs)])


def batches(*, application: str | None = None,
            transactions: st.SearchStrategy[Any] | None = None,
            min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[list[str]]:
    """Input batches (their 80-column lines: A, B ... Y, Z) of one application.

    `application` is AE, VA, EC or VQ (default: any). `transactions` draws each
    transaction (default: the well-formed strategy of the application's type);
    `min_size`/`max_size` bound how many a batch holds.
    """
    if application is not None and application not in APPLICATIONS:
        raise InvalidArgument(f"batches(): application={application!r} is not one of "
                              f"{', '.join(APPLICATIONS)}")
    hi = _size(min_size, max_size, "batches()", floor=1)
    if transactions is not None:
        _strategy(transactions, "batches(transactions=...)")
    apps = st.just(application) if application else st.sampled_from(tuple(APPLICATIONS))

    def for_app(app: str) -> st.SearchStrategy[list[str]]:
        each = transactions if transactions is not None else _default_transactions(app)
        return st.builds(lambda txns, day: batch_lines(app, txns, date=day),
                         st.lists(each, min_size=min_size, max_size=hi),
                         st.one_of(st.none(), _dates()))

    return apps.flatmap(for_app)

