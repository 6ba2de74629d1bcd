"""Batch framing (lines in, batches out) and the reply envelopes, as a sans-IO core.

`frame()` turns numbered lines into `Batch` values: A, blocks of B ... Y, Z. Every rule of
the Batch and Block chapter it can check without knowing the sender is checked here and
recorded as a `Fault` carrying its X condition code and where it is (block ordinal,
transaction ordinal, record position), which is what the X0/X1 reject reply needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import attrs

from .conditions import narrative
from .layout import Chapter, Defect
from .record import Catalogue, Record, catalogue

# Applications whose B-records may carry preparer codes (B&B-14).
PREPARER_APPS = frozenset({"AE", "SE", "DE", "RE", "NE", "SU", "CA", "TE", "PE"})


@attrs.frozen
class Fault:
    """A batch-level fault: the defect and where the X0 reply must point.

    block: ordinal of the block in the batch (0 = batch level); transaction: ordinal of the
    transaction in the block (0 = block level); position: the record's place in the batch
    (the A-record is 1).
    """

    defect: Defect
    block: int = 0
    transaction: int = 0
    position: int = 0


@attrs.frozen
class Block:
    header: Record
    records: tuple[Record, ...]
    trailer: Record | None

    def transactions(self, header_id: str | None) -> list[list[Record]]:
        """The block's records cut into transactions, each starting at `header_id`."""
        out: list[list[Record]] = []
        for r in self.records:
            if not out or (header_id is not None and r.id == header_id):
                out.append([r])
            else:
                out[-1].append(r)
        return out


@attrs.frozen
class Batch:
    """One batch as read: its control records, blocks, every record in order and faults."""

    header: Record | None
    blocks: tuple[Block, ...]
    trailer: Record | None
    records: tuple[Record, ...]
    faults: tuple[Fault, ...]
    chapter: Chapter | None
    direction: str

    @property
    def rejected(self) -> bool:
        return bool(self.faults)

    @property
    def application(self) -> str:
        if self.header is None:
            return ""
        return str(self.header.get("application_identifier_code") or "")


def _direction(text: str, cat: Catalogue) -> tuple[str, Chapter | None]:
    app = text[25:27]
    if app in cat.by_input:
        return "input", cat.by_input[app]
    if app in cat.by_response:
        return "output", cat.by_response[app]
    if not app.strip() and not text[8:14].strip():
        return "output", None  # the reply to a rejected batch: application left blank
    return "input", None


class _Builder:
    """Accumulates one batch while frame() walks the lines."""

    def __init__(self, cat: Catalogue, first: tuple[int, str, int]) -> None:
        self.cat = cat
        self.records: list[Record] = []
        self.faults: list[Fault] = []
        self.blocks: list[Block] = []
        self.block_head: Record | None = None
        self.block_recs: list[Record] = []
        self.header: Record | None = None
        self.trailer: Record | None = None
        self.txn = 0
        # True while records keep arriving that needed a B-record before them and X03 has
        # already been said for them: one missing B is one condition, not one per record.
        self.b_missing = False
        self.oversized = False  # records past MAX_BATCH_RECORDS were dropped (X36)
        _, text, _ = first
        if text[:1] == "A":
            self.direction, self.chapter = _direction(text, cat)
        else:
            self.direction, self.chapter = "input", None
        self.ids = cat.ids(self.chapter, self.direction)

    def fault(self, code: str, line: int, message: str, *, block: bool = False,
              txn: bool = False, start: int = 1, end: int = 80,
              field: str | None = None) -> None:
        d = Defect(line, start, end, field, "envelope", message, code)
        self.faults.append(Fault(d, len(self.blocks) + (1 if self.block_head else 0)
                                 if block or txn else 0, self.txn if txn else 0,
                                 len(self.records) if txn else 0))

    def missing_b(self, line: int, message: str) -> None:
        """X03, once for a run of records with no B-record before them."""
        if not self.b_missing:
            self.fault("X03", line, message)
            self.b_missing = True

    def add(self, number: int, text: str, overflow: int) -> Record:
        rec = self.cat.parse(text, number, self.ids, overflow)
        self.records.append(rec)
        return rec

    def close_block(self, trailer: Record | None) -> None:
        assert self.block_head is not None
        self.blocks.append(Block(self.block_head, tuple(self.block_recs), trailer))
        self.block_head, self.block_recs, self.txn = None, [], 0

    def finish(self) -> Batch:
        return Batch(self.header, tuple(self.blocks), self.trailer, tuple(self.records),
                     tuple(self.faults), self.chapter, self.direction)


# A batch keeps at most this many records (the X0's record position, 26-32, has 7 digits;
# a million records is 80 MB of text and a few hundred MB in memory).
MAX_BATCH_RECORDS = 1_000_000


def frame(lines: Iterable[tuple[int, str, int]], cat: Catalogue | None = None) -> Iterator[Batch]:
    """Group (line number, text, overflow) triples into batches; never raises on bad input.

    Lines before an A-record, or after a Z and before the next A, form a batch of their own
    (fault X01) so that every input line belongs to exactly one batch and gets a reply.
    """
    cat = cat or catalogue()
    b: _Builder | None = None
    for item in lines:
        number, text, overflow = item
        kind = text[:1]
        if b is not None and kind == "A" and (b.header is not None or b.records):
            # A new batch starts while the current one is still open; the faults point at
            # the open batch's own last line, not at the A-record of the next one.
            last = b.records[-1].line
            if b.block_head is not None:
                b.fault("X05", last, "block not closed by a Y-record")
                b.close_block(None)
            if b.header is not None:
                b.fault("X06", last, "batch not closed by a Z-record")
            yield _checked(b)
            b = None
        if b is None:
            b = _Builder(cat, item)
            if kind != "A":
                b.fault("X01", number, "batch does not begin with an A-record")
                # The lines standing where the A (and so the B) should be are what X01
                # reports; they are not a missing B-record as well.
                b.b_missing = True
        if len(b.records) >= MAX_BATCH_RECORDS and kind != "Z":
            # memory stays bounded: the rest of an oversized batch is read, not kept
            if not b.oversized:
                b.fault("X36", number, f"batch holds more than {MAX_BATCH_RECORDS:,} records;"
                        " the rest is not read")
                b.oversized = True
            continue
        rec = b.add(number, text, overflow)
        _step(b, rec, kind)
        if b.trailer is not None:
            yield _checked(b)
            b = None
    if b is not None:
        last = b.records[-1].line if b.records else 0
        if b.block_head is not None:
            b.fault("X05", last, "block not closed by a Y-record")
            b.close_block(None)
        b.fault("X06", last, "batch not closed by a Z-record")
        yield _checked(b)


def _step(b: _Builder, rec: Record, kind: str) -> None:
    n = rec.line
    if kind == "A" and b.header is None and len(b.records) == 1:
        b.header = rec
        return
    if kind == "B" and rec.layout is not None and rec.layout.id == "B":
        if b.block_head is not None:
            b.fault("X05", n, "block not closed by a Y-record before the next B")
            b.close_block(None)
        b.block_head = rec
        b.b_missing = False
        return
    if kind == "Y" and rec.layout is not None and rec.layout.id == "Y":
        if b.block_head is None:
            b.missing_b(n, "Y-record without a B-record")
            return
        if not b.block_recs:
            b.fault("X04", n, "block has no transaction records", block=True)
        b.close_block(rec)
        return
    if kind == "Z" and rec.layout is not None and rec.layout.id == "Z":
        if b.block_head is not None:
            b.fault("X05", n, "Z-record inside an open block")
            b.close_block(None)
        if not b.blocks:
            b.missing_b(n, "batch has no block")
        b.trailer = rec
        return
    # A transaction record (or a line nobody understands).
    if b.block_head is None:
        b.missing_b(n, "transaction record outside a block (B-record missing)")
        return
    hdr = b.chapter.transaction_header if b.chapter else None
    if hdr is not None and rec.id == hdr:
        b.txn += 1
    elif not b.block_recs:
        b.txn = 1
        if hdr is not None:
            b.fault("X33", n, f"first record of the block is not a {hdr}-record",
                    txn=True, start=1, end=len(hdr))
    b.block_recs.append(rec)


def _checked(b: _Builder) -> Batch:
    """Add the cross-record rules (matching control records, applications, preparer)."""
    _record_faults(b)
    a, z = b.header, b.trailer
    app = str(a.get("application_identifier_code") or "") if a else ""
    if a is not None and b.direction == "input" and app:
        known = b.cat.envelope.codes.get("application_identifier", {})
        if b.chapter is None:
            code = "X13" if app in known else "X12"
            b.faults.append(Fault(Defect(a.line, 26, 27, "application_identifier_code",
                                         "application", f"application {app!r} "
                                         + ("is not processed here" if code == "X13"
                                            else "is unknown"), code)))
    if a is not None and z is not None:
        for name in ("sender_receiver_site_code", "sender_receiver_id_code",
                     "transmission_date", "sender_receiver_office_code"):
            if z.layout is None or a.layout is None or name not in z.layout.names \
                    or name not in a.layout.names:
                continue
            if _cols(a, name) != _cols(z, name):
                f = z.layout.fields[[x.name for x in z.layout.fields].index(name)]
                b.faults.append(Fault(Defect(z.line, f.start, f.end, name, "match",
                                             f"Z {name} differs from the A-record", "X14")))
                break
    single = bool(b.chapter and b.chapter.settings.get("single_block"))
    if single and len(b.blocks) > 1 and b.direction == "input":
        b.faults.append(Fault(Defect(b.blocks[1].header.line, 1, 80, None, "blocks",
                                     "a query batch holds one block only", "X41"), 2))
    for i, blk in enumerate(b.blocks, 1):
        _block_faults(b, i, blk, app)
    return b.finish()


def _cols(rec: Record, name: str) -> str:
    assert rec.layout is not None
    for f in rec.layout.fields:
        if f.name == name:
            return rec.text[f.start - 1:f.end].ljust(f.end - f.start + 1)
    return ""


def _block_faults(b: _Builder, i: int, blk: Block, app: str) -> None:
    head, tail = blk.header, blk.trailer

    def fault(code: str, rec: Record, name: str | None, msg: str) -> None:
        start, end = 1, 80
        if name and rec.layout is not None:
            f = next(x for x in rec.layout.fields if x.name == name)
            start, end = f.start, f.end
        b.faults.append(Fault(Defect(rec.line, start, end, name, "block", msg, code), i))

    if b.direction != "input" or head.layout is None or head.layout.name != "B_input":
        return
    bapp = _cols(head, "application_identifier_code")
    if app and bapp.strip() and bapp != app:
        fault("X19", head, "application_identifier_code",
              f"block application {bapp!r} differs from the batch's {app!r}")
    if tail is not None and tail.layout is not None and tail.layout.name == "Y_input":
        for name in ("processing_port_code", "processing_filer_code",
                     "application_identifier_code", "processing_filer_office_code"):
            if _cols(head, name) != _cols(tail, name):
                fault("X32", tail, name, f"Y {name} differs from its B-record")
                break
    prep = [_cols(head, n) for n in ("preparer_port_code", "preparer_filer_code",
                                     "preparer_office_code")]
    indicator = _cols(head, "preparer_indicator")
    has_prep = any(p.strip() for p in prep)
    if has_prep or indicator == "1":
        if bapp not in PREPARER_APPS:
            fault("X23", head, "preparer_indicator",
                  f"preparer codes are not allowed for application {bapp!r}")
        elif indicator != "1":
            fault("X22", head, "preparer_indicator", "preparer data without indicator 1")
        elif not prep[0].strip():
            fault("X24", head, "preparer_port_code", "preparer port code missing")
        elif not prep[1].strip():
            fault("X25", head, "preparer_filer_code", "preparer filer code missing")
        elif prep[1] != _cols(head, "processing_filer_code"):
            fault("X26", head, "preparer_filer_code",
                  "preparer filer differs from the processing filer")


# A trailer repeats fields of its header (Z those of A, Y those of B) and the condition for
# them is "differs from the header", which _checked and _block_faults test by comparing the
# columns. A class fault on such a field is therefore either the header's own fault seen
# again (a Z repeating an A's impossible date is X10 on the A, not also X14) or a difference
# the comparison already reports once.
_MATCH_CODES = {"Z": "X14", "Y": "X32"}


def _record_faults(b: _Builder) -> None:
    """Record defects that reject the whole batch (X codes) become faults, located."""
    block = 0
    txn = 0
    hdr = b.chapter.transaction_header if b.chapter else None
    last = len(b.records)
    for pos, rec in enumerate(b.records, 1):
        kind = rec.id
        if kind == "B" and rec.layout is not None and rec.layout.direction == b.direction:
            block += 1
            txn = 0
        elif hdr is not None and kind == hdr:
            txn += 1
        elif kind not in ("A", "Y", "Z", "B") and txn == 0:
            txn = 1
        for d in rec.defects:
            code = d.code or "X40"
            if not code.startswith("X"):
                continue  # a transaction-level condition: the application answers it
            if code == "X34" and b.chapter is None:
                continue  # unknown application: its X11/X12/X13 says it, not each record
            if kind is not None and code == _MATCH_CODES.get(kind):
                continue
            if d.rule == "short" and pos != last:
                d = attrs.evolve(d, code="X40")
            if kind in ("A", "Z") or block == 0:
                b.faults.append(Fault(d))
            elif kind in ("B", "Y"):
                b.faults.append(Fault(d, block))
            else:
                b.faults.append(Fault(d, block, txn, pos))


# --- replies ---------------------------------------------------------------------------

def _echo(src: Record | None, layout_name: str, cat: Catalogue, **values: object) -> str:
    lay = cat.layout(layout_name)
    vals: dict[str, object] = {}
    if src is not None and src.layout is not None:
        for f in lay.fields:
            if f.const is None and not f.is_filler and f.name in src.layout.names:
                text = _cols(src, f.name)
                vals[f.name] = f.decode(text) if f.matcher(text) else None
    vals.update(values)
    return lay.emit(vals)


def _mirror_a(text: str) -> str:
    """The output A of a rejected batch: the input A's echoed columns unchanged (even when
    they are what the batch is rejected for), password and application blank."""
    t = "".join(c if " " <= c <= "~" and not c.islower() else " " for c in text[:80].ljust(80))
    return "A" + t[1:8] + " " * 6 + t[14:20] + " " * 17 + t[37:39] + " " * 20 + t[59:80]


def reject_reply(batch: Batch, cat: Catalogue | None = None) -> list[str]:
    """The batch-reject reply lines CBP describes (B&B-19, B&B-34 to 36).

    A mirrored with a blank application and no password, ACE-generated B, then the
    conditions: with any batch-level fault only its X1s, blocks and transactions ignored
    (B&B-34); otherwise per block an X0 BLOCK and its X1s, then per transaction record an
    X0 TRNACT and its X1s (B&B-35/36). Last the X1 R F 999 BATCH REJECTED, the
    ACE-generated Y with the count, and Z.
    """
    cat = cat or catalogue()
    x1 = cat.layout("X1")
    header = batch.header if batch.header is not None and batch.header.id == "A" else None
    # With no A-record to mirror (X01) the reply's A carries only its identifier.
    first = _mirror_a(header.text) if header is not None else "A".ljust(80)
    out = [first,
           cat.layout("B_ace").emit({})]
    body: list[str] = []

    def x1_line(code: str, final: bool = False) -> str:
        return x1.emit({"disposition_type_code": "R" if final else None,
                        "severity_code": "F", "condition_code": code,
                        "narrative_text": narrative(code)})

    batch_level = [f for f in batch.faults if f.block == 0]
    for f in batch_level:
        body.append(x1_line(f.defect.code or "X40"))
    # B&B-34: a batch-level problem makes CBP ignore every block and transaction.
    blocks = [] if batch_level else sorted({f.block for f in batch.faults})
    # one pass over the faults: per block, its own X1s and, per located record (in first
    # appearance order), the X1s found there
    own: dict[int, list[Fault]] = {}
    located: dict[int, dict[tuple[int, int, int], list[Fault]]] = {}
    for f in batch.faults:
        if f.transaction:
            key = (f.transaction, f.position, f.defect.start)
            located.setdefault(f.block, {}).setdefault(key, []).append(f)
        else:
            own.setdefault(f.block, []).append(f)
    for blk in blocks:
        head = batch.blocks[blk - 1].header if blk <= len(batch.blocks) else None
        body.append(_echo(head, "X0_block", cat, occurrence_position=blk))
        body += [x1_line(f.defect.code or "X40") for f in own.get(blk, ())]
        for (txn, pos, col), faults in located.get(blk, {}).items():
            body.append(cat.layout("X0_trnact").emit({
                "occurrence_position": txn, "record_position_in_batch": pos,
                "position_in_record": col if col <= 80 else 0}))
            body += [x1_line(f.defect.code or "X40") for f in faults]
    if len(body) >= MAX_BLOCK_RECORDS:  # the Y counts at most 99,999: list what fits
        del body[MAX_BLOCK_RECORDS - 1:]
    body.append(x1_line("999", final=True))
    out.extend(body)
    out.append(cat.layout("Y_ace").emit({"output_transaction_image_count": len(body)}))
    out.append(cat.layout("Z_ace").emit({}))
    return out


MAX_BLOCK_RECORDS = 99_999  # what the output Y's 5-digit image count (13-17) can count


def reply_envelope(batch: Batch, response: str, blocks: Sequence[Sequence[Sequence[str]]],
                   cat: Catalogue | None = None) -> list[str]:
    """Wrap reply records in A, B ... Y (with the image count), Z.

    `blocks[i]` holds, per transaction of `batch.blocks[i]` in input order, its reply
    lines. A block whose reply would outgrow the Y count is answered in several output
    blocks, each under the same B, cut between transactions.
    """
    cat = cat or catalogue()
    out = [_echo(batch.header, "A_output", cat, application_identifier_code=response)]
    for blk, groups in zip(batch.blocks, blocks, strict=True):
        head = _echo(blk.header, "B_output", cat, application_identifier_code=response)
        chunks: list[list[str]] = [[]]
        for group in groups:
            if chunks[-1] and len(chunks[-1]) + len(group) > MAX_BLOCK_RECORDS:
                chunks.append([])
            chunks[-1].extend(group)
            while len(chunks[-1]) > MAX_BLOCK_RECORDS:  # one transaction beyond a block
                rest = chunks[-1][MAX_BLOCK_RECORDS:]
                del chunks[-1][MAX_BLOCK_RECORDS:]
                chunks.append(rest)
        for lines in chunks:
            out.append(head)
            out.extend(lines)
            out.append(_echo(blk.trailer or blk.header, "Y_output", cat,
                             application_identifier_code=response,
                             output_transaction_image_count=len(lines)))
    out.append(_echo(batch.trailer or batch.header, "Z_output", cat))
    return out


def input_batch(*, site: str, sender: str, password: str, application: str,
                blocks: Sequence[tuple[str, str, Sequence[str]]],
                date: object = None, office: str | None = None,
                cat: Catalogue | None = None) -> list[str]:
    """An input batch's lines: A, per (port, filer, records) a B ... Y block, Z."""
    cat = cat or catalogue()
    lay = cat.layout
    out = [lay("A_input").emit({
        "sender_receiver_site_code": site, "sender_receiver_id_code": sender,
        "communication_password": password, "transmission_date": date,
        "application_identifier_code": application, "sender_receiver_office_code": office})]
    for port, filer, records in blocks:
        ident = {"processing_port_code": port, "processing_filer_code": filer,
                 "application_identifier_code": application}
        out.append(lay("B_input").emit(ident))
        out.extend(records)
        out.append(lay("Y_input").emit(ident))
    out.append(lay("Z_input").emit({
        "sender_receiver_site_code": site, "sender_receiver_id_code": sender,
        "transmission_date": date, "sender_receiver_office_code": office}))
    return out
