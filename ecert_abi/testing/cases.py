"""Case files: input batches, the exact replies expected and, optionally, the ledger's final
state; run against a ledger, with a column-aligned diff where a reply differs.

A case file is a sequence of sections, each started by a line beginning `--- `:

    # a comment (anywhere)
    --- profile AU L04,L15     country AU makes these F/I conditions informational
    --- limit BEEF-AU 60000    a quota pool's limit for this case
    --- xfail BUG: ...         a known bug: the expectations are the right ones, which the
                               processor does not meet yet
    --- as_of 2026-03-02       processing date of the steps that follow
    --- input                  one or more input batches
    --- reply                  the reply batches expected for that input, exactly
    ... more (as_of,) input, reply steps, all against one ledger ...
    --- ledger                 optional, last: the ledger's final state, as ledger_lines()

Every record line ends with `|` right after its last column (column 81 for an 80-column
record), so that no editor can eat trailing spaces; the `|` is not part of the record.
Ledger lines are plain text. `draft_case()` writes a case from what the processor does
today, to be checked line by line before it is trusted.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ..engine import Rules, default_rules
from ..envelope import frame
from ..ledger import Ledger, MemoryLedger
from ..processor import Processor
from ..record import read_lines

if TYPE_CHECKING:
    from ..access import Participant

MARK = "|"
WIDTH = 80


class CaseError(ValueError):
    """A malformed case file; the message says where."""


class CaseMismatch(AssertionError):
    """A reply or the final ledger differs from the case's expectation; the message is a
    column-aligned diff."""


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
    ledger: tuple[str, ...] | None = None  # the `--- ledger` section, if any
    xfail: str | None = None  # the reason given by `--- xfail`

    def rules(self) -> Rules:
        """default_rules() with the case's informational profiles and pool limits."""
        try:
            return case_rules(dict(self.profiles), dict(self.limits))
        except CaseError as e:
            raise CaseError(f"{self.name}: {e}") from None


def case_rules(profiles: Mapping[str, Sequence[str]] | None = None,
               limits: Mapping[str, int] | None = None) -> Rules:
    """default_rules() with the given informational profiles and pool limits."""
    rules = default_rules()
    for country, codes in (profiles or {}).items():
        rules = rules.with_informational(country, codes)
    if limits:
        unknown = sorted(set(limits) - {p.name for p in rules.pools})
        if unknown:
            raise CaseError(f"unknown quota pool(s) {unknown}")
        rules = attrs.evolve(rules, pools=tuple(
            attrs.evolve(p, limit=limits[p.name]) if p.name in limits else p
            for p in rules.pools))
    return rules


def _record(raw: str, where: str, width: int | None) -> str:
    if not raw.endswith(MARK):
        raise CaseError(f"{where}: a record line must end with '{MARK}' after its last "
                        f"column: {raw!r}")
    if width is not None and len(raw) != width + 1:
        raise CaseError(f"{where}: a record must be {width} columns ('{MARK}' in column "
                        f"{width + 1}), this one is {len(raw) - 1}: {raw!r}")
    return raw[:-1]


def parse_case(text: str, name: str = "<case>", *, width: int | None = None) -> Case:
    """A Case from the text of a case file; CaseError names the line at fault. With `width`,
    every record must have exactly that many columns (a guard for hand-written records)."""
    steps: list[Step] = []
    profiles: list[tuple[str, tuple[str, ...]]] = []
    limits: list[tuple[str, int]] = []
    xfail: str | None = None
    ledger: list[str] | None = None
    as_of: dt.date | None = None
    section: str | None = None
    given: list[str] = []
    expected: list[str] = []
    start = 0
    for n, raw in enumerate(text.split("\n"), 1):
        where = f"{name}:{n}"
        raw = raw.rstrip("\r")
        if raw.startswith("#") or not raw.strip():
            continue
        if raw.startswith("--- "):
            head, _, rest = raw[4:].strip().partition(" ")
            rest = rest.strip()
            if section == "ledger":
                raise CaseError(f"{where}: '--- ledger' must be the last section")
            if section == "input" and head != "reply":
                raise CaseError(f"{where}: '--- input' must be followed by '--- reply'")
            if section == "reply":
                assert as_of is not None
                steps.append(Step(as_of, tuple(given), tuple(expected), start))
                given, expected = [], []
            section = None
            if head == "as_of":
                try:
                    as_of = dt.date.fromisoformat(rest)
                except ValueError:
                    raise CaseError(f"{where}: {rest!r} is not YYYY-MM-DD") from None
            elif head == "profile":
                country, _, codes = rest.partition(" ")
                profiles.append((country, tuple(c for c in codes.replace(" ", "").split(",")
                                                if c)))
            elif head == "limit":
                try:
                    pool, value = rest.split()
                    limits.append((pool, int(value)))
                except ValueError:
                    raise CaseError(f"{where}: expected '--- limit POOL NUMBER'") from None
            elif head == "xfail":
                if not rest:
                    raise CaseError(f"{where}: '--- xfail' needs a reason")
                xfail = rest
            elif head == "input":
                if as_of is None:
                    raise CaseError(f"{where}: '--- as_of' needed before the first input")
                section, start = "input", n
            elif head == "reply":
                if not given:
                    raise CaseError(f"{where}: '--- reply' without an input")
                section = "reply"
            elif head == "ledger":
                section, ledger = "ledger", []
            else:
                raise CaseError(f"{where}: unknown section {raw!r}")
            continue
        if section == "ledger":
            assert ledger is not None
            ledger.append(raw.rstrip())
        elif section in ("input", "reply"):
            (given if section == "input" else expected).append(_record(raw, where, width))
        else:
            raise CaseError(f"{where}: text outside an input, reply or ledger section: "
                            f"{raw!r}")
    if section == "input":
        raise CaseError(f"{name}: the last input has no '--- reply'")
    if section == "reply":
        assert as_of is not None
        steps.append(Step(as_of, tuple(given), tuple(expected), start))
    if not steps:
        raise CaseError(f"{name}: no input/reply step")
    return Case(name, tuple(steps), tuple(profiles), tuple(limits),
                tuple(ledger) if ledger is not None else None, xfail)


def load_case(path: str | Path, *, width: int | None = None) -> Case:
    p = Path(path)
    return parse_case(p.read_bytes().decode("latin-1"), p.name, width=width)


# --- running -------------------------------------------------------------------------

def process_lines(ledger: Ledger, lines: Iterable[str], as_of: dt.date,
                  rules: Rules | None = None, *, trust_senders: bool = True) -> list[str]:
    """The reply lines for input lines (one or more batches); senders are trusted unless
    `trust_senders` is False (then the processor's own sender checks apply)."""
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    proc = Processor(ledger, as_of, rules, trust_senders=trust_senders)
    return [line for reply in proc.process_stream(io.BytesIO(data)) for line in reply]


def step_replies(case: Case, ledger: Ledger, *, trust_senders: bool = True
                 ) -> Iterator[list[str]]:
    """The reply lines to each step's input in turn, processed on `ledger`; lazily, so that
    a caller stopping at the first differing reply processes no further step."""
    rules = case.rules()
    for step in case.steps:
        yield process_lines(ledger, step.input, step.as_of, rules, trust_senders=trust_senders)


def run_case(case: Case, ledger: Ledger, *, trust_senders: bool = True) -> None:
    """Run every step of `case` on `ledger`; CaseMismatch with a column diff at the first
    step whose reply differs, or, after the last, if the ledger differs from the case's
    `--- ledger` section."""
    __tracebackhide__ = True  # under pytest the diff is the message; these frames are noise
    replies = step_replies(case, ledger, trust_senders=trust_senders)
    for i, (step, actual) in enumerate(zip(case.steps, replies, strict=True), 1):
        if actual != list(step.reply):
            raise CaseMismatch(f"{case.name}: reply to step {i} (input at line {step.line}) "
                               f"differs (- expected, + actual):\n"
                               + column_diff(step.reply, actual))
    if case.ledger is not None:
        state = ledger_lines(ledger)
        if state != list(case.ledger):
            raise CaseMismatch(f"{case.name}: the ledger after the last step differs "
                               f"(- expected, + actual):\n" + ledger_diff(case.ledger, state))


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
    without trailing spaces. Batch digests are left out of the journal lines, and so are
    participants and authentication attempts.
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


# --- drafting --------------------------------------------------------------------------

def _marked(lines: Iterable[str]) -> list[str]:
    out = []
    for line in lines:
        if "\n" in line or line.startswith(("#", "--- ")):
            raise CaseError(f"a case file cannot hold this record: {line!r}")
        out.append(line + MARK)
    return out


def draft_case(steps: Iterable[tuple[dt.date, Sequence[str]]], *, comment: str = "",
               profiles: Mapping[str, Sequence[str]] | None = None,
               limits: Mapping[str, int] | None = None, xfail: str | None = None,
               participants: Iterable[Participant] | None = None) -> str:
    """A DRAFT case file: each (as_of, input lines) step with the replies, and the final
    ledger, that this library gives today on a fresh MemoryLedger. Senders are trusted (as
    `ecert_assert_case` runs a case) unless `participants` are given: then they are
    registered first and every batch is authenticated against them.

    A draft records what the processor does, not what it should do: check every reply
    line against the reference, and where the processor is wrong write the right reply and
    `--- xfail BUG: ...`, before saving it."""
    rules = case_rules(profiles, limits)
    ledger = MemoryLedger(rules)
    if participants is not None:
        with ledger.transaction() as tx:
            for p in participants:
                tx.put_participant(p)
    text = [f"# {c}".rstrip() for c in comment.strip().splitlines()]
    text += [f"--- profile {country} {','.join(codes)}"
             for country, codes in (profiles or {}).items()]
    text += [f"--- limit {pool} {limit}" for pool, limit in (limits or {}).items()]
    if xfail:
        text.append(f"--- xfail {xfail}")
    last: dt.date | None = None
    for as_of, lines in steps:
        if as_of != last:
            text.append(f"--- as_of {as_of.isoformat()}")
            last = as_of
        text += ["--- input", *_marked(lines), "--- reply"]
        text += _marked(process_lines(ledger, lines, as_of, rules,
                                      trust_senders=participants is None))
    text += ["--- ledger", *ledger_lines(ledger)]
    return "\n".join(text) + "\n"


# --- diffs -------------------------------------------------------------------------------

def _ruler(indent: str) -> list[str]:
    tens = "".join(str(i // 10 % 10) if i % 10 == 0 else " " for i in range(1, WIDTH + 1))
    ones = "".join(str(i % 10) for i in range(1, WIDTH + 1))
    return [indent + tens, indent + ones]


def _fields(lines: Sequence[str]) -> list[dict[int, str]]:
    """Per line of a reply, column -> field name (empty where the line is not understood)."""
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    out: list[dict[int, str]] = []
    for batch in frame(read_lines(io.BytesIO(data))):
        for r in batch.records:
            names: dict[int, str] = {}
            if r.layout is not None:
                for f in r.layout.fields:
                    for c in range(f.start, f.end + 1):
                        names[c] = f.name
            out.append(names)
    return out


def column_diff(expected: Sequence[str], actual: Sequence[str], context: int = 2) -> str:
    """The lines that differ, under a column ruler, each record closed by `|`; a changed
    line is followed by carets under the columns that differ and the fields they are in."""
    return "\n".join(_ruler("    ") + _diff(expected, actual, context, _fields(expected)))


def ledger_diff(expected: Sequence[str], actual: Sequence[str], context: int = 2) -> str:
    """The ledger lines (ledger_lines()) that differ, a changed line followed by carets
    under the characters that differ."""
    return "\n".join(_diff(expected, actual, context, None))


def _diff(expected: Sequence[str], actual: Sequence[str], context: int,
          fields: list[dict[int, str]] | None) -> list[str]:
    """Grouped -/+ lines; records (`fields` given, one dict per expected line) are closed by
    `|` and their caret lines name the fields."""
    end = MARK if fields is not None else ""
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, list(expected), list(actual), autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        out.append(f"@@ expected line {group[0][1] + 1}, actual line {group[0][3] + 1} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [f"    {line}{end}" for line in expected[i1:i2]]
                continue
            old, new = list(expected[i1:i2]), list(actual[j1:j2])
            for k in range(max(len(old), len(new))):
                if k < len(old):
                    out.append(f"  - {old[k]}{end}")
                if k < len(new):
                    out.append(f"  + {new[k]}{end}")
                if k >= len(old) or k >= len(new):
                    continue
                cols = [c for c in range(1, max(len(old[k]), len(new[k])) + 1)
                        if old[k][c - 1:c] != new[k][c - 1:c]]
                if not cols:  # a pair difflib matched though equal: nothing to point at
                    continue
                marks = "".join("^" if c in cols else " " for c in range(1, cols[-1] + 1))
                if fields is None:
                    out.append(f"    {marks}")
                    continue
                names = fields[i1 + k] if i1 + k < len(fields) else {}
                named = list(dict.fromkeys(names.get(c, f"column {c}") for c in cols))
                out.append(f"    {marks}  {', '.join(named)}")
    return out
