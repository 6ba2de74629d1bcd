"""Case files (input batches and the exact replies expected), run against a ledger, with a
column-aligned diff when a reply differs.

A case file is a sequence of sections, each started by a line beginning `--- `:

    # a comment (anywhere)
    --- profile AU L04,L15     country AU makes these F/I conditions informational
    --- limit BEEF-AU 60000    a quota pool's limit for this case
    --- as_of 2026-03-02       processing date of the steps that follow
    --- input                  one or more input batches
    --- reply                  the reply batches expected for that input, exactly

Every record line ends with `|` right after its last column (column 81 for an 80-column
record), so that no editor can eat trailing spaces; the `|` is not part of the record.
`input`/`reply` pairs repeat, all against one ledger. This is the format of the project's
own engine cases without their `--- ledger` section.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
from collections.abc import Sequence
from pathlib import Path

import attrs

from ..engine import Rules, default_rules
from ..envelope import frame
from ..ledger import Ledger
from ..processor import Processor
from ..record import read_lines

MARK = "|"
WIDTH = 80


class CaseError(ValueError):
    """A malformed case file; the message says where."""


class CaseMismatch(AssertionError):
    """A reply differs from the case's expectation; the message is a column-aligned diff."""


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

    def rules(self) -> Rules:
        """default_rules() with the case's informational profiles and pool limits."""
        rules = default_rules()
        for country, codes in self.profiles:
            rules = rules.with_informational(country, codes)
        known = {p.name for p in rules.pools}
        for pool, _ in self.limits:
            if pool not in known:
                raise CaseError(f"{self.name}: unknown quota pool {pool!r}")
        limits = dict(self.limits)
        return attrs.evolve(rules, pools=tuple(
            attrs.evolve(p, limit=limits[p.name]) if p.name in limits else p
            for p in rules.pools))


def parse_case(text: str, name: str = "<case>") -> Case:
    """A Case from the text of a case file; CaseError names the line at fault."""
    steps: list[Step] = []
    profiles: list[tuple[str, tuple[str, ...]]] = []
    limits: list[tuple[str, int]] = []
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
            if section == "input" and head != "reply":
                raise CaseError(f"{where}: '--- input' must be followed by '--- reply'")
            if section == "reply":
                assert as_of is not None
                steps.append(Step(as_of, tuple(given), tuple(expected), start))
                given, expected = [], []
            section = None
            if head == "as_of":
                try:
                    as_of = dt.date.fromisoformat(rest.strip())
                except ValueError:
                    raise CaseError(f"{where}: {rest.strip()!r} is not YYYY-MM-DD") from None
            elif head == "profile":
                country, _, codes = rest.strip().partition(" ")
                profiles.append((country, tuple(c for c in codes.replace(" ", "").split(",")
                                                if c)))
            elif head == "limit":
                try:
                    pool, value = rest.split()
                    limits.append((pool, int(value)))
                except ValueError:
                    raise CaseError(f"{where}: expected '--- limit POOL NUMBER'") from None
            elif head == "input":
                if as_of is None:
                    raise CaseError(f"{where}: '--- as_of' needed before the first input")
                section, start = "input", n
            elif head == "reply":
                if not given:
                    raise CaseError(f"{where}: '--- reply' without an input")
                section = "reply"
            elif head == "ledger":
                raise CaseError(f"{where}: '--- ledger' sections are not run here; end the "
                                "case with a usage query step to check the ledger")
            else:
                raise CaseError(f"{where}: unknown section {raw!r}")
            continue
        if section not in ("input", "reply"):
            raise CaseError(f"{where}: text outside an input or reply section: {raw!r}")
        if not raw.endswith(MARK):
            raise CaseError(f"{where}: a record line must end with '{MARK}' after its last "
                            f"column: {raw!r}")
        (given if section == "input" else expected).append(raw[:-1])
    if section == "input":
        raise CaseError(f"{name}: the last input has no '--- reply'")
    if section == "reply":
        assert as_of is not None
        steps.append(Step(as_of, tuple(given), tuple(expected), start))
    if not steps:
        raise CaseError(f"{name}: no input/reply step")
    return Case(name, tuple(steps), tuple(profiles), tuple(limits))


def load_case(path: str | Path) -> Case:
    p = Path(path)
    return parse_case(p.read_bytes().decode("latin-1"), p.name)


def process_lines(ledger: Ledger, lines: Sequence[str], as_of: dt.date,
                  rules: Rules | None = None, *, trust_senders: bool = True) -> list[str]:
    """The reply lines for input lines (one or more batches); senders are trusted unless
    `trust_senders` is False (then the processor's own sender checks apply)."""
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    proc = Processor(ledger, as_of, rules, trust_senders=trust_senders)
    return [line for reply in proc.process_stream(io.BytesIO(data)) for line in reply]


def run_case(case: Case, ledger: Ledger, *, trust_senders: bool = True) -> None:
    """Run every step of `case` on `ledger`; CaseMismatch with a column diff at the first
    step whose reply differs."""
    __tracebackhide__ = True  # under pytest the diff is the message; these frames are noise
    rules = case.rules()
    for i, step in enumerate(case.steps, 1):
        actual = process_lines(ledger, step.input, step.as_of, rules,
                               trust_senders=trust_senders)
        if actual != list(step.reply):
            raise CaseMismatch(f"{case.name}: reply to step {i} (input at line {step.line}) "
                               f"differs (- expected, + actual):\n"
                               + column_diff(step.reply, actual))


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
    layout_of = _fields(expected)
    out = _ruler("    ")
    matcher = difflib.SequenceMatcher(None, list(expected), list(actual), autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        out.append(f"@@ expected line {group[0][1] + 1}, actual line {group[0][3] + 1} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [f"    {line}|" for line in expected[i1:i2]]
                continue
            old, new = list(expected[i1:i2]), list(actual[j1:j2])
            for k in range(max(len(old), len(new))):
                if k < len(old):
                    out.append(f"  - {old[k]}|")
                if k < len(new):
                    out.append(f"  + {new[k]}|")
                if k < len(old) and k < len(new):
                    cols = [c for c in range(1, max(len(old[k]), len(new[k])) + 1)
                            if old[k][c - 1:c] != new[k][c - 1:c]]
                    marks = "".join("^" if c in cols else " " for c in range(1, cols[-1] + 1))
                    names = layout_of[i1 + k] if i1 + k < len(layout_of) else {}
                    fields = list(dict.fromkeys(names.get(c, f"column {c}") for c in cols))
                    out.append(f"    {marks}  {', '.join(fields)}")
    return "\n".join(out)
