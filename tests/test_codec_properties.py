"""Property tests of the codec over every layout in the catalogue.

The oracle is independent of ecert_abi.fieldclass: valid field text is generated straight
from the class table of the CATAIR subset reference (section 1.2) and the field's declared
width, constant, code list, blank allowance and designation. The library's regexes are
never reused here.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert_abi.envelope import frame
from ecert_abi.layout import EmitError, Field, Layout
from ecert_abi.record import catalogue, read_lines

CAT = catalogue()
LAYOUTS = list(CAT.layouts())
IDS = [lay.name for lay in LAYOUTS]

# --- the oracle: reference 1.2, typed in ---------------------------------------------------
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
# "! @ # $ % ^ & * ( ) - _ = + [ { ] } \ | ; : ' " , < . > / ? ` ~" (32 marks)
PUNCTUATION = "!@#$%^&*()-_=+[{]}\\|;:'\",<.>/?`~"
assert len(PUNCTUATION) == 32 and len(set(PUNCTUATION)) == 32
AN_CHARS = UPPER + DIGITS + " "
X_CHARS = UPPER + DIGITS + " " + PUNCTUATION
# two-digit years pivot at 69: 69-99 -> 19xx, 00-68 -> 20xx
FIRST_DATE = dt.date(1969, 1, 1)
LAST_DATE = dt.date(2068, 12, 31)


def mmddyy(d: dt.date) -> str:
    return f"{d.month:02d}{d.day:02d}{d.year % 100:02d}"


def field_texts(f: Field) -> st.SearchStrategy[str]:
    """Valid text for exactly f.width columns of field f."""
    w = f.width
    blank = " " * w
    if f.const is not None:
        return st.just(f.const.ljust(w))
    if f.cls == "S":
        return st.just(blank)
    if f.codes is not None:  # code values, left-justified
        return st.sampled_from(sorted(c.ljust(w) for c in f.codes) + ([blank] if f.blank else []))
    s: st.SearchStrategy[str]
    if f.cls == "A":  # letters, left-justified
        s = st.text(UPPER, min_size=1, max_size=w).map(lambda t: t.ljust(w))
    elif f.cls == "N":  # digits only
        s = st.text(DIGITS, min_size=w, max_size=w)
    elif f.cls == "(S)N":  # right-justified digits, led by spaces or zeros
        s = st.builds(lambda digits, pad: (pad * w + digits)[-w:],
                      st.text(DIGITS, min_size=1, max_size=w), st.sampled_from(" 0"))
    elif f.cls == "AN":
        s = st.text(AN_CHARS, min_size=w, max_size=w).filter(str.strip)
    elif f.cls == "X":
        s = st.text(X_CHARS, min_size=w, max_size=w).filter(str.strip)
    elif f.cls == "D":  # a real calendar date in the two-digit-year window
        s = st.dates(FIRST_DATE, LAST_DATE).map(mmddyy)
    else:
        raise AssertionError(f"class {f.cls!r} not in the reference table")
    if f.blank:
        s = st.one_of(s, st.just(blank))
    return s


_line_cache: dict[str, st.SearchStrategy[str]] = {}


def lines(layout: Layout) -> st.SearchStrategy[str]:
    if layout.name not in _line_cache:
        _line_cache[layout.name] = st.tuples(*(field_texts(f) for f in layout.fields)).map(
            "".join)
    return _line_cache[layout.name]


def field_values(f: Field) -> st.SearchStrategy[Any]:
    """Valid typed values of field f (what decode returns)."""
    w = f.width
    s: st.SearchStrategy[Any]
    if f.codes is not None:
        s = st.sampled_from(sorted(f.codes))
    elif f.cls == "A":
        s = st.text(UPPER, min_size=1, max_size=w)
    elif f.cls in ("AN", "X"):
        chars = AN_CHARS if f.cls == "AN" else X_CHARS
        s = st.text(chars, min_size=1, max_size=w).map(str.rstrip).filter(bool)
    elif f.cls in ("N", "(S)N"):
        s = st.integers(0, 10**w - 1)
        if f.decimals:
            s = s.map(lambda i: Decimal(i).scaleb(-f.decimals))
    elif f.cls == "D":
        s = st.dates(FIRST_DATE, LAST_DATE)
    else:
        raise AssertionError(f.cls)
    if f.blank:
        s = st.one_of(st.none(), s)
    return s


def settable(layout: Layout) -> list[Field]:
    return [f for f in layout.fields if f.const is None and f.cls != "S"]


def value_dicts(layout: Layout) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: field_values(f) for f in settable(layout)})


def zero_filled(layout: Layout, line: str) -> str:
    """`line` as emit writes it: (S)N numbers zero-filled instead of space-led."""
    out = line
    for f in layout.fields:
        if f.cls == "(S)N":
            text = line[f.start - 1:f.end]
            if text.strip():
                out = out[:f.start - 1] + text.replace(" ", "0") + out[f.end:]
    return out


def run(layout: Layout, strategy: st.SearchStrategy[Any], check: Callable[[Any], None],
        full: int = 20, opaque: int = 4) -> None:
    """Run `check` on examples of `strategy`; opaque layouts are all alike, so fewer."""
    @settings(max_examples=opaque if layout.opaque else full, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(example: Any) -> None:
        check(example)

    prop()


def only(layout: Layout) -> dict[str, tuple[Layout, ...]]:
    return {layout.id: (layout,)}


# --- valid lines ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_valid_lines_accepted_and_round_trip(layout: Layout) -> None:
    def check(line: str) -> None:
        assert len(line) == 80
        assert layout.match(line), line
        assert layout.diagnose(line, 3) == []
        values = layout.decode(line)
        out = layout.emit(values)
        assert out == zero_filled(layout, line)
        assert layout.decode(out) == values
        rec = CAT.parse(line, 3, only(layout))
        assert rec.ok and rec.layout is layout and dict(rec.values) == values

    run(layout, lines(layout), check)


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_values_emit_parse_same_values(layout: Layout) -> None:
    def check(values: dict[str, Any]) -> None:
        text = layout.emit(values)
        assert len(text) == 80
        assert text == layout.build(values)  # fast emitter == construct reference
        rec = CAT.parse(text, 1, only(layout))
        assert rec.ok, rec.defects
        for name, value in values.items():
            assert rec[name] == value, name
        for f in layout.fields:
            if f.const is not None:
                assert rec[f.name] == f.const

    run(layout, value_dicts(layout), check)


# --- fast path == reference path --------------------------------------------------------

ODD_CHARS = st.one_of(st.sampled_from(" 09AZaz-~`\t\x00\x7f\xa2\r\n"),
                      st.characters(max_codepoint=255))


def _mutate(line: str, edits: list[tuple[int, str]]) -> str:
    chars = list(line)
    for col, ch in edits:
        chars[col] = ch
    return "".join(chars)


def mutated(layout: Layout) -> st.SearchStrategy[tuple[str, list[int]]]:
    edits = st.lists(st.tuples(st.integers(0, 79), ODD_CHARS), min_size=1, max_size=3)
    return st.builds(lambda line, e: (_mutate(line, e), [c for c, _ in e]), lines(layout), edits)


def any_lines(layout: Layout) -> st.SearchStrategy[tuple[str, list[int] | None]]:
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    return st.one_of(
        mutated(layout),
        lines(layout).map(lambda t: (t, [])),
        st.text(printable, min_size=80, max_size=80).map(lambda t: (t, None)),
        st.text(st.characters(max_codepoint=255), max_size=100).map(lambda t: (t, None)),
        # callers may hand parse any str, not only what read_lines decodes from latin-1
        st.text(st.characters(), max_size=100).map(lambda t: (t, None)),
        st.builds(lambda t, rest: ((layout.id + t)[:80] + rest, None),
                  st.text(X_CHARS, min_size=78, max_size=78), st.text(printable, max_size=3)),
    )


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_match_agrees_with_diagnose(layout: Layout) -> None:
    def check(example: tuple[str, list[int] | None]) -> None:
        line, changed = example
        defects = layout.diagnose(line)
        assert bool(layout.match(line)) == (defects == []), (line, defects)
        if changed is not None and len(line) == 80:
            # every defect covers a changed column
            for d in defects:
                assert any(d.start <= c + 1 <= d.end for c in changed), (d, changed)

    run(layout, any_lines(layout), check, full=30, opaque=6)


# --- one field broken ---------------------------------------------------------------------

def _put(base: st.SearchStrategy[str], chars: str, w: int) -> st.SearchStrategy[str]:
    """A `w`-column text from `base` with one column replaced by one of `chars`."""
    return st.builds(lambda t, i, c: t[:i] + c + t[i + 1:], base, st.integers(0, w - 1),
                     st.sampled_from(chars))


def bad_texts(f: Field) -> st.SearchStrategy[str]:
    """Text of exactly f.width printable columns that is NOT valid for f."""
    w = f.width
    lower = _put(st.just(" " * w), "abcxyz", w)  # lower case is in no class
    options = [lower]
    if f.cls == "S":
        options.append(st.text(X_CHARS, min_size=w, max_size=w).filter(str.strip))
    elif f.cls in ("N", "(S)N"):
        options.append(_put(st.text(DIGITS, min_size=w, max_size=w), UPPER + "a-.+", w))
        if f.cls == "(S)N" and w > 1:  # left-justified is not right-justified
            options.append(st.integers(1, w - 1).map(lambda k: "1" * k + " " * (w - k)))
        if f.cls == "N" and w > 1:  # spaces in N
            options.append(st.integers(1, w - 1).map(lambda k: " " * k + "1" * (w - k)))
    elif f.cls == "A":
        options.append(st.sampled_from(DIGITS).map(lambda d: (d + "A" * w)[:w]))
        if w >= 3:
            options.append(st.just(("A A" + " " * w)[:w]))
    elif f.cls == "AN":
        options.append(_put(st.text(AN_CHARS, min_size=w, max_size=w), "-./#*", w))
    elif f.cls == "D":
        options.append(st.sampled_from(["023026", "023126", "043126", "130126", "000126",
                                        "010026", "022901", "022969", "0101 6", "12AB26",
                                        "1231  "]))
    if f.codes is not None and f.cls in ("A", "AN"):
        chars = UPPER if f.cls == "A" else AN_CHARS
        options.append(st.text(chars, min_size=w, max_size=w).filter(
            lambda t: t.strip() != "" and t.rstrip() not in f.codes))  # type: ignore[operator]
    if not f.blank and f.cls != "S":
        options.append(st.just(" " * w))  # a mandatory field left blank
    return st.one_of(options)


def broken(layout: Layout) -> st.SearchStrategy[tuple[Field, str]]:
    candidates = [f for f in layout.fields if f.const is None]

    def one(f: Field) -> st.SearchStrategy[tuple[Field, str]]:
        return st.builds(lambda line, bad: (f, line[:f.start - 1] + bad + line[f.end:]),
                         lines(layout), bad_texts(f))

    return st.sampled_from(candidates).flatmap(one)


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_one_broken_field_is_located(layout: Layout) -> None:
    def check(example: tuple[Field, str]) -> None:
        f, line = example
        assert len(line) == 80
        assert not layout.match(line)
        defects = layout.diagnose(line, 9)
        assert len(defects) == 1, defects
        (d,) = defects
        assert (d.field, d.start, d.end, d.line) == (f.name, f.start, f.end, 9)
        if f.cls == "S":
            assert (d.rule, d.code) == ("filler", "X39")
        elif not line[f.start - 1:f.end].strip():
            assert d.rule == "mandatory" and d.code == f.missing
        rec = CAT.parse(line, 9, only(layout))
        assert rec.defects == (d,)
        if not f.is_filler:
            assert rec[f.name] is None  # a broken field decodes to None

    run(layout, broken(layout), check, full=30, opaque=5)


# --- framing arbitrary bytes ------------------------------------------------------------

CLEAN = [
    "A2704K9TPASSWD041726     AE                                ECERT TEST BATCH 0001",
    "B  2704K9TAE                                               BLOCK 1              ",
    "10AK9T  04172033 2704BRK-0815    0211 X           1                             ",
    "1198-7654321  98-7654321                 040626             CA                  ",
    "40  001 AUAU030126        0000000850602010000019000    N                        ",
    "500202305015 0000123456 0000045000 000001850000KG                               ",
    "52056AU004711                                                                   ",
    "Y  2704K9TAE                                                                    ",
    "Z2704K9T      041726                                                            ",
]
assert all(len(line) == 80 for line in CLEAN)


def expected_lines(data: bytes) -> list[str]:
    """What read_lines must yield: split on LF, one CR before each LF removed, no line
    for the empty piece after a final LF. (A CR at the very end of data without an LF is
    not a CRLF terminator and stays.)"""
    pieces = data.split(b"\n")
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        if last and piece == b"":
            break
        if not last and piece.endswith(b"\r"):
            piece = piece[:-1]
        out.append(piece.decode("latin-1"))
    return out


structured = st.builds(
    lambda lines_, seps, final: b"".join(
        line.encode("latin-1") + sep for line, sep in zip(lines_, seps, strict=False))[
        : None if final else -1] if lines_ else b"",
    st.lists(st.one_of(st.sampled_from(CLEAN),
                       st.builds(_mutate, st.sampled_from(CLEAN),
                                 st.lists(st.tuples(st.integers(0, 79), ODD_CHARS),
                                          max_size=2)),
                       st.builds(lambda t, n: t[:n], st.sampled_from(CLEAN),
                                 st.integers(0, 80)),
                       st.text(st.characters(max_codepoint=255), max_size=90)),
             max_size=25),
    st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=25, max_size=25),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=600), structured))
def test_frame_arbitrary_bytes(data: bytes) -> None:
    batches = list(frame(read_lines(io.BytesIO(data))))
    records = [r for b in batches for r in b.records]
    expected = expected_lines(data)
    assert [r.text for r in records] == expected
    assert [r.line for r in records] == list(range(1, len(expected) + 1))
    for b in batches:
        assert b.records, "every batch holds at least one line"
        lines_of_batch = {r.line for r in b.records}
        for fault in b.faults:
            assert fault.defect.line in lines_of_batch
            assert 0 <= fault.position <= len(b.records)
            assert 0 <= fault.block <= len(b.blocks) + 1


def test_unclosed_batch_fault_line() -> None:
    """X05/X06 of a batch cut short by the next A-record point at its own last line (7),
    as they do at the end of input."""
    data = "".join(line + "\n" for line in CLEAN[:7] + CLEAN).encode("latin-1")
    first, second = frame(read_lines(io.BytesIO(data)))
    assert sorted((f.defect.code or "", f.defect.line) for f in first.faults) == [
        ("X05", 7), ("X06", 7)]
    assert second.faults == ()
    data = "".join(line + "\n" for line in CLEAN[:7]).encode("latin-1")
    (only_batch,) = frame(read_lines(io.BytesIO(data)))
    assert sorted((f.defect.code or "", f.defect.line) for f in only_batch.faults) == [
        ("X05", 7), ("X06", 7)]


def test_frame_reproduces_a_clean_batch() -> None:
    data = "".join(line + "\r\n" for line in CLEAN).encode("latin-1")
    (batch,) = frame(read_lines(io.BytesIO(data)))
    assert [r.text for r in batch.records] == CLEAN
    assert batch.faults == ()


def test_read_lines_overflow_is_bounded() -> None:
    data = b"1" * 1000 + b"\nA\n"
    out = list(read_lines(io.BytesIO(data), limit=100))
    assert out[0] == (1, "1" * 100, 900)
    assert out[1] == (2, "A", 0)


# --- emit refuses ---------------------------------------------------------------------------

def bad_values(f: Field) -> st.SearchStrategy[tuple[str, Any]]:
    """(kind, value) that emit must refuse for field f."""
    w = f.width
    opts: list[st.SearchStrategy[tuple[str, Any]]] = []
    if f.cls in ("A", "AN", "X"):
        opts.append(st.text(UPPER, min_size=w + 1, max_size=w + 5).map(lambda v: ("long", v)))
        opts.append(_put(st.just("A" * w), "abcz", w).map(lambda v: ("lower", v)))
        opts.append(st.one_of(st.integers(1, 10**6), st.dates()).map(lambda v: ("type", v)))
    elif f.cls in ("N", "(S)N"):
        neg = st.integers(max_value=-1)
        too_big = st.integers(10**w, 10 ** (w + 3))
        if f.decimals:
            neg = neg.map(lambda i: Decimal(i).scaleb(-f.decimals))
            too_big = too_big.map(lambda i: Decimal(i).scaleb(-f.decimals))
            opts.append(st.integers(1, 10**w).filter(lambda i: i % 10).map(
                lambda i: ("decimals", Decimal(i).scaleb(-f.decimals - 1))))
        opts.append(neg.map(lambda v: ("negative", v)))
        opts.append(too_big.map(lambda v: ("long", v)))
        # (a digit string for an implied-decimal field is a known bug, tested below)
        wrong = st.dates() if f.decimals else st.one_of(
            st.text(DIGITS, min_size=1, max_size=w), st.dates())
        opts.append(wrong.map(lambda v: ("type", v)))
    elif f.cls == "D":
        opts.append(st.one_of(st.dates(max_value=dt.date(1968, 12, 31)),
                              st.dates(min_value=dt.date(2069, 1, 1))).map(
            lambda v: ("window", v)))
        opts.append(st.one_of(st.sampled_from(["041726", "2026-04-17"]),
                              st.integers(0, 999999)).map(lambda v: ("type", v)))
    return st.one_of(opts)


def refusals(layout: Layout) -> st.SearchStrategy[tuple[Field, str, Any, dict[str, Any]]]:
    fields = settable(layout)
    assert fields

    def one(f: Field) -> st.SearchStrategy[tuple[Field, str, Any, dict[str, Any]]]:
        return st.builds(lambda kv, values: (f, kv[0], kv[1], {**values, f.name: kv[1]}),
                         bad_values(f), value_dicts(layout))

    return st.sampled_from(fields).flatmap(one)


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_emit_refuses_values_that_do_not_fit(layout: Layout) -> None:
    if not settable(layout):  # B_ace, Z_ace: nothing to set, nothing to refuse but names
        assert layout.emit({}) == layout.build({})
        with pytest.raises(EmitError) as err:
            layout.emit({"no_such_field": 1})
        assert err.value.field == "no_such_field"
        return

    def check(example: tuple[Field, str, Any, dict[str, Any]]) -> None:
        f, kind, _value, values = example
        for method in (layout.emit, layout.build):
            with pytest.raises(EmitError) as err:
                method(values)
            assert err.value.field == f.name, (kind, err.value)
            assert err.value.layout == layout.name
            assert f"{layout.name}.{f.name}" in str(err.value)

    run(layout, refusals(layout), check, full=25, opaque=4)


def test_emit_refusal_kinds_are_explained() -> None:
    r50 = CAT.layout("R50")
    r11 = CAT.layout("R11")
    base50 = {"hts_number": "0202305015", "duty_amount": Decimal("1234.56"),
              "value_of_goods_amount": 45000}
    base11 = {"importer_of_record_number": "98-7654321"}
    cases = [
        (r50, {**base50, "hts_number": "0202305015X"}, "hts_number", "11 characters"),
        (r50, {**base50, "hts_number": "abc"}, "hts_number", "lower case"),
        (r50, {**base50, "value_of_goods_amount": -1}, "value_of_goods_amount", "negative"),
        (r50, {**base50, "duty_amount": Decimal("1.234")}, "duty_amount", "decimal places"),
        (r11, {**base11, "estimated_entry_date": dt.date(2069, 1, 1)}, "estimated_entry_date",
         "outside 1969-2068"),
        (r11, {**base11, "estimated_entry_date": dt.date(1968, 12, 31)},
         "estimated_entry_date", "outside 1969-2068"),
        (r50, {**base50, "value_of_goods_amount": "45000"}, "value_of_goods_amount",
         "expected a number"),
        (r50, {**base50, "no_such_field": 1}, "no_such_field", "no such field"),
    ]
    for lay, values, field, fragment in cases:
        with pytest.raises(EmitError) as err:
            lay.emit(values)
        assert err.value.field == field
        assert fragment in str(err.value)


def test_date_window_edges_emit() -> None:
    r11 = CAT.layout("R11")
    base = {"importer_of_record_number": "98-7654321"}
    for d, text in [(dt.date(1969, 1, 1), "010169"), (dt.date(2068, 12, 31), "123168"),
                    (dt.date(2000, 2, 29), "022900"), (dt.date(1996, 2, 29), "022996")]:
        line = r11.emit({**base, "estimated_entry_date": d})
        assert line[41:47] == text
        assert r11.decode(line)["estimated_entry_date"] == d


# Wrong types: the fast emitter and the construct reference must both refuse them
# with an EmitError naming the field (not a TypeError, ValueError or OverflowError).
_R50 = {"hts_number": "0202305015", "duty_amount": Decimal("1234.56"),
        "value_of_goods_amount": 45000}
_R11 = {"importer_of_record_number": "98-7654321"}


@pytest.mark.parametrize(("layout_name", "values", "field"), [
    pytest.param("R50", {**_R50, "value_of_goods_amount": True}, "value_of_goods_amount",
                 id="bool-for-number"),
    pytest.param("R50", {**_R50, "duty_amount": 1.5}, "duty_amount",
                 id="float-for-decimal"),
    pytest.param("R50", {**_R50, "duty_amount": "12"}, "duty_amount",
                 id="str-for-decimal"),
    pytest.param("R50", {**_R50, "value_of_goods_amount": 5.0}, "value_of_goods_amount",
                 id="float-for-int"),
    pytest.param("R50", {**_R50, "unit_of_measure_code_2": 0}, "unit_of_measure_code_2",
                 id="zero-for-text"),
    pytest.param("R50", {**_R50, "unit_of_measure_code_2": 7}, "unit_of_measure_code_2",
                 id="int-for-text"),
    pytest.param("R11", {**_R11, "estimated_entry_date": dt.datetime(2026, 4, 6)},
                 "estimated_entry_date", id="datetime-for-date"),
    pytest.param("R50", {**_R50, "duty_amount": Decimal("NaN")}, "duty_amount",
                 id="nan"),
    pytest.param("R50", {**_R50, "duty_amount": Decimal("Infinity")}, "duty_amount",
                 id="infinity"),
    pytest.param("R50", {**_R50, "record_id": "99"}, "record_id",
                 id="wrong-const"),
    pytest.param("R50", {**_R50, "filler_13": "X"}, "filler_13",
                 id="filler-data"),
])
def test_emit_refuses_wrong_types(layout_name: str, values: dict[str, Any], field: str) -> None:
    lay = CAT.layout(layout_name)
    for method in (lay.emit, lay.build):
        with pytest.raises(EmitError) as err:
            method(values)
        assert err.value.field == field


def test_emit_takes_constants_and_fillers_as_decode_gives_them() -> None:
    r50 = CAT.layout("R50")
    text = r50.emit(_R50)
    assert r50.emit({**_R50, "record_id": "50", "filler_13": None}) == text
    assert r50.emit(r50.decode(text)) == text
    with pytest.raises(EmitError) as err:
        r50.emit({**_R50, "no_such_field": None})
    assert err.value.field == "no_such_field"


ODD_VALUES = st.sampled_from([
    None, True, False, 0, 1, -1, 10**20, 1.5, 5.0, float("nan"), "", " ", "0", "12", "a",
    "AB", "ab", "X" * 90, b"AB", Decimal("0"), Decimal("1.5"), Decimal("-1"), Decimal("NaN"),
    Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("1E+3"),
    dt.date(2026, 1, 1), dt.date(1900, 1, 1), dt.datetime(2026, 1, 1), dt.time(1, 2), [],
])


def odd_value_dicts(layout: Layout) -> st.SearchStrategy[dict[str, Any]]:
    """Valid values with one field (any field, fillers and constants too) set to an odd
    value, or that field's constant."""
    def one(f: Field) -> st.SearchStrategy[dict[str, Any]]:
        odd = st.one_of(ODD_VALUES, st.just(f.const)) if f.const else ODD_VALUES
        return st.builds(lambda values, v: {**values, f.name: v}, value_dicts(layout), odd)

    return st.sampled_from(layout.fields).flatmap(one)


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_fast_emit_agrees_with_build_on_odd_values(layout: Layout) -> None:
    """The fast emitter and the construct reference give the same text, or both refuse
    with an EmitError naming the same field; nothing else escapes either."""
    def outcome(method: Callable[[Any], str], values: dict[str, Any]) -> tuple[str, str]:
        try:
            return "text", method(values)
        except EmitError as e:
            return "refused", e.field

    def check(values: dict[str, Any]) -> None:
        assert outcome(layout.emit, values) == outcome(layout.build, values), values

    run(layout, odd_value_dicts(layout), check, full=40, opaque=8)


def test_parse_never_raises_on_non_latin1_text() -> None:
    ids = CAT.ids(CAT.chapters["entry_summary"], "input")
    rec = CAT.parse("10" + "\u20ac" * 78, 1, ids)
    assert not rec.ok
    assert [(d.start, d.end, d.code) for d in rec.defects] == [(3, 80, "X40")]
    assert rec["entry_number"] is None
    rec = CAT.parse("10\u0100" + " " * 77, 1, ids)
    assert (rec.defects[0].start, rec.defects[0].code) == (3, "X40")


# --- blank allowance, from the reference's own rules ------------------------------------

def _blank_overrides() -> set[tuple[str, str]]:
    """(record, field) pairs whose layout file says `blank = true` explicitly."""
    import tomllib
    from pathlib import Path

    import ecert_abi

    out = set()
    for path in (Path(ecert_abi.__file__).parent / "layouts").glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for rec in data.get("records", []):
            for f in rec.get("fields", []):
                if f.get("blank"):
                    out.add((rec["name"], f["name"]))
    return out


def test_blank_allowance_follows_the_reference() -> None:
    """1.2/1.3: N, (S)N and D may be all spaces only with the "or nS" alternative; text may
    be blank unless mandatory (M); fillers are spaces. Explicit `blank = true` overrides are
    the documented exceptions."""
    overrides = _blank_overrides()
    assert overrides  # the shipped files do use the key
    for lay in LAYOUTS:
        for f in lay.fields:
            if f.cls == "S" or (lay.name, f.name) in overrides:
                continue
            numeric_or_date = f.cls in ("N", "(S)N", "D")
            expected = " or " in f.fmt if numeric_or_date else f.desig != "M"
            assert f.blank == expected, (lay.name, f.name, f.fmt, f.desig)
