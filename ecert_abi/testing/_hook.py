"""Registration with Hypothesis (entry point group `hypothesis`), so that `st.from_type()`
builds the transaction types after a plain `pip install ecert-abi`.

Hypothesis calls `_hypothesis_setup_hook` when it is imported; each strategy is built only
when a test first asks for its type.
"""

from __future__ import annotations

from typing import Any


def _hypothesis_setup_hook() -> None:
    from hypothesis import strategies as st

    from ..transactions import (
        Certificate,
        CertificateLine,
        EntryLine,
        EntrySummary,
        Tariff,
        UsageQuery,
    )

    def lazily(name: str) -> Any:
        def resolve(_type: type) -> Any:
            from . import strategies

            return getattr(strategies, name)()

        return resolve

    for cls, name in ((EntrySummary, "entry_summaries"), (EntryLine, "entry_lines"),
                      (Tariff, "tariffs"), (Certificate, "certificates"),
                      (CertificateLine, "certificate_lines"), (UsageQuery, "queries")):
        st.register_type_strategy(cls, lazily(name))
