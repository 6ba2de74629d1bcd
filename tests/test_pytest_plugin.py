"""The pytest plugin (entry point pytest11) and the harness and case files behind it.

The plugin is installed with the package, so its fixtures are available in this very test
suite; the last test also runs it from a fresh project in a subprocess, as a new user would.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.testing.cases import CaseError, CaseMismatch, column_diff, parse_case
from ecert_abi.testing.harness import Harness
from ecert_abi.transactions import Certificate, CertificateLine, EntrySummary, UsageQuery

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_CASES = sorted((ROOT / "tests" / "cases" / "plugin").glob("*.case"))
ENGINE_CASES = sorted((ROOT / "tests" / "cases" / "engine").glob("*.case"))
FIXTURE = ROOT / "fixtures" / "01-au-certificates.abi"
AS_OF = dt.date(2026, 3, 2)


def without_ledger_section(path: Path) -> str:
    return path.read_text(encoding="ascii").split("\n--- ledger")[0] + "\n"


@pytest.mark.parametrize("ecert_ledger_kind", ["memory", "sqlite"])
def test_ledger_and_processor_fixtures(ecert_ledger: Ledger, ecert_processor: Processor,
                                       ecert_ledger_kind: str) -> None:
    assert isinstance(ecert_ledger, SqliteLedger if ecert_ledger_kind == "sqlite"
                      else MemoryLedger)
    assert ecert_ledger.certificates() == []
    with FIXTURE.open("rb") as stream:
        (reply,) = list(ecert_processor.process_stream(stream))
    assert reply[-2].startswith("Y  2704ECTVB")
    assert {c.number for c in ecert_ledger.certificates()} == {
        "6AU123456", "6AU123457", "6AU123458"}


def test_as_of_defaults_to_today(ecert_as_of: dt.date) -> None:
    assert ecert_as_of == dt.date.today()


@pytest.mark.parametrize("case", PLUGIN_CASES, ids=[p.stem for p in PLUGIN_CASES])
def test_plugin_cases_pass(ecert_assert_case: object, case: Path) -> None:
    ecert_assert_case(case)  # type: ignore[operator]


# The project's engine cases were checked by hand against the reference: the case runner
# must reproduce every reply of those that pass today (their ledger section aside), run as
# the engine tests run them: senders authenticated as the participants they register.
RUNNABLE = [p for p in ENGINE_CASES if "\n--- xfail" not in p.read_text(encoding="ascii")]


@pytest.mark.parametrize("case", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_engine_cases_replay_through_the_harness(ecert_harness: Harness, case: Path) -> None:
    from engine_cases import register_participants

    parsed = parse_case(without_ledger_section(case), case.name)
    ledger = MemoryLedger(parsed.rules())
    register_participants(ledger)
    ecert_harness.assert_case(parsed, ledger, trust_senders=False)


def test_a_differing_reply_fails_with_a_column_aligned_diff(ecert_harness: Harness) -> None:
    good = without_ledger_section(ROOT / "tests/cases/engine/l15_exceeds_balance.case")
    wrong = "E1A       SUMMARY HAS BEEN ADDED                  K9T  0417204100100BRK-7204    |"
    bad = good.replace(
        "E1RF      TRANSACTION DATA REJECTED               K9T  04172041     BRK-7204    |",
        wrong)
    assert bad != good
    with pytest.raises(CaseMismatch) as caught:
        ecert_harness.assert_case(bad)
    message = str(caught.value)
    assert "reply to step 2" in message
    lines = message.splitlines()
    ones = "".join(str(i % 10) for i in range(1, 81))
    assert f"    {ones}" in lines  # the column ruler
    minus = next(i for i, x in enumerate(lines) if x.startswith("  - E1A"))
    assert lines[minus + 1].startswith("  + E1RF")
    carets = lines[minus + 2]
    assert carets[4:8] == "  ^^"  # columns 3-4 differ: disposition and severity
    assert "disposition_type_code, severity_code, narrative_text" in carets
    assert "  - E1 FL15" not in message  # identical lines are context, not changes


def test_column_diff_shows_added_and_missing_lines() -> None:
    text = column_diff(["A" * 80, "B" * 80], ["A" * 80, "B" * 80, "C" * 80])
    assert "  + " + "C" * 80 + "|" in text.splitlines()
    assert not any(x.startswith("  - ") for x in text.splitlines())


@pytest.mark.parametrize("text,message", [
    ("--- input\nX|\n", "'--- as_of' needed before the first input"),
    ("--- as_of 2026-03-02\n--- input\nA" + " " * 79 + "\n--- reply\n", "must end with '|'"),
    ("--- as_of 2026-03-02\n--- input\nA|\n", "the last input has no '--- reply'"),
    ("--- as_of 2026-03-02\n--- input\nA|\n--- reply\nA|\n--- ledger\n", "not run here"),
    ("--- as_of 03/02/2026\n", "is not YYYY-MM-DD"),
    ("--- frobnicate\n", "unknown section"),
    ("# only a comment\n", "no input/reply step"),
])
def test_malformed_case_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(CaseError, match=message):
        parse_case(text, "x.case")


def test_harness_processes_transactions_and_reads_replies() -> None:
    h = Harness(as_of=AS_OF)
    cert = Certificate("A", "AU", "05", "6AU123456", "98-7654321", 2026, dt.date(2026, 1, 1),
                       dt.date(2026, 12, 31), (CertificateLine("0202305015", 100, "KG"),))
    ledger = h.new_ledger()
    added, asked = h.process(cert, UsageQuery("importer", ior="98-7654321"), ledger=ledger)
    assert added.application == "VB" and added.conditions == [] and not added.rejected
    assert asked.application == "EZ" and [r.id for r in asked.records].count("UC") == 1
    (rejected,) = h.process(b"garbage\n")
    assert rejected.rejected and rejected.application == "" and "X01" in rejected.conditions
    with pytest.raises(TypeError, match="cannot process int"):
        h.process(42)
    h.close()


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.from_type(EntrySummary))
def test_the_session_harness_works_inside_given(ecert_harness: Harness,
                                                summary: EntrySummary) -> None:
    (reply,) = ecert_harness.process(summary)
    (disposition,) = reply.dispositions
    assert disposition.entry_number == summary.entry_number


FRESH_TEST = '''\
from hypothesis import given, settings, strategies as st
from ecert_abi.transactions import EntrySummary

@settings(max_examples=25)
@given(st.from_type(EntrySummary))
def test_every_summary_gets_one_disposition(ecert_harness, summary):
    (reply,) = ecert_harness.process(summary)
    (disposition,) = reply.dispositions
    assert disposition.entry_number == summary.entry_number
'''

FRESH_OPTIONS_TEST = '''\
import datetime as dt
from ecert_abi.sqlite_ledger import SqliteLedger

def test_options_reach_the_fixtures(ecert_ledger, ecert_as_of):
    assert isinstance(ecert_ledger, SqliteLedger)
    assert ecert_as_of == dt.date(2026, 3, 4)

def test_a_case_that_passes(ecert_assert_case):
    ecert_assert_case("good.case")

def test_a_case_that_fails(ecert_assert_case):
    ecert_assert_case("bad.case")
'''


def test_a_fresh_project_uses_the_strategies_and_fixtures(tmp_path: Path) -> None:
    """As a new user: a project of its own, only the installed package, plain pytest."""
    (tmp_path / "test_summaries.py").write_text(FRESH_TEST)
    assert len(FRESH_TEST.splitlines()) <= 10
    (tmp_path / "test_options.py").write_text(FRESH_OPTIONS_TEST)
    good = (ROOT / "tests/cases/plugin/wrong_importer_then_query.case").read_text()
    (tmp_path / "good.case").write_text(good)
    (tmp_path / "bad.case").write_text(good.replace("000000050000KG A2026", "000000049999KG A2026"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ecert-ledger=sqlite",
         "--ecert-as-of=2026-03-04", "-W", "error::pytest.PytestUnknownMarkWarning"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 3 passed" in out, out
    assert "test_a_case_that_fails" in out
    assert "  + UCAU056AU123456 0202305015000000050000000000000000000000050000KG" in out
    assert "remaining_quantity" in out  # the caret line names the field that differs
    assert "ecert_abi/testing/" not in out  # the library's frames are hidden: the diff says it
