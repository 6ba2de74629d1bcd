"""Conformance kit: Hypothesis strategies derived from the layouts, scenarios that keep a
ledger's state in mind, and a harness for tests (see docs/integrators-guide.md).

    from ecert_abi.testing import records, invalid_records, entry_summaries, scenarios

Records and batches are 80-column lines (str); transactions are the attrs classes of
`ecert_abi.transactions`. `st.from_type(EntrySummary)` (and the other transaction types)
resolves to these strategies once ecert-abi is installed. The pytest fixtures live in
`ecert_abi.pytest_plugin`; the harness and case files in `.harness` and `.cases`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fieldtext import RULES
    from .scenario import Scenario, scenarios
    from .strategies import (
        APPLICATIONS,
        batch_lines,
        batches,
        break_line,
        breakable_rules,
        certificate_lines,
        certificates,
        entry_lines,
        entry_summaries,
        importer_numbers,
        invalid_records,
        queries,
        records,
        tariffs,
    )


# Submodule of each public name: imported on first use, so that registering the strategies
# with Hypothesis (which imports this package) costs no more than the types themselves.
_HOME = {"RULES": "fieldtext", "Scenario": "scenario", "scenarios": "scenario"}

__all__ = [
    "APPLICATIONS",
    "RULES",
    "Scenario",
    "batch_lines",
    "batches",
    "break_line",
    "breakable_rules",
    "certificate_lines",
    "certificates",
    "entry_lines",
    "entry_summaries",
    "importer_numbers",
    "invalid_records",
    "queries",
    "records",
    "scenarios",
    "tariffs",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME.get(name, 'strategies')}", __name__),
                    name)
    globals()[name] = value
    return value
