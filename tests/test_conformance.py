"""`ecert-abi conformance` and the comparison behind it.

Processors with a planted bug must be caught: in process (cheap, so shrinking runs to the
end and the minimal scenario can be asserted) and as a black-box command (a script in
tests/cases/plugin that wraps `ecert-abi process` with one rule changed). ecert-abi must
agree with itself, in process and as a command.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from ecert_abi import conformance as conf
from ecert_abi import engine, processor
from ecert_abi.cli import main
from ecert_abi.engine import default_rules
from ecert_abi.ledger import MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.testing.cases import parse_case
from ecert_abi.testing.harness import Harness
from ecert_abi.testing.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
PLANTED = ROOT / "tests" / "cases" / "plugin" / "planted_processor.py"
BIN = Path(sys.executable).parent
OWN = f"{shlex.quote(str(BIN / 'ecert-abi'))} process - --db :memory: --trust-senders " \
      "--as-of {as_of}"


def planted(bug: str) -> str:
    return (f"{shlex.quote(sys.executable)} {shlex.quote(str(PLANTED))} {bug} - "
            "--db :memory: --trust-senders --as-of {as_of}")


def in_process(make: Any) -> conf.Runner:
    """A runner for a processor built by `make(as_of)` on a fresh in-memory ledger."""
    def run(s: Scenario) -> conf.Run:
        import io

        proc = make(s.as_of)
        return conf.Run(tuple(tuple(r) for r in proc.process_stream(io.BytesIO(s.data()))))

    return run


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


# --- facts --------------------------------------------------------------------------------

def _case(name: str) -> Any:
    text = (ROOT / "tests/cases/engine" / f"{name}.case").read_text().split("\n--- ledger")[0]
    return parse_case(text, name)


def test_facts_of_an_ax_reply() -> None:
    reply = _case("l15_exceeds_balance").steps[1].reply
    assert conf.facts(reply) == [
        "reply AX, 1 block(s)",
        "summary K9T 04172033: A SUMMARY HAS BEEN ADDED",
        "summary K9T 04172041: R TRANSACTION DATA REJECTED",
        "summary K9T 04172041: condition F L15 at line 001 licence 05 6AU123457",
        "summary K9T 04172058: A SUMMARY HAS BEEN ADDED",
    ]


def test_facts_of_a_query_answer_leave_out_journal_numbers() -> None:
    reply = parse_case((ROOT / "tests/cases/plugin/wrong_importer_then_query.case")
                       .read_text()).steps[2].reply
    assert conf.facts(reply) == [
        "reply EZ, 1 block(s)",
        "block 1: usage line AU 05 6AU123456 0202305015: issued 50000 used 0 remaining 50000"
        " KG status A year 2026 expires 2026-12-31",
        "block 1: query A -: 1 certificate line(s), 0 usage(s)",
    ]


def test_facts_of_a_batch_reject_are_its_codes() -> None:
    lines = (ROOT / "fixtures/01-au-certificates.abi").read_text().splitlines()
    i = next(k for k, x in enumerate(lines) if x.startswith("CL"))
    lines[i] = lines[i][:12] + "X" + lines[i][13:]  # data in the filler at column 13
    (reply,) = Harness(as_of=conf.DEFAULT_AS_OF).process(lines)
    assert conf.facts(reply.lines) == ["batch rejected: X39"]


@pytest.mark.xfail(strict=True, reason=(
    "BUG: the reply to a batch without an A-record (X01, envelope.reject_reply) starts with "
    "an A-record whose site and sender ID are blank, which ecert-abi's own A_output layout "
    "(both fields M) refuses: the reply does not parse clean with the library's layouts"))
def test_the_reply_to_a_batch_without_an_a_record_parses_clean() -> None:
    (reply,) = Harness(as_of=conf.DEFAULT_AS_OF).process(b"junk\n")
    assert reply.rejected
    assert all(r.ok for r in reply.records), [r.defects for r in reply.records if not r.ok]


def test_facts_ignore_narratives_of_conditions_but_not_dispositions() -> None:
    reply = list(_case("l15_exceeds_balance").steps[1].reply)
    i = next(k for k, x in enumerate(reply) if x.startswith("E1 FL15"))
    reply[i] = reply[i][:10] + "SOME OTHER WORDING".ljust(40) + reply[i][50:]
    assert conf.facts(reply) == conf.facts(_case("l15_exceeds_balance").steps[1].reply)
    j = next(k for k, x in enumerate(reply) if x.startswith("E1RF"))
    reply[j] = reply[j][:10] + "REJECTED".ljust(40) + reply[j][50:]
    assert conf.facts(reply) != conf.facts(_case("l15_exceeds_balance").steps[1].reply)


# --- in process ---------------------------------------------------------------------------

def test_ecert_abi_agrees_with_itself_on_sqlite(tmp_path: Path) -> None:
    from ecert_abi.sqlite_ledger import SqliteLedger

    made = iter(range(10**6))

    def sqlite(as_of: Any) -> Processor:
        return Processor(SqliteLedger(str(tmp_path / f"l{next(made)}.db")), as_of,
                         trust_senders=True)

    outcome = conf.check_conformance(in_process(sqlite), max_examples=25, seed=1)
    assert outcome.minimal is None and outcome.tried >= 20
    assert conf.report(outcome).startswith("agree: ")


def test_an_importer_mismatch_accepted_is_shrunk_to_its_minimal_scenario() -> None:
    # Making L04 informational for every country is a processor that accepts claims by
    # another importer than the certificate's (and says so only in passing).
    rules = default_rules()
    for country in ("AU", "NZ", "UY", "AR", "MX"):
        rules = rules.with_informational(country, ["L04"])

    def lax(as_of: Any) -> Processor:
        return Processor(MemoryLedger(rules), as_of, rules, trust_senders=True)

    outcome = conf.check_conformance(in_process(lax), max_examples=40, seed=4,
                                     max_shrinks=1000)
    c = outcome.minimal
    assert c is not None and not outcome.budget_spent
    # minimal: one certificate registered, one summary filed, the closing queries
    assert [note.split()[0] for note in c.scenario.notes] == ["AU", "files", "importer", "AU"]
    assert "other importer" in c.scenario.notes[1]
    first = c.differences[0]
    assert first.batch == 2
    assert any("R TRANSACTION DATA REJECTED" in f for f in first.reference)
    assert any(f.endswith("condition F L04 at line 001 licence 05 6AU000001")
               for f in first.reference)
    assert any("A SUMMARY HAS BEEN ADDED" in f for f in first.candidate)
    text = conf.report(outcome)
    assert "DISAGREEMENT" in text and "Reply to batch 2, reference:" in text


def test_a_ledger_only_difference_is_caught_by_the_closing_queries() -> None:
    # Deleting a summary without crediting its claims back: every reply to the summaries is
    # the same; only the usage queries show the difference.
    decide = processor.decide_summary

    def no_credit(*args: Any, **kwargs: Any) -> engine.Decision:
        d = decide(*args, **kwargs)
        if d.outcome == "DELETED":
            d = attrs.evolve(d, changes=tuple(c for c in d.changes
                                              if not isinstance(c, engine.Credit)))
        return d

    reference = conf.reference_runner()

    def forgetful(s: Scenario) -> conf.Run:
        with patched(processor, "decide_summary", no_credit):
            return reference(s)

    outcome = conf.check_conformance(forgetful, max_examples=40, seed=7, max_shrinks=1000)
    c = outcome.minimal
    assert c is not None
    for d in c.differences:
        assert c.scenario.batches[d.batch - 1][0][25:27] in ("EC", "VQ"), d
    assert any("deletes entry" in note for note in c.scenario.notes)


def test_a_crash_is_a_disagreement() -> None:
    def crashing(s: Scenario) -> conf.Run:
        return conf.Run((), "exit status 3\n    Traceback: boom")

    outcome = conf.check_conformance(crashing, max_examples=5, seed=0, max_shrinks=50)
    assert outcome.minimal is not None
    assert outcome.minimal.differences[0].candidate[0] == "no reply"
    assert "processor failed: exit status 3" in conf.report(outcome)


# --- the command --------------------------------------------------------------------------

def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["conformance", *args], catch_exceptions=False)


def test_the_command_passes_ecert_abi_against_itself() -> None:
    r = run_cli("--processor", OWN, "--scenarios", "3", "--seed", "2")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("agree: the processor and the reference agree on 3 scenario(s)")


def test_the_command_catches_a_planted_bug_and_prints_a_minimal_example(tmp_path: Path
                                                                          ) -> None:
    saved = tmp_path / "minimal.case"
    r = run_cli("--processor", planted("ignore-importer"), "--scenarios", "30", "--seed", "4",
                "--max-shrinks", "6", "--save-case", str(saved))
    assert r.exit_code == 1, r.output
    out = r.stdout
    assert out.startswith("DISAGREEMENT: the processor differs from the reference.")
    assert "Minimal scenario" in out and "files entry" in out
    assert "-summary K9T" in out and "condition F L04" in out
    assert "+summary K9T" in out and "A SUMMARY HAS BEEN ADDED" in out
    assert "Reply to batch" in out and ", the processor:" in out
    # the saved minimal scenario is a case file the plugin runs, with the reference's replies
    Harness(as_of=conf.DEFAULT_AS_OF).assert_case(saved)


def test_the_command_catches_a_dropped_condition_code() -> None:
    r = run_cli("--processor", planted("drop-informational"), "--scenarios", "40", "--seed",
                "14", "--max-shrinks", "0")
    assert r.exit_code == 1, r.output
    assert "condition I " in r.stdout  # the informational condition only the reference gives


def test_the_command_refuses_a_processor_it_cannot_run() -> None:
    r = CliRunner().invoke(main, ["conformance", "--processor", "no-such-processor-here"])
    assert r.exit_code == 2
    assert "cannot run 'no-such-processor-here'" in r.output


def test_the_command_refuses_a_bad_date() -> None:
    r = CliRunner().invoke(main, ["conformance", "--processor", OWN, "--as-of", "tomorrow"])
    assert r.exit_code == 2 and "--as-of" in r.output
