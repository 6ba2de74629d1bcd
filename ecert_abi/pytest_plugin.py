"""pytest plugin (entry point `pytest11`): ledgers, a processor and case files for tests.

Fixtures:

* `ecert_ledger` - a fresh, empty ledger per test: in memory, or SQLite in the test's
  temporary directory (`--ecert-ledger=sqlite` or ini `ecert_ledger = sqlite`);
* `ecert_processor` - a `Processor` on `ecert_ledger`, senders trusted;
* `ecert_as_of` - the processing date (`--ecert-as-of` or ini `ecert_as_of`, default today);
* `ecert_assert_case` - `ecert_assert_case(path)` runs a case file (input batches, the
  exact replies expected and, if it has one, the final `--- ledger`) on a fresh ledger and
  fails with a column-aligned diff; a case marked `--- xfail REASON` must fail (strict);
* `ecert_harness` - session-scoped `ecert_abi.testing.harness.Harness`: `process(...)`
  starts from a fresh ledger on every call, so it is safe inside `@given` tests (which
  refuse function-scoped fixtures).

Nothing heavy is imported until a fixture is used; disable with `-p no:ecert_abi`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .ledger import Ledger
    from .processor import Processor
    from .testing.harness import Harness


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ecert-abi")
    group.addoption("--ecert-ledger", choices=("memory", "sqlite"), default=None,
                    help="kind of ledger the ecert_* fixtures open (default: memory)")
    group.addoption("--ecert-as-of", default=None, metavar="YYYY-MM-DD",
                    help="processing date of the ecert_* fixtures (default: today)")
    parser.addini("ecert_ledger", "kind of ledger the ecert_* fixtures open: memory or sqlite",
                  default="memory")
    parser.addini("ecert_as_of", "processing date (YYYY-MM-DD) of the ecert_* fixtures",
                  default="")


def _ledger_kind(config: pytest.Config) -> str:
    kind = config.getoption("--ecert-ledger") or str(config.getini("ecert_ledger")) or "memory"
    if kind not in ("memory", "sqlite"):
        raise pytest.UsageError(f"ecert_ledger = {kind!r}: expected memory or sqlite")
    return kind


def _as_of(config: pytest.Config) -> dt.date:
    value = config.getoption("--ecert-as-of") or str(config.getini("ecert_as_of"))
    if not value:
        return dt.date.today()  # the edge of the test run, like the CLI's default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise pytest.UsageError(f"ecert_as_of = {value!r} is not YYYY-MM-DD") from None


@pytest.fixture
def ecert_as_of(pytestconfig: pytest.Config) -> dt.date:
    """The processing date of the ecert_* fixtures."""
    return _as_of(pytestconfig)


@pytest.fixture
def ecert_ledger_kind(pytestconfig: pytest.Config) -> str:
    """The kind of ledger `ecert_ledger` opens, "memory" or "sqlite"; override this fixture
    (or parametrise it) to choose per test."""
    return _ledger_kind(pytestconfig)


@pytest.fixture
def ecert_ledger(ecert_ledger_kind: str, tmp_path: Path) -> Iterator[Ledger]:
    """A fresh, empty ledger, closed after the test."""
    from .ledger import MemoryLedger
    from .sqlite_ledger import SqliteLedger

    ledger: Ledger
    if ecert_ledger_kind == "sqlite":
        ledger = SqliteLedger(str(tmp_path / "ecert-ledger.db"))
    else:
        ledger = MemoryLedger()
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def ecert_processor(ecert_ledger: Ledger, ecert_as_of: dt.date) -> Processor:
    """A Processor on `ecert_ledger` at `ecert_as_of`, senders trusted."""
    from .processor import Processor

    return Processor(ecert_ledger, ecert_as_of, trust_senders=True)


@pytest.fixture(scope="session")
def ecert_harness(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Harness]:
    """Session-wide harness: `process()`, `new_ledger()`, `assert_case()`."""
    from .testing.harness import Harness

    kind = _ledger_kind(pytestconfig)
    directory = tmp_path_factory.mktemp("ecert-ledgers") if kind == "sqlite" else None
    harness = Harness(as_of=_as_of(pytestconfig), ledger_kind=kind, directory=directory)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def ecert_assert_case(ecert_ledger_kind: str, tmp_path: Path, ecert_as_of: dt.date
                      ) -> Iterator[Callable[[str | Path], None]]:
    """`ecert_assert_case(path)` (or the text of a case file): run it on a fresh ledger; a
    differing reply or final ledger fails the test with a column-aligned diff. A case
    marked `--- xfail REASON` xfails when it fails and fails when it passes (strict). Each
    call gets its own ledger."""
    from .testing.cases import CaseMismatch, load_case, parse_case
    from .testing.harness import Harness

    harness = Harness(as_of=ecert_as_of, ledger_kind=ecert_ledger_kind, directory=tmp_path)

    def check(case: str | Path) -> None:
        __tracebackhide__ = True  # the diff is the message; the plugin's frames are noise
        parsed = load_case(case) if isinstance(case, Path) or "\n" not in case \
            else parse_case(case)
        if parsed.xfail is None:
            harness.assert_case(parsed)
            return
        try:
            harness.assert_case(parsed)
        except CaseMismatch:
            pytest.xfail(f"{parsed.name}: {parsed.xfail}")
        pytest.fail(f"{parsed.name}: marked '--- xfail {parsed.xfail}' but passes",
                    pytrace=False)

    try:
        yield check
    finally:
        harness.close()
