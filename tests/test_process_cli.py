"""`ecert-abi process` through click's CliRunner, on the bundled fixtures.

Exit codes (cli.py): 0 every batch processed (transactions may still be rejected), 1 a
batch was rejected whole, 2 usage or I/O error.

Most tests write the replies with `-o FILE`; test_reply_on_stdout_under_clirunner checks
the default `-o -` in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from engine_cases import beef_line, summaries_batch, summary
from participants_support import register

from ecert_abi.cli import main
from ecert_abi.ledger import snapshot
from ecert_abi.sqlite_ledger import MIGRATIONS, SqliteLedger

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AS_OF = "2026-03-02"


@pytest.fixture(scope="module")
def fixture_bytes() -> bytes:
    files = sorted(FIXTURES.glob("0*.abi"))
    assert len(files) >= 7
    return b"".join(p.read_bytes() for p in files)


def a_records(data: bytes) -> int:
    """Batches in a stream: A-records (no other record id of these applications starts
    with A)."""
    return sum(1 for line in data.decode("latin-1").splitlines() if line[:1] == "A")


def run(*args: str, input: bytes | None = None) -> Result:
    """`process ARGS`; a SQLite ledger named by --db first gets the sample senders."""
    if "--db" in args and args[args.index("--db") + 1] != ":memory:":
        register(SqliteLedger(args[args.index("--db") + 1])).close()
    return CliRunner().invoke(main, ["process", *args], input=input, catch_exceptions=False)


def run_to(out: Path, *args: str, input: bytes | None = None) -> tuple[Result, bytes]:
    """Run `process ... -o out`; the result and the reply bytes (b"" if none written)."""
    r = run(*args, "-o", str(out), input=input)
    return r, out.read_bytes() if out.exists() else b""


def ledger_state(path: Path) -> dict[str, object]:
    led = SqliteLedger(str(path))
    try:
        return snapshot(led)
    finally:
        led.close()


def test_fixtures_one_reply_per_batch_and_a_second_run_is_identical(
        tmp_path: Path, fixture_bytes: bytes) -> None:
    src = tmp_path / "all.abi"
    src.write_bytes(fixture_bytes)
    db = tmp_path / "ledger.db"

    first, out = run_to(tmp_path / "r1.abi", str(src), "--db", str(db), "--as-of", AS_OF,
                        "--json-summary")
    assert first.exit_code == 0, first.output
    n = a_records(fixture_bytes)
    assert n == 9
    assert a_records(out) == n
    assert sum(1 for line in out.decode("latin-1").splitlines() if line[:1] == "Z") == n
    assert all(len(line) == 80 for line in out.decode("latin-1").splitlines())
    tally = json.loads(first.stderr.strip().splitlines()[-1])
    assert tally["batches"] == n and tally["rejected_batches"] == 0
    assert tally["replayed"] == 0
    state = ledger_state(db)
    assert state["journal"]  # the summaries were drawn

    second, out2 = run_to(tmp_path / "r2.abi", str(src), "--db", str(db), "--as-of",
                          "2026-03-09", "--json-summary")
    assert second.exit_code == 0, second.output
    assert out2 == out  # byte-identical, even on another day
    assert json.loads(second.stderr.strip().splitlines()[-1])["replayed"] == n
    assert ledger_state(db) == state


def test_stdin_input(tmp_path: Path, fixture_bytes: bytes) -> None:
    src = tmp_path / "in.abi"
    src.write_bytes(fixture_bytes)
    a, from_file = run_to(tmp_path / "a.abi", str(src), "--db", str(tmp_path / "a.db"),
                          "--as-of", AS_OF)
    b, from_stdin = run_to(tmp_path / "b.abi", "-", "--db", str(tmp_path / "b.db"),
                           "--as-of", AS_OF, input=fixture_bytes)
    assert a.exit_code == b.exit_code == 0, b.output
    assert from_stdin == from_file and a_records(from_file) == a_records(fixture_bytes)


def test_trusted_memory_ledger_gives_the_same_replies(tmp_path: Path,
                                                       fixture_bytes: bytes) -> None:
    """Authentication of the (registered) senders changes nothing in the replies."""
    src = tmp_path / "all.abi"
    src.write_bytes(fixture_bytes)
    mem, m = run_to(tmp_path / "m.abi", str(src), "--db", ":memory:", "--as-of", AS_OF,
                    "--trust-senders")
    sql, q = run_to(tmp_path / "q.abi", str(src), "--db", str(tmp_path / "x.db"),
                    "--as-of", AS_OF)
    assert mem.exit_code == sql.exit_code == 0
    assert m == q


def test_reply_on_stdout_under_clirunner(tmp_path: Path, fixture_bytes: bytes) -> None:
    src = tmp_path / "all.abi"
    src.write_bytes(fixture_bytes)
    r = run(str(src), "--db", ":memory:", "--as-of", AS_OF, "--trust-senders")
    assert r.exit_code == 0
    assert a_records(r.stdout_bytes) == a_records(fixture_bytes)


@pytest.mark.parametrize("bad", ["2026-13-01", "03/02/2026", "yesterday", ""])
def test_bad_as_of_exits_2(tmp_path: Path, bad: str) -> None:
    src = tmp_path / "in.abi"
    src.write_bytes((FIXTURES / "01-au-certificates.abi").read_bytes())
    r, data = run_to(tmp_path / "r.abi", str(src), "--db", str(tmp_path / "l.db"),
                     "--as-of", bad)
    assert r.exit_code == 2
    assert "--as-of" in r.output
    assert data == b""


def test_missing_input_file_exits_2(tmp_path: Path) -> None:
    r, data = run_to(tmp_path / "r.abi", str(tmp_path / "no-such.abi"), "--db",
                     str(tmp_path / "l.db"), "--as-of", AS_OF)
    assert r.exit_code == 2
    assert "no-such.abi" in r.output
    assert data == b""


def test_ledger_newer_than_the_code_exits_2(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "future.db"
    conn = sqlite3.connect(str(db))
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    src = tmp_path / "in.abi"
    src.write_bytes((FIXTURES / "01-au-certificates.abi").read_bytes())
    r = CliRunner().invoke(main, ["process", str(src), "--db", str(db), "--as-of", AS_OF,
                                  "-o", str(tmp_path / "r.abi")])
    data = (tmp_path / "r.abi").read_bytes() if (tmp_path / "r.abi").exists() else b""
    assert r.exit_code == 2
    assert "newer" in r.output and data == b""


def _x19_batch() -> list[str]:
    lines = summaries_batch(summary("0417203", beef_line("001", "AU", "6AU123456", "18500")))
    lines[1] = lines[1][:10] + "VA" + lines[1][12:]  # B says VA inside an AE batch
    lines[-2] = lines[-2][:10] + "VA" + lines[-2][12:]
    return lines


def test_a_batch_rejected_whole_exits_1(tmp_path: Path) -> None:
    good = (FIXTURES / "01-au-certificates.abi").read_bytes()
    bad = "".join(x + "\n" for x in _x19_batch()).encode("ascii")
    src = tmp_path / "mixed.abi"
    src.write_bytes(good + bad)
    db = tmp_path / "l.db"
    r, data = run_to(tmp_path / "r1.abi", str(src), "--db", str(db), "--as-of", AS_OF,
                     "--json-summary")
    assert r.exit_code == 1
    out = data.decode("latin-1").splitlines()
    assert a_records(data) == 2  # still one reply per batch
    assert out[-3].startswith("X1RF999   BATCH REJECTED")
    assert json.loads(r.stderr.strip().splitlines()[-1])["rejected_batches"] == 1
    # The good batch was processed: the certificates are on file.
    assert len(ledger_state(db)["certificates"]) == 3  # type: ignore[arg-type]
    # Sent again, the rejected batch gets the same reply.
    _again, data2 = run_to(tmp_path / "r2.abi", str(src), "--db", str(db), "--as-of", AS_OF)
    assert data2 == data


def test_a_replayed_rejected_batch_still_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "bad.abi"
    src.write_bytes("".join(x + "\n" for x in _x19_batch()).encode("ascii"))
    db = tmp_path / "l.db"
    first, data = run_to(tmp_path / "r1.abi", str(src), "--db", str(db), "--as-of", AS_OF)
    assert first.exit_code == 1
    again, data2 = run_to(tmp_path / "r2.abi", str(src), "--db", str(db), "--as-of", AS_OF)
    assert data2 == data
    assert again.exit_code == 1


@pytest.mark.parametrize("db", ["postgresql://ecert:s3cret@127.0.0.1:1/none",
                                "/nonexistent-dir/ledger.db"], ids=["postgres", "sqlite"])
def test_a_ledger_that_cannot_be_opened_exits_2_without_its_password(
        tmp_path: Path, db: str) -> None:
    src = tmp_path / "in.abi"
    src.write_bytes((FIXTURES / "01-au-certificates.abi").read_bytes())
    r = CliRunner().invoke(main, ["process", str(src), "--db", db, "--as-of", AS_OF,
                                  "-o", str(tmp_path / "r.abi")])
    assert r.exit_code == 2
    assert "cannot open the ledger" in r.output and "Traceback" not in r.output
    assert "s3cret" not in r.output
    assert not (tmp_path / "r.abi").exists() or (tmp_path / "r.abi").read_bytes() == b""
