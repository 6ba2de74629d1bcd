"""Example batches and their replies for the spec chapters, computed by the engine itself so
the documentation cannot drift from the code (a test runs `ecert-abi specs --check`)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from .envelope import input_batch
from .identifiers import check_digit
from .layout import Chapter
from .ledger import MemoryLedger
from .processor import Processor
from .transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
)

AS_OF = dt.date(2026, 3, 2)
IOR = "98-7654321"


def _cert_batch() -> list[str]:
    certs = [
        Certificate("A", "AU", "05", "6AU123456", IOR, 2026, dt.date(2026, 1, 15),
                    dt.date(2026, 12, 31), (CertificateLine("0202305015", 50000, "KG"),),
                    exporter="AU MEAT EXPORTS PTY"),
        Certificate("A", "AU", "05", "6NZ123457", IOR, 2026, dt.date(2026, 1, 15),
                    dt.date(2026, 12, 31), (CertificateLine("0202305015", 0, "KG"),)),
    ]
    return input_batch(site="EAU1", sender="AUC", password="AUPASS", application="VA",
                       date=dt.date(2026, 2, 1),
                       blocks=[("2704", "ECT", [r for c in certs for r in c.to_records()])])


def _ae_batch() -> list[str]:
    def line(lid: str, qty: str, cert: str = "6AU123456") -> EntryLine:
        return EntryLine(lid, "AU", (Tariff("0202305015", Decimal(qty), "KG",
                                            Decimal("1234.56"), 45000),),
                         dt.date(2026, 2, 20), licence_type="05", licence_number=cert)

    n1, n2 = "0417203", "0417204"
    summaries = [
        EntrySummary("A", "K9T", n1 + str(check_digit("K9T", n1)), "2704", "02", IOR,
                     (line("001", "18500"),), "BRK-0815"),
        EntrySummary("A", "K9T", n2 + str(check_digit("K9T", n2)), "2704", "02", IOR,
                     (line("001", "1000"), line("002", "40000")), "BRK-0816"),
    ]
    return input_batch(site="2704", sender="K9T", password="K9TPAS", application="AE",
                       date=AS_OF, blocks=[("2704", "K9T",
                                            [r for s in summaries for r in s.to_records()])])


def _query_batch(kind: str) -> list[str]:
    if kind == "importer":
        return input_batch(site="2704", sender="K9T", password="K9TPAS", application="EC",
                           date=AS_OF, blocks=[("2704", "K9T",
                                                UsageQuery("importer", ior=IOR).to_records())])
    return input_batch(site="EAU1", sender="AUC", password="AUPASS", application="VQ",
                       date=AS_OF, blocks=[("2704", "ECT",
                                            UsageQuery("country", country="AU").to_records())])


def example(name: str) -> tuple[list[str], list[str]]:
    """(input lines, reply lines) of a chapter's example, run on a fresh in-memory ledger."""
    ledger = MemoryLedger()
    proc = Processor(ledger, AS_OF, trust_senders=True)  # the layouts, not access control
    batches = {"certificate_transmission": [_cert_batch()],
               "entry_summary": [_cert_batch(), _ae_batch()],
               "importer_usage_query": [_cert_batch(), _ae_batch(), _query_batch("importer")],
               "country_usage_query": [_cert_batch(), _ae_batch(), _query_batch("country")]}
    reply: list[str] = []
    for lines in batches[name]:
        data = ("\n".join(lines) + "\n").encode("ascii")
        reply = next(iter(proc.process_stream(io.BytesIO(data))))
    return batches[name][-1], reply


def _block(lines: list[str]) -> str:
    ruler = "".join(str(i % 10) for i in range(1, 81))
    return "```\n" + ruler + "\n" + "\n".join(f"{x}|" for x in lines) + "\n```"


def example_section(chapter: Chapter) -> str:
    name = str(chapter.settings["example"])
    given, reply = example(name)
    intro = {
        "certificate_transmission": "Australia adds two certificates; the second has a "
        "number of another country and a zero quantity, so it is rejected.",
        "entry_summary": "With the certificates of the transmission example on file, a "
        "broker files two summaries: the first draws 18,500 kg; the second's line 002 asks "
        "more than remains, so the whole summary is rejected and nothing is drawn.",
        "importer_usage_query": "After the entry summary example, the broker asks for its "
        "importer's usage.",
        "country_usage_query": "After the entry summary example, Australia asks for the "
        "usage of its certificates.",
    }[name]
    return "\n".join(["## Example", "", intro, "", "Input (`|` marks column 81):", "",
                      _block(given), "", "Reply:", "", _block(reply), ""])
