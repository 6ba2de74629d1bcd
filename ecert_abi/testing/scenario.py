"""Scenario strategies: whole exchanges with a ledger, generated with its state in mind.

A scenario is a processing date and a sequence of input batches meant for one fresh
ledger: countries register certificates, then brokers file, replace and delete entry
summaries against them, countries replace and cancel certificates, batches are sent again,
and it ends with usage queries for every importer and country involved, so that whatever
the ledger holds shows in a reply.

Claims are drawn against a running model of the balances: some fit, some take exactly
what is left, some ask for more than is left, some are filed by another importer, from
another origin, under another HTS number or unit, for an unknown certificate or for zero,
so that generated batches reach the interesting conditions (L01, L04, L06, L08, L11, L13,
L15, L17, Q09, Q15, Q25, V17, V01, V07, B25, B35, ...) and not only rejects. The model
only guides the choices; the processor under test decides.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..envelope import frame, input_batch
from ..identifiers import check_digit, normalise_ior
from ..record import read_lines
from ..transactions import Certificate, CertificateLine, EntryLine, EntrySummary, Tariff, UsageQuery
from .strategies import (
    BEEF_HTS,
    PARTICIPANTS,
    QUOTA_TYPES,
    TPL_GOODS,
    TPL_PREFERENCE,
    UNITS,
    break_line,
    breakable_rules,
    importer_numbers,
)

__all__ = ["Scenario", "scenarios"]

FIRST_DAY, LAST_DAY = dt.date(2021, 1, 1), dt.date(2060, 12, 31)
PORT = "2704"
# Simplest first: Hypothesis shrinks a choice towards the start of its list. Repeats
# weigh a choice, so that about half the claims fit and most summaries reach the ledger.
STEPS = ("file", "file", "replace", "delete", "replace", "delete", "certificate", "cancel",
         "resend", "query", "corrupt")
CLAIMS = ("within", "within", "within", "within", "rest", "rest", "over", "over",
          "other_importer", "other_importer", "other_origin", "other_hts", "other_unit",
          "unknown", "zero", "fraction", "no_certificate")
ENTRY_TYPES = ("02", "02", "02", "02", "07", "12", "32", "38", "01", "06")
VALIDITY = ("current", "current", "current", "current", "current", "expired", "future")
TARGETS = ("on file", "filed", "never filed")  # which entry a replace or delete names


@attrs.frozen
class Scenario:
    """A processing date and the input batches to send, in order, to one fresh ledger.

    `notes[i]` says what batch i is meant to exercise (the processor decides what it
    does). `batches[i]` holds the batch's 80-column lines.
    """

    as_of: dt.date
    batches: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]

    def data(self) -> bytes:
        """All batches as one byte stream, one record a line (what a processor reads)."""
        return "".join(line + "\n" for b in self.batches for line in b).encode("latin-1")

    def describe(self) -> str:
        """The scenario for a reader: date, then each batch's note and its lines with `|`
        in column 81."""
        out = [f"as of {self.as_of.isoformat()}: {len(self.batches)} input batch(es)"]
        for i, (lines, note) in enumerate(zip(self.batches, self.notes, strict=True), 1):
            out.append(f"batch {i}: {note}")
            out += [f"  {line}|" for line in lines]
        return "\n".join(out)


@attrs.define
class _Cert:
    country: str
    programme: str
    number: str
    ior: str
    year: int
    effective: dt.date
    expiry: dt.date
    exporter: str | None
    lines: dict[str, list[Any]]  # hts -> [issued, used, unit, preference hts]
    status: str = "A"

    def transmission(self, action: str, quantities: dict[str, int] | None = None
                     ) -> Certificate:
        if action == "C":
            return Certificate("C", self.country, self.programme, self.number, None, None,
                               None, None)
        qty = quantities or {h: v[0] for h, v in self.lines.items()}
        return Certificate(action, self.country, self.programme, self.number, self.ior,
                           self.year, self.effective, self.expiry,
                           tuple(CertificateLine(h, qty[h], v[2], v[3])
                                 for h, v in self.lines.items()), self.exporter)


@attrs.define
class _Model:
    """What the generator believes the ledger holds (a guide for choices, not an oracle)."""

    day: dt.date
    filer: str
    importers: list[str]
    certs: list[_Cert]
    on_file: dict[str, list[tuple[int, str, int]]] = attrs.field(factory=dict)
    filed: list[str] = attrs.field(factory=list)
    refs: dict[str, str | None] = attrs.field(factory=dict)
    next_txn: int = 1

    def new_entry(self) -> str:
        n = f"{self.next_txn:07d}"
        self.next_txn += 1
        return n + str(check_digit(self.filer, n))

    def credit(self, entry: str) -> list[tuple[int, str, int]]:
        claims = self.on_file.pop(entry, [])
        for ci, hts, qty in claims:
            self.certs[ci].lines[hts][1] -= qty
        return claims

    def debit(self, entry: str, claims: list[tuple[int, str, int]]) -> None:
        for ci, hts, qty in claims:
            self.certs[ci].lines[hts][1] += qty
        self.on_file[entry] = claims


def _validity(draw: st.DrawFn, day: dt.date) -> tuple[dt.date, dt.date]:
    jan1, dec31 = dt.date(day.year, 1, 1), dt.date(day.year, 12, 31)
    kind = draw(st.sampled_from(VALIDITY))
    one = dt.timedelta(days=1)
    if kind == "expired" and day > jan1:
        expiry = draw(st.dates(jan1, day - one))
        return draw(st.dates(jan1, expiry)), expiry
    if kind == "future" and day < dec31:
        effective = draw(st.dates(day + one, dec31))
        return effective, draw(st.dates(effective, dec31))
    return draw(st.dates(jan1, day)), draw(st.dates(day, dec31))


def _certificate(draw: st.DrawFn, model: _Model, serial: int) -> _Cert:
    country = draw(st.sampled_from(tuple(PARTICIPANTS)))
    programme = PARTICIPANTS[country]
    year = model.day.year
    if programme == "05":
        number = f"{year % 10}{country}{serial:06d}"
        goods = [(h, "KG") for h in BEEF_HTS]
    else:
        number = f"MX{year % 100:02d}{serial:05d}"
        goods = list(TPL_GOODS)
    picked = draw(st.lists(st.sampled_from(goods), min_size=1, max_size=2, unique=True))
    lines = {}
    for hts, unit in picked:
        pref = draw(st.sampled_from(TPL_PREFERENCE)) if programme == "30" else None
        lines[hts] = [draw(st.integers(1, 50000)), 0, unit, pref]
    effective, expiry = _validity(draw, model.day)
    return _Cert(country, programme, number, draw(st.sampled_from(model.importers)), year,
                 effective, expiry, f"{country} EXPORTS", lines)


def _claim_lines(draw: st.DrawFn, model: _Model
                 ) -> tuple[list[EntryLine], str, list[tuple[int, str, int]], bool, list[str]]:
    """Lines of one summary: (lines, IOR, the claims, expected to be accepted?, notes)."""
    day = model.day
    lines: list[EntryLine] = []
    claims: list[tuple[int, str, int]] = []
    notes: list[str] = []
    pending: dict[tuple[int, str], int] = {}
    ok = True
    plan = [(draw(st.sampled_from(CLAIMS)), draw(st.integers(0, len(model.certs) - 1)))
            for _ in range(draw(st.integers(1, 2)))]
    # The IOR belongs to the summary: the first line's certificate holder's, unless a line
    # is meant for another importer (then any importer but that line's holder).
    ior = model.certs[plan[0][1]].ior
    for kind, ci in plan:
        if kind == "other_importer":
            holder = normalise_ior(model.certs[ci].ior)
            ior = draw(st.sampled_from([x for x in model.importers
                                        if normalise_ior(x) != holder]))
            break
    for i, (kind, ci) in enumerate(plan, 1):
        cert = model.certs[ci]
        hts = draw(st.sampled_from(sorted(cert.lines)))
        issued, used, unit, pref = cert.lines[hts]
        left = issued - used - pending.get((ci, hts), 0)
        number, origin, claim_hts, claim_unit = cert.number, cert.country, hts, unit
        qty = Decimal(draw(st.integers(1, max(left, 1))))
        if kind == "rest":
            qty = Decimal(max(left, 1))
        elif kind == "over":
            qty = Decimal(max(left, 0) + draw(st.integers(1, 1000)))
        elif kind == "zero":
            qty = Decimal(0)
        elif kind == "fraction":
            qty += Decimal("0.5")
        elif kind == "other_origin":
            origin = draw(st.sampled_from([c for c in (*PARTICIPANTS, "CA") if c != origin]))
        elif kind == "other_hts":
            pool = [h for h in (*BEEF_HTS, *(g for g, _ in TPL_GOODS)) if h not in cert.lines]
            claim_hts = draw(st.sampled_from(pool))
        elif kind == "other_unit":
            claim_unit = draw(st.sampled_from([u for u in UNITS if u != unit]))
        elif kind == "unknown":
            number = f"{day.year % 10}{cert.country}999999" if cert.programme == "05" \
                else "MX9999999"
        lid = f"{i:03d}"
        tariff = Tariff(claim_hts, qty, claim_unit, Decimal("10.00"), 1000)
        tariffs = (Tariff(pref, None, None), tariff) if pref else (tariff,)
        exported = day - dt.timedelta(days=10)
        if kind == "no_certificate":
            lines.append(EntryLine(lid, origin, (tariff,), exported))
            notes.append(f"line {lid}: no certificate")
            continue
        lines.append(EntryLine(lid, origin, tariffs, exported, licence_type=cert.programme,
                               licence_number=number))
        notes.append(f"line {lid}: {qty} {claim_unit} of {claim_hts} on {number} "
                     f"({left} left; {kind.replace('_', ' ')})")
        fits = qty == qty.to_integral_value() and 0 < qty <= left
        ok = ok and kind in ("within", "rest") and fits and cert.status == "A" and \
            cert.effective <= day <= cert.expiry and \
            normalise_ior(ior) == normalise_ior(cert.ior)
        if qty == qty.to_integral_value():
            pending[(ci, hts)] = pending.get((ci, hts), 0) + int(qty)
            claims.append((ci, hts, int(qty)))
    return lines, ior, claims, ok, notes


def _summary(draw: st.DrawFn, model: _Model, entry: str, action: str, ref: str | None
             ) -> tuple[EntrySummary, list[tuple[int, str, int]], bool, str]:
    lines, ior, claims, ok, notes = _claim_lines(draw, model)
    etype = draw(st.sampled_from(ENTRY_TYPES))
    certified = any(ln.licence_type for ln in lines)
    ok = ok and (etype in QUOTA_TYPES or not certified)
    summary = EntrySummary(action, model.filer, entry, PORT, etype, ior, tuple(lines), ref)
    note = f"entry {model.filer}-{entry} {action} type {etype} IOR {ior}: " + "; ".join(notes)
    return summary, claims, ok, note


def _ae(model: _Model, summaries: list[EntrySummary]) -> list[str]:
    return input_batch(site=PORT, sender=model.filer, password=f"{model.filer}PAS",
                       application="AE", date=model.day,
                       blocks=[(PORT, model.filer, [r for s in summaries for r in s.to_records()])])


def _va(model: _Model, country: str, certs: list[Certificate]) -> list[str]:
    return input_batch(site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                       application="VA", date=model.day,
                       blocks=[(PORT, "ECT", [r for c in certs for r in c.to_records()])])


def _importer_queries(model: _Model, iors: list[str], office: str | None) -> list[str]:
    recs = [r for ior in iors for r in UsageQuery("importer", ior=ior).to_records()]
    return input_batch(site=PORT, sender=model.filer, password=f"{model.filer}PAS",
                       application="EC", date=model.day, office=office,
                       blocks=[(PORT, model.filer, recs)])


def _country_query(model: _Model, country: str) -> list[str]:
    return input_batch(site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                       application="VQ", date=model.day,
                       blocks=[(PORT, "ECT", UsageQuery("country", country=country).to_records())])


@st.composite
def _scenario(draw: st.DrawFn, as_of: dt.date | None, max_certificates: int,
              max_steps: int) -> Scenario:
    day = as_of or draw(st.dates(FIRST_DAY, LAST_DAY))
    importers = draw(st.lists(importer_numbers(), min_size=2, max_size=3,
                              unique_by=normalise_ior))
    model = _Model(day, draw(st.sampled_from(("K9T", "ZZ1", "A2B"))), importers, [])
    for serial in range(1, draw(st.integers(1, max_certificates)) + 1):
        model.certs.append(_certificate(draw, model, serial))
    batches: list[list[str]] = []
    notes: list[str] = []

    by_country: dict[str, list[_Cert]] = {}
    for c in model.certs:
        by_country.setdefault(c.country, []).append(c)
    for country, certs in by_country.items():
        batches.append(_va(model, country, [c.transmission("A") for c in certs]))
        notes.append(f"{country} registers " + "; ".join(
            f"{c.number} IOR {c.ior} valid {c.effective}..{c.expiry} " + ", ".join(
                f"{h} {v[0]} {v[2]}" for h, v in c.lines.items()) for c in certs))

    for step in draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=max_steps)):
        _step(draw, model, step, batches, notes)

    iors = sorted({normalise_ior(c.ior) for c in model.certs} | set(map(normalise_ior,
                                                                        importers)))
    batches.append(_importer_queries(model, [i.rstrip() for i in iors], None))
    notes.append("importer usage queries: " + ", ".join(i.rstrip() for i in iors))
    for country in by_country:
        batches.append(_country_query(model, country))
        notes.append(f"{country} asks for the usage of its certificates")
    return Scenario(day, tuple(tuple(b) for b in batches), tuple(notes))


def _step(draw: st.DrawFn, model: _Model, step: str, batches: list[list[str]],
          notes: list[str]) -> None:
    if step in ("replace", "delete") and not model.filed:
        step = "file"
    if step == "resend" and not batches:
        step = "file"
    if step == "file" or step == "corrupt":
        made: list[EntrySummary] = []
        texts = []
        for _ in range(draw(st.integers(1, 2))):
            entry = model.new_entry()
            ref = f"R{entry[:7].lstrip('0')}"
            summary, claims, ok, note = _summary(draw, model, entry, "A", ref)
            model.filed.append(entry)
            model.refs[entry] = ref
            if ok and step == "file":
                model.debit(entry, claims)
            made.append(summary)
            texts.append(note)
        lines = _ae(model, made)
        if step == "corrupt":
            lines, what = _corrupt(draw, lines)
            texts.append(what)
        batches.append(lines)
        notes.append("files " + " | ".join(texts))
    elif step == "replace":
        entry = _target(draw, model, allow_new=False)
        how = draw(st.sampled_from(("R", "A", "A with another broker reference")))
        again: str | None = model.refs.get(entry)
        if how.startswith("A with"):
            again = f"X{entry[:7].lstrip('0')}"
        old = model.credit(entry)
        summary, claims, ok, note = _summary(draw, model, entry, how[0], again)
        gatekept = how.startswith("A with") and bool(old)
        if ok and not gatekept:
            model.debit(entry, claims)
            model.refs[entry] = again
        elif gatekept:
            model.debit(entry, old)  # B35 changes nothing
        batches.append(_ae(model, [summary]))
        notes.append(f"replaces ({how}) {note}")
    elif step == "delete":
        entry = _target(draw, model, allow_new=True)
        known = entry in model.filed
        model.credit(entry)
        batches.append(_ae(model, [EntrySummary("D", model.filer, entry, PORT, "02", None)]))
        notes.append(f"deletes entry {model.filer}-{entry}"
                     + ("" if known else " (never filed)"))
    elif step == "certificate":
        ci = draw(st.integers(0, len(model.certs) - 1))
        cert = model.certs[ci]
        how = draw(st.sampled_from(("more", "less", "below what is used", "add again")))
        if how == "add again":
            batches.append(_va(model, cert.country, [cert.transmission("A")]))
        else:
            qty = {}
            for h, (issued, used, _, _) in cert.lines.items():
                delta = draw(st.integers(1, 1000))
                qty[h] = {"more": issued + delta, "less": max(issued - delta, used, 1),
                          "below what is used": max(used - 1, 0)}[how]
            if cert.status == "A" and all(q >= v[1] and q > 0
                                          for q, v in zip(qty.values(), cert.lines.values(),
                                                          strict=True)):
                for h, q in qty.items():
                    cert.lines[h][0] = q
            batches.append(_va(model, cert.country, [cert.transmission("R", qty)]))
        notes.append(f"{cert.country} {how}: {cert.number}")
    elif step == "cancel":
        cert = model.certs[draw(st.integers(0, len(model.certs) - 1))]
        cert.status = "C"
        batches.append(_va(model, cert.country, [cert.transmission("C")]))
        notes.append(f"{cert.country} cancels {cert.number}")
    elif step == "resend":
        k = draw(st.integers(0, len(batches) - 1))
        batches.append(list(batches[k]))
        notes.append(f"sends batch {k + 1} again (answered from storage)")
    else:  # query
        ior = draw(st.sampled_from(model.importers))
        batches.append(_importer_queries(model, [ior], f"{len(batches) + 1:02d}"[-2:]))
        notes.append(f"importer usage query for {ior} midway")


def _target(draw: st.DrawFn, model: _Model, *, allow_new: bool) -> str:
    """An entry number for a replace or delete: one on file (as the model believes), one
    filed and perhaps rejected, or (for a delete) one never filed."""
    kind = draw(st.sampled_from(TARGETS if allow_new else TARGETS[:2]))
    if kind == "on file" and model.on_file:
        return draw(st.sampled_from(sorted(model.on_file)))
    if kind == "never filed":
        return model.new_entry()
    return draw(st.sampled_from(model.filed))


def _corrupt(draw: st.DrawFn, lines: list[str]) -> tuple[list[str], str]:
    """One line of the batch broken (one rule of its own layout)."""
    batch = next(frame(read_lines(io.BytesIO("".join(x + "\n" for x in lines).encode()))))
    i = draw(st.integers(0, len(lines) - 1))
    layout = batch.records[i].layout
    assert layout is not None
    rule = draw(st.sampled_from(breakable_rules(layout)))
    if rule == "short" and i == len(lines) - 1:
        rule = "long"
    broken = draw(break_line(layout, lines[i], rule))
    return [*lines[:i], broken, *lines[i + 1:]], \
        f"record {i + 1} ({layout.name}) breaks rule {rule!r}"


def scenarios(*, as_of: dt.date | None = None, max_certificates: int = 3,
              max_steps: int = 6) -> st.SearchStrategy[Scenario]:
    """Scenarios for one fresh ledger (see the module docstring).

    `as_of` fixes the processing date (default: any date from 2021 to 2060); certificate
    validity is drawn around it, inside its quota year. `max_certificates` bounds the
    certificates registered first, `max_steps` the batches that follow them (before the
    closing usage queries).
    """
    if as_of is not None and (not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime)
                              or not FIRST_DAY <= as_of <= LAST_DAY):
        raise InvalidArgument(f"scenarios(): as_of={as_of!r} must be a date from "
                              f"{FIRST_DAY} to {LAST_DAY}")
    for name, value in (("max_certificates", max_certificates), ("max_steps", max_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"scenarios(): {name}={value!r} must be an integer >= 1")
    return _scenario(as_of, max_certificates, max_steps)
