"""Entry numbers, their check digit, and importer-of-record number formats (CATAIR)."""

from __future__ import annotations

import re

# Letter -> digit for the check digit (Appendix E step 1).
_LETTER = {c: str(d) for row in ("ABCDEFGHI", "JKLMNOPQR", " STUVWXYZ")
           for d, c in enumerate(row, 1) if c != " "}

# SSN, IRS without suffix, IRS with suffix (CBP rule: any letters/digits), CBP-assigned.
IOR_PATTERN = re.compile(
    r"^(?:[0-9]{3}-[0-9]{2}-[0-9]{4} |[0-9]{2}-[0-9]{7}  |[0-9]{2}-[0-9]{7}[A-Z0-9]{2}"
    r"|[0-9]{6}-[0-9]{5})$")
_ALL_ZERO = re.compile(r"^[0-]+ *$")


def check_digit(filer_code: str, transaction_number: str, factor: int = 0) -> int:
    """Check digit of an entry number (Appendix E): filer code + 7-digit transaction number.

    `factor` is the check-digit factor CBP may assign a filer (default 0).
    """
    base = "".join(_LETTER.get(c, c) for c in filer_code.upper()) + transaction_number
    if len(base) != 10 or not base.isdigit():
        raise ValueError(f"not a filer code + 7 digits: {filer_code!r} {transaction_number!r}")
    total = 0
    for i, ch in enumerate(base, 1):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return ((10 - total % 10) % 10 + factor) % 10


def entry_number_ok(filer_code: str, entry_number: str, factor: int = 0) -> bool:
    """Whether the 8-character entry number field carries the right check digit."""
    if len(entry_number) != 8 or not entry_number.isdigit():
        return False
    try:
        return check_digit(filer_code, entry_number[:7], factor) == int(entry_number[7])
    except ValueError:
        return False


def normalise_ior(ior: str | None) -> str:
    """The 12-column form of an IOR number (left-justified, space-filled)."""
    return (ior or "").upper().ljust(12)[:12] if ior and len(ior) <= 12 else (ior or "")


def ior_format_ok(ior: str | None) -> bool:
    return bool(ior) and bool(IOR_PATTERN.match(normalise_ior(ior)))


def ior_all_zero(ior: str | None) -> bool:
    return bool(ior) and bool(_ALL_ZERO.match(normalise_ior(ior)))
