"""Engine test vectors (tests/cases/engine/*.case, format in tests/engine_cases.py).

Each case runs through `Processor` (senders authenticated as the fixture participants)
against a MemoryLedger and against a SqliteLedger file; both must give the exact replies
written in the case (checked by hand against the CATAIR subset reference) and end in the
ledger state written in its `--- ledger` section. Cases
marked `--- xfail BUG: ...` show a library bug: their expected replies are the correct
ones, which the library does not produce yet.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_cases import (
    BEEF_HTS,
    CASES_DIR,
    IOR_A,
    Case,
    CaseError,
    beef_cert,
    beef_line,
    case_paths,
    case_rules,
    certs_batch,
    importer_query,
    ledger_lines,
    load_case,
    open_backend,
    parse_case,
    process_lines,
    run_case,
    summaries_batch,
    summary,
)

from ecert_abi.envelope import frame
from ecert_abi.ledger import Ledger, MemoryLedger, snapshot
from ecert_abi.record import read_lines
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import read_ax_reply

D = dt.date
BACKENDS = ("memory", "sqlite")

# What the case files must cover between them (condition codes in expected replies).
REQUIRED_CODES = {
    "L01", "L04", "L06", "L08", "L11", "L13", "L15", "L17", "Q03", "Q09", "Q15", "Q25",
    "B16", "B25", "B53", "100", "400", "431", "701", "A17",
    "V01", "V02", "V03", "V04", "V05", "V06", "V07", "V08", "V09", "V10", "V11", "V12", "V13",
    "V14", "V15", "V20", "X19", "X34", "999",
}
REQUIRED_CASES = {
    "l01_unknown_certificate", "l04_importer_mismatch", "l04_informational_profile",
    "l06_origin_mismatch", "l08_cancelled", "l11_before_effective", "l11_after_expiry",
    "l13_hts_mismatch", "l13_unit_mismatch", "l15_exceeds_balance", "l17_limit_reached",
    "q03_pool_filled", "q09_entry_type", "q15_zero_quantity", "q25_no_quota_line",
    "b16_check_digit", "b25_delete_not_found", "b53_filer_mismatch",
    "grouping_100_400_431_701", "a17_two_licences", "atomic_multiline", "summed_lines",
    "summed_lines_accepted", "replace_credits_back", "delete_credits_back",
    "implicit_delete", "replay", "tpl_sme_pool", "x19_block_application",
    "x34_unknown_record", "query_answered", "query_nothing_found",
    "l15_informational_capped", "l15_informational_then_l17_fatal",
    "l17_informational_draws_nothing", "q03_capped_claim", "q09_other_entry_types",
    "q09_tpl_entry_type_06", "q09_tpl_entry_types_23_52", "q25_quota_entry_types",
    "v05_other_countrys_certificate", "v09_outside_quota_year", "v09_quota_year_overlap",
}


def _case_params(with_backends: bool, xfail: bool = True) -> list[Any]:
    out: list[Any] = []
    for path in case_paths():
        case = load_case(path)
        marks = []
        if xfail and case.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
        if with_backends:
            out += [pytest.param(case, kind, id=f"{path.stem}-{kind}", marks=marks)
                    for kind in BACKENDS]
        else:
            out.append(pytest.param(case, id=path.stem, marks=marks))
    return out


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[object]:
    opened: list[Ledger] = []

    def make(kind: str, case: Case) -> Ledger:
        sub = tmp_path / f"{kind}-{len(opened)}"
        sub.mkdir()
        led = open_backend(kind, sub, case.rules())
        opened.append(led)
        return led

    yield make
    for led in opened:
        led.close()


def _diff(expected: list[str] | tuple[str, ...], got: list[str]) -> str:
    lines = []
    for i in range(max(len(expected), len(got))):
        e = expected[i] if i < len(expected) else "<none>"
        g = got[i] if i < len(got) else "<none>"
        lines.append(f"{'  ' if e == g else '!!'} {i + 1:3} exp {e}|\n"
                     f"{'  ' if e == g else '!!'}     got {g}|")
    return "\n".join(lines)


# --- the case files --------------------------------------------------------------------

def test_case_files_present() -> None:
    names = {p.stem for p in case_paths()}
    assert names >= REQUIRED_CASES, sorted(REQUIRED_CASES - names)
    assert {f"v{n:02d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)} <= {
        n[:3] for n in names}


def test_cases_cover_the_required_conditions() -> None:
    """Every required condition code appears in the expected reply of a non-xfail case."""
    seen: set[str] = set()
    for path in case_paths():
        case = load_case(path)
        if case.xfail:
            continue
        for step in case.steps:
            for r in step.reply:
                if r[:2] in ("E1", "C1", "X1") and r[4:7].strip():
                    seen.add(r[4:7])
                elif r[:2] == "UE" and r[36:39].strip():
                    seen.add(r[36:39])
    assert seen >= REQUIRED_CODES, sorted(REQUIRED_CODES - seen)


def test_every_case_has_a_ledger_section() -> None:
    for path in case_paths():
        assert load_case(path).ledger is not None, path.name


@pytest.mark.parametrize(("case", "kind"), _case_params(with_backends=True))
def test_engine_case(case: Case, kind: str, backend: object) -> None:
    ledger = backend(kind, case)  # type: ignore[operator]
    got = run_case(case, ledger)
    for n, (step, reply) in enumerate(zip(case.steps, got, strict=True), 1):
        assert reply == list(step.reply), (
            f"{case.name} step {n} (as_of {step.as_of}, input at line {step.line}):\n"
            + _diff(step.reply, reply))
    assert case.ledger is not None
    assert ledger_lines(ledger) == list(case.ledger), (
        f"{case.name} ledger:\n" + _diff(case.ledger, ledger_lines(ledger)))


@pytest.mark.parametrize(("case", "kind"), _case_params(with_backends=True, xfail=False))
def test_engine_case_replayed(case: Case, kind: str, backend: object) -> None:
    """Sending every input of a case again changes nothing and gets the first replies."""
    ledger = backend(kind, case)  # type: ignore[operator]
    first = run_case(case, ledger)
    before = snapshot(ledger)
    shown = ledger_lines(ledger)
    again = run_case(case, ledger)
    assert again == first
    assert snapshot(ledger) == before
    assert ledger_lines(ledger) == shown


@pytest.mark.parametrize("case", _case_params(with_backends=False, xfail=False))
def test_backends_agree(case: Case, tmp_path: Path) -> None:
    """MemoryLedger and SqliteLedger: same replies, same snapshot (journal included)."""
    mem = MemoryLedger(case.rules())
    sql = SqliteLedger(str(tmp_path / "agree.db"), case.rules())
    try:
        assert run_case(case, mem) == run_case(case, sql)
        assert snapshot(mem) == snapshot(sql)
    finally:
        sql.close()


# --- the loader ------------------------------------------------------------------------

GOOD = "A" * 80 + "|"


def test_loader_strips_marks_and_reads_sections() -> None:
    text = "\n".join([
        "# comment", "--- profile AU L04, L15", "--- limit BEEF-AU 100",
        "--- as_of 2026-03-02", "--- input", GOOD, GOOD, "--- reply", GOOD,
        "--- input", GOOD, "--- reply", GOOD, "--- ledger", "pool BEEF-AU 2026 5", ""])
    case = parse_case(text, "t")
    assert [len(s.input) for s in case.steps] == [2, 1]
    assert all(len(r) == 80 for s in case.steps for r in s.input + s.reply)
    assert case.steps[1].as_of == D(2026, 3, 2)
    assert case.profiles == (("AU", ("L04", "L15")),)
    rules = case.rules()
    assert rules.severity("L15", "AU") == "I"
    assert next(p.limit for p in rules.pools if p.name == "BEEF-AU") == 100
    assert case.ledger == ("pool BEEF-AU 2026 5",)


@pytest.mark.parametrize("text", [
    "--- as_of 2026-03-02\n--- input\n" + "A" * 79 + "|\n--- reply\n" + GOOD,   # 79 columns
    "--- as_of 2026-03-02\n--- input\n" + "A" * 81 + "\n--- reply\n" + GOOD,    # no mark
    "--- as_of 2026-03-02\n--- input\n" + GOOD + "\n",                            # no reply
    "--- input\n" + GOOD + "\n--- reply\n" + GOOD,                                 # no as_of
    "--- as_of 2026-02-30\n--- input\n" + GOOD + "\n--- reply\n" + GOOD,          # bad date
    "--- as_of 2026-03-02\n--- frobnicate\n",                                     # unknown
    "--- as_of 2026-03-02\n--- input\n" + GOOD + "\n--- reply\n" + GOOD
    + "\n--- ledger\n--- input\n",                                                 # after ledger
])
def test_loader_rejects_malformed_cases(text: str) -> None:
    with pytest.raises(CaseError):
        parse_case(text, "bad")


def test_case_rules_refuse_an_unknown_pool() -> None:
    with pytest.raises(CaseError):
        case_rules(limits={"NO-SUCH-POOL": 1})


# --- behaviour outside the exact-reply cases ---------------------------------------------

def _dispositions(reply: list[str]) -> list[tuple[bool, tuple[str, ...]]]:
    data = "".join(r + "\n" for r in reply).encode("latin-1")
    out = []
    for batch in frame(read_lines(io.BytesIO(data))):
        for d in read_ax_reply(batch.records):
            out.append((d.accepted, tuple(c[1] for c in d.conditions)))
    return out


def test_v07_replacement_dropping_a_used_line_is_refused(tmp_path: Path) -> None:
    """A replacement that leaves out an HTS line with usage is V07 and changes nothing.

    (Only the codes are checked: which C0 CERLIN locates a line that the replacement does
    not contain is not settled; see the report.)"""
    for led in (MemoryLedger(), SqliteLedger(str(tmp_path / "v07.db"))):
        process_lines(led, certs_batch(beef_cert("AU", "6AU123456", 50000, BEEF_HTS,
                                                 "0201305085")), D(2026, 2, 1))
        process_lines(led, summaries_batch(summary("0417203", beef_line(
            "001", "AU", "6AU123456", "18500"))), D(2026, 3, 2))
        before = snapshot(led)
        reply = process_lines(led, certs_batch(beef_cert(
            "AU", "6AU123456", 50000, "0201305085", action="R"), date=D(2026, 3, 3)),
            D(2026, 3, 3))
        conds = [r[4:7] for r in reply if r[:2] == "C1" and r[2] == " "]
        finals = [r[2:4] for r in reply if r[:2] == "C1" and r[2] != " "]
        assert conds == ["V07"] and finals == ["RF"]
        assert snapshot(led) == before
        led.close()


@pytest.mark.parametrize("code", ["L15", "L17"])
def test_informational_overdraw_is_answered(code: str, tmp_path: Path) -> None:
    """With L15/L17 informational, an over-balance claim is accepted with the condition and
    draws only what is left: 5,000 after 15,000 of 20,000 (L15), nothing after 20,000
    (L17, and no claim is recorded)."""
    rules = case_rules({"AU": [code]})
    first = "15000" if code == "L15" else "20000"
    for led in (MemoryLedger(rules), SqliteLedger(str(tmp_path / f"{code}.db"), rules)):
        try:
            process_lines(led, certs_batch(beef_cert("AU", "6AU123457", 20000)),
                          D(2026, 2, 1), rules)
            process_lines(led, summaries_batch(summary("0417203", beef_line(
                "001", "AU", "6AU123457", first))), D(2026, 3, 2), rules)
            reply = process_lines(led, summaries_batch(summary("0417204", beef_line(
                "001", "AU", "6AU123457", "25000")), date=D(2026, 3, 3)), D(2026, 3, 3), rules)
            assert _dispositions(reply) == [(True, (code,))]
            ((cert,),) = [led.certificates()]
            assert [(ln.issued, ln.used) for ln in cert.lines] == [(20000, 20000)]
            claims = {s.entry_number[:7]: [c.quantity for c in s.claims]
                      for s in led.summaries()}
            assert claims == {"0417203": [int(first)],
                              "0417204": [5000] if code == "L15" else []}
        finally:
            led.close()


def test_replace_reordering_lines_backends_agree(tmp_path: Path) -> None:
    """A replacement listing the HTS lines in another order: both backends keep the same
    state and answer the usage query alike (UC records in HTS order)."""
    mem, sql = MemoryLedger(), SqliteLedger(str(tmp_path / "order.db"))
    try:
        steps = [
            (D(2026, 2, 1), certs_batch(beef_cert("AU", "6AU123456", 50000, BEEF_HTS,
                                                  "0201305085"))),
            (D(2026, 2, 2), certs_batch(beef_cert("AU", "6AU123456", 50000, "0201305085",
                                                  BEEF_HTS, action="R"), date=D(2026, 2, 2))),
            (D(2026, 3, 4), importer_query(IOR_A)),
        ]
        for as_of, lines in steps:
            assert process_lines(mem, lines, as_of) == process_lines(sql, lines, as_of)
        assert snapshot(mem) == snapshot(sql)
    finally:
        sql.close()


def test_cases_dir_is_where_the_loader_looks() -> None:
    assert CASES_DIR.is_dir() and len(case_paths()) >= len(REQUIRED_CASES)
