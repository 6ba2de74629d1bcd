"""Who may send what: participants, their password hashes, authentication of the A-record
sender, and the scope of what each may query.

A participant is a sender (A-record site code at 2-5 and ID code at 6-8) with one role:
a participating **country** transmits its certificates (VA) and asks about their usage
(VQ); a **filer** files entry summaries (AE) and asks about importers' usage (EC) for the
IORs granted to it or for which it has filed accepted entry summaries.

Passwords (the A-record's 6-character communication password) are stored only as salted
scrypt hashes. Every failure is answered alike (X09), after the same work, so the reply
and its timing do not tell an unknown sender from a wrong password.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Callable
from functools import cache

import attrs

from .identifiers import normalise_ior
from .transactions import UsageQuery

APPLICATIONS = {"country": frozenset({"VA", "VQ"}), "filer": frozenset({"AE", "EC"})}
PASSWORD = re.compile(r"[A-Z0-9]{6}")  # A-record 9-14, 6AN; spaces would be ambiguous
SITE = re.compile(r"[A-Z0-9]{4}")
SENDER_ID = re.compile(r"[A-Z0-9]{3}")
CODE = {"country": re.compile(r"[A-Z]{2}"), "filer": re.compile(r"[A-Z0-9]{3}")}
# scrypt cost: about 60 ms per check here; successful checks are remembered (see below).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1


class Outcome(enum.StrEnum):
    """What an authentication attempt came to (journaled; never shown to the sender)."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown-sender"
    DISABLED = "disabled"
    WRONG_PASSWORD = "wrong-password"
    NOT_PERMITTED = "application-not-permitted"


@attrs.frozen
class Participant:
    site: str
    sender_id: str
    role: str  # "country" or "filer"
    code: str  # the ISO country code, or the filer code
    password_hash: str = attrs.field(repr=False)
    enabled: bool = True
    iors: frozenset[str] = frozenset()  # normalised IORs a filer may query

    def __attrs_post_init__(self) -> None:
        problems = []
        if not SITE.fullmatch(self.site):
            problems.append(f"site code {self.site!r} is not 4 letters/digits")
        if not SENDER_ID.fullmatch(self.sender_id):
            problems.append(f"sender ID {self.sender_id!r} is not 3 letters/digits")
        if self.role not in APPLICATIONS:
            problems.append(f"role {self.role!r} is not country or filer")
        elif not CODE[self.role].fullmatch(self.code):
            problems.append(f"{self.role} code {self.code!r} is malformed")
        if self.iors and self.role != "filer":
            problems.append("only a filer is granted IORs")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def key(self) -> tuple[str, str]:
        return self.site, self.sender_id


@attrs.frozen
class Attempt:
    seq: int
    at: dt.datetime
    site: str
    sender_id: str
    application: str
    outcome: str
    batch_digest: str


def check_password(password: str) -> str:
    if not PASSWORD.fullmatch(password):
        raise ValueError("a password is exactly 6 upper-case letters or digits"
                         " (A-record positions 9-14)")
    return password


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of a password: scheme, cost parameters, salt and key."""
    return _hash(check_password(password), salt or os.urandom(16))


def _hash(password: str, salt: bytes) -> str:
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(key).decode()])


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        want = base64.b64decode(key, validate=True)
        got = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(got, want)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("latin-1", "replace"), salt=salt, n=n, r=r, p=p,
                          maxmem=64 * 1024 * 1024, dklen=32)


class Authenticator:
    """Checks an A-record's sender and password against the registry."""

    def __init__(self, lookup: Callable[[str, str], Participant | None]) -> None:
        self.lookup = lookup
        _dummy_hash()  # made now, so that the first unknown sender costs no more than others

    def authenticate(self, site: str, sender_id: str, password: str, application: str
                     ) -> tuple[Participant | None, Outcome]:
        who = self.lookup(site, sender_id)
        if who is None:
            # the same work as a real check, against a hash no password matches: timing
            # must not tell an unknown sender from a wrong password
            verify_password(password, _dummy_hash())
            return None, Outcome.UNKNOWN
        if not who.enabled:
            # a full check, never the remembered one: a quick answer would tell an
            # attacker that a guessed password was right
            verify_password(password, who.password_hash)
            return None, Outcome.DISABLED
        if not _remembered_check(password, who.password_hash):
            return None, Outcome.WRONG_PASSWORD
        if application not in APPLICATIONS[who.role]:
            return None, Outcome.NOT_PERMITTED
        return who, Outcome.ACCEPTED


# A (stored hash, password) pair that verified once is remembered in this process by a
# keyed digest, so a busy sender pays for scrypt once, not once per batch. Failures are
# never remembered: guessing costs a full scrypt every time. A new password has a new
# stored hash, which retires the remembered pair.
_PEPPER = os.urandom(16)
_VERIFIED: set[bytes] = set()
_REMEMBER = 4096


def _remembered_check(password: str, stored: str) -> bool:
    mark = hmac.digest(_PEPPER, f"{stored}\0{password}".encode("latin-1", "replace"), "sha256")
    if mark in _VERIFIED:
        return True
    ok = verify_password(password, stored)
    if ok:
        if len(_VERIFIED) >= _REMEMBER:
            _VERIFIED.clear()
        _VERIFIED.add(mark)
    return ok


@cache
def _dummy_hash() -> str:
    # a random 7-character secret: no 6-character password can match it
    return _hash(base64.b32encode(os.urandom(5)).decode()[:7], os.urandom(16))


def participants_from_toml(text: str, source: str = "participants") -> list[Participant]:
    """Participants from a registry file (`[[participant]]` tables with site, sender_id,
    role, code, password and, for filers, iors), for test and demonstration ledgers whose
    passwords may live in a file. Errors name the file and entry."""
    try:
        entries = tomllib.loads(text).get("participant", [])
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{source}: {e}") from None
    known = {"site", "sender_id", "role", "code", "password", "iors", "enabled"}
    out = []
    for k, entry in enumerate(entries, 1):
        where = f"{source}: participant {k}"
        missing = sorted({"site", "sender_id", "role", "code", "password"} - entry.keys())
        if missing or entry.keys() - known:
            raise ValueError(f"{where}: missing {missing}" if missing else
                             f"{where}: unknown keys {sorted(entry.keys() - known)}")
        try:
            out.append(Participant(
                str(entry["site"]), str(entry["sender_id"]), str(entry["role"]), str(entry["code"]),
                hash_password(str(entry["password"])), bool(entry.get("enabled", True)),
                frozenset(normalise_ior(str(i)) for i in entry.get("iors", []))))
        except ValueError as err:
            raise ValueError(f"{where} ({entry['site']}/{entry['sender_id']}): {err}") from None
    return out


@attrs.frozen
class Scope:
    """What a requester may see. The default (no limits) is for trusted local use."""

    country: str | None = None  # a country sees only its own certificates
    iors: frozenset[str] | None = None  # a filer asks only about these importers

    def refusal(self, q: UsageQuery) -> str | None:
        """The V-code refusing a query outside the scope, decided from the scope alone, so
        the refusal says nothing about whether the data asked for exists."""
        if q.kind == "importer":
            if self.iors is not None and normalise_ior(q.ior) not in self.iors:
                return "V21"
        elif self.country is not None and q.country not in (None, self.country):
            return "V22"
        return None


UNLIMITED = Scope()
