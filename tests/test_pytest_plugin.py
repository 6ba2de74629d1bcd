"""The pytest plugin (entry point pytest11) and the harness and case files behind it.

The plugin is installed with the package, so its fixtures are available in this very test
suite; the last test also runs it from a fresh project in a subprocess, as a new user would.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.testing.cases import (
    CaseError,
    CaseMismatch,
    column_diff,
    draft_case,
    ledger_diff,
    load_case,
    parse_case,
)
from ecert_abi.testing.harness import Harness
from ecert_abi.transactions import Certificate, CertificateLine, EntrySummary, UsageQuery

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_CASES = sorted((ROOT / "tests" / "cases" / "plugin").glob("*.case"))
ENGINE_CASES = sorted((ROOT / "tests" / "cases" / "engine").glob("*.case"))
FIXTURE = ROOT / "fixtures" / "01-au-certificates.abi"
AS_OF = dt.date(2026, 3, 2)
PLUGIN_CASE = ROOT / "tests/cases/plugin/wrong_importer_then_query.case"
# The plugin case's ledger at the end, checked by hand: the certificate as registered, and
# nothing drawn by the rejected claim (no summary, no pool fill, no journal).
LEDGER = ["cert 05 6AU123456 AU ior=98-7654321 year=2026 valid=2026-01-15..2026-12-31"
          ' status=A exporter="AU MEAT EXPORTS PTY"',
          "  line 0202305015 KG issued=50000 used=0"]


def with_ledger(text: str, lines: list[str]) -> str:
    return text + "--- ledger\n" + "".join(line + "\n" for line in lines)


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
# must reproduce every reply and final ledger of those that pass today, run as the engine
# tests run them: senders authenticated as the participants they register.
RUNNABLE = [p for p in ENGINE_CASES if "\n--- xfail" not in p.read_text(encoding="ascii")]


@pytest.mark.parametrize("case", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_engine_cases_replay_through_the_harness(ecert_harness: Harness, case: Path) -> None:
    from engine_cases import register_participants

    parsed = load_case(case)
    assert parsed.ledger is not None
    ledger = MemoryLedger(parsed.rules())
    register_participants(ledger)
    ecert_harness.assert_case(parsed, ledger, trust_senders=False)


def test_a_differing_reply_fails_with_a_column_aligned_diff(ecert_harness: Harness) -> None:
    good = (ROOT / "tests/cases/engine/l15_exceeds_balance.case").read_text()
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
    ("--- as_of 2026-03-02\n--- input\nA|\n--- reply\nA|\n--- ledger\npool X 2026 1\n"
     "--- input\n", "'--- ledger' must be the last section"),
    ("--- xfail\n", "'--- xfail' needs a reason"),
    ("--- limit BEEF-AU lots\n", "expected '--- limit POOL NUMBER'"),
    ("--- as_of 03/02/2026\n", "is not YYYY-MM-DD"),
    ("--- frobnicate\n", "unknown section"),
    ("# only a comment\n", "no input/reply step"),
])
def test_malformed_case_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(CaseError, match=message):
        parse_case(text, "x.case")


def test_a_width_makes_every_record_that_wide() -> None:
    text = "--- as_of 2026-03-02\n--- input\n" + "A" * 79 + "|\n--- reply\n" + "A" * 80 + "|\n"
    assert parse_case(text).steps[0].input == ("A" * 79,)
    with pytest.raises(CaseError, match=r"x\.case:3: a record must be 80 columns"):
        parse_case(text, "x.case", width=80)


def test_sections_of_a_case_file() -> None:
    text = with_ledger("# comment\n--- profile AU L04, L15\n--- limit BEEF-AU 100\n"
                       "--- xfail BUG: a reason\n" + PLUGIN_CASE.read_text(), ["", *LEDGER])
    case = parse_case(text, "x.case")
    assert case.profiles == (("AU", ("L04", "L15")),) and case.limits == (("BEEF-AU", 100),)
    assert case.xfail == "BUG: a reason" and case.ledger == tuple(LEDGER)
    assert [s.as_of for s in case.steps] == [dt.date(2026, 2, 1), dt.date(2026, 3, 2),
                                             dt.date(2026, 3, 4)]
    rules = case.rules()
    assert rules.severity("L15", "AU") == "I"
    assert next(p.limit for p in rules.pools if p.name == "BEEF-AU") == 100
    with pytest.raises(CaseError, match=r"x\.case: unknown quota pool"):
        parse_case("--- limit NO-SUCH 1\n" + PLUGIN_CASE.read_text(), "x.case").rules()


@pytest.mark.parametrize("ecert_ledger_kind", ["memory", "sqlite"])
def test_the_plugin_checks_a_ledger_section(ecert_assert_case: Any) -> None:
    ecert_assert_case(with_ledger(PLUGIN_CASE.read_text(), LEDGER))
    drawn = [LEDGER[0], "  line 0202305015 KG issued=50000 used=18500",
             "summary K9T 04172033 port=2704 ref=BRK-7203 ior=12-3456789AB version=1"]
    with pytest.raises(CaseMismatch) as caught:
        ecert_assert_case(with_ledger(PLUGIN_CASE.read_text(), drawn))
    lines = str(caught.value).splitlines()
    assert lines[0] == "<case>: the ledger after the last step differs (- expected, + actual):"
    assert lines[1:] == [
        "@@ expected line 1, actual line 1 @@",
        f"    {LEDGER[0]}",
        "  - " + drawn[1],
        "  + " + LEDGER[1],
        "    " + " " * 39 + "^" * 5,  # columns 40-44: "18500" against "0"
        "  - " + drawn[2],
    ]


def test_ledger_diff_shows_missing_and_added_lines() -> None:
    text = ledger_diff(["pool BEEF-AU 2026 5"], ["pool BEEF-AU 2026 5", "pool X 2026 1"])
    assert text.splitlines() == ["@@ expected line 1, actual line 1 @@",
                                 "    pool BEEF-AU 2026 5", "  + pool X 2026 1"]


def test_a_case_marked_xfail_must_fail(ecert_assert_case: Any) -> None:
    good = "--- xfail BUG: L04 not raised\n" + PLUGIN_CASE.read_text()
    bad = with_ledger(good, [LEDGER[0], "  line 0202305015 KG issued=50000 used=18500"])
    with pytest.raises(pytest.xfail.Exception, match="BUG: L04 not raised"):
        ecert_assert_case(bad)
    with pytest.raises(pytest.fail.Exception, match="marked '--- xfail BUG: L04 not raised' "
                                                    "but passes"):
        ecert_assert_case(good)


def test_a_draft_reproduces_the_checked_cases() -> None:
    """Drafting from the inputs alone gives back the replies and ledger checked by hand: of
    the plugin case (senders trusted) and of the engine cases (senders authenticated)."""
    from engine_cases import participants

    plugin = load_case(PLUGIN_CASE)
    text = draft_case([(s.as_of, s.input) for s in plugin.steps], comment="a draft\n  ")
    assert text.startswith("# a draft\n--- as_of 2026-02-01\n--- input\n")
    drafted = parse_case(text)
    assert [s.reply for s in drafted.steps] == [s.reply for s in plugin.steps]
    assert drafted.ledger == tuple(LEDGER)
    for path in RUNNABLE:
        case = load_case(path)
        drafted = parse_case(draft_case(
            [(s.as_of, s.input) for s in case.steps], profiles=dict(case.profiles),
            limits=dict(case.limits), participants=participants()))
        assert [s.reply for s in drafted.steps] == [s.reply for s in case.steps], path.name
        assert drafted.ledger == case.ledger, path.name
        assert (drafted.profiles, drafted.limits) == (case.profiles, case.limits), path.name


def test_a_draft_refuses_a_line_it_could_not_read_back() -> None:
    with pytest.raises(CaseError, match="cannot hold"):
        draft_case([(AS_OF, ["# not a record"])])


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

def test_a_ledger_that_differs(ecert_assert_case):
    ecert_assert_case("bad_ledger.case")
'''


def test_a_fresh_project_uses_the_strategies_and_fixtures(tmp_path: Path) -> None:
    """As a new user: a project of its own, only the installed package, plain pytest."""
    (tmp_path / "test_summaries.py").write_text(FRESH_TEST)
    assert len(FRESH_TEST.splitlines()) <= 10
    (tmp_path / "test_options.py").write_text(FRESH_OPTIONS_TEST)
    good = (ROOT / "tests/cases/plugin/wrong_importer_then_query.case").read_text()
    (tmp_path / "good.case").write_text(good)
    (tmp_path / "bad.case").write_text(good.replace("000000050000KG A2026", "000000049999KG A2026"))
    (tmp_path / "bad_ledger.case").write_text(
        with_ledger(good, [LEDGER[0], LEDGER[1].replace("used=0", "used=1")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ecert-ledger=sqlite",
         "--ecert-as-of=2026-03-04", "-W", "error::pytest.PytestUnknownMarkWarning"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "2 failed, 3 passed" in out, out
    assert "test_a_case_that_fails" in out
    assert "test_a_ledger_that_differs" in out
    assert "bad_ledger.case: the ledger after the last step differs" in out
    assert "  - " + LEDGER[1].replace("used=0", "used=1") in out
    assert "  + UCAU056AU123456 0202305015000000050000000000000000000000050000KG" in out
    assert "remaining_quantity" in out  # the caret line names the field that differs
    assert "ecert_abi/testing/" not in out  # the library's frames are hidden: the diff says it
