"""Black-box conformance: another ABI processor against ecert-abi, on generated scenarios.

Each scenario (`ecert_abi.testing.scenario`) is fed, all its batches in one stream, to
one invocation of the processor under test and to the reference (by default ecert-abi in
process, on a fresh in-memory ledger). Each reply batch is reduced to *facts* and the
facts are compared; Hypothesis then shrinks a disagreeing scenario to a minimal one.

What is compared, and why (what is fair to ask of another implementation):

* a batch rejected whole: that it is, and the multiset of X1 condition codes (not the
  order of the X0 references);
* per transaction, in input order: its identity (filer and entry number; country,
  programme and certificate number), the final disposition with its narrative (it
  carries the outcome: added, replaced, deleted, cancelled, rejected), and its conditions
  as (severity, code, the line or certificate HTS line they point to), in any order;
  condition narratives are not compared (the code says it);
* usage query answers in full, in order (UC issued/used/remaining/status, UU claims and
  credits, UE counts and disposition), except the journal sequence numbers and the
  continuation key, which are each implementation's own numbering: these answers are
  where the ledger-visible effects of everything before show;
* reply records that do not parse, a reply missing or extra, and an exit status other
  than 0 or 1 (ecert-abi exits 1 when it rejected a batch whole).

Envelope echo details (A/B/Y/Z columns, image counts) are not compared.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import click

from .envelope import Block, frame
from .ledger import MemoryLedger
from .processor import Processor
from .record import read_lines

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from .testing.scenario import Scenario

DEFAULT_AS_OF = dt.date(2026, 3, 2)
OWN_PROCESSOR = "ecert-abi process - --db :memory: --trust-senders --as-of {as_of}"


@attrs.frozen
class Run:
    """What one processor answered for one scenario: its reply batches (lines), and what
    went wrong running it (None when it exited normally)."""

    replies: tuple[tuple[str, ...], ...]
    problem: str | None = None


Runner = Callable[["Scenario"], Run]


def split_replies(data: bytes) -> tuple[tuple[str, ...], ...]:
    """Reply batches in a byte stream, each as its lines."""
    return tuple(tuple(r.text for r in b.records) for b in frame(read_lines(io.BytesIO(data))))


def reference_runner() -> Runner:
    """ecert-abi in process: a fresh in-memory ledger per scenario, senders trusted."""

    def run(scenario: Scenario) -> Run:
        proc = Processor(MemoryLedger(), scenario.as_of, trust_senders=True)
        return Run(tuple(tuple(reply) for reply in
                         proc.process_stream(io.BytesIO(scenario.data()))))

    return run


def command_runner(command: str, *, timeout: float = 60.0) -> Runner:
    """A processor run as a shell command, once per scenario, in a fresh empty working
    directory. `{as_of}` in the command becomes the scenario's date (YYYY-MM-DD, also in
    $ECERT_ABI_AS_OF) and `{workdir}` that directory."""

    def run(scenario: Scenario) -> Run:
        day = scenario.as_of.isoformat()
        with tempfile.TemporaryDirectory(prefix="ecert-abi-conformance-") as work:
            cmd = command.replace("{as_of}", day).replace("{workdir}", work)
            try:
                done = subprocess.run(cmd, shell=True, input=scenario.data(),
                                      capture_output=True, timeout=timeout, cwd=work,
                                      env={**os.environ, "ECERT_ABI_AS_OF": day}, check=False)
            except subprocess.TimeoutExpired as e:
                return Run(split_replies(e.stdout or b""), f"timed out after {timeout:g} s")
        problem = None
        if done.returncode not in (0, 1):
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
            problem = f"exit status {done.returncode}" + "".join(f"\n    {t}" for t in tail)
        return Run(split_replies(done.stdout), problem)

    return run


# --- facts -------------------------------------------------------------------------------

def facts(reply: Sequence[str]) -> list[str]:
    """The comparable content of one reply batch, as readable lines (see the module
    docstring for what is kept)."""
    data = "".join(line + "\n" for line in reply).encode("latin-1")
    batches = list(frame(read_lines(io.BytesIO(data))))
    out: list[str] = []
    for b in batches:
        for r in b.records:
            if not r.ok:
                rules = ", ".join(sorted({f"{d.rule} {d.field or ''}".strip()
                                          for d in r.defects}))
                out.append(f"malformed reply record {r.text.rstrip()!r}: {rules}")
        x1 = [r for r in b.records if r.id == "X1"]
        if x1 or b.application.strip() == "":
            codes = sorted(str(r.get("condition_code")) for r in x1
                           if r.get("disposition_type_code") is None)
            final = any(r.get("disposition_type_code") == "R" for r in x1)
            out.append("batch rejected: " + (" ".join(codes) or "no condition")
                       + ("" if final else " (no final 999 record)"))
            continue
        out.append(f"reply {b.application}, {len(b.blocks)} block(s)")
        for k, blk in enumerate(b.blocks, 1):
            out += _block_facts(k, blk)
    return out


def _block_facts(k: int, blk: Block) -> list[str]:
    out: list[str] = []
    ctx = f"block {k}"
    ref = ""
    conditions: list[str] = []

    def close(final: str | None) -> None:
        nonlocal conditions
        if final is not None or conditions:
            out.append(f"{ctx}: {final or 'no final disposition'}")
            out.extend(f"{ctx}: condition {c}" for c in sorted(conditions))
        conditions = []

    for r in blk.records:
        name = r.layout.name if r.layout is not None else ""
        v = r.get
        if name in ("E0_summry", "C0_certif"):
            close(None)
            ctx = (f"summary {v('entry_filer_code')} {v('entry_number')}"
                   if name == "E0_summry" else
                   f"certificate {v('country_code')} {v('programme_code')} "
                   f"{v('certificate_number')} action {v('action_code')}")
            ref = ""
        elif name == "E0_linitm":
            ref = f"line {v('line_item_identifier')}"
        elif name == "E0_licnse":
            ref += (f" licence {v('license_certificate_permit_type_code')}"
                    f" {v('license_certificate_permit_number')}")
        elif name == "C0_cerlin":
            ref = f"HTS {v('hts_number')}"
        elif name.startswith("E0"):
            ref = " ".join(r.text[3:].split())
        elif name in ("E1", "C1"):
            if v("disposition_type_code") is None:
                conditions.append(f"{v('severity_code')} {v('condition_code')}"
                                  + (f" at {ref.strip()}" if ref else ""))
            else:
                close(f"{v('disposition_type_code')} {v('narrative_text')}")
        elif name == "UC":
            out.append(f"{ctx}: usage line {v('country_code')} {v('programme_code')} "
                       f"{v('certificate_number')} {v('hts_number')}: issued "
                       f"{v('issued_quantity')} used {v('used_quantity')} remaining "
                       f"{v('remaining_quantity')} {v('unit_of_measure_code')} status "
                       f"{v('status_code')} year {v('quota_year')} expires {v('expiry_date')}")
        elif name == "UU":
            out.append(f"{ctx}: usage {v('programme_code')} {v('certificate_number')} "
                       f"{v('hts_number')}: {v('usage_action_code')} {v('quantity')} entry "
                       f"{v('entry_filer_code')} {v('entry_number')} line "
                       f"{v('line_item_identifier')} on {v('usage_date')} IOR "
                       f"{v('importer_of_record_number')}")
        elif name == "UE":
            out.append(f"{ctx}: query {v('disposition_type_code')} "
                       f"{v('condition_code') or '-'}: {v('certificate_count')} certificate "
                       f"line(s), {v('usage_count')} usage(s)"
                       + (", more to come" if v("more_indicator") == "Y" else ""))
        else:
            out.append(f"{ctx}: record {r.text.rstrip()!r}")
    close(None)
    return out


# --- comparison --------------------------------------------------------------------------

@attrs.frozen
class Difference:
    """One reply batch on which the two disagree (`batch` counts from 1)."""

    batch: int
    reference: tuple[str, ...]
    candidate: tuple[str, ...]


@attrs.frozen
class Comparison:
    scenario: Scenario
    reference: Run
    candidate: Run
    differences: tuple[Difference, ...]

    @property
    def agrees(self) -> bool:
        return not self.differences


def _replies_facts(run: Run, n: int) -> list[tuple[str, ...]]:
    out = [tuple(facts(r)) for r in run.replies[:n]]
    out += [("no reply",)] * (n - len(out))
    out += [("reply without an input batch", *facts(r)) for r in run.replies[n:]]
    if run.problem and out:
        out[-1] = (*out[-1], f"processor failed: {run.problem}")
    return out


def compare(scenario: Scenario, reference: Runner, candidate: Runner) -> Comparison:
    """Run both processors on `scenario` and compare their replies batch by batch."""
    ref, cand = reference(scenario), candidate(scenario)
    n = len(scenario.batches)
    a, b = _replies_facts(ref, n), _replies_facts(cand, n)
    a += [()] * (len(b) - len(a))
    b += [()] * (len(a) - len(b))
    diffs = tuple(Difference(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True), 1)
                  if x != y)
    return Comparison(scenario, ref, cand, diffs)


@attrs.frozen
class Outcome:
    """The result of a conformance run: how many scenarios were tried, and the minimal
    disagreement found (None when the processors agreed on every scenario)."""

    tried: int
    batches: int
    minimal: Comparison | None = None
    first: Comparison | None = None
    shrink_runs: int = 0
    budget_spent: bool = False


def check_conformance(candidate: Runner, *, reference: Runner | None = None,
                      strategy: SearchStrategy[Scenario] | None = None,
                      max_examples: int = 50, seed: int | None = 0, max_shrinks: int = 200,
                      progress: Callable[[int, bool], None] | None = None) -> Outcome:
    """Search for a scenario on which `candidate` and `reference` disagree, and shrink it.

    Hypothesis generates up to `max_examples` scenarios (`strategy`, by default
    `scenarios(as_of=2026-03-02)`), deterministically for a given `seed`. The first
    disagreement is shrunk with at most `max_shrinks` further runs of both processors.
    `progress(runs, disagreed)` is called after each run. The smallest disagreeing
    scenario seen is reported (fewest batches, then fewest bytes).
    """
    from random import Random

    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from .testing.scenario import scenarios

    reference = reference or reference_runner()
    strategy = strategy if strategy is not None else scenarios(as_of=DEFAULT_AS_OF)
    seen: dict[bytes, Comparison] = {}
    state: dict[str, Any] = {"first": None, "best": None, "runs": 0, "after": 0,
                             "batches": 0}

    def size(c: Comparison) -> tuple[int, int]:
        return len(c.scenario.batches), len(c.scenario.data())

    def disagrees(scenario: Scenario) -> bool:
        key = _key(scenario)
        hit = seen.get(key)
        if hit is None:
            if state["first"] is not None and state["after"] >= max_shrinks:
                raise _BudgetSpent
            hit = seen[key] = compare(scenario, reference, candidate)
            state["runs"] += 1
            if state["first"] is None:
                state["batches"] += len(scenario.batches)
                if not hit.agrees:
                    state["first"] = hit
            else:
                state["after"] += 1
            if progress is not None:
                progress(state["runs"], not hit.agrees)
        if not hit.agrees and (state["best"] is None or size(hit) < size(state["best"])):
            state["best"] = hit
        return not hit.agrees

    config = settings(max_examples=max_examples, database=None, deadline=None,
                      phases=[Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
    spent = False
    try:
        found = find(strategy, disagrees, settings=config,
                     random=Random(seed) if seed is not None else None)
        minimal = seen[_key(found)]
    except NoSuchExample:
        return Outcome(state["runs"], state["batches"])
    except _BudgetSpent:
        spent, minimal = True, state["best"]
    tried = state["runs"] - state["after"]
    return Outcome(tried, state["batches"], minimal, state["first"], state["after"], spent)


class _BudgetSpent(BaseException):
    """Ends the search once the shrinking budget is spent. A BaseException, so that
    Hypothesis passes it through instead of taking it for another failure to shrink."""


def _key(scenario: Scenario) -> bytes:
    return scenario.as_of.isoformat().encode() + b"\n" + scenario.data()


# --- reporting ---------------------------------------------------------------------------

def _shown(line: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in line)


def report(outcome: Outcome, *, name: str = "the processor") -> str:
    """What `ecert-abi conformance` prints: a one-line success, or the minimal scenario,
    the facts that differ per reply batch, and both replies to the first such batch."""
    if outcome.minimal is None:
        return (f"agree: {name} and the reference agree on {outcome.tried} scenario(s), "
                f"{outcome.batches} batch(es): dispositions, condition codes and "
                "ledger effects")
    c = outcome.minimal
    s = c.scenario
    first = outcome.first.scenario if outcome.first is not None else s
    spent = (" (the shrinking budget is spent: a smaller example may exist)"
             if outcome.budget_spent else "")
    out = [f"DISAGREEMENT: {name} differs from the reference.",
           f"Found after {outcome.tried} scenario(s); shrunk from {len(first.batches)} to "
           f"{len(s.batches)} batch(es) with {outcome.shrink_runs} more run(s){spent}.", "",
           "Minimal scenario (`|` marks the end of each record; ? a non-displayable "
           "character):", *map(_shown, s.describe().splitlines()), ""]
    for d in c.differences:
        out.append(f"Reply to batch {d.batch} (- reference, + {name}):")
        diff = difflib.unified_diff(list(d.reference), list(d.candidate), lineterm="", n=1)
        out += [f"  {line}" for line in list(diff)[2:]]
        out.append("")
    d0 = c.differences[0]
    for who, run in (("reference", c.reference), (name, c.candidate)):
        lines = run.replies[d0.batch - 1] if d0.batch <= len(run.replies) else ()
        out.append(f"Reply to batch {d0.batch}, {who}:")
        out += [f"  {_shown(line)}|" for line in lines] or ["  (none)"]
        if run.problem:
            out.append(f"  ({who}: {run.problem})")
    return "\n".join(out)


def case_text(comparison: Comparison) -> str:
    """The minimal scenario as a case file for the pytest plugin (`ecert_assert_case`):
    each input batch with the reference's reply."""
    s = comparison.scenario
    out = ["# Minimal disagreement found by `ecert-abi conformance`; the replies are the",
           "# reference's.", f"--- as_of {s.as_of.isoformat()}"]
    for i, lines in enumerate(s.batches):
        out.append(f"# batch {i + 1}: {s.notes[i]}")
        out.append("--- input")
        out += [f"{line}|" for line in lines]
        out.append("--- reply")
        reply: Iterable[str] = comparison.reference.replies[i] \
            if i < len(comparison.reference.replies) else ()
        out += [f"{line}|" for line in reply]
    return "\n".join(out) + "\n"


# --- command -----------------------------------------------------------------------------

def _probe(command: str, timeout: float) -> None:
    """Refuse to start when the command cannot be run at all (the shell's 126/127)."""
    day = DEFAULT_AS_OF.isoformat()
    with tempfile.TemporaryDirectory(prefix="ecert-abi-conformance-") as work:
        try:
            done = subprocess.run(command.replace("{as_of}", day).replace("{workdir}", work),
                                  shell=True, input=b"", capture_output=True, cwd=work,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return
    if done.returncode in (126, 127):
        err = done.stderr.decode("utf-8", "replace").strip()
        raise click.ClickException(f"cannot run {command!r}: {err}")


@click.command("conformance")
@click.option("--processor", "command", required=True, metavar="COMMAND",
              help="Shell command of the processor under test: input batches on stdin, one "
                   "reply batch per input batch on stdout. {as_of} becomes the processing "
                   "date (also $ECERT_ABI_AS_OF), {workdir} a fresh empty directory (also "
                   "its working directory).")
@click.option("--reference", "reference_command", default=None, metavar="COMMAND",
              help="Compare with this command instead of ecert-abi in process.")
@click.option("--scenarios", "count", default=50, show_default=True, type=click.IntRange(1),
              help="How many scenarios to try.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the scenario generator (same seed, same scenarios).")
@click.option("--as-of", "as_of", default=DEFAULT_AS_OF.isoformat(), show_default=True,
              help="Processing date of every scenario (YYYY-MM-DD), or 'any' for a date "
                   "drawn per scenario (then the command needs {as_of}).")
@click.option("--max-shrinks", default=200, show_default=True, type=click.IntRange(0),
              help="At most this many extra runs to shrink a disagreement.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds one run of a processor may take.")
@click.option("--save-case", type=click.Path(dir_okay=False), default=None,
              help="Write the minimal disagreement as a case file (inputs and the "
                   "reference's replies).")
def conformance(command: str, reference_command: str | None, count: int, seed: int,
                as_of: str, max_shrinks: int, timeout: float, save_case: str | None) -> None:
    """Compare another ABI processor with ecert-abi on generated scenarios.

    Each scenario registers certificates, files, replaces and deletes entry summaries
    against them (some within the balance, some over it, some for the wrong importer,
    origin, HTS or unit), replaces and cancels certificates, resends batches and ends with
    usage queries. Its batches go to one run of COMMAND; the replies are compared with the
    reference's on dispositions, condition codes and the usage the queries report. A
    disagreement is shrunk to a minimal scenario, printed with both replies.

    \b
    Exit codes: 0 the processor agrees on every scenario, 1 a disagreement was found,
    2 usage error or the processor cannot be run.

    \b
    Example:
      ecert-abi conformance --scenarios 20 \\
        --processor "ecert-abi process - --db :memory: --trust-senders --as-of {as_of}"
    """
    from .testing.scenario import scenarios

    if as_of == "any":
        day = None
    else:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not YYYY-MM-DD or 'any'",
                                     param_hint="--as-of") from None
    _probe(command, timeout)
    reference = command_runner(reference_command, timeout=timeout) if reference_command \
        else reference_runner()
    tty = sys.stderr.isatty()

    def progress(runs: int, disagreed: bool) -> None:
        if tty:
            click.echo(f"\r{runs} run(s){', shrinking' if disagreed else ''}   ", nl=False,
                       err=True)

    click.echo(f"conformance: up to {count} scenario(s), seed {seed}, as of {as_of}", err=True)
    outcome = check_conformance(command_runner(command, timeout=timeout), reference=reference,
                                strategy=scenarios(as_of=day), max_examples=count, seed=seed,
                                max_shrinks=max_shrinks, progress=progress)
    if tty:
        click.echo("", err=True)
    click.echo(report(outcome, name="the processor"))
    if outcome.minimal is not None:
        if save_case:
            with open(save_case, "w", encoding="latin-1") as f:
                f.write(case_text(outcome.minimal))
            click.echo(f"minimal scenario written to {save_case}", err=True)
        sys.exit(1)
