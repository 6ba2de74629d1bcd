"""Envelope test vectors: each tests/cases/envelope/*.txt holds an input batch (or several),
a line `--- reply` and the exact reply batch(es) expected.

Every record line ends with `|` in column 81 (input lines may be shorter on purpose, then
the `|` comes earlier: that is how X42 is written); the loader strips it. Lines starting
with `#` are comments. The expected replies were composed column by column from the CATAIR
subset reference (sections 2.6-2.10 and 3.1-3.4), not from the library's output.

Reply rule applied to each batch `frame()` yields: a batch with faults gets
`reject_reply(batch)`; a clean batch gets `reply_envelope(batch, "AX", [[]] * blocks)`
(blocks without transactions).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ecert_abi.envelope import Batch, frame, reject_reply, reply_envelope
from ecert_abi.record import catalogue, read_lines

CASES = Path(__file__).parent / "cases" / "envelope"

def load_case(path: Path) -> tuple[list[str], list[str]]:
    """(input lines, expected reply lines) of one case file, `|` markers stripped."""
    inp: list[str] = []
    reply: list[str] = []
    part = inp
    for n, raw in enumerate(path.read_bytes().decode("latin-1").split("\n"), 1):
        if raw == "" or raw.startswith("#"):
            continue
        if raw == "--- reply":
            part = reply
            continue
        assert raw.endswith("|"), f"{path.name}:{n}: record line without the | end marker"
        part.append(raw[:-1])
    assert reply, f"{path.name}: no '--- reply' section"
    for line in reply:
        assert len(line) == 80, f"{path.name}: reply line of {len(line)} columns: {line!r}"
    return inp, reply


def batches_of(lines: list[str]) -> list[Batch]:
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    return list(frame(read_lines(io.BytesIO(data))))


def reply_for(batch: Batch) -> list[str]:
    if batch.faults:
        return reject_reply(batch)
    return reply_envelope(batch, "AX", [[] for _ in batch.blocks])


def _params() -> list[object]:
    return [pytest.param(path, id=path.stem) for path in sorted(CASES.glob("*.txt"))]


def test_case_files_present() -> None:
    names = {p.stem for p in CASES.glob("*.txt")}
    for required in ("clean_ae", "x01_no_a", "x03_a_then_transaction", "x04_empty_block",
                     "x05_b_without_y", "x06_no_z", "x14_z_mismatch", "x19_block_app",
                     "x32_y_mismatch", "x33_first_not_10", "x34_unknown_record",
                     "x39_filler", "x40_nondisplayable", "x42_short_z", "x10_bad_date",
                     "x11_app_missing", "x12_app_unknown", "x13_app_not_processed",
                     "x21_preparer", "x22_preparer", "x24_preparer", "x25_preparer",
                     "x26_preparer", "several_faults", "two_batches", "x03_repeated",
                     "batch_fault_hides_blocks"):
        assert required in names


@pytest.mark.parametrize("path", _params())
def test_envelope_case(path: Path) -> None:
    inp, expected = load_case(path)
    got: list[str] = []
    for batch in batches_of(inp):
        got.extend(reply_for(batch))
    assert got == expected


def test_loader_keeps_short_lines_and_tabs() -> None:
    inp, _ = load_case(CASES / "x42_short_z.txt")
    assert len(inp[-1]) == 60
    inp, _ = load_case(CASES / "x40_nondisplayable.txt")
    assert "\t" in inp[5] and len(inp[5]) == 80


# --- the same cases, checked at the level of faults (what is right even where the reply
# --- is not) --------------------------------------------------------------------------

def _faults(name: str) -> list[tuple[str | None, int, int, int, int]]:
    inp, _ = load_case(CASES / f"{name}.txt")
    out = []
    for batch in batches_of(inp):
        out += [(f.defect.code, f.block, f.transaction, f.position, f.defect.start)
                for f in batch.faults]
    return out


@pytest.mark.parametrize(("name", "faults"), [
    ("clean_ae", []),
    ("x03_a_then_transaction", [("X03", 0, 0, 0, 1)]),
    ("x04_empty_block", [("X04", 1, 0, 0, 1)]),
    ("x06_no_z", [("X06", 0, 0, 0, 1)]),
    ("x14_z_mismatch", [("X14", 0, 0, 0, 15)]),
    ("x19_block_app", [("X19", 1, 0, 0, 11)]),
    ("x32_y_mismatch", [("X32", 1, 0, 0, 4)]),
    ("x33_first_not_10", [("X33", 1, 1, 3, 1)]),
    ("x34_unknown_record", [("X34", 1, 1, 5, 1)]),
    ("x39_filler", [("X39", 1, 1, 7, 15)]),
    ("x40_nondisplayable", [("X40", 1, 1, 6, 31)]),
    ("x42_short_z", [("X42", 0, 0, 0, 61)]),
    ("x21_preparer", [("X21", 1, 0, 0, 56)]),
    ("x22_preparer", [("X22", 1, 0, 0, 56)]),
    ("x24_preparer", [("X24", 1, 0, 0, 47)]),
    ("x25_preparer", [("X25", 1, 0, 0, 51)]),
    ("x26_preparer", [("X26", 1, 0, 0, 51)]),
    ("two_batches", [("X39", 1, 1, 7, 15)]),
    ("x10_bad_date", [("X10", 0, 0, 0, 15)]),
    ("x03_repeated", [("X03", 0, 0, 0, 1)]),
    ("x05_b_without_y", [("X05", 0, 0, 0, 1)]),
    ("batch_fault_hides_blocks", [("X39", 1, 1, 7, 15), ("X14", 0, 0, 0, 15)]),
    ("x11_app_missing", [("X11", 0, 0, 0, 26)]),
    ("x12_app_unknown", [("X12", 0, 0, 0, 26)]),
    ("x13_app_not_processed", [("X13", 0, 0, 0, 26)]),
    ("x01_no_a", [("X01", 0, 0, 0, 1)]),
])
def test_case_faults(name: str, faults: list[tuple[str | None, int, int, int, int]]) -> None:
    assert _faults(name) == faults


def test_clean_batch_shape() -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    (batch,) = batches_of(inp)
    assert batch.faults == () and not batch.rejected
    assert batch.application == "AE"
    assert batch.chapter is not None and batch.chapter.name == "entry_summary"
    assert len(batch.blocks) == 1
    (block,) = batch.blocks
    assert [r.id for r in block.records] == ["10", "11", "40", "50", "52"]
    assert all(r.ok for r in batch.records)
    assert len(block.transactions("10")) == 1


def test_reply_y_counts_records_between_b_and_y() -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    (batch,) = batches_of(inp)
    lines = ["E0 SUMMRY 000001 REF ID: K9T 04172033 BRK-0815".ljust(80)] * 3
    reply = reply_envelope(batch, "AX", [[lines]])
    assert reply[2:5] == lines
    assert reply[5][12:17] == "00003"


# --- targeted bug reproductions -------------------------------------------------------

def test_reject_reply_without_a_record_does_not_raise() -> None:
    inp, _ = load_case(CASES / "x01_no_a.txt")
    (batch,) = batches_of(inp)
    reply = reject_reply(batch)
    assert reply[0][0] == "A" and reply[-1] == "Z" + " " * 78 + "Z"


def test_junk_before_a_forms_its_own_batch() -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    batches = batches_of(["JUNK LINE", *inp])
    assert len(batches) == 2
    assert [f.defect.code for f in batches[0].faults] == ["X01"]
    assert batches[1].header is not None and batches[1].faults == ()


def test_frame_reads_back_a_reject_reply() -> None:
    _, expected = load_case(CASES / "x42_short_z.txt")
    batches = batches_of(expected)
    assert len(batches) == 1
    assert [r.layout.name for r in batches[0].records if r.layout] == [
        "A_output", "B_ace", "X1", "X1", "Y_ace", "Z_ace"]


def test_reject_reply_echoes_transmission_date_unchanged() -> None:
    inp, _ = load_case(CASES / "x10_bad_date.txt")
    (batch,) = batches_of(inp)
    assert reject_reply(batch)[0][14:20] == "023026"


def test_every_batch_gets_one_reply() -> None:
    inp, _ = load_case(CASES / "two_batches.txt")
    batches = batches_of(inp)
    assert len(batches) == 2
    assert not batches[0].faults and batches[1].faults
    assert [len(b.records) for b in batches] == [9, 9]
    # positions count from each batch's own A-record
    assert batches[1].faults[0].position == 7


def test_catalogue_is_shared() -> None:
    assert catalogue() is catalogue()


@pytest.mark.parametrize(("columns", "code"), [((1, 5), "X07"), ((5, 8), "X08")])
def test_reject_reply_for_missing_sender(columns: tuple[int, int], code: str) -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    a, z = inp[0], inp[-1]
    lo, hi = columns
    inp[0] = a[:lo] + " " * (hi - lo) + a[hi:]
    inp[-1] = z[:lo] + " " * (hi - lo) + z[hi:]
    (batch,) = batches_of(inp)
    assert code in {f.defect.code for f in batch.faults}
    reply = reject_reply(batch)
    assert reply[0][lo:hi] == " " * (hi - lo)
    assert f"X1 F{code}" in [line[:7] for line in reply]


# --- one condition per problem ----------------------------------------------------------

def test_x03_once_per_run_of_records_outside_a_block() -> None:
    """Each place a B-record is missing is one X03, however many records stand there; a
    Y-record closing such a run belongs to the same missing B."""
    inp, _ = load_case(CASES / "clean_ae.txt")
    a, b, *txn, y, z = inp
    (batch,) = batches_of([a, *txn, y, b, *txn, y, *txn[:2], z])
    assert [(f.defect.code, f.defect.line) for f in batch.faults] == [
        ("X03", 2), ("X03", 15)]


def test_no_x03_in_a_batch_without_a_record() -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    (batch,) = batches_of(inp[2:])
    assert [f.defect.code for f in batch.faults] == ["X01"]


@pytest.mark.parametrize(("z_date", "codes"), [
    ("041726", []),
    ("041826", ["X14"]),  # a valid date, different: the comparison says it once
    ("04AB26", ["X14"]),  # not a date, different: X14 once, not also as a class fault
])
def test_z_date_is_judged_against_the_a(z_date: str, codes: list[str]) -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    inp[-1] = inp[-1][:14] + z_date + inp[-1][20:]
    (batch,) = batches_of(inp)
    assert [f.defect.code for f in batch.faults] == codes


def test_y_repeating_its_b_fault_is_not_x32() -> None:
    """A Y that repeats its B's blank port is not a mismatch: the B's X15 says it."""
    inp, _ = load_case(CASES / "clean_ae.txt")
    inp[1] = inp[1][:3] + "    " + inp[1][7:]
    inp[-2] = inp[-2][:3] + "    " + inp[-2][7:]
    (batch,) = batches_of(inp)
    assert [f.defect.code for f in batch.faults] == ["X15"]


# --- the password is never returned (2.6: output A 9-14 are spaces for ESAR) -------------

@pytest.mark.parametrize("fault", ["none", "filler", "z-password", "batch-level"])
def test_reply_never_returns_the_password(fault: str) -> None:
    inp, _ = load_case(CASES / "clean_ae.txt")
    inp[0] = inp[0][:8] + "S3CR3T" + inp[0][14:]
    if fault == "filler":  # rejected for a transaction fault (X39)
        inp[6] = inp[6][:20] + "X" + inp[6][21:]
    elif fault == "z-password":  # the eMAN habit of repeating it in Z 9-14 (X39 for ESAR)
        inp[-1] = inp[-1][:8] + "S3CR3T" + inp[-1][14:]
    elif fault == "batch-level":
        inp.pop()  # X06
    (batch,) = batches_of(inp)
    assert batch.rejected == (fault != "none")
    reply = reply_for(batch)
    assert reply[0][8:14] == " " * 6
    assert not [line for line in reply if "S3CR3T" in line]
