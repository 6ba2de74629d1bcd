"""Engine test vectors: loader, runner, ledger rendering and a drafting helper.

A case file (tests/cases/engine/*.case) is a sequence of sections; a section starts with a
line beginning `--- `:

    # comment lines start with '#' (anywhere)
    --- profile AU L04,L15     country AU chooses these F/I codes as informational
    --- limit BEEF-AU 60000    a quota pool's limit for this case (Rules.pools)
    --- xfail BUG: ...         the case shows a library bug (strict xfail)
    --- as_of 2026-03-02       processing date of the steps that follow
    --- input                  one or more input batches (80-column records)
    --- reply                  the exact reply batches expected for that input
    ... more (as_of,) input, reply steps, all against one ledger ...
    --- ledger                 the ledger's final state, in the line format of ledger_lines()

Every record line (input and reply) ends with `|` in column 81; the loader strips it and
asserts the record is exactly 80 columns. The ledger section is plain text. Batches are
sent by authenticated participants (`participants()`: the broker K9T and one sender per
participating country), so a country's transmissions are checked against its own code.

The expected replies were checked by hand against the CATAIR subset reference
(/work/shared/reference/catair-subset.md: E0/E1 order 6.1, E1 layout and final narratives
6.3, version 00100, condition narratives and severities section 9) and the ecert-abi layouts
for the applications of our own design (VA/VB, EC/EZ, VQ/VR). `draft_case()` writes a first
draft from the library's own output: never freeze a draft without checking every line.

Drafting a new case from a Python prompt (run from tests/, or with tests/ on sys.path):

    >>> from engine_cases import *
    >>> text = draft_case([
    ...     (D(2026, 2, 1), certs_batch(beef_cert("AU", "6AU123456", 50000))),
    ...     (D(2026, 3, 2), summaries_batch(summary(
    ...         "0417203", beef_line("001", "AU", "6AU123456", "18500"), ior=IOR_B))),
    ... ], comment="L04: the summary's IOR is not the certificate's.")
    >>> (CASES_DIR / "my_case.case").write_text(text)  # after checking every reply line

Lines that a builder cannot make (a missing 11-record, a second 52-record, an unknown
record) are made by editing the list of 80-column strings before drafting.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from unittest import mock

import attrs

from ecert_abi import access
from ecert_abi.access import Participant
from ecert_abi.engine import Rules, default_rules
from ecert_abi.envelope import frame, input_batch
from ecert_abi.identifiers import check_digit, normalise_ior
from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.processor import Processor, digest
from ecert_abi.record import read_lines
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
)

CASES_DIR = Path(__file__).parent / "cases" / "engine"
WIDTH = 80
MARK = "|"


class CaseError(ValueError):
    """A malformed case file."""


@attrs.frozen
class Step:
    as_of: dt.date
    input: tuple[str, ...]
    reply: tuple[str, ...]
    line: int  # where the step's input starts in the file


@attrs.frozen
class Case:
    name: str
    steps: tuple[Step, ...]
    profiles: tuple[tuple[str, tuple[str, ...]], ...] = ()
    limits: tuple[tuple[str, int], ...] = ()
    ledger: tuple[str, ...] | None = None
    xfail: str | None = None

    def rules(self) -> Rules:
        return case_rules(dict(self.profiles), dict(self.limits))


def case_rules(profiles: dict[str, Sequence[str]] | None = None,
               limits: dict[str, int] | None = None) -> Rules:
    """default_rules() with the given informational profiles and pool limits."""
    rules = default_rules()
    for country, codes in (profiles or {}).items():
        rules = rules.with_informational(country, codes)
    if limits:
        unknown = set(limits) - {p.name for p in rules.pools}
        if unknown:
            raise CaseError(f"unknown pool(s) {sorted(unknown)}")
        rules = attrs.evolve(rules, pools=tuple(
            attrs.evolve(p, limit=limits[p.name]) if p.name in limits else p
            for p in rules.pools))
    return rules


def _record(raw: str, where: str) -> str:
    if len(raw) != WIDTH + 1 or raw[WIDTH] != MARK:
        raise CaseError(f"{where}: a record line must be 80 columns and end with '|' in"
                        f" column 81, got {len(raw)} characters: {raw!r}")
    return raw[:WIDTH]


def parse_case(text: str, name: str = "<case>") -> Case:
    """A Case from the text of a case file (see the module docstring)."""
    profiles: list[tuple[str, tuple[str, ...]]] = []
    limits: list[tuple[str, int]] = []
    steps: list[Step] = []
    xfail: str | None = None
    ledger: list[str] | None = None
    as_of: dt.date | None = None
    section: str | None = None
    inp: list[str] = []
    reply: list[str] = []
    start = 0

    def close_step() -> None:
        nonlocal inp, reply
        if section == "reply":
            assert as_of is not None
            steps.append(Step(as_of, tuple(inp), tuple(reply), start))
            inp, reply = [], []

    for n, raw in enumerate(text.split("\n"), 1):
        where = f"{name}:{n}"
        if raw.startswith("#") or (raw.strip() == "" and section != "ledger"):
            continue
        if raw.startswith("--- "):
            words = raw[4:].split(None, 1)
            head, rest = words[0], (words[1] if len(words) > 1 else "")
            if section == "input" and head != "reply":
                raise CaseError(f"{where}: '--- input' must be followed by '--- reply'")
            if section == "ledger":
                raise CaseError(f"{where}: '--- ledger' must be the last section")
            close_step()
            section = None
            if head == "profile":
                country, _, codes = rest.partition(" ")
                profiles.append((country, tuple(c for c in codes.replace(" ", "").split(",")
                                                if c)))
            elif head == "limit":
                pool, value = rest.split()
                limits.append((pool, int(value)))
            elif head == "xfail":
                xfail = rest
            elif head == "as_of":
                try:
                    as_of = dt.date.fromisoformat(rest.strip())
                except ValueError:
                    raise CaseError(f"{where}: bad as_of {rest!r}") from None
            elif head == "input":
                if as_of is None:
                    raise CaseError(f"{where}: '--- as_of' needed before the first input")
                section, start = "input", n
            elif head == "reply":
                if not inp:
                    raise CaseError(f"{where}: '--- reply' without an input")
                section = "reply"
            elif head == "ledger":
                section, ledger = "ledger", []
            else:
                raise CaseError(f"{where}: unknown section {raw!r}")
            continue
        if section == "input":
            inp.append(_record(raw, where))
        elif section == "reply":
            reply.append(_record(raw, where))
        elif section == "ledger":
            assert ledger is not None
            if raw.strip():
                ledger.append(raw.rstrip())
        else:
            raise CaseError(f"{where}: text outside a section: {raw!r}")
    if section == "input":
        raise CaseError(f"{name}: the last input has no '--- reply'")
    close_step()
    if not steps:
        raise CaseError(f"{name}: no input/reply step")
    return Case(name, tuple(steps), tuple(profiles), tuple(limits),
                tuple(ledger) if ledger is not None else None, xfail)


def load_case(path: Path) -> Case:
    return parse_case(path.read_bytes().decode("ascii"), path.stem)


def case_paths() -> list[Path]:
    return sorted(CASES_DIR.glob("*.case"))


# --- running -------------------------------------------------------------------------

def open_backend(kind: str, directory: Path | None, rules: Rules) -> Ledger:
    """A fresh ledger: 'memory' or 'sqlite' (a file in `directory`)."""
    if kind == "memory":
        return MemoryLedger(rules)
    if kind == "sqlite":
        assert directory is not None
        return SqliteLedger(str(directory / "ledger.db"), rules)
    raise ValueError(kind)


@cache
def participants() -> tuple[Participant, ...]:
    """The senders the builders below use: the broker (BROKER), acting for the importers
    IOR_A, IOR_B and IOR_NONE, and each participating country (site `E<cc>1`, ID `<cc>C`,
    password `<cc>PASS`, as `country_batch` makes them). Hashed with a tiny scrypt cost
    (the cost is kept in the hash) so that checking stays cheap."""
    iors = frozenset(normalise_ior(i) for i in (IOR_A, IOR_B, IOR_NONE))
    with mock.patch.object(access, "SCRYPT_N", 2):
        out = [Participant(BROKER["site"], BROKER["sender"], "filer", BROKER["sender"],
                           access.hash_password(BROKER["password"]), iors=iors)]
        out += [Participant(f"E{cc}1", f"{cc}C", "country", cc,
                            access.hash_password(f"{cc}PASS"))
                for cc in ("AR", "AU", "MX", "NZ", "UY")]
    return tuple(out)


def register_participants(ledger: Ledger) -> None:
    """Register `participants()` in a ledger that does not know them yet."""
    missing = [p for p in participants() if ledger.participant(p.site, p.sender_id) is None]
    if missing:
        with ledger.transaction() as tx:
            for p in missing:
                tx.put_participant(p)


def process_lines(ledger: Ledger, lines: Iterable[str], as_of: dt.date,
                  rules: Rules | None = None) -> list[str]:
    """Feed input records (one or more batches) through a Processor, its senders
    authenticated as `participants()`; the reply lines."""
    register_participants(ledger)
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    proc = Processor(ledger, as_of, rules)
    out: list[str] = []
    for reply in proc.process_stream(io.BytesIO(data)):
        out.extend(reply)
    return out


def batch_digests(lines: Iterable[str]) -> list[str]:
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    return [digest(b) for b in frame(read_lines(io.BytesIO(data)))]


def run_case(case: Case, ledger: Ledger) -> list[list[str]]:
    """Run every step of a case; the replies actually produced, one list per step."""
    rules = case.rules()
    return [process_lines(ledger, s.input, s.as_of, rules) for s in case.steps]


# --- the ledger in readable lines ----------------------------------------------------

def _opt(value: object) -> str:
    return "-" if value is None else str(value).rstrip()


def ledger_lines(ledger: Ledger) -> list[str]:
    """The whole ledger state as text lines (the `--- ledger` section's format).

        cert <programme> <number> <country> ior=<IOR> year=<quota year>
             valid=<effective>..<expiry> status=<A|C> [exporter="..."]
          line <hts> <unit> issued=<n> used=<n> [pref=<chapter 98 HTS>]   (in HTS order)
        summary <filer> <entry number> port=<port> ref=<broker ref|-> ior=<IOR|->
                version=<n>
          claim <line id> <programme> <number> <hts> <quantity> [pools=<pool>:<year>:<n>,...]
        pool <name> <year> <fill>                    (pools with a non-zero fill)
        journal <seq> <D|C> <filer> <entry> <line id> <programme> <number> <hts> <qty>
                as_of=<date> ior=<IOR|->

    (Each item is one line; the wrapping above is for reading only.) IORs are shown
    without trailing spaces. Batch digests are left out of the journal lines.
    """
    out: list[str] = []
    for c in sorted(ledger.certificates(), key=lambda c: (c.programme, c.number)):
        head = (f"cert {c.programme} {c.number} {c.country} ior={_opt(c.ior)}"
                f" year={c.quota_year} valid={c.effective}..{c.expiry} status={c.status}")
        if c.exporter is not None:
            head += f' exporter="{c.exporter}"'
        out.append(head)
        for ln in sorted(c.lines, key=lambda x: x.hts):  # line order is not state
            item = f"  line {ln.hts} {ln.unit} issued={ln.issued} used={ln.used}"
            if ln.preference_hts is not None:
                item += f" pref={ln.preference_hts}"
            out.append(item)
    for s in sorted(ledger.summaries(), key=lambda s: (s.filer, s.entry_number)):
        out.append(f"summary {s.filer} {s.entry_number} port={s.port}"
                   f" ref={_opt(s.broker_reference)} ior={_opt(s.ior)} version={s.version}")
        for cl in s.claims:
            item = f"  claim {cl.line_id} {cl.programme} {cl.number} {cl.hts} {cl.quantity}"
            if cl.pools:
                item += " pools=" + ",".join(f"{p}:{y}:{a}" for p, y, a in cl.pools)
            out.append(item)
    for (pool, year), fill in sorted(ledger.pool_fills().items()):
        out.append(f"pool {pool} {year} {fill}")
    for j in ledger.journal():
        out.append(f"journal {j.seq} {j.action} {j.filer} {j.entry_number} {j.line_id}"
                   f" {j.programme} {j.number} {j.hts} {j.quantity} as_of={j.as_of}"
                   f" ior={_opt(j.ior)}")
    return out


# --- building inputs (as fixtures/build.py does) --------------------------------------

D = dt.date
BROKER = {"site": "2704", "sender": "K9T", "password": "K9TPAS"}
IOR_A = "98-7654321"
IOR_B = "12-3456789AB"
IOR_NONE = "11-1111111"       # an importer with no certificate
BEEF_HTS = "0202305015"
REGISTERED = D(2026, 2, 1)      # default transmission date of certificate batches
FILED = D(2026, 3, 2)           # default transmission date of AE batches
ASKED = D(2026, 3, 4)           # default transmission date of queries
VALID_FROM, VALID_TO = D(2026, 1, 15), D(2026, 12, 31)
EXPORTED = D(2026, 2, 20)


def entry(n: str, filer: str = "K9T") -> str:
    """A 7-digit transaction number with its check digit appended."""
    return n + str(check_digit(filer, n))


def beef_cert(country: str, number: str, qty: int = 50000, *hts: str, ior: str | None = IOR_A,
              action: str = "A", year: int = 2026, effective: dt.date = VALID_FROM,
              expiry: dt.date = VALID_TO, unit: str = "KG") -> Certificate:
    return Certificate(action, country, "05", number, ior, year, effective, expiry,
                       tuple(CertificateLine(h, qty, unit) for h in hts or (BEEF_HTS,)),
                       exporter=f"{country} MEAT EXPORTS PTY")


def cancel(country: str, number: str, programme: str = "05") -> Certificate:
    return Certificate("C", country, programme, number, None, None, None, None)


def beef_line(lid: str, country: str, cert: str | None, qty: str, hts: str = BEEF_HTS,
              unit: str = "KG", ctype: str | None = "05") -> EntryLine:
    return EntryLine(lid, country, (Tariff(hts, Decimal(qty), unit, Decimal("1234.56"), 45000),),
                     EXPORTED, licence_type=ctype if cert else None, licence_number=cert)


def summary(n: str, *lines: EntryLine, action: str = "A", ior: str | None = IOR_A,
            entry_type: str = "02", ref: str | None = None, filer: str = "K9T",
            port: str = "2704") -> EntrySummary:
    return EntrySummary(action, filer, entry(n, filer), port, entry_type, ior, lines,
                        ref if ref is not None else f"BRK-{n[-4:]}")


def country_batch(country: str, records: Sequence[str], date: dt.date = REGISTERED
                  ) -> list[str]:
    return input_batch(site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                       application="VA", date=date, blocks=[("2704", "ECT", list(records))])


def certs_batch(*certs: Certificate, country: str | None = None,
                date: dt.date = REGISTERED) -> list[str]:
    return country_batch(country or certs[0].country,
                         [r for c in certs for r in c.to_records()], date)


def broker_batch(application: str, date: dt.date,
                 blocks: Sequence[tuple[str, str, Sequence[str]]]) -> list[str]:
    return input_batch(site=BROKER["site"], sender=BROKER["sender"],
                       password=BROKER["password"], application=application, date=date,
                       blocks=blocks)


def ae_batch(records: Sequence[str], date: dt.date = FILED, filer: str = "K9T"
             ) -> list[str]:
    return broker_batch("AE", date, [("2704", filer, list(records))])


def summaries_batch(*summaries: EntrySummary, date: dt.date = FILED) -> list[str]:
    return ae_batch([r for s in summaries for r in s.to_records()], date)


def importer_query(ior: str = IOR_A, date: dt.date = ASKED, **filters: object
                   ) -> list[str]:
    q = UsageQuery("importer", ior=ior, **filters)  # type: ignore[arg-type]
    return broker_batch("EC", date, [("2704", "K9T", q.to_records())])


def country_query(country: str = "AU", date: dt.date = ASKED, **filters: object
                  ) -> list[str]:
    q = UsageQuery("country", country=country, **filters)  # type: ignore[arg-type]
    return input_batch(site=f"E{country}1", sender=f"{country}C", password=f"{country}PASS",
                       application="VQ", date=date, blocks=[("2704", "ECT", q.to_records())])


# --- drafting ------------------------------------------------------------------------

def _marked(lines: Iterable[str]) -> list[str]:
    out = []
    for line in lines:
        assert len(line) == WIDTH, f"not 80 columns: {line!r}"
        out.append(line + MARK)
    return out


def draft_case(steps: Sequence[tuple[dt.date, Sequence[str]]], *, comment: str = "",
               profiles: dict[str, Sequence[str]] | None = None,
               limits: dict[str, int] | None = None, xfail: str | None = None) -> str:
    """A DRAFT case file: the given inputs with the replies and ledger the library produces
    today (MemoryLedger). Check every reply line by hand against the reference and fix it
    where the library is wrong (then add `--- xfail BUG: ...`) before saving the file."""
    rules = case_rules(profiles, limits)
    ledger = MemoryLedger(rules)
    text: list[str] = [f"# {c}".rstrip() for c in comment.strip().splitlines()]
    for country, codes in (profiles or {}).items():
        text.append(f"--- profile {country} {','.join(codes)}")
    for pool, limit in (limits or {}).items():
        text.append(f"--- limit {pool} {limit}")
    if xfail:
        text.append(f"--- xfail {xfail}")
    last: dt.date | None = None
    for as_of, lines in steps:
        if as_of != last:
            text.append(f"--- as_of {as_of.isoformat()}")
            last = as_of
        text.append("--- input")
        text += _marked(lines)
        text.append("--- reply")
        text += _marked(process_lines(ledger, lines, as_of, rules))
    text.append("--- ledger")
    text += ledger_lines(ledger)
    return "\n".join(text) + "\n"
