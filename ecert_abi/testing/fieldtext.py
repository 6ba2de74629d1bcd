"""Field text for generated records: valid text per CATAIR class, and text that breaks one rule.

Everything here is read off a `Field` (class, width, blank allowance, code list, constant),
so a new layout or field needs no new generator. The rule names are those `Defect.rule`
carries, so a test can ask for a defect by the same name the parser reports it under.
"""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import strategies as st

from ..fieldclass import FIRST_DATE, LAST_DATE
from ..layout import Field

UPPER = string.ascii_uppercase
DIGITS = string.digits
AN_CHARS = UPPER + DIGITS + " "
# Class X: printable ASCII without the lower-case letters.
X_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if not "a" <= chr(c) <= "z")
PUNCTUATION = "".join(c for c in X_CHARS if not c.isalnum() and c != " ")
# Latin-1 characters outside printable ASCII, minus the line terminators (which would
# split the record instead of spoiling it).
NON_DISPLAYABLE = "\x00\x01\t\x1b\x7f\x80\xa0\xe9\xff"

FIELD_RULES = ("class", "code", "constant", "filler", "mandatory")
LINE_RULES = ("short", "long", "non-displayable")
RULES = FIELD_RULES + LINE_RULES


def mmddyy(day: dt.date) -> str:
    return f"{day.month:02d}{day.day:02d}{day.year % 100:02d}"


def _class_text(cls: str, width: int) -> st.SearchStrategy[str]:
    """Any non-blank text that fits class `cls` in `width` columns (code lists ignored)."""
    if cls == "A":
        return st.text(UPPER, min_size=1, max_size=width).map(lambda t: t.ljust(width))
    if cls == "N":
        return st.text(DIGITS, min_size=width, max_size=width)
    if cls == "(S)N":
        return st.builds(lambda n, fill: str(n).rjust(width, fill),
                         st.integers(0, 10**width - 1), st.sampled_from("0 "))
    if cls == "D":
        return st.dates(FIRST_DATE, LAST_DATE).map(mmddyy)
    chars = AN_CHARS if cls == "AN" else X_CHARS
    return st.text(chars, min_size=width, max_size=width).filter(lambda t: not t.isspace())


def valid_text(f: Field) -> st.SearchStrategy[str]:
    """Text of exactly `f.width` columns that field `f` accepts."""
    blank = " " * f.width
    if f.const is not None:
        return st.just(f.const.ljust(f.width))
    if f.is_filler:
        return st.just(blank)
    if f.codes is not None:
        values = sorted(code.ljust(f.width) for code in f.codes)
        return st.sampled_from([*values, blank] if f.blank else values)
    text = _class_text(f.cls, f.width)
    return st.one_of(text, st.just(blank)) if f.blank else text


def rule_broken(f: Field, text: str) -> str | None:
    """The rule `text` breaks in field `f` (as the parser names it), or None if valid."""
    problem = f.check(text)
    return problem.rule if problem else None


def _spoil(base: st.SearchStrategy[str], chars: str, width: int) -> st.SearchStrategy[str]:
    """`base` with one column replaced by one of `chars`."""
    return st.builds(lambda t, i, c: t[:i] + c + t[i + 1:], base, st.integers(0, width - 1),
                     st.sampled_from(chars))


# Characters no value of the class may contain at an arbitrary column.
_FOREIGN = {
    "A": DIGITS + "-*/",
    "N": UPPER + "-.+ ",
    "(S)N": UPPER + "-.+",
    "AN": "-/.#&*abc",
    "X": "abcxyz",
    "D": UPPER + "-/ ",
}
_BAD_DATES = ("000000", "133126", "023026", "043126", "022925", "120026", "99999 ")


def eligible(f: Field, rule: str) -> bool:
    """Whether field `f` can break `rule` on its own."""
    if rule == "filler":
        return f.is_filler
    if rule == "constant":
        return f.const is not None and f.name != "record_id"
    if f.is_filler or f.const is not None:
        return False
    if rule == "mandatory":
        return rule_broken(f, " " * f.width) == "mandatory"
    if rule == "code":
        return f.codes is not None
    return rule == "class"


def broken_text(f: Field, rule: str) -> st.SearchStrategy[str]:
    """Text of exactly `f.width` columns breaking `rule` (and only that) in field `f`.

    The caller checks `eligible(f, rule)` first.
    """
    w = f.width
    blank = " " * w
    if rule == "mandatory":
        return st.just(blank)
    if rule == "filler":
        return _spoil(st.just(blank), UPPER + DIGITS + PUNCTUATION, w)
    if rule == "constant":
        const = (f.const or "").ljust(w)
        return _spoil(st.just(const), UPPER + DIGITS, w).filter(lambda t: t != const)
    if rule == "code":
        base = _class_text(f.cls, w)
    else:
        base = _spoil(st.one_of(_class_text(f.cls, w), st.just(blank)), _FOREIGN[f.cls], w)
        if f.cls == "(S)N" and w > 1:  # left-justified is not right-justified
            base = st.one_of(base, st.integers(1, w - 1).map(lambda k: "1" * k + " " * (w - k)))
        if f.cls == "D":
            base = st.one_of(base, st.sampled_from(_BAD_DATES))
    return base.filter(lambda t: rule_broken(f, t) == rule)
