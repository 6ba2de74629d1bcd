"""Replies that would outgrow the output Y's 5-digit image count (at most 99,999 records in
a reply block) are still answered, exactly once:

- a block whose transactions answer with more records is answered in several output
  blocks under the same B, cut between transactions, every Y counting its own records;
- a batch rejected with more conditions than a block can count lists what fits and still
  ends with X1 999.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from engine_cases import beef_cert, beef_line, certs_batch, summaries_batch, summary

from ecert_abi import envelope
from ecert_abi.envelope import frame
from ecert_abi.ledger import MemoryLedger
from ecert_abi.processor import Processor
from ecert_abi.record import read_lines
from ecert_abi.transactions import read_ax_reply

AS_OF = dt.date(2026, 3, 2)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "04-entry-summaries.abi"


def process(data: bytes) -> list[list[str]]:
    ledger = MemoryLedger()
    proc = Processor(ledger, AS_OF, trust_senders=True)
    list(proc.process_stream(io.BytesIO(_bytes(certs_batch(beef_cert("AU", "6AU123456"))))))
    return list(proc.process_stream(io.BytesIO(data)))


def _bytes(lines: Sequence[str]) -> bytes:
    return "".join(x + "\n" for x in lines).encode("latin-1")


def blocks_of(reply: list[str]) -> list[list[str]]:
    """The records between each B and its Y, checking each Y's count on the way."""
    out: list[list[str]] = []
    for line in reply[1:-1]:
        if line.startswith("B"):
            out.append([])
        elif line.startswith("Y"):
            assert int(line[12:17]) == len(out[-1]), "Y counts its own block"
        else:
            out[-1].append(line)
    return out


def test_a_block_answered_past_the_y_count_is_cut_between_transactions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "MAX_BLOCK_RECORDS", 5)  # E0 + E1 per summary: 2 a block
    sums = [summary(f"04{k:05d}", beef_line("001", "AU", "6AU123456", "10")) for k in range(5)]
    (reply,) = process(_bytes(summaries_batch(*sums)))
    assert reply[0][:1] == "A" and reply[-1][:1] == "Z"
    blocks = blocks_of(reply)
    assert [len(b) for b in blocks] == [4, 4, 2]
    heads = [x for x in reply if x.startswith("B")]
    assert len(set(heads)) == 1  # the same B over every part
    for b in blocks:  # each part starts a transaction: E0 SUMMRY first
        assert b[0].startswith("E0 SUMMRY")
    (batch,) = frame(read_lines(io.BytesIO(_bytes(reply))))
    answers = read_ax_reply(batch.records)
    assert [d.accepted for d in answers] == [True] * 5


def test_conditions_past_the_y_count_are_cut_and_the_batch_still_rejected() -> None:
    """1,300 records of alternating NUL and data (39 runs each in its 80 columns) make
    over 100,000 located conditions."""
    lines = FIXTURES.read_bytes().split(b"\n")
    bad = b"50" + b"\0A" * 39
    (reply,) = process(b"\n".join([*lines[:3], *[bad] * 1_300, *lines[3:]]))
    assert reply[-3].startswith("X1RF999   BATCH REJECTED")
    assert reply[-2].startswith("Y") and int(reply[-2][12:17]) == 99_999
    assert len(reply) == 99_999 + 4  # A, B, the counted records, Y, Z


def test_an_oversized_batch_is_rejected_without_keeping_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Records past MAX_BATCH_RECORDS are read but not kept: X36 for the batch, one reply,
    and the next batch is processed as usual."""
    monkeypatch.setattr(envelope, "MAX_BATCH_RECORDS", 12)
    big = summaries_batch(*[summary(f"04{k:05d}", beef_line("001", "AU", "6AU123456", "10"))
                            for k in range(3)])  # 3 x 7 records + A, B, Y, Z
    small = summaries_batch(summary("0499999", beef_line("001", "AU", "6AU123456", "10")))
    assert len(big) > 12 >= len(small)
    first, second = process(_bytes(big + small))
    codes = [x[:8] for x in first if x.startswith("X1")]
    # X36 first; the block's Y was among the records not kept, so X05 may follow
    assert codes[0] == "X1 FX36 " and codes[-1] == "X1RF999 "
    assert set(codes[1:-1]) <= {"X1 FX05 "}
    (batch,) = frame(read_lines(io.BytesIO(_bytes(second))))
    assert [d.accepted for d in read_ax_reply(batch.records)] == [True]
