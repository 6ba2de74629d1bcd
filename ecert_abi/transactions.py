"""Typed transactions assembled from records, and built back into records.

Assembly follows each chapter's grouping rules and collects grouping faults as
`Condition`-coded `Issue`s (it never raises on sender data). Building goes the other way:
a transaction made in code becomes its 80-column lines through the layouts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .record import Record, catalogue


@attrs.frozen
class Issue:
    """A condition found while assembling or deciding: code, where, and a detail text.

    ref is how the reply locates it: ("LINITM", ordinal, line id), ("LICNSE", ...), or None
    for the whole transaction.
    """

    code: str
    ref: tuple[str, int, str] | None = None
    detail: str = ""


# --- entry summary (AE) ---------------------------------------------------------------

@attrs.frozen
class Tariff:
    hts_number: str | None
    quantity: Decimal | None = None
    unit: str | None = None
    duty: Decimal | None = Decimal(0)
    value: int | None = 0


@attrs.frozen
class EntryLine:
    line_id: str
    country_of_origin: str | None
    tariffs: tuple[Tariff, ...] = ()
    export_date: dt.date | None = None
    visa_number: str | None = None
    licence_type: str | None = None
    licence_number: str | None = None
    records: tuple[Record, ...] = attrs.field(default=(), eq=False, repr=False)

    @property
    def claim(self) -> Tariff | None:
        """The tariff record that carries the claimed quantity: the goods HTS.

        A Mexican TPL line reports the chapter 98 number first and the goods second; the
        quantity sits on the goods' 50-record.
        """
        for t in self.tariffs:
            if t.hts_number and not t.hts_number.startswith("98") and t.quantity is not None:
                return t
        return next((t for t in self.tariffs if t.quantity is not None), None)

    @property
    def preference_hts(self) -> str | None:
        return next((t.hts_number for t in self.tariffs
                     if t.hts_number and t.hts_number.startswith("9823")), None)


@attrs.frozen
class EntrySummary:
    """An entry summary as filed: header data, lines, and the records it came from."""

    action: str
    filer_code: str
    entry_number: str
    port: str
    entry_type: str | None
    ior: str | None
    lines: tuple[EntryLine, ...] = ()
    broker_reference: str | None = None
    records: tuple[Record, ...] = attrs.field(default=(), eq=False, repr=False)
    issues: tuple[Issue, ...] = attrs.field(default=(), eq=False)

    def to_records(self) -> list[str]:
        """The AE lines for this summary (10, 11, per line 40/50s/51/52, 90)."""
        cat = catalogue()
        lay = cat.layout
        out = [lay("R10").emit({
            "summary_filing_action_request_code": self.action,
            "entry_filer_code": self.filer_code, "entry_number": self.entry_number,
            "district_port_of_entry": self.port,
            "broker_reference_number": self.broker_reference,
            "entry_type_code": self.entry_type,
            "electronic_signature": "X" if self.action != "D" else None,
            "payment_type_code": "1" if self.action != "D" else None})]
        if self.action == "D":
            return out
        out.append(lay("R11").emit({"importer_of_record_number": self.ior}))
        total = Decimal(0)
        for ln in self.lines:
            out.append(lay("R40").emit({
                "line_item_identifier": ln.line_id, "country_of_origin_code": ln.country_of_origin,
                "date_of_exportation": ln.export_date, "charges_amount": 0,
                "gross_shipping_weight": 0}))
            for t in ln.tariffs:
                out.append(lay("R50").emit({
                    "hts_number": t.hts_number, "duty_amount": t.duty or Decimal(0),
                    "value_of_goods_amount": t.value or 0, "quantity_1": t.quantity,
                    "unit_of_measure_code_1": t.unit}))
                total += t.duty or 0
            if ln.visa_number:
                out.append(lay("R51").emit({"standard_visa_number": ln.visa_number}))
            if ln.licence_type or ln.licence_number:
                out.append(lay("R52").emit({
                    "license_certificate_permit_type_code": ln.licence_type,
                    "license_certificate_permit_number": ln.licence_number}))
        out.append(lay("R90").emit({
            "grand_total_duty_amount": total, "grand_total_user_fee_amount": Decimal(0),
            "grand_total_ir_tax_amount": Decimal(0), "grand_total_ad_duty_amount": Decimal(0),
            "grand_total_cv_duty_amount": Decimal(0)}))
        return out


def _v(r: Record, name: str) -> Any:
    return r.get(name)


def assemble_entry_summary(records: Sequence[Record]) -> EntrySummary:
    """Group one AE transaction (a 10 and what follows it) into an EntrySummary.

    Grouping faults become issues with CBP's codes: 100 (no 11), 400 (no line), 431 (a
    line without 50), 701 (no 90), A04 (out of sequence), A17 (second 52 on a line), A24
    (second 51), A11 (over 32 tariff records), 518 (duplicate line identifier), B24
    (a delete carrying more than its 10).
    """
    head = records[0]
    issues: list[Issue] = []
    action = _v(head, "summary_filing_action_request_code") or ""
    lines: list[dict[str, Any]] = []
    ior = None
    seen_11 = seen_90 = False
    seen_ids: set[str] = set()
    for pos, r in enumerate(records[1:], 2):
        rid = r.id
        if seen_90:
            issues.append(Issue("A04", None, f"record {rid} after the 90-record"))
            continue
        if action == "D":
            issues.append(Issue("B24", None, f"a delete carries a {rid}-record"))
            break
        if rid == "11":
            if seen_11 or pos != 2:
                issues.append(Issue("A04", None, "11-record not immediately after the 10"))
            seen_11 = True
            ior = _v(r, "importer_of_record_number")
        elif rid == "40":
            lid = _v(r, "line_item_identifier") or ""
            ref = ("LINITM", len(lines) + 1, lid)
            if lid in seen_ids:
                issues.append(Issue("518", ref, f"line {lid} repeated"))
            seen_ids.add(lid)
            lines.append({"rec": r, "records": [r], "tariffs": [], "visa": None, "lic": None,
                          "ref": ref})
        elif rid in ("50", "51", "52"):
            if not lines:
                issues.append(Issue("A04", None, f"{rid}-record before any 40-record"))
                continue
            ln = lines[-1]
            ln["records"].append(r)
            if rid == "50":
                if ln["visa"] is not None or ln["lic"] is not None:
                    issues.append(Issue("A04", ln["ref"], "50-record after the 51/52"))
                if len(ln["tariffs"]) == 32:
                    issues.append(Issue("A11", ln["ref"], "more than 32 tariff records"))
                ln["tariffs"].append(Tariff(
                    _v(r, "hts_number"), _v(r, "quantity_1"), _v(r, "unit_of_measure_code_1"),
                    _v(r, "duty_amount"), _v(r, "value_of_goods_amount")))
            elif rid == "51":
                if ln["visa"] is not None:
                    issues.append(Issue("A24", ln["ref"], "second 51-record on the line"))
                ln["visa"] = r
            else:
                if ln["lic"] is not None:
                    issues.append(Issue("A17", ln["ref"], "second 52-record on the line"))
                else:
                    ln["lic"] = r
        elif rid == "90":
            seen_90 = True
        elif rid == "10":
            issues.append(Issue("A04", None, "10-record inside a summary"))
        elif lines:
            lines[-1]["records"].append(r)  # carried-through line records stay with the line
    if action in ("A", "R"):
        if not seen_11:
            issues.append(Issue("100", None, "no 11-record"))
        if not lines:
            issues.append(Issue("400", None, "no line item"))
        if not seen_90:
            issues.append(Issue("701", None, "no 90-record"))
    built = []
    for ln in lines:
        if not ln["tariffs"]:
            issues.append(Issue("431", ln["ref"], "line without a 50-record"))
        lic = ln["lic"]
        r40 = ln["rec"]
        built.append(EntryLine(
            line_id=_v(r40, "line_item_identifier") or "",
            country_of_origin=_v(r40, "country_of_origin_code"),
            tariffs=tuple(ln["tariffs"]), export_date=_v(r40, "date_of_exportation"),
            visa_number=_v(ln["visa"], "standard_visa_number") if ln["visa"] else None,
            licence_type=_v(lic, "license_certificate_permit_type_code") if lic else None,
            licence_number=_v(lic, "license_certificate_permit_number") if lic else None,
            records=tuple(ln["records"])))
    return EntrySummary(
        action=action, filer_code=_v(head, "entry_filer_code") or "",
        entry_number=_v(head, "entry_number") or "", port=_v(head, "district_port_of_entry") or "",
        entry_type=_v(head, "entry_type_code"), ior=ior, lines=tuple(built),
        broker_reference=_v(head, "broker_reference_number"), records=tuple(records),
        issues=tuple(issues))


# --- certificate transmission (VA) ----------------------------------------------------

@attrs.frozen
class CertificateLine:
    hts_number: str
    quantity: int
    unit: str
    preference_hts: str | None = None


@attrs.frozen
class Certificate:
    """A certificate as a country transmits it (action A add, R replace, C cancel)."""

    action: str
    country: str
    programme: str
    number: str
    ior: str | None
    quota_year: int | None
    effective: dt.date | None
    expiry: dt.date | None
    lines: tuple[CertificateLine, ...] = ()
    exporter: str | None = None
    records: tuple[Record, ...] = attrs.field(default=(), eq=False, repr=False)
    issues: tuple[Issue, ...] = attrs.field(default=(), eq=False)

    def to_records(self) -> list[str]:
        lay = catalogue().layout
        out = [lay("CH").emit({
            "action_code": self.action, "country_code": self.country,
            "programme_code": self.programme, "certificate_number": self.number,
            "importer_of_record_number": self.ior, "quota_year": self.quota_year,
            "effective_date": self.effective, "expiry_date": self.expiry,
            "exporter_name": self.exporter})]
        for ln in self.lines:
            out.append(lay("CL").emit({
                "hts_number": ln.hts_number, "quantity": ln.quantity,
                "unit_of_measure_code": ln.unit, "preference_hts_number": ln.preference_hts}))
        return out


def assemble_certificate(records: Sequence[Record]) -> Certificate:
    head = records[0]
    issues: list[Issue] = []
    lines = []
    for r in records[1:]:
        if r.id == "CL":
            lines.append(CertificateLine(_v(r, "hts_number") or "", _v(r, "quantity") or 0,
                                         _v(r, "unit_of_measure_code") or "",
                                         _v(r, "preference_hts_number")))
        else:
            issues.append(Issue("V16", None, f"record {r.id} in a certificate"))
    if head.id != "CH":
        issues.append(Issue("V16", None, "transaction does not start with a CH-record"))
    return Certificate(
        action=_v(head, "action_code") or "", country=_v(head, "country_code") or "",
        programme=_v(head, "programme_code") or "", number=_v(head, "certificate_number") or "",
        ior=_v(head, "importer_of_record_number"), quota_year=_v(head, "quota_year"),
        effective=_v(head, "effective_date"), expiry=_v(head, "expiry_date"),
        lines=tuple(lines), exporter=_v(head, "exporter_name"), records=tuple(records),
        issues=tuple(issues))


# --- usage queries (EC, VQ) ------------------------------------------------------------

@attrs.frozen
class UsageQuery:
    """An importer (EC/UQ) or country (VQ/CQ) usage query; unset filters are None."""

    kind: str  # "importer" or "country"
    ior: str | None = None
    country: str | None = None
    programme: str | None = None
    number: str | None = None
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    since: int | None = None
    continuation: str | None = None
    records: tuple[Record, ...] = attrs.field(default=(), eq=False, repr=False)
    issues: tuple[Issue, ...] = attrs.field(default=(), eq=False)

    def to_records(self) -> list[str]:
        lay = catalogue().layout
        common = {"programme_code": self.programme, "certificate_number": self.number,
                  "from_date": self.from_date, "to_date": self.to_date,
                  "continuation_key": self.continuation, "importer_of_record_number": self.ior,
                  "country_code": self.country}
        if self.kind == "importer":
            return [lay("UQ").emit(common)]
        return [lay("CQ").emit({**common, "changed_since_sequence": self.since})]


def assemble_query(records: Sequence[Record]) -> UsageQuery:
    r = records[0]
    issues = [Issue("V16", None, f"record {x.id} after a query") for x in records[1:]]
    return UsageQuery(
        kind="importer" if r.id == "UQ" else "country", ior=_v(r, "importer_of_record_number"),
        country=_v(r, "country_code"), programme=_v(r, "programme_code"),
        number=_v(r, "certificate_number"), from_date=_v(r, "from_date"),
        to_date=_v(r, "to_date"), since=_v(r, "changed_since_sequence"),
        continuation=_v(r, "continuation_key"), records=tuple(records), issues=tuple(issues))


ASSEMBLERS = {
    "entry_summary": assemble_entry_summary,
    "certificate_transmission": assemble_certificate,
    "importer_usage_query": assemble_query,
    "country_usage_query": assemble_query,
}


# --- AX replies, read back by broker software ------------------------------------------

@attrs.frozen
class Disposition:
    """One summary's outcome in an AX reply: accepted?, its conditions and final text."""

    entry_filer_code: str | None
    entry_number: str | None
    accepted: bool
    narrative: str
    conditions: tuple[tuple[str, str, str], ...]  # (severity, code, narrative)


def read_ax_reply(records: Iterable[Record]) -> list[Disposition]:
    """Dispositions of the summaries in an AX reply batch, in order."""
    out: list[Disposition] = []
    conds: list[tuple[str, str, str]] = []
    for r in records:
        if r.id != "E1":
            continue
        v: Mapping[str, Any] = r.values
        disp = v.get("disposition_type_code")
        if disp in ("A", "R"):
            out.append(Disposition(v.get("entry_filer_code"), v.get("entry_number"), disp == "A",
                                   v.get("narrative_text") or "", tuple(conds)))
            conds = []
        else:
            conds.append((v.get("severity_code") or "", v.get("condition_code") or "",
                          v.get("narrative_text") or ""))
    return out
