"""Engine test vectors: the builders, senders and ledgers they run with.

The case files (tests/cases/engine/*.case) are in the format of `ecert_abi.testing.cases`
(profile, limit, xfail, as_of, input/reply steps and a `--- ledger` section in the line
format of `ledger_lines()`), which this module re-exports; here every record must be
exactly 80 columns. Batches are sent by authenticated participants (`participants()`: the
broker K9T and one sender per participating country), so a country's transmissions are
checked against its own code.

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
    ... ], comment="L04: the summary's IOR is not the certificate's.",
    ...     participants=participants())
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

from ecert_abi import access
from ecert_abi.access import Participant
from ecert_abi.engine import Rules
from ecert_abi.envelope import frame, input_batch
from ecert_abi.identifiers import check_digit, normalise_ior
from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.processor import digest
from ecert_abi.record import read_lines
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.testing import cases

# The case format is the library's; re-exported for the tests that import it from here.
from ecert_abi.testing.cases import MARK as MARK
from ecert_abi.testing.cases import WIDTH as WIDTH
from ecert_abi.testing.cases import Case as Case
from ecert_abi.testing.cases import CaseError as CaseError
from ecert_abi.testing.cases import Step as Step
from ecert_abi.testing.cases import case_rules as case_rules
from ecert_abi.testing.cases import draft_case as draft_case
from ecert_abi.testing.cases import ledger_lines as ledger_lines
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
)

CASES_DIR = Path(__file__).parent / "cases" / "engine"


def parse_case(text: str, name: str = "<case>") -> Case:
    """The library's parser, every record exactly 80 columns: a slip in a hand-written
    record fails the case file instead of testing something else."""
    return cases.parse_case(text, name, width=WIDTH)


def load_case(path: Path) -> Case:
    return cases.load_case(path, width=WIDTH)


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
    return cases.process_lines(ledger, lines, as_of, rules, trust_senders=False)


def batch_digests(lines: Iterable[str]) -> list[str]:
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    return [digest(b) for b in frame(read_lines(io.BytesIO(data)))]


def run_case(case: Case, ledger: Ledger) -> list[list[str]]:
    """Run every step of a case, senders authenticated as `participants()`; the replies
    actually produced, one list per step (the tests compare them and the ledger)."""
    register_participants(ledger)
    return list(cases.step_replies(case, ledger, trust_senders=False))


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
