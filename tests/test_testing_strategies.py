"""ecert_abi.testing: what the strategies generate is checked by parsing it.

Valid records must satisfy both parse paths (the whole-record regex and the field-by-field
diagnosis) with no defect; every `invalid_records(broken=...)` line must give exactly the
one defect named, in the field named, and be refused by the fast path too. Transactions
must build records that parse clean and assemble without grouping faults; scenarios must
reach the interesting conditions, not only rejects.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ecert_abi.envelope import frame
from ecert_abi.identifiers import entry_number_ok, ior_all_zero, ior_format_ok
from ecert_abi.layout import Layout
from ecert_abi.ledger import MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.record import catalogue, read_lines
from ecert_abi.testing import (
    RULES,
    Scenario,
    batches,
    breakable_rules,
    certificate_lines,
    certificates,
    entry_lines,
    entry_summaries,
    importer_numbers,
    invalid_records,
    queries,
    records,
    scenarios,
    tariffs,
)
from ecert_abi.testing.harness import Harness
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
    UsageQuery,
    assemble_entry_summary,
)

CAT = catalogue()
# Opaque (carried-through) layouts are all alike: two of them stand for the rest.
OPAQUE = [lay for lay in CAT.layouts() if lay.opaque]
LAYOUTS = [lay for lay in CAT.layouts() if not lay.opaque] + OPAQUE[:2]
FAST = settings(max_examples=10, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
AS_OF = dt.date(2026, 3, 2)


def parse(layout: Layout, line: str) -> Any:
    return CAT.parse(line, 1, {layout.id: (layout,)})


def frame_one(lines: list[str]) -> Any:
    data = "".join(x + "\n" for x in lines).encode("latin-1")
    (batch,) = frame(read_lines(io.BytesIO(data)))
    return batch


@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay.name for lay in LAYOUTS])
def test_records_parse_without_defects(layout: Layout) -> None:
    @FAST
    @given(records(layout))
    def check(line: str) -> None:
        assert len(line) == 80
        assert layout.match(line), line
        rec = parse(layout, line)
        assert rec.ok and rec.layout is layout, rec.defects

    check()


@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay.name for lay in LAYOUTS])
def test_each_invalid_record_has_exactly_the_named_defect(layout: Layout) -> None:
    rules = breakable_rules(layout)
    assert {"short", "long", "non-displayable"} <= set(rules)

    @settings(FAST, max_examples=15)
    @given(st.sampled_from(rules).flatmap(
        lambda rule: st.tuples(st.just(rule), invalid_records(layout, broken=rule))))
    def check(case: tuple[str, str]) -> None:
        rule, line = case
        defects = layout.diagnose(line, 1)
        assert [d.rule for d in defects] == [rule], (line, defects)
        assert not layout.match(line)  # the fast path refuses it as well
        d = defects[0]
        if d.field is not None:
            f = layout.by_name[d.field][0]
            assert (d.start, d.end) == (f.start, f.end)
        if rule not in ("constant", "short"):  # siblings are told apart by constants
            assert [x.rule for x in parse(layout, line).defects] == [rule]

    check()


@pytest.mark.parametrize("layout,rule,field,code", [
    ("R52", "mandatory", "license_certificate_permit_number", "474"),
    ("R52", "code", "license_certificate_permit_type_code", "472"),
    ("R10", "class", "entry_number", "B15"),
    ("R11", "class", "importer_of_record_number", "102"),
    ("CH", "code", "action_code", "V90"),
    ("A_input", "mandatory", "communication_password", "X09"),
    ("E0_licnse", "constant", "reference_id_constant", "V90"),
    ("R50", "filler", "filler_13", "X39"),
])
def test_a_named_field_breaks_with_its_condition_code(layout: str, rule: str, field: str,
                                                       code: str | None) -> None:
    lay = CAT.layout(layout)

    @FAST
    @given(invalid_records(layout, broken=rule, field=field))
    def check(line: str) -> None:
        (d,) = lay.diagnose(line)
        assert (d.rule, d.field, d.code) == (rule, field, code)

    check()


def test_overrides_set_a_field() -> None:
    @FAST
    @given(records("R52", license_certificate_permit_number=st.just("6AU123456"),
                   license_certificate_permit_type_code=st.sampled_from(["05", "30"])))
    def check(line: str) -> None:
        rec = parse(CAT.layout("R52"), line)
        assert rec.ok
        assert rec["license_certificate_permit_number"] == "6AU123456"
        assert rec["license_certificate_permit_type_code"] in ("05", "30")

    check()


@pytest.mark.parametrize("call,message", [
    (lambda: records("R99"), "no layout named 'R99'"),
    (lambda: records(52), "must be a Layout or a layout name"),
    (lambda: records("R52", colour=st.just("X")), "no field 'colour'"),
    (lambda: records("R52", license_certificate_permit_number="6AU123456"),
     "must be a strategy"),
    (lambda: records("R52", filler_15_24=st.just("X")), "is a filler"),
    (lambda: records("R52", record_id=st.just("52")), "is a constant"),
    (lambda: invalid_records("R52", broken="ugly"), "broken must be one of"),
    (lambda: invalid_records("R52", broken="short", field="record_id"), "whole line"),
    (lambda: invalid_records("R52", broken="code", field="filler_15_24"), "cannot break"),
    (lambda: invalid_records("R52", broken="code", field="nope"), "no field 'nope'"),
    (lambda: invalid_records("R51", broken="constant"), "no field of R51"),
    (lambda: entry_summaries(min_lines=0), "min_lines=0 must be at least 1"),
    (lambda: entry_summaries(min_lines=3, max_lines=2), "max_lines=2 < min_lines=3"),
    (lambda: batches(min_size=2, max_size=1), "max_size=1 < min_size=2"),
    (lambda: batches(max_size=1.5), "max_size=1.5 must be an integer"),
    (lambda: entry_summaries(ior="98-7654321"), "must be a strategy"),
    (lambda: certificates(min_lines=5), "only 4 distinct HTS numbers"),
    (lambda: certificate_lines(programme="99"), "is not 05 or 30"),
    (lambda: queries(kind="broker"), "kind='broker'"),
    (lambda: batches(application="ZZ"), "application='ZZ'"),
    (lambda: scenarios(as_of=dt.date(2070, 1, 1)), "must be a date from"),
    (lambda: scenarios(max_steps=0), "max_steps=0"),
])
def test_bad_arguments_raise_invalid_argument(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("strategy,message", [
    (records("R52", license_certificate_permit_number=st.just("6AU1234567X")), "does not fit"),
    (entry_summaries(action=st.just("X")), "action 'X' is not A, R or D"),
    (certificates(country=st.just("CA")), "country 'CA' is not a participant"),
    (batches(application="AE", transactions=queries()), "not a EntrySummary"),
], ids=["too-long", "action", "country", "type"])
def test_bad_values_drawn_raise_invalid_argument(strategy: Any, message: str) -> None:
    @settings(FAST, phases=[Phase.generate])  # nothing to learn from shrinking it
    @given(strategy)
    def check(_: object) -> None:
        pass

    with pytest.raises(InvalidArgument, match=message):
        check()


@FAST
@given(entry_summaries())
def test_entry_summaries_are_well_formed(s: EntrySummary) -> None:
    lines = s.to_records()
    recs = [CAT.parse(line, i, CAT.ids(CAT.chapters["entry_summary"], "input"))
            for i, line in enumerate(lines, 1)]
    assert all(r.ok for r in recs), [r.defects for r in recs if not r.ok]
    assert assemble_entry_summary(recs).issues == ()
    assert entry_number_ok(s.filer_code, s.entry_number)
    if s.action != "D":
        assert ior_format_ok(s.ior) and not ior_all_zero(s.ior)
        assert [ln.line_id for ln in s.lines] == [f"{i:03d}" for i in range(1, len(s.lines) + 1)]


@settings(FAST, max_examples=25)
@given(certificates(action=st.just("A")))
def test_a_certificate_add_is_accepted_by_an_empty_ledger(c: Certificate) -> None:
    (reply,) = Harness(as_of=AS_OF).process(c)
    assert reply.conditions == [], str(reply)
    assert any(line.startswith("C1A") for line in reply.lines)


@settings(FAST, max_examples=25)
@given(queries())
def test_queries_are_answered_on_an_empty_ledger(q: UsageQuery) -> None:
    (reply,) = Harness(as_of=AS_OF).process(q)
    ue = [r for r in reply.records if r.id == "UE"]
    assert len(ue) == 1 and ue[0]["disposition_type_code"] == "A", str(reply)


@settings(FAST, max_examples=30)
@given(batches())
def test_batches_frame_without_faults(lines: list[str]) -> None:
    batch = frame_one(lines)
    assert not batch.faults and all(r.ok for r in batch.records)
    assert batch.application in ("AE", "VA", "EC", "VQ")


@settings(FAST, max_examples=10)
@given(batches(application="VQ", min_size=2, max_size=2))
def test_batch_size_bounds(lines: list[str]) -> None:
    assert sum(1 for x in lines if x.startswith("CQ")) == 2


@pytest.mark.parametrize("cls", [EntrySummary, EntryLine, Tariff, Certificate,
                                 CertificateLine, UsageQuery])
def test_from_type_resolves_to_the_registered_strategies(cls: type) -> None:
    @FAST
    @given(st.from_type(cls))
    def check(value: object) -> None:
        assert isinstance(value, cls)
        if isinstance(value, EntrySummary):  # ours, not a field-by-field guess
            assert entry_number_ok(value.filer_code, value.entry_number)

    check()


@FAST
@given(importer_numbers(), tariffs(), entry_lines())
def test_value_strategies(ior: str, tariff: Tariff, line: EntryLine) -> None:
    assert ior_format_ok(ior)
    assert tariff.quantity is not None and tariff.quantity.as_tuple().exponent >= -2
    assert line.claim is not None


def test_scenarios_reach_the_interesting_conditions_not_only_rejects() -> None:
    seen: collections.Counter[str] = collections.Counter()

    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(scenarios(as_of=AS_OF))
    def run(s: Scenario) -> None:
        proc = Processor(MemoryLedger(), s.as_of, trust_senders=True)
        replies = list(proc.process_stream(io.BytesIO(s.data())))
        assert len(replies) == len(s.batches) == len(s.notes)
        seen.update(proc.tally.conditions)
        for line in (x for r in replies for x in r):
            if line.startswith("E1A"):
                seen["summary accepted"] += 1
            elif line.startswith("E1R"):
                seen["summary rejected"] += 1

    run()
    assert seen["summary accepted"] >= 20 and seen["summary rejected"] >= 20, seen
    wanted = {"L01", "L04", "L06", "L11", "L13", "L15", "L17", "Q09", "Q15", "V17", "B25"}
    assert wanted <= set(seen), wanted - set(seen)


@settings(FAST, max_examples=5)
@given(scenarios(as_of=AS_OF))
def test_a_scenario_describes_itself(s: Scenario) -> None:
    text = s.describe()
    assert text.startswith("as of 2026-03-02")
    assert text.count("\nbatch ") == len(s.batches)
    assert s.data().count(b"\n") == sum(len(b) for b in s.batches)


def test_rules_are_the_parser_s_rule_names() -> None:
    assert set(RULES) == {"class", "code", "constant", "filler", "mandatory", "short", "long",
                          "non-displayable"}


def test_the_integrators_guide_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "integrators-guide.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    assert len(blocks) == 4
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "integrators-guide.md", "exec"), namespace)
    assert "04172033 rejected TRANSACTION DATA REJECTED ['L01']" in capsys.readouterr().out
    namespace["test_every_summary_gets_one_disposition"](ecert_harness=Harness(as_of=AS_OF))


def test_public_names_of_the_kit() -> None:
    import ecert_abi.testing as kit

    assert sorted(kit.__all__) == sorted([
        "APPLICATIONS", "RULES", "Scenario", "batch_lines", "batches", "break_line",
        "breakable_rules", "certificate_lines", "certificates", "entry_lines",
        "entry_summaries", "importer_numbers", "invalid_records", "queries", "records",
        "scenarios", "tariffs"])
    for name in kit.__all__:
        assert getattr(kit, name) is not None
    assert callable(kit.scenarios)  # the strategy, not its module
    with pytest.raises(AttributeError):
        kit.no_such_name  # noqa: B018
