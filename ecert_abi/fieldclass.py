"""CATAIR field classes: what each class allows, as regular-expression fragments.

One fragment per (class, width, blank allowed) drives both the whole-record fast path
(the fragments of a layout are concatenated into one regex) and the field-by-field
diagnosis, so the two can only disagree through a bug in how they are combined, which the
differential test checks.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import cache

# X: printable ASCII 0x20-0x7E without the lower-case letters (B&B-7, ESF-18).
X_CHARS = r"\x20-\x60\x7B-\x7E"
CLASSES = ("S", "A", "N", "(S)N", "AN", "D", "X")
NUMERIC = frozenset({"N", "(S)N"})
TEXT = frozenset({"A", "AN", "X"})

# MMDDYY with a real calendar day. Two-digit years pivot like POSIX strptime %y
# (69-99 -> 1969-1999, 00-68 -> 2000-2068); every year divisible by 4 in that window is a
# leap year (2000 is), so the leap rule fits in the regex.
_DATE = (
    r"(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)"
    r"|02(?:0[1-9]|1[0-9]|2[0-8]))[0-9]{2}"
    r"|0229(?:[02468][048]|[13579][26])"
)
PIVOT = 69  # two-digit years >= PIVOT are 19YY, the rest 20YY
FIRST_DATE = dt.date(1900 + PIVOT, 1, 1)
LAST_DATE = dt.date(2000 + PIVOT - 1, 12, 31)


def century(yy: int) -> int:
    """The four-digit year of a two-digit CATAIR year (see PIVOT)."""
    return 1900 + yy if yy >= PIVOT else 2000 + yy


def _right_justified(width: int) -> str:
    # (S)N: digits, optionally preceded by spaces; at least one digit. Spelled out as an
    # alternation because an unbounded ` *[0-9]+` could run into the next field.
    return "(?:" + "|".join(f"{' ' * k}[0-9]{{{width - k}}}" for k in range(width)) + ")"


def _left_justified_letters(width: int, blank: bool) -> str:
    # A: letters then trailing spaces (`^[A-Z]+ *$`), bounded to the field width.
    lo = 0 if blank else 1
    alts = [f"[A-Z]{{{k}}}{' ' * (width - k)}" for k in range(width, lo - 1, -1)]
    return "(?:" + "|".join(alts) + ")"


@cache
def fragment(cls: str, width: int, blank: bool, codes: tuple[str, ...] | None = None,
             const: str | None = None) -> str:
    """Regex fragment matching exactly `width` columns of a valid value of `cls`.

    `blank` admits an all-space value; `codes` restricts the value (trailing spaces
    removed) to a code list; `const` to one value.
    """
    spaces = " " * width
    if const is not None:
        return re.escape(const.ljust(width))
    if codes is not None:
        alts = [re.escape(c.ljust(width)) for c in sorted(codes, key=len, reverse=True)]
        if blank:
            alts.append(spaces)
        return "(?:" + "|".join(alts) + ")"
    if cls == "S":
        return spaces
    if cls == "A":
        return _left_justified_letters(width, blank)
    if cls == "N":
        body = f"[0-9]{{{width}}}"
    elif cls == "(S)N":
        body = _right_justified(width)
    elif cls == "D":
        body = f"(?:{_DATE})"
    elif cls == "AN":
        body = f"[A-Z0-9 ]{{{width}}}" if blank else f"(?!{spaces})[A-Z0-9 ]{{{width}}}"
        return body
    elif cls == "X":
        chars = f"[{X_CHARS}]{{{width}}}"
        return chars if blank else f"(?!{spaces}){chars}"
    else:
        raise ValueError(f"unknown field class {cls!r}")
    return f"(?:{body}|{spaces})" if blank else body


def decode(cls: str, text: str, decimals: int) -> object:
    """The typed value of a field that already matched its fragment.

    Numbers -> int (or Decimal with implied decimals), dates -> date, text -> str without
    the trailing fill, an all-space field -> None.
    """
    if cls in NUMERIC:
        digits = text.strip()
        if not digits:
            return None
        if decimals:
            return Decimal(digits).scaleb(-decimals)
        return int(digits)
    if cls == "D":
        if text.isspace():
            return None
        return dt.date(century(int(text[4:6])), int(text[0:2]), int(text[2:4]))
    if cls == "S":
        return None
    value = text.rstrip(" ")
    return value or None


class EncodeError(ValueError):
    """A value that cannot be written into its field; the message says why."""


def encode(cls: str, value: object, width: int, decimals: int) -> str:
    """Text for `value` in a field of `cls` and `width`, never truncated or padded past fit.

    Raises EncodeError for a value that does not fit (too long, negative, too many
    decimals, not finite, a date outside the two-digit-year window, lower case, wrong type:
    a bool is not a number, a datetime not a date).
    """
    if value is None:
        return " " * width
    if cls in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise EncodeError(f"expected a number, got {type(value).__name__}")
        if isinstance(value, Decimal) and not value.is_finite():
            raise EncodeError(f"{value} is not a finite number")
        scaled = Decimal(value).scaleb(decimals) if decimals else value
        if scaled != int(scaled):
            raise EncodeError(f"{value} has more than {decimals} decimal places")
        number = int(scaled)
        if number < 0:
            raise EncodeError(f"{value} is negative")
        text = str(number)
        if len(text) > width:
            raise EncodeError(f"{value} needs {len(text)} digits, the field has {width}")
        return text.zfill(width)
    if cls == "D":
        # A datetime is a date subclass, but neither comparable with a date nor a
        # calendar day: the time of day would be dropped silently.
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise EncodeError(f"expected a date, got {type(value).__name__}")
        if not FIRST_DATE <= value <= LAST_DATE:
            raise EncodeError(f"{value} is outside {FIRST_DATE.year}-{LAST_DATE.year}")
        return f"{value.month:02d}{value.day:02d}{value.year % 100:02d}"
    if not isinstance(value, str):
        raise EncodeError(f"expected text, got {type(value).__name__}")
    if len(value) > width:
        raise EncodeError(f"{value!r} is {len(value)} characters, the field has {width}")
    if value != value.upper():
        raise EncodeError(f"{value!r} has lower case letters")
    return value.ljust(width)
