"""`ecert-abi check`, `parse` and `emit` through click's CliRunner."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ecert_abi.cli import main

A = "A2704K9TPASSWD041726     AE                                ECERT TEST BATCH 0001"
B = "B  2704K9TAE                                               BLOCK 1              "
R10 = "10AK9T  04172033 2704BRK-0815    0211 X           1                             "
R11 = "1198-7654321  98-7654321                 040626             CA                  "
R40 = "40  001 AUAU030126        0000000850602010000019000    N                        "
R50 = "500202305015 0000123456 0000045000 000001850000KG                               "
R52 = "52056AU004711                                                                   "
Y = "Y  2704K9TAE                                                                    "
Z = "Z2704K9T      041726                                                            "
CLEAN = [A, B, R10, R11, R40, R50, R52, Y, Z]
assert all(len(x) == 80 for x in CLEAN)


def put(line: str, col: int, text: str) -> str:
    return line[:col - 1] + text + line[col - 1 + len(text):]


# line number -> (column, last column, code) of the one defect expected on that line
BAD = [
    A,                                     # 1
    B,                                     # 2
    put(R10, 34, "99"),                    # 3: entry type 99 -> B18 at 34-35
    R11,                                   # 4
    R40,                                   # 5
    put(R50, 31, "\t"),                    # 6: tab -> X40 at 31
    put(R52, 41, "X"),                     # 7: data in filler 25-80 -> X39 at 25-80
    put(R40, 1, "77"),                     # 8: unknown record -> X34 at 1-2
    Y,                                     # 9
    Z[:60],                                # 10: short last record -> X42 at 61
]
EXPECTED = {3: (34, 35, "B18"), 6: (31, 31, "X40"), 7: (25, 80, "X39"), 8: (1, 2, "X34"),
            10: (61, 80, "X42")}
HEADER = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>\S+) (?P<msg>.+)$")


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes("".join(x + newline for x in lines).encode("latin-1"))
    return path


def diagnostics(stdout: str) -> Iterator[tuple[re.Match[str], str, str]]:
    out = stdout.splitlines()
    i = 0
    while i < len(out):
        m = HEADER.match(out[i])
        assert m, f"not a diagnostic header: {out[i]!r}"
        assert out[i + 1].startswith("    ") and out[i + 2].startswith("    ")
        yield m, out[i + 1][4:], out[i + 2][4:]
        i += 3


def test_check_reports_each_defect_with_a_caret(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.abi", BAD)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 1, res.output
    seen = {}
    for m, shown, caret in diagnostics(res.stdout):
        assert m["file"] == str(path)
        line, col = int(m["line"]), int(m["col"])
        seen[line] = (col, m["code"])
        text = BAD[line - 1]
        # the record, non-displayable characters shown as '?'
        assert shown == "".join(c if " " <= c <= "~" else "?" for c in text)
        first, last, _ = EXPECTED[line]
        stars = caret.lstrip(" ")
        assert set(stars) == {"^"}
        assert len(caret) - len(stars) == col - 1  # starts under the first bad column
        if last <= len(text):
            assert len(stars) == last - first + 1  # ... and covers exactly the bad columns
        else:  # X42: the missing columns are not printed; the caret marks column 61
            assert len(stars) == 1
    assert seen == {n: (c, code) for n, (c, _, code) in EXPECTED.items()}
    assert "5 defect(s)" in res.stderr


def test_check_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.abi", BAD)
    res = CliRunner().invoke(main, ["check", str(path)])
    lines = res.stdout.splitlines()
    assert f"{path}:3:34: B18 entry_type_code: " in lines[0]
    assert any(x.startswith(f"{path}:7:25: X39 filler_25_80: ") for x in lines)


def test_check_clean_file_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path / "clean.abi", CLEAN)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert "0 defect(s)" in res.stderr


def test_check_envelope_fault_without_record_defect(tmp_path: Path) -> None:
    path = write(tmp_path / "noz.abi", CLEAN[:-1])
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 1
    (m, shown, caret), = diagnostics(res.stdout)
    assert (m["line"], m["col"], m["code"]) == ("8", "1", "X06")
    assert shown == Y and caret == "^" * 80


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(tmp_path / "nope.abi")])
    assert res.exit_code == 2
    assert "nope.abi" in res.stderr


def test_check_several_files(tmp_path: Path) -> None:
    clean = write(tmp_path / "clean.abi", CLEAN)
    bad = write(tmp_path / "bad.abi", BAD)
    res = CliRunner().invoke(main, ["check", str(clean), str(bad)])
    assert res.exit_code == 1
    assert "2 file(s) checked, 5 defect(s)" in res.stderr


def test_check_requires_a_file() -> None:
    res = CliRunner().invoke(main, ["check"])
    assert res.exit_code == 2


# --- parse | emit ----------------------------------------------------------------------

MIXED = [
    *CLEAN[:3],
    put(R11, 3, "98-7654321xy"),           # lower case in an X field (defect, no X code)
    "",                                    # an empty line
    put(R40, 5, "\x00"),                   # NUL
    put(R50, 14, "    123456"),            # (S)N led by spaces: valid, not canonical
    put(R52, 20, "\xa2"),                  # cent sign (latin-1, not ASCII)
    "QQ unknown record",                   # unknown identifier, short
    "1" * 200,                             # 200 characters
    put(R10, 40, "\r"),                   # a CR inside the record
    Y,
    Z,
]


def parse_emit(tmp_path: Path, src: Path, *emit_args: str) -> bytes:
    runner = CliRunner()
    parsed = runner.invoke(main, ["parse", str(src)])
    assert parsed.exit_code == 0, parsed.output
    out = tmp_path / "out.abi"
    emitted = runner.invoke(main, ["emit", "-", "-o", str(out), *emit_args], input=parsed.stdout)
    assert emitted.exit_code == 0, emitted.output
    return out.read_bytes()


def test_parse_emit_byte_exact_lf(tmp_path: Path) -> None:
    src = write(tmp_path / "mixed.abi", MIXED)
    assert parse_emit(tmp_path, src) == src.read_bytes()


def test_parse_emit_crlf(tmp_path: Path) -> None:
    src = write(tmp_path / "mixed.abi", MIXED, "\r\n")
    lf = "".join(x + "\n" for x in MIXED).encode("latin-1")
    assert parse_emit(tmp_path, src) == lf  # emit writes LF by default
    assert parse_emit(tmp_path, src, "--crlf") == src.read_bytes()


def test_parse_output_shape(tmp_path: Path) -> None:
    src = write(tmp_path / "mixed.abi", MIXED)
    res = CliRunner().invoke(main, ["parse", str(src)])
    objs = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["line"] for o in objs] == list(range(1, len(MIXED) + 1))
    by_line = {o["line"]: o for o in objs}
    assert by_line[1]["layout"] == "A_input" and "raw" not in by_line[1]
    assert by_line[7]["layout"] == "R50" and by_line[7]["raw"] == MIXED[6]
    assert by_line[7]["fields"]["duty_amount"] == "1234.56" and by_line[7]["defects"] == []
    assert by_line[9]["layout"] is None and by_line[9]["raw"] == "QQ unknown record"
    assert by_line[10]["raw"] == "1" * 200
    assert by_line[6]["defects"][0]["code"] == "X40"


def test_parse_reads_stdin(tmp_path: Path) -> None:
    data = "".join(x + "\n" for x in CLEAN).encode("latin-1")
    res = CliRunner().invoke(main, ["parse", "-"], input=data)
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == len(CLEAN)


def test_emit_to_stdout_in_process() -> None:
    obj = {"layout": "R51", "fields": {"standard_visa_number": "6AU123456"}}
    res = CliRunner().invoke(main, ["emit"], input=json.dumps(obj) + "\n")
    assert res.exit_code == 0
    assert res.stdout_bytes == b"516AU123456" + b" " * 69 + b"\n"


R51_JSON = json.dumps({"layout": "R51", "fields": {"standard_visa_number": "6AU123456"}})


CLEAN_TEXT = "".join(x + "\n" for x in CLEAN)


@pytest.mark.parametrize(("args", "data", "writes"), [
    pytest.param(["parse", "-"], CLEAN_TEXT, True, id="parse"),
    pytest.param(["check", "-"], CLEAN_TEXT, False, id="check"),  # clean: nothing to say
    pytest.param(["emit", "-", "-o", "-"], R51_JSON + "\n", True, id="emit"),
    pytest.param(["process", "-", "-o", "-", "--db", ":memory:", "--trust-senders",
                  "--as-of", "2026-04-17"], CLEAN_TEXT, True, id="process"),
])
def test_dash_leaves_the_callers_streams_open(monkeypatch: pytest.MonkeyPatch,
                                              args: list[str], data: str,
                                              writes: bool) -> None:
    """'-' is the caller's stdin/stdout: a command run from Python must not close them."""
    stdin = io.TextIOWrapper(io.BytesIO(data.encode("latin-1")), encoding="latin-1")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        main.main(args, standalone_mode=False)
    except SystemExit as e:  # process and check end with sys.exit
        assert e.code in (0, None)
    assert not stdin.buffer.closed and not stdout.buffer.closed
    stdout.flush()
    written = stdout.buffer.getvalue()  # type: ignore[attr-defined]  # a BytesIO underneath
    assert bool(written) == writes


def test_emit_refuses_a_value_that_does_not_fit(tmp_path: Path) -> None:
    obj = {"layout": "R51", "fields": {"standard_visa_number": "6AU1234567"}}
    res = CliRunner().invoke(main, ["emit", "-", "-o", str(tmp_path / "o.abi")],
                             input=json.dumps(obj) + "\n")
    assert res.exit_code == 2
    assert "-:1:" in res.stderr and "R51.standard_visa_number" in res.stderr


# --- help -----------------------------------------------------------------------------------

def _commands(cmd: click.Command, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, [*path, name])


@pytest.mark.parametrize("path", list(_commands(main, [])), ids=lambda p: " ".join(p) or "main")
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0
    assert "Example" in res.stdout
