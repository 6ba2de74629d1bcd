"""The validation-and-decrement engine: transactions + a ledger view + as_of -> decisions.

Sans-IO: no files, databases or clocks. `decide_summary` and `decide_certificate` read the
ledger only through `LedgerView` and return a `Decision`: accepted or not, the conditions
found (each with its severity resolved), and the ledger changes to apply. A business
reject is a value, never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import attrs

from .conditions import CONDITIONS
from .identifiers import entry_number_ok, ior_all_zero, ior_format_ok, normalise_ior
from .record import Record
from .transactions import Certificate, EntrySummary

# CBP's quota entry types: a summary of one of these without a quota line draws the
# informational Q25 (reference 5.3a, 9.2).
QUOTA_ENTRY_TYPES = frozenset({"02", "07", "12", "32", "38"})
# The entry types on which a quota line is refused with Q09 (reference 5.3a, 9.2). Only these:
# Mexican TPL claims are also made on types 06, 23 and 52 (domain.md 4).
NO_QUOTA_ENTRY_TYPES = frozenset({"01", "03", "11", "31", "34"})


# --- ledger state and changes ---------------------------------------------------------

@attrs.frozen
class CertLine:
    hts: str
    issued: int
    used: int
    unit: str
    preference_hts: str | None = None


@attrs.frozen
class CertState:
    programme: str
    number: str
    country: str
    ior: str
    quota_year: int
    effective: dt.date
    expiry: dt.date
    status: str  # A active, C cancelled
    lines: tuple[CertLine, ...]
    exporter: str | None = None

    def line(self, hts: str | None) -> CertLine | None:
        return next((ln for ln in self.lines if ln.hts == hts), None)


@attrs.frozen
class Claim:
    """One entry line's draw on one certificate HTS line, with its quota-pool shares."""

    programme: str
    number: str
    hts: str
    line_id: str
    quantity: int
    pools: tuple[tuple[str, int, int], ...] = ()  # (pool, quota year, amount in pool unit)


@attrs.frozen
class SummaryState:
    filer: str
    entry_number: str
    port: str
    broker_reference: str | None
    ior: str | None
    claims: tuple[Claim, ...]
    version: int = 100


@attrs.frozen
class PutCertificate:
    cert: CertState  # `used` of existing lines is kept by the ledger, not taken from here


@attrs.frozen
class CancelCertificate:
    programme: str
    number: str


@attrs.frozen
class Decrement:
    claim: Claim
    filer: str
    entry_number: str
    ior: str | None


@attrs.frozen
class Credit:
    claim: Claim
    filer: str
    entry_number: str
    ior: str | None


@attrs.frozen
class PutSummary:
    summary: SummaryState


@attrs.frozen
class DeleteSummary:
    filer: str
    entry_number: str


Change = PutCertificate | CancelCertificate | Decrement | Credit | PutSummary | DeleteSummary


class LedgerView(Protocol):
    """What the engine may read."""

    def certificate(self, programme: str, number: str) -> CertState | None: ...

    def summary(self, filer: str, entry_number: str) -> SummaryState | None: ...

    def pool_fill(self, pool: str, year: int) -> int: ...


# --- rules as data ------------------------------------------------------------------

@attrs.frozen
class Pool:
    name: str
    programme: str
    countries: frozenset[str]
    preference_hts: frozenset[str] | None
    unit: str
    limit: int


@attrs.frozen
class Rules:
    """Programmes, quota pools, SME factors and the countries' severity profiles."""

    programmes: Mapping[str, Mapping[str, Any]]
    pools: tuple[Pool, ...]
    sme_per_unit: Mapping[str, int]
    informational: Mapping[str, frozenset[str]]

    def severity(self, code: str, country: str | None) -> str:
        """F or I for a condition, applying the country's profile to F/I codes."""
        sev = CONDITIONS[code].severity
        if sev == "F/I":
            return "I" if code in self.informational.get(country or "", frozenset()) else "F"
        return "I" if sev == "I" else "F"

    def with_informational(self, country: str, codes: Sequence[str]) -> Rules:
        prof = dict(self.informational)
        prof[country] = frozenset(codes)
        return attrs.evolve(self, informational=prof)


@cache
def default_rules() -> Rules:
    raw = tomllib.loads((Path(__file__).parent / "data" / "programmes.toml").read_text("utf-8"))
    pools = tuple(Pool(p["name"], p["programme"], frozenset(p["countries"]),
                       frozenset(p["preference_hts"]) if "preference_hts" in p else None,
                       p["unit"], int(p["limit"])) for p in raw["pools"])
    return Rules(raw["programmes"], pools, raw["sme_per_unit"],
                 {c: frozenset(v) for c, v in raw["informational"].items()})


# --- decisions ----------------------------------------------------------------------

@attrs.frozen
class Finding:
    """A condition with its severity resolved (F or I) and where it points."""

    code: str
    severity: str
    ref: tuple[str, int, str] | None = None
    detail: str = ""


@attrs.frozen
class Decision:
    accepted: bool
    outcome: str  # ADDED, REPLACED, DELETED, CANCELLED or REJECTED
    findings: tuple[Finding, ...]
    changes: tuple[Change, ...]
    version: int | None = None


def _record_findings(records: Sequence[Record], line_refs: Mapping[int, tuple[str, int, str]]
                     ) -> list[Finding]:
    out = []
    for r in records:
        for d in r.defects:
            code = d.code or "V90"
            if code.startswith("X") or code not in CONDITIONS:
                code = "V90" if d.rule != "mandatory" else "V91"
            out.append(Finding(code, "F", line_refs.get(id(r)), f"{d.field}: {d.message}"))
    return out


def _fatal(findings: Sequence[Finding]) -> bool:
    return any(f.severity == "F" for f in findings)


def _pools_for(rules: Rules, programme: str, country: str, preference: str | None,
               unit: str, quantity: int, year: int) -> tuple[tuple[str, int, int], ...]:
    shares = []
    for p in rules.pools:
        if p.programme != programme or country not in p.countries:
            continue
        if p.preference_hts is not None and preference not in p.preference_hts:
            continue
        if p.unit == "SME" and unit != "SME":
            amount = quantity * int(rules.sme_per_unit.get(unit, 1))
        else:
            amount = quantity
        shares.append((p.name, year, amount))
    return tuple(shares)


def decide_summary(summary: EntrySummary, view: LedgerView, as_of: dt.date,
                   rules: Rules | None = None, *, block_filer: str | None = None,
                   check_digit_factor: int = 0) -> Decision:
    """Decide one entry summary (action A, R or D) against the ledger.

    All lines succeed or fail together; several lines on one certificate line are summed.
    Replace credits the summary's earlier claims back before drawing the new ones; delete
    credits them back; a fatally rejected correction of a summary on file deletes it
    (CBP's implicit delete for summaries in trade control, ESF-210).
    """
    rules = rules or default_rules()
    refs = {id(r): ("LINITM", i, ln.line_id)
            for i, ln in enumerate(summary.lines, 1) for r in ln.records}
    found = _record_findings(summary.records, refs)
    found += [Finding(i.code, rules.severity(i.code, None), i.ref, i.detail)
              for i in summary.issues]
    s = summary
    if block_filer is not None and s.filer_code and s.filer_code != block_filer:
        found.append(Finding("B53", "F", None, "entry filer differs from the block's filer"))
    if s.entry_number and s.filer_code and not entry_number_ok(
            s.filer_code, s.entry_number, check_digit_factor):
        if s.entry_number.isdigit():
            found.append(Finding("B16", "F", None, "check digit mismatch"))
        else:
            found.append(Finding("B15", "F", None, "entry number not numeric"))
    on_file = view.summary(s.filer_code, s.entry_number) if s.entry_number else None

    if s.action == "D":
        if on_file is None:
            found.append(Finding("B25", "F"))
        if _fatal(found) or on_file is None:
            return Decision(False, "REJECTED", tuple(found), ())
        changes: list[Change] = [Credit(c, s.filer_code, s.entry_number, on_file.ior)
                                 for c in on_file.claims]
        changes.append(DeleteSummary(s.filer_code, s.entry_number))
        return Decision(True, "DELETED", (), tuple(changes))

    r10 = s.records[0] if s.records else None
    if r10 is not None and r10.get("electronic_signature") is None \
            and not any(d.field == "electronic_signature" for d in r10.defects):
        found.append(Finding("B39", "F"))
    if s.ior is not None:
        if ior_all_zero(s.ior):
            found.append(Finding("103", "F"))
        elif not ior_format_ok(s.ior):
            found.append(Finding("102", "F", None, f"IOR {s.ior!r}"))
    if on_file is not None:
        if on_file.port != s.port:
            found.append(Finding("B32", "F", None, f"on file for port {on_file.port}"))
        elif s.action == "A" and on_file.broker_reference and \
                on_file.broker_reference != s.broker_reference:
            found.append(Finding("B35", "F"))
    claims, claim_found = _claims(s, view, on_file, rules, as_of)
    found += claim_found
    ecert_lines = sum(1 for ln in s.lines if ln.licence_type in rules.programmes)
    if s.entry_type in QUOTA_ENTRY_TYPES and not ecert_lines:
        found.append(Finding("Q25", "I"))

    if _fatal(found):
        changes = []
        gatekeeping = {"B32", "B35", "B15", "B16", "B53"}
        if on_file is not None and not any(f.code in gatekeeping for f in found):
            changes = [Credit(c, s.filer_code, s.entry_number, on_file.ior)
                       for c in on_file.claims]
            changes.append(DeleteSummary(s.filer_code, s.entry_number))
        return Decision(False, "REJECTED", tuple(found), tuple(changes))
    changes = []
    if on_file is not None:
        changes += [Credit(c, s.filer_code, s.entry_number, on_file.ior) for c in on_file.claims]
    changes += [Decrement(c, s.filer_code, s.entry_number, s.ior) for c in claims]
    version = on_file.version if on_file else 100
    changes.append(PutSummary(SummaryState(s.filer_code, s.entry_number, s.port,
                                           s.broker_reference, s.ior, tuple(claims), version)))
    return Decision(True, "REPLACED" if on_file else "ADDED", tuple(found), tuple(changes),
                    version)


def _claims(s: EntrySummary, view: LedgerView, on_file: SummaryState | None, rules: Rules,
            as_of: dt.date) -> tuple[list[Claim], list[Finding]]:
    """The claims of a summary's eCERT lines, and the L/Q conditions they raise."""
    found: list[Finding] = []
    claims: list[Claim] = []
    # What this summary already holds is given back first when it is replaced.
    own: dict[tuple[str, str, str], int] = {}
    own_pool: dict[tuple[str, int], int] = {}
    for c in on_file.claims if on_file else ():
        key = (c.programme, c.number, c.hts)
        own[key] = own.get(key, 0) + c.quantity
        for pool, year, amount in c.pools:
            own_pool[(pool, year)] = own_pool.get((pool, year), 0) + amount
    drawn: dict[tuple[str, str, str], int] = {}
    pool_want: dict[tuple[str, int], int] = {}
    for i, ln in enumerate(s.lines, 1):
        if ln.licence_type is None or ln.licence_type not in rules.programmes:
            continue
        ctype: str = ln.licence_type
        ref = ("LICNSE", i, ln.line_id)
        if s.entry_type in NO_QUOTA_ENTRY_TYPES:
            found.append(Finding("Q09", "F", ref))
        number = ln.licence_number
        if not number:
            continue  # 474 comes from the 52-record's own field check
        cert = view.certificate(ctype, number)
        country = cert.country if cert else (number[1:3] if len(number) > 2 else None)

        def hit(code: str, detail: str = "", ref: tuple[str, int, str] = ref,
                country: str | None = country) -> None:
            found.append(Finding(code, rules.severity(code, country), ref, detail))

        if cert is None:
            hit("L01", f"certificate {ln.licence_type} {number} not registered")
            continue
        if normalise_ior(cert.ior) != normalise_ior(s.ior):
            hit("L04")
        if ln.country_of_origin != cert.country:
            hit("L06", f"origin {ln.country_of_origin}, certificate {cert.country}")
        if cert.status == "C":
            hit("L08")
        if not cert.effective <= as_of <= cert.expiry:
            hit("L11", f"valid {cert.effective} to {cert.expiry}")
        tariff = ln.claim
        cline = cert.line(tariff.hts_number if tariff else None)
        if tariff is None or cline is None or cline.unit != (tariff.unit or ""):
            hit("L13")
            continue
        qty = tariff.quantity or Decimal(0)
        if qty == 0:
            found.append(Finding("Q15", "F", ref))
            continue
        if qty != qty.to_integral_value():
            found.append(Finding("V17", "F", ref))
            continue
        q = int(qty)
        key = (ctype, number, cline.hts)
        left = cline.issued - cline.used + own.get(key, 0) - drawn.get(key, 0)
        if left <= 0:
            hit("L17")
        elif q > left:
            hit("L15", f"{q} asked, {left} remaining")
        # A certificate is never used beyond what was issued. Where the country made L15/L17
        # informational, the claim is accepted but draws only what remains (nothing once
        # the balance is gone); the Claim records what was drawn, so a later replace or
        # delete credits back exactly that. Pool shares follow the drawn quantity too.
        # A cancelled certificate (L08, if informational) draws nothing at all.
        take = 0 if cert.status == "C" else min(q, max(left, 0))
        if take == 0:
            continue
        drawn[key] = drawn.get(key, 0) + take
        pools = _pools_for(rules, cert.programme, cert.country,
                           cline.preference_hts or ln.preference_hts, cline.unit, take,
                           cert.quota_year)
        for pool, year, amount in pools:
            k = (pool, year)
            pool_want[k] = pool_want.get(k, 0) + amount
            limit = next(p.limit for p in rules.pools if p.name == pool)
            if view.pool_fill(pool, year) - own_pool.get(k, 0) + pool_want[k] > limit:
                found.append(Finding("Q03", "F", ref, f"{pool} {year} filled"))
        claims.append(Claim(ctype, number, cline.hts, ln.line_id, take, pools))
    return claims, found


def decide_certificate(cert: Certificate, view: LedgerView, as_of: dt.date,
                       rules: Rules | None = None, *, sender_country: str | None = None
                       ) -> Decision:
    """Decide one certificate transmission (add, replace or cancel)."""
    rules = rules or default_rules()
    refs = {id(r): ("CERLIN", i, str(r.get("hts_number") or ""))
            for i, r in enumerate(cert.records[1:], 1)}
    found = _record_findings(cert.records, refs)
    found += [Finding(i.code, "F", i.ref, i.detail) for i in cert.issues]
    c = cert
    prog = rules.programmes.get(c.programme)
    on_file = view.certificate(c.programme, c.number) if c.number else None
    # A country transmits only its own certificates: the country field must be the
    # sender's, and a replace or cancel must not touch a certificate another country holds.
    if sender_country is not None and (
            (c.country and c.country != sender_country)
            or (c.action in ("R", "C") and on_file is not None
                and on_file.country != sender_country)):
        found.append(Finding("V05", "F"))
    if prog is not None and c.country and c.country not in prog["countries"]:
        found.append(Finding("V13", "F"))
    if prog is not None and c.number and c.country:
        pattern = prog["number_pattern"].format(country=re.escape(c.country))
        ok = re.match(pattern, c.number) is not None
        if ok and c.programme == "05" and c.quota_year is not None:
            ok = c.number[0] == str(c.quota_year % 10)
        if not ok:
            found.append(Finding("V06", "F", None, f"number {c.number!r}"))

    if c.action == "C":
        if c.lines:
            found.append(Finding("V14", "F"))
        if on_file is None:
            found.append(Finding("V02", "F"))
        elif on_file.status == "C":
            found.append(Finding("V08", "F"))
        if _fatal(found) or on_file is None:
            return Decision(False, "REJECTED", tuple(found), ())
        return Decision(True, "CANCELLED", (), (CancelCertificate(c.programme, c.number),))

    if not c.ior:
        found.append(Finding("V03", "F"))
    elif not ior_format_ok(c.ior) or ior_all_zero(c.ior):
        found.append(Finding("V04", "F", None, f"IOR {c.ior!r}"))
    for name, value in (("quota_year", c.quota_year), ("effective_date", c.effective),
                        ("expiry_date", c.expiry)):
        if value is None and not any(f.detail.startswith(name) for f in found):
            found.append(Finding("V91", "F", None, f"{name}: mandatory for an add or replace"))
    if c.effective and c.expiry and c.expiry < c.effective:
        found.append(Finding("V09", "F", None, "expiry before effective date"))
    elif c.effective and c.expiry and c.quota_year is not None and not (
            c.effective.year <= c.quota_year <= c.expiry.year):
        # Both programmes have calendar quota years (domain.md 1). The validity must share
        # at least one day with the quota year; it need not start in it, since a country
        # may issue a certificate before the year opens for goods still in transit.
        found.append(Finding("V09", "F", None,
                             f"valid {c.effective} to {c.expiry}, quota year {c.quota_year}"))
    if not c.lines:
        found.append(Finding("V10", "F"))
    seen: set[str] = set()
    for i, ln in enumerate(c.lines, 1):
        ref = ("CERLIN", i, ln.hts_number)
        if ln.hts_number in seen:
            found.append(Finding("V11", "F", ref))
        seen.add(ln.hts_number)
        if ln.quantity <= 0:
            found.append(Finding("V12", "F", ref))
        if prog is not None:
            prefixes = prog.get("hts_prefixes") or []
            if prefixes and not ln.hts_number.startswith(tuple(prefixes)):
                found.append(Finding("V15", "F", ref, f"HTS {ln.hts_number}"))
            allowed = prog.get("preference_hts")
            if allowed and ln.preference_hts not in allowed:
                found.append(Finding("V15", "F", ref, "preference HTS 9823.53.01-.06 needed"))
    if c.action == "A" and on_file is not None:
        found.append(Finding("V01", "F"))
    if c.action == "R":
        if on_file is None:
            found.append(Finding("V02", "F"))
        elif on_file.status == "C":
            found.append(Finding("V08", "F"))
        else:
            new = {ln.hts_number: ln for ln in c.lines}
            for i, old in enumerate(on_file.lines, 1):
                keep = new.get(old.hts)
                if old.used and (keep is None or keep.quantity < old.used or
                                 keep.unit != old.unit):
                    pos = next((j for j, x in enumerate(c.lines, 1)
                                if x.hts_number == old.hts), i)  # the CL record's ordinal
                    found.append(Finding("V07", "F", ("CERLIN", pos, old.hts),
                                         f"{old.used} already used"))
    if _fatal(found):
        return Decision(False, "REJECTED", tuple(found), ())
    assert c.ior and c.quota_year is not None and c.effective and c.expiry
    state = CertState(
        c.programme, c.number, c.country, normalise_ior(c.ior), c.quota_year, c.effective,
        c.expiry, "A", tuple(CertLine(ln.hts_number, ln.quantity, 0, ln.unit,
                                      ln.preference_hts) for ln in c.lines), c.exporter)
    return Decision(True, "REPLACED" if on_file else "ADDED", tuple(found),
                    (PutCertificate(state),))
