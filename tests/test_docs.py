"""Documentation that must not drift: help texts, condition narratives, specs, public API."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ecert_abi
from ecert_abi import cli
from ecert_abi.conditions import CONDITIONS, Code
from ecert_abi.record import catalogue

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, prefix + name + " ")
    return out


@pytest.mark.parametrize("name,cmd", _commands(cli.main), ids=lambda x: str(x))
def test_every_command_has_help_with_an_example(name: str, cmd: click.Command) -> None:
    result = CliRunner().invoke(cli.main, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert cmd.help and "Example" in cmd.help, f"{name} lacks an example in its help"


def test_every_condition_is_documented() -> None:
    for code, c in CONDITIONS.items():
        assert c.narrative and len(c.narrative) <= 40, code
        assert c.narrative == c.narrative.upper(), code
        assert c.when.strip(), f"{code} lacks its 'when'"
        assert c.severity in {"F", "I", "F/I", "F(s)"}, code
        assert c.level in {"batch", "transaction", "line"}, code
        assert Code[code] == code


def test_every_code_a_layout_or_the_engine_names_exists() -> None:
    for lay in catalogue().layouts():
        for f in lay.fields:
            for code in (f.missing, f.invalid):
                assert code is None or code in CONDITIONS, (lay.name, f.name, code)
    source = "".join(p.read_text() for p in (ROOT / "ecert_abi").glob("*.py"))
    for code in set(re.findall(r'Finding\("([A-Z0-9]{3})"', source)):
        assert code in CONDITIONS, code


def test_specs_are_current() -> None:
    result = CliRunner().invoke(cli.main, ["specs", "--check", "--dir", str(ROOT / "specs")])
    assert result.exit_code == 0, result.output


def test_public_names() -> None:
    assert sorted(ecert_abi.__all__) == sorted([
        "CONDITIONS", "Batch", "Block", "Catalogue", "Chapter", "Code", "Condition", "Defect",
        "EmitError", "Fault", "Field", "Layout", "LayoutError", "Record", "catalogue", "frame",
        "read_lines", "reject_reply", "reply_envelope"])
    for name in ecert_abi.__all__:
        assert hasattr(ecert_abi, name)


def test_application_identifiers_do_not_collide_with_cbp() -> None:
    cbp = set(catalogue().envelope.codes["application_identifier"])
    retired = {"JC", "JD", "TI", "TR", "EI", "HP"}
    for ch in catalogue().chapters.values():
        for code in (ch.input, ch.response):
            if code and ch.name not in ("entry_summary", "importer_usage_query"):
                assert code not in cbp | retired, (ch.name, code)
