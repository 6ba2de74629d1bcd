"""`ecert-abi participants` through click's CliRunner, and its effect on `process`.

Passwords come from standard input (`--password-stdin`) or a hidden, confirmed prompt,
never from the command line; `list` never shows a hash. Each registry change is checked
through processing a batch afterwards. Query batches carry a different date each time:
a batch sent again byte for byte is answered with its stored reply.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner, Result
from engine_cases import (
    IOR_A,
    beef_cert,
    beef_line,
    certs_batch,
    importer_query,
    summaries_batch,
    summary,
)

from ecert_abi import queries
from ecert_abi.access import verify_password
from ecert_abi.cli import main
from ecert_abi.envelope import input_batch
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import UsageQuery

SECRET = "Q7XW2Z"
IOR_TEXT = ("(IRS NN-NNNNNNN, with suffix NN-NNNNNNNss, SSN NNN-NN-NNNN or CBP"
            " YYDDPP-NNNNN)")


def cli(*args: str | Path, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input,
                              catch_exceptions=False)


def add(db: Path, *args: str, password: str = SECRET) -> Result:
    return cli("participants", "add", *args, "--password-stdin", "--db", db,
               input=password + "\n")


def stored(db: Path) -> dict[str, str]:
    """site/id -> password hash, read from the ledger file."""
    ledger = SqliteLedger(str(db))
    try:
        return {f"{p.site}/{p.sender_id}": p.password_hash for p in ledger.participants()}
    finally:
        ledger.close()


def process(db: Path, tmp_path: Path, lines: list[str], as_of: str) -> tuple[int, list[str]]:
    """`process` a batch file against the ledger; (exit code, reply lines)."""
    src, out = tmp_path / "in.abi", tmp_path / "out.abi"
    src.write_text("".join(x + "\n" for x in lines), encoding="latin-1")
    out.unlink(missing_ok=True)
    r = cli("process", src, "-o", out, "--db", db, "--as-of", as_of)
    return r.exit_code, out.read_text(encoding="latin-1").splitlines()


def query(day: int, password: str = "K9TPAS") -> list[str]:
    """K9T asks about 98-7654321 on 2026-03-<day>."""
    return input_batch(site="2704", sender="K9T", password=password, application="EC",
                       date=dt.date(2026, 3, day),
                       blocks=[("2704", "K9T", UsageQuery("importer", ior=IOR_A).to_records())])


UC = "UCAU056AU123456 0202305015000000050000000000000000000000050000KG A2026123126    "
V21 = "UE000000000000                     RV21 IMPORTER NOT AUTHORIZED FOR REQUESTER   "
X09 = "X1 FX09   SENDER/RECEIVER NOT AUTHORIZED".ljust(80)


# --- add ---------------------------------------------------------------------------------

def test_add_reads_the_password_from_stdin_and_keeps_only_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    r = add(db, "2704", "K9T", "--filer", "K9T", "--ior", "98-7654321",
            "--ior", "12-3456789ab")
    assert (r.exit_code, r.output) == (
        0, "added 2704/K9T filer K9T iors=12-3456789AB,98-7654321\n")
    (hashed,) = stored(db).values()
    assert hashed.startswith("scrypt$16384$8$1$") and SECRET not in hashed
    assert verify_password(SECRET, hashed) and not verify_password("Q7XW2Y", hashed)


def test_add_prompts_hidden_and_confirmed(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    r = cli("participants", "add", "EAU1", "AUC", "--country", "AU", "--db", db,
            input=f"{SECRET}\n{SECRET}\n")
    assert r.exit_code == 0, r.output
    assert r.output == ("Password (6 letters/digits): \nRepeat for confirmation: \n"
                        "added EAU1/AUC country AU\n")
    assert verify_password(SECRET, stored(db)["EAU1/AUC"])


def test_the_password_is_never_a_command_line_argument(tmp_path: Path) -> None:
    r = cli("participants", "add", "2704", "K9T", "--filer", "K9T", "--password", SECRET,
            "--db", tmp_path / "l.db")
    assert r.exit_code == 2
    assert r.output.endswith("Error: No such option '--password'. Did you mean"
                             " '--password-stdin'?\n")


def test_add_twice_is_refused_and_keeps_the_first(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    assert add(db, "2704", "K9T", "--filer", "K9T").exit_code == 0
    first = stored(db)
    r = add(db, "2704", "K9T", "--filer", "K9T", password="OTHER1")
    assert (r.exit_code, r.output) == (2, "Error: 2704/K9T is already registered (change it"
                                          " with passwd, grant, revoke, disable)\n")
    assert stored(db) == first


@pytest.mark.parametrize(("args", "password", "message"), [
    (["2-04", "K9T", "--filer", "K9T"], SECRET, "site code '2-04' is not 4 letters/digits"),
    (["2704", "k9t", "--filer", "K9T"], SECRET, "sender ID 'k9t' is not 3 letters/digits"),
    (["2704", "K9T", "--filer", "K9T", "--ior", "98-765432"], SECRET,
     f"not an IOR number: 98-765432 {IOR_TEXT}"),
    (["2704", "K9T", "--filer", "K9T", "--ior", "98-7654321", "--ior", "1234"], SECRET,
     f"not an IOR number: 1234 {IOR_TEXT}"),
    (["EAU1", "AUC", "--country", "AUS"], SECRET, "country code 'AUS' is malformed"),
    (["EAU1", "AUC", "--country", "AU", "--ior", "98-7654321"], SECRET,
     "only a filer is granted IORs"),
    (["2704", "K9T", "--filer", "K9T"], "q7xw2z",
     "a password is exactly 6 upper-case letters or digits (A-record positions 9-14)"),
    (["2704", "K9T", "--filer", "K9T"], "Q7XW2",
     "a password is exactly 6 upper-case letters or digits (A-record positions 9-14)"),
])
def test_add_refuses_malformed_input(tmp_path: Path, args: list[str], password: str,
                                     message: str) -> None:
    db = tmp_path / "l.db"
    r = add(db, *args, password=password)
    assert (r.exit_code, r.output) == (2, f"Error: {message}\n")
    assert stored(db) == {}


def test_add_needs_exactly_one_role(tmp_path: Path) -> None:
    for roles in ([], ["--country", "AU", "--filer", "K9T"]):
        r = add(tmp_path / "l.db", "EAU1", "AUC", *roles)
        assert r.exit_code == 2
        assert r.output.endswith("Error: give exactly one of --country or --filer\n")


# --- list, import, errors of the other commands --------------------------------------------

def test_list_never_shows_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    add(db, "EAU1", "AUC", "--country", "AU")
    add(db, "2704", "K9T", "--filer", "K9T", "--ior", "98-7654321")
    cli("participants", "disable", "EAU1", "AUC", "--db", db)
    r = cli("participants", "list", "--db", db)
    assert (r.exit_code, r.output) == (
        0, "2704/K9T filer K9T iors=98-7654321\nEAU1/AUC country AU DISABLED\n")
    assert "scrypt" not in r.output and SECRET not in r.output


def test_import_adds_hashed_participants_and_names_a_bad_entry(tmp_path: Path) -> None:
    db, registry = tmp_path / "l.db", tmp_path / "p.toml"
    registry.write_text('[[participant]]\nsite = "2704"\nsender_id = "K9T"\nrole = "filer"\n'
                        f'code = "K9T"\npassword = "{SECRET}"\niors = ["98-7654321"]\n')
    r = cli("participants", "import", registry, "--db", db)
    assert (r.exit_code, r.output) == (0, f"1 participant(s) imported from {registry}\n")
    assert verify_password(SECRET, stored(db)["2704/K9T"])
    registry.write_text('[[participant]]\nsite = "27O4"\nsender_id = "K9"\nrole = "filer"\n'
                        'code = "K9T"\npassword = "K9TPAS"\n')
    r = cli("participants", "import", registry, "--db", db)
    assert r.exit_code == 2
    assert r.output == (f"Error: {registry}: participant 1 (27O4/K9): sender ID 'K9' is not"
                        " 3 letters/digits\n")


@pytest.mark.parametrize("command", [
    ["disable", "2704", "ZZZ"], ["enable", "2704", "ZZZ"], ["grant", "2704", "ZZZ", IOR_A],
    ["revoke", "2704", "ZZZ", IOR_A]])
def test_changing_an_unknown_participant_fails(tmp_path: Path, command: list[str]) -> None:
    r = cli("participants", *command, "--db", tmp_path / "l.db")
    assert (r.exit_code, r.output) == (2, "Error: no participant 2704/ZZZ\n")


def test_passwd_of_an_unknown_participant_fails(tmp_path: Path) -> None:
    r = cli("participants", "passwd", "2704", "ZZZ", "--password-stdin",
            "--db", tmp_path / "l.db", input="NEWPW1\n")
    assert (r.exit_code, r.output) == (2, "Error: no participant 2704/ZZZ\n")


def test_grant_refuses_a_country_and_a_malformed_ior(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    add(db, "EAU1", "AUC", "--country", "AU")
    add(db, "2704", "K9T", "--filer", "K9T")
    r = cli("participants", "grant", "EAU1", "AUC", IOR_A, "--db", db)
    assert (r.exit_code, r.output) == (2, "Error: only a filer is granted IORs\n")
    r = cli("participants", "grant", "2704", "K9T", "98-76543210", "--db", db)
    assert (r.exit_code, r.output) == (2, f"Error: not an IOR number: 98-76543210 {IOR_TEXT}\n")
    assert cli("participants", "list", "--db", db).output == (
        "2704/K9T filer K9T\nEAU1/AUC country AU\n")


# --- every change, seen through processing ---------------------------------------------------

def test_registry_changes_take_effect_on_the_next_batch(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    add(db, "EAU1", "AUC", "--country", "AU", password="AUPASS")
    add(db, "2704", "K9T", "--filer", "K9T", password="K9TPAS")
    code, reply = process(db, tmp_path, certs_batch(beef_cert("AU", "6AU123456", 50000)),
                          "2026-02-01")
    assert code == 0 and reply[3].startswith("C1A       CERTIFICATE ADDED")

    def ask(day: int, password: str = "K9TPAS") -> tuple[int, list[str]]:
        code, reply = process(db, tmp_path, query(day, password), f"2026-03-{day:02d}")
        return code, reply[2:-2]

    assert ask(4) == (0, [V21])  # nothing granted, nothing filed
    r = cli("participants", "grant", "2704", "K9T", "98-7654321", "--db", db)
    assert (r.exit_code, r.output) == (0, "2704/K9T filer K9T iors=98-7654321\n")
    assert ask(5) == (0, [UC, "UE000001000000".ljust(35) + "A    QUERY ANSWERED".ljust(45)])
    r = cli("participants", "revoke", "2704", "K9T", "98-7654321", "--db", db)
    assert (r.exit_code, r.output) == (0, "2704/K9T filer K9T\n")
    assert ask(6) == (0, [V21])
    cli("participants", "grant", "2704", "K9T", "98-7654321", "--db", db)
    r = cli("participants", "disable", "2704", "K9T", "--db", db)
    assert (r.exit_code, r.output) == (0, "2704/K9T filer K9T iors=98-7654321 DISABLED\n")
    assert ask(7) == (1, [X09, "X1RF999   BATCH REJECTED".ljust(80)])
    r = cli("participants", "enable", "2704", "K9T", "--db", db)
    assert (r.exit_code, r.output) == (0, "2704/K9T filer K9T iors=98-7654321\n")
    code, reply = ask(8)
    assert code == 0 and reply[0] == UC
    r = cli("participants", "passwd", "2704", "K9T", "--password-stdin", "--db", db,
            input="NEWPW1\n")
    assert (r.exit_code, r.output) == (0, "password of 2704/K9T changed\n")
    assert ask(9) == (1, [X09, "X1RF999   BATCH REJECTED".ljust(80)])
    assert ask(9, "NEWPW1")[1][0] == UC

    r = cli("participants", "attempts", "--db", db)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
    want = [("1", "EAU1/AUC VA accepted")] + [
        (str(n), f"2704/K9T EC {outcome}") for n, outcome in enumerate(
            ["accepted"] * 3 + ["disabled", "accepted", "wrong-password", "accepted"], 2)]
    lines = r.output.splitlines()
    assert r.exit_code == 0 and len(lines) == len(want)
    for line, (seq, rest) in zip(lines, want, strict=True):
        assert re.fullmatch(rf" {{5,}}{seq} {stamp} {re.escape(rest)}", line), line
    r = cli("participants", "attempts", "--last", "2", "--db", db)
    assert [x.split(maxsplit=2)[2] for x in r.output.splitlines()] == [
        "2704/K9T EC wrong-password", "2704/K9T EC accepted"]
    assert all(pw not in r.output for pw in ("K9TPAS", "NEWPW1", "AUPASS"))


# --- a long answer's later pages, read back from the ledger file ---------------------------

def test_later_pages_come_from_the_answer_stored_in_the_ledger_file(tmp_path: Path) -> None:
    """Page 1 stores the whole answer in the ledger file; page 2, asked by a later run of
    `process` after a claim was filed, is read from it: the claim (a fifth item, which a
    recomputed page 2 would show) is not there, and nothing more follows. Asked afresh,
    the answer is a new one, under another name, with the claim."""
    db = tmp_path / "l.db"
    add(db, "EAU1", "AUC", "--country", "AU", password="AUPASS")
    add(db, "2704", "K9T", "--filer", "K9T", "--ior", IOR_A, password="K9TPAS")
    numbers = [f"6AU10000{k}" for k in range(1, 5)]
    code, _ = process(db, tmp_path, certs_batch(*[beef_cert("AU", n, 1000) for n in numbers]),
                      "2026-02-01")
    assert code == 0
    uc = [f"UCAU05{n} 0202305015{1000:012d}{0:012d}{1000:012d}KG A2026123126    "
          for n in numbers]
    drawn = f"UCAU05{numbers[0]} 0202305015{1000:012d}{10:012d}{990:012d}KG A2026123126    "
    with mock.patch.object(queries, "PAGE", 3):
        code, reply = process(db, tmp_path, query(4), "2026-03-04")
        key = reply[-3][15:35]
        assert code == 0 and key.isdigit() and key.endswith("0001")
        assert reply[2:-2] == [*uc[:3], f"UE000003000000Y{key}A    QUERY ANSWERED".ljust(80)]
        claim = summaries_batch(summary("0417204", beef_line("001", "AU", numbers[0], "10")))
        code, reply = process(db, tmp_path, claim, "2026-03-05")
        assert code == 0 and reply[3].startswith("E1A       SUMMARY HAS BEEN ADDED")
        later = importer_query(IOR_A, dt.date(2026, 3, 6), continuation=key)
        code, reply = process(db, tmp_path, later, "2026-03-06")
        assert (code, reply[2:-2]) == (0, [uc[3], "UE000001000000".ljust(35)
                                           + "A    QUERY ANSWERED".ljust(45)])
        # asked afresh, the answer is a new one: 6AU100001 drawn 10, the claim on page 2
        code, reply = process(db, tmp_path, importer_query(IOR_A, dt.date(2026, 3, 7)),
                              "2026-03-07")
        fresh = reply[-3][15:35]
        assert reply[2:-3] == [drawn, *uc[1:3]]
        assert fresh[:16] != key[:16] and fresh.endswith("0001")
        code, reply = process(db, tmp_path, importer_query(IOR_A, dt.date(2026, 3, 8),
                                                           continuation=fresh), "2026-03-08")
        assert reply[2:-2] == [
            uc[3], "UU056AU100001 0202305015K9T04172041001D000000000010030526"
                   "98-7654321  0000000001 ",
            "UE000001000001".ljust(35) + "A    QUERY ANSWERED".ljust(45)]


# --- process and an empty registry -------------------------------------------------------------

WARNING = ("warning: no participants are registered in {db}, so every batch will be refused"
           " (X09); register senders with `ecert-abi participants add` (or `participants"
           " import`), or use --trust-senders to validate locally\n")


def test_process_warns_when_no_participant_is_registered(tmp_path: Path) -> None:
    db, src, out = tmp_path / "l.db", tmp_path / "in.abi", tmp_path / "out.abi"
    src.write_text("".join(x + "\n" for x in importer_query()), encoding="latin-1")
    r = cli("process", src, "-o", out, "--db", db, "--as-of", "2026-03-04")
    assert r.exit_code == 1
    assert r.stderr.startswith(WARNING.format(db=db))
    assert out.read_text().splitlines()[2] == X09

    r = cli("process", src, "-o", out, "--db", db, "--as-of", "2026-03-04", "--trust-senders")
    assert r.exit_code == 0 and "warning" not in r.stderr
    assert out.read_text().splitlines()[2][:2] == "UE"

    add(db, "2704", "K9T", "--filer", "K9T", password="K9TPAS")
    r = cli("process", src, "-o", out, "--db", db, "--as-of", "2026-03-04")
    assert "warning" not in r.stderr
