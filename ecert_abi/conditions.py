"""Condition codes, loaded from data/conditions.toml: one place for every code we speak.

`Code` is an enum whose members are the codes themselves (`Code["X07"]`, `Code["999"]`);
members are only ever added, never renumbered. `CONDITIONS` maps each code to its
narrative (as CBP prints it, at most 40 characters), default severity, level and rule.
"""

from __future__ import annotations

import enum
import tomllib
from pathlib import Path

import attrs


@attrs.frozen
class Condition:
    code: str
    narrative: str
    severity: str  # F fatal, I informational, F/I per participating country, F(s) fatal version
    level: str  # batch, transaction or line
    when: str
    source: str


def _load() -> dict[str, Condition]:
    raw = tomllib.loads((Path(__file__).parent / "data" / "conditions.toml")
                        .read_text(encoding="utf-8"))
    out = {}
    for code, v in raw.items():
        c = Condition(code, v["narrative"], v["severity"], v["level"], v["when"], v["source"])
        if len(c.narrative) > 40:
            raise ValueError(f"condition {code}: narrative longer than 40 characters")
        out[code] = c
    return out


CONDITIONS: dict[str, Condition] = _load()

Code = enum.StrEnum("Code", [(c, c) for c in CONDITIONS])  # type: ignore[misc]
Code.__doc__ = "Every condition code ecert-abi emits or understands (value = the code)."


def narrative(code: str) -> str:
    """The narrative printed beside `code`; KeyError for a code we do not know."""
    return CONDITIONS[code].narrative


def is_fatal_by_default(code: str) -> bool:
    return CONDITIONS[code].severity != "I"
