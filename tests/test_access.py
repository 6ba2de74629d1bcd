"""Who may send what: authentication of every batch (X09), a filer's blocks for itself only
(X18), the scope of each sender's queries (V05, V20, V21, V22), paging of long answers
(V23), and the journal of attempts.

Case files (tests/cases/access/*.case) use the engine case format (tests/engine_cases.py)
with three sections of their own, read here before the rest goes to `parse_case`:

    --- participant add <site> <id> country <cc> <password> [disabled]
    --- participant add <site> <id> filer <code> <password> [iors=<ior>,...] [disabled]
    --- participant disable|enable <site> <id>
    --- participant passwd <site> <id> <password>
    --- participant grant|revoke <site> <id> <ior> ...
                        a change to the registry, made before the next input is sent
    --- page <n>        answer queries in pages of n items instead of 500 (short cases)
    --- attempts        last section: the journal of authentication attempts at the end,
                        one a line: `<site>/<id> <application or --> <outcome>`

No participant is registered unless a case says so. The expected replies were checked by
hand against the CATAIR subset reference (X0/X1 and 999, section 3) and the layouts of
the query chapters (specs/importer_usage_query.md, specs/country_usage_query.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import attrs
import pytest
from engine_cases import (
    ASKED,
    FILED,
    IOR_A,
    IOR_B,
    REGISTERED,
    Case,
    CaseError,
    beef_cert,
    beef_line,
    certs_batch,
    country_query,
    importer_query,
    ledger_lines,
    parse_case,
    summaries_batch,
    summary,
)

from ecert_abi import access, queries
from ecert_abi.access import Participant, hash_password
from ecert_abi.engine import CertLine, CertState
from ecert_abi.envelope import frame, input_batch
from ecert_abi.identifiers import normalise_ior
from ecert_abi.ledger import JournalEntry, Ledger, MemoryLedger
from ecert_abi.processor import Processor, digest
from ecert_abi.record import MAX_LINE, read_lines
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import UsageQuery

ACCESS_DIR = Path(__file__).parent / "cases" / "access"
# The cases that also run on PostgreSQL (a fresh database costs about a second): the
# registry's changes (disable, enable, passwd, grant, revoke), the journal of attempts,
# the filer scope read from the SQL tables and the stored answers of long queries.
POSTGRES_CASES = {
    "x09_disabled_sender", "password_change", "v21_importer_not_granted",
    "filer_scope_from_journal", "paging_invalid_keys",
}


# --- participants ----------------------------------------------------------------------

@cache
def password_hash(password: str) -> str:
    """scrypt at the production cost, once per password and test process."""
    return hash_password(password)


def participant(site: str, sender_id: str, role: str, code: str, password: str, *,
                iors: Sequence[str] = (), enabled: bool = True) -> Participant:
    return Participant(site, sender_id, role, code, password_hash(password), enabled,
                       frozenset(normalise_ior(i) for i in iors))


L = TypeVar("L", bound=Ledger)


def put(ledger: L, *people: Participant) -> L:
    with ledger.transaction() as tx:
        for p in people:
            tx.put_participant(p)
    return ledger


def change(ledger: Ledger, site: str, sender_id: str,
           how: Callable[[Participant], Participant]) -> None:
    with ledger.transaction() as tx:
        who = tx.participant(site, sender_id)
        assert who is not None, f"no participant {site}/{sender_id}"
        tx.put_participant(how(who))


# Two of the senders the engine_cases builders use (same codes and passwords).
AU = ("EAU1", "AUC", "country", "AU", "AUPASS")
K9T = ("2704", "K9T", "filer", "K9T", "K9TPAS")


# --- running batches -------------------------------------------------------------------

def process(ledger: Ledger, lines: Sequence[str], as_of: dt.date) -> list[str]:
    """The reply lines of every batch in `lines`, senders authenticated."""
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    out: list[str] = []
    for reply in Processor(ledger, as_of).process_stream(io.BytesIO(data)):
        out.extend(reply)
    return out


def framed(lines: Sequence[str]) -> list[Any]:
    return list(frame(read_lines(io.BytesIO("".join(x + "\n" for x in lines)
                                            .encode("latin-1")))))


def batch_digest(lines: Sequence[str]) -> str:
    """The digest the processor keys a one-batch input by."""
    (batch,) = framed(lines)
    return digest(batch)


# --- the case files --------------------------------------------------------------------

@attrs.frozen
class RegistryChange:
    before_step: int  # index of the step it precedes
    words: tuple[str, ...]
    where: str

    def apply(self, ledger: Ledger) -> None:
        verb, site, sid, *rest = self.words
        if verb == "add":
            role, code, password, *more = rest
            iors = [i for m in more if m.startswith("iors=") for i in m[5:].split(",")]
            if set(more) - {"disabled"} - {m for m in more if m.startswith("iors=")}:
                raise CaseError(f"{self.where}: unknown option in {self.words}")
            put(ledger, participant(site, sid, role, code, password, iors=iors,
                                    enabled="disabled" not in more))
        elif verb in ("disable", "enable") and not rest:
            change(ledger, site, sid, lambda p: attrs.evolve(p, enabled=verb == "enable"))
        elif verb == "passwd" and len(rest) == 1:
            change(ledger, site, sid,
                   lambda p: attrs.evolve(p, password_hash=password_hash(rest[0])))
        elif verb in ("grant", "revoke") and rest:
            given = frozenset(normalise_ior(i) for i in rest)
            change(ledger, site, sid, lambda p: attrs.evolve(
                p, iors=p.iors | given if verb == "grant" else p.iors - given))
        else:
            raise CaseError(f"{self.where}: cannot read {' '.join(self.words)!r}")


@attrs.frozen
class AccessCase:
    case: Case
    registry: tuple[RegistryChange, ...]
    page: int | None
    attempts: tuple[str, ...] | None

    @property
    def name(self) -> str:
        return self.case.name


def parse_access_case(text: str, name: str = "<case>") -> AccessCase:
    kept: list[str] = []
    registry: list[RegistryChange] = []
    attempts: list[str] | None = None
    page: int | None = None
    inputs = 0
    section = None
    for n, raw in enumerate(text.split("\n"), 1):
        where = f"{name}:{n}"
        if attempts is not None:
            if raw.startswith("--- "):
                raise CaseError(f"{where}: '--- attempts' must be the last section")
            if raw.strip() and not raw.startswith("#"):
                attempts.append(raw.strip())
            kept.append("#")  # keeps the line numbers of parse_case's messages
            continue
        if raw.startswith("--- participant "):
            if section in ("input", "ledger"):
                raise CaseError(f"{where}: a registry change goes before an input")
            registry.append(RegistryChange(inputs, tuple(raw.split()[2:]), where))
            kept.append("#")
            continue
        if raw.startswith("--- page "):
            page = int(raw.split()[2])
            kept.append("#")
            continue
        if raw.rstrip() == "--- attempts":
            attempts = []
            kept.append("#")
            continue
        if raw.startswith("--- "):
            section = raw.split()[1]
            inputs += section == "input"
        kept.append(raw)
    case = parse_case("\n".join(kept), name)
    if case.profiles or case.limits:
        raise CaseError(f"{name}: access cases run with the default rules")
    return AccessCase(case, tuple(registry), page,
                      tuple(attempts) if attempts is not None else None)


def access_case_paths() -> list[Path]:
    return sorted(ACCESS_DIR.glob("*.case"))


def load_access_case(path: Path) -> AccessCase:
    return parse_access_case(path.read_bytes().decode("ascii"), path.stem)


def run_access_case(ac: AccessCase, ledger: Ledger) -> list[list[str]]:
    """Every step's reply, the registry changed where the case says."""
    got = []
    with mock.patch.object(queries, "PAGE", ac.page or queries.PAGE):
        for k, step in enumerate(ac.case.steps):
            for r in ac.registry:
                if r.before_step == k:
                    r.apply(ledger)
            got.append(process(ledger, step.input, step.as_of))
    return got


def attempt_lines(ledger: Ledger) -> list[str]:
    return [f"{a.site}/{a.sender_id} {a.application or '--'} {a.outcome}"
            for a in ledger.attempts()]


def _diff(expected: Sequence[str], got: Sequence[str]) -> str:
    out = []
    for i in range(max(len(expected), len(got))):
        e = expected[i] if i < len(expected) else "<none>"
        g = got[i] if i < len(got) else "<none>"
        mark = "  " if e == g else "!!"
        out.append(f"{mark} {i + 1:3} exp {e}|\n{mark}     got {g}|")
    return "\n".join(out)


def _case_params() -> list[Any]:
    out = []
    for path in access_case_paths():
        ac = load_access_case(path)
        marks = [pytest.mark.xfail(strict=True, reason=ac.case.xfail)] if ac.case.xfail else []
        kinds = ["memory", "sqlite"] + (["postgres"] if ac.name in POSTGRES_CASES else [])
        for kind in kinds:
            out.append(pytest.param(
                ac, kind, id=f"{ac.name}-{kind}",
                marks=[*marks, *([pytest.mark.postgres] if kind == "postgres" else [])]))
    return out


@pytest.mark.parametrize(("ac", "ledger_kind"), _case_params(), indirect=["ledger_kind"])
def test_access_case(ac: AccessCase, ledger_factory: Callable[[], Ledger]) -> None:
    ledger = ledger_factory()
    got = run_access_case(ac, ledger)
    for n, (step, reply) in enumerate(zip(ac.case.steps, got, strict=True), 1):
        assert reply == list(step.reply), (
            f"{ac.name} step {n} (input at line {step.line}):\n" + _diff(step.reply, reply))
    if ac.case.ledger is not None:
        assert ledger_lines(ledger) == list(ac.case.ledger), (
            f"{ac.name} ledger:\n" + _diff(ac.case.ledger, ledger_lines(ledger)))
    if ac.attempts is not None:
        assert attempt_lines(ledger) == list(ac.attempts), (
            f"{ac.name} attempts:\n" + _diff(ac.attempts, attempt_lines(ledger)))
        # each attempt names the batch it was made for, in the order they were sent
        sent = [digest(b) for s in ac.case.steps for b in framed(s.input)
                if b.header is not None and b.header.text[1:5].strip()
                and b.header.text[5:8].strip()]
        assert [a.batch_digest for a in ledger.attempts()] == sent


def test_access_cases_present() -> None:
    names = {p.stem for p in access_case_paths()}
    assert names >= POSTGRES_CASES | {
        "x09_unknown_sender", "x09_wrong_password", "x09_application_not_permitted",
        "x09_before_envelope_checks", "replay_after_disable", "country_scope",
        "ec_query_shapes", "vq_query_shapes", "query_malformed", "paging",
        "paging_invalid_keys", "paging_forged_keys", "paging_new_certificate",
        "x18_block_of_another_filer"}, sorted(names)


@pytest.mark.parametrize("text", [
    "--- as_of 2026-03-02\n--- input\n" + "A" * 80 + "|\n--- participant disable 2704 K9T\n"
    "--- reply\n" + "A" * 80 + "|",                                     # inside a step
    "--- participant frobnicate 2704 K9T\n--- as_of 2026-03-02\n--- input\n" + "A" * 80
    + "|\n--- reply\n" + "A" * 80 + "|",                                # unknown change
    "--- as_of 2026-03-02\n--- input\n" + "A" * 80 + "|\n--- reply\n" + "A" * 80
    + "|\n--- attempts\n--- ledger\n",                                  # attempts not last
])
def test_access_case_loader_refuses_malformed_cases(text: str) -> None:
    with pytest.raises(CaseError):
        ac = parse_access_case(text, "bad")
        run_access_case(ac, MemoryLedger())


def test_access_cases_cover_every_refusal() -> None:
    """X09, X18 and the query conditions appear in the expected replies of passing cases."""
    seen: set[str] = set()
    for path in access_case_paths():
        ac = load_access_case(path)
        if ac.case.xfail:
            continue
        for step in ac.case.steps:
            seen |= {r[4:7] for r in step.reply if r[:2] == "X1"}
            seen |= {r[36:39] for r in step.reply if r[:2] == "UE" and r[36:39].strip()}
            seen |= {r[4:7] for r in step.reply if r[:2] == "C1" and r[4:7].strip()}
    assert seen >= {"X09", "X18", "V05", "V20", "V21", "V22", "V23", "V24", "V90", "V91"}, seen


# --- refusals say nothing about why ------------------------------------------------------

ACE_B = "B" + " " * 78 + "B"
ACE_Z = "Z" + " " * 78 + "Z"


def x09_reply(a_columns_1_to_20: str) -> list[str]:
    """The whole-batch refusal (reference 3.1): mirrored A without password and
    application, ACE B, X1 X09, X1 R F 999, Y counting the two X1, Z."""
    return [a_columns_1_to_20.ljust(80), ACE_B,
            "X1 FX09   SENDER/RECEIVER NOT AUTHORIZED".ljust(80),
            "X1RF999   BATCH REJECTED".ljust(80),
            "Y           00002".ljust(79) + "Y", ACE_Z]


def query_batch(site: str, sender_id: str, password: str, application: str = "EC"
                ) -> list[str]:
    return input_batch(site=site, sender=sender_id, password=password,
                       application=application, date=ASKED,
                       blocks=[("2704", "K9T", UsageQuery("importer", ior=IOR_A).to_records())])


def test_x09_is_the_same_reply_whatever_failed() -> None:
    """Unknown sender, wrong password, disabled sender (with its password or another),
    application outside the role: the replies differ only in the mirrored sender (A 2-8);
    the journal tells them apart, but not whether a disabled sender's password was right."""
    ledger = put(MemoryLedger(), participant(*AU), participant(*K9T, iors=[IOR_A]),
                 participant("2706", "DIS", "filer", "DIS", "DISPAS", enabled=False))
    sent = [
        ("unknown-sender", query_batch("2704", "ZZZ", "K9TPAS")),
        ("wrong-password", query_batch("2704", "K9T", "WRONG1")),
        ("disabled", query_batch("2706", "DIS", "DISPAS")),
        ("disabled", query_batch("2706", "DIS", "WRONG1")),
        ("application-not-permitted", query_batch("2704", "K9T", "K9TPAS", "VQ")),
    ]
    replies = [process(ledger, lines, ASKED) for _, lines in sent]
    assert replies[1] == x09_reply("A2704K9T      030426")
    assert replies[4] == replies[1]
    assert replies[0] == x09_reply("A2704ZZZ      030426")
    assert replies[2] == replies[3] == x09_reply("A2706DIS      030426")
    attempts = ledger.attempts()
    assert [a.outcome for a in attempts] == [why for why, _ in sent]
    assert [a.batch_digest for a in attempts] == [batch_digest(b) for _, b in sent]
    now = dt.datetime.now(dt.UTC)
    assert all(now - dt.timedelta(minutes=5) < a.at <= now for a in attempts)


def test_unknown_sender_costs_the_same_work_as_a_wrong_password() -> None:
    """An unknown sender (checked against a stand-in hash no 6-character password matches,
    AAAAAA included), a wrong password and a disabled sender (whatever its password) cost
    one scrypt check at the production cost every time, so timing tells none of them apart.
    Only an enabled sender's right password is remembered: one check, then none; disabled,
    even that password costs a full check again."""
    ledger = put(MemoryLedger(), participant(*K9T, iors=[IOR_A]),
                 participant("2706", "DIS", "filer", "DIS", "DISPAS", enabled=False))
    access._dummy_hash()  # made once per process (when the first Authenticator is made)
    full = [(access.SCRYPT_N, access.SCRYPT_R, access.SCRYPT_P)]

    def checks(site: str, sender_id: str, password: str) -> list[tuple[int, ...]]:
        """(N, r, p) of each scrypt computed while processing one query batch."""
        with mock.patch.object(access, "_scrypt", wraps=access._scrypt) as spy:
            process(ledger, query_batch(site, sender_id, password), ASKED)
        return [tuple(c.args[2:]) for c in spy.call_args_list]

    with mock.patch.object(access, "_VERIFIED", set()):  # nothing remembered from elsewhere
        assert [checks("2704", "ZZZ", "AAAAAA") for _ in range(3)] == [full] * 3
        assert [checks("2704", "K9T", "AAAAAA") for _ in range(3)] == [full] * 3
        assert [checks("2706", "DIS", pw) for pw in ("DISPAS", "DISPAS", "WRONG1")] == [full] * 3
        assert [checks("2704", "K9T", "K9TPAS") for _ in range(3)] == [full, [], []]
        change(ledger, "2704", "K9T", lambda p: attrs.evolve(p, enabled=False))
        assert [checks("2704", "K9T", pw) for pw in ("K9TPAS", "K9TPAS", "AAAAAA")] == [full] * 3
    assert [a.outcome for a in ledger.attempts()] == (
        ["unknown-sender"] * 3 + ["wrong-password"] * 3 + ["disabled"] * 3 + ["accepted"] * 3
        + ["disabled"] * 3)
    assert not access.verify_password("AAAAAA", access._dummy_hash())


# --- malformed and oversize records ----------------------------------------------------

def _reject_lines(position_in_record: str, *codes: str) -> list[str]:
    """The reply to a K9T query batch whose record 3 (the UQ) has a record fault."""
    body = ["X0 BLOCK  000001 REF ID: 2704 K9T    EC".ljust(80),
            f"X0 TRNACT 000001 REF ID: 0000003 {position_in_record}".ljust(80)]
    body += [f"X1 F{c}   NON-STANDARD DATA FOUND".ljust(80) for c in codes]
    body.append("X1RF999   BATCH REJECTED".ljust(80))
    return ["A2704K9T      030426".ljust(80), ACE_B, *body,
            f"Y           {len(body):05d}".ljust(79) + "Y", ACE_Z]


GOOD_UQ = UsageQuery("importer", ior=IOR_A).to_records()[0]


@pytest.mark.parametrize(("record", "column"), [
    pytest.param(GOOD_UQ + "00", "00", id="82-columns"),
    pytest.param(GOOD_UQ + "X" * 4000, "00", id="4080-columns"),
    pytest.param(GOOD_UQ + "X" * 100_000, "00", id="100080-columns"),
    pytest.param(GOOD_UQ[:70], "71", id="70-columns-not-last"),
    pytest.param(GOOD_UQ[:20] + "\t" + GOOD_UQ[21:], "21", id="tab"),
    pytest.param(GOOD_UQ[:20] + "\xe9" + GOOD_UQ[21:], "21", id="latin-1"),
])
def test_oversize_and_unreadable_query_records_reject_the_batch(record: str, column: str
                                                                ) -> None:
    """A record fault rejects the whole batch with X40 located at the record (column 00:
    the whole record, for a record longer than 80) and answers nothing."""
    ledger = put(MemoryLedger(), participant(*K9T, iors=[IOR_A]))
    lines = input_batch(site="2704", sender="K9T", password="K9TPAS", application="EC",
                        date=ASKED, blocks=[("2704", "K9T", [record])])
    assert process(ledger, lines, ASKED) == _reject_lines(column, "X40")
    assert [a.outcome for a in ledger.attempts()] == ["accepted"]


@pytest.mark.parametrize(("length", "newline"), [
    pytest.param(MAX_LINE + 2, "\n", id="65538-LF"),
    pytest.param(100_080, "\n", id="100080-LF"),
    pytest.param(100_080, "\r\n", id="100080-CRLF"),
    pytest.param(MAX_LINE + 1, "\r\n", id="65537-CRLF"),
])
def test_a_line_beyond_the_read_limit_is_one_x40_to_its_true_length(length: int, newline: str
                                                                   ) -> None:
    """Only the first 65,536 characters are read; the record's one defect covers columns 81
    to the line's true length and says how much was not read."""
    lines = input_batch(site="2704", sender="K9T", password="K9TPAS", application="EC",
                        date=ASKED, blocks=[("2704", "K9T", [GOOD_UQ.ljust(length, "X")])])
    data = "".join(x + newline for x in lines).encode("latin-1")
    (batch,) = frame(read_lines(io.BytesIO(data)))
    uq = batch.records[2]
    assert len(uq.text) == MAX_LINE
    assert [(d.start, d.end, d.rule, d.code, d.message) for d in uq.defects] == [
        (81, length, "long", "X40", f"record is {length} characters, not 80"
                                    f" ({length - MAX_LINE} beyond {MAX_LINE} not read)")]
    assert [(f.block, f.transaction, f.position, f.defect.code) for f in batch.faults] == [
        (1, 1, 3, "X40")]


# --- the password never lands anywhere -------------------------------------------------

SECRET, GUESS = "Q7XW2Z", "J4KP9V"  # distinctive: no record or hash holds them by chance


def test_no_password_text_in_the_sqlite_file(tmp_path: Path) -> None:
    """After accepted and refused batches, neither the password nor a wrong guess appears
    in the ledger file, its WAL or the journal of attempts."""
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(str(path))
    put(ledger, participant(*AU), participant("2704", "K9T", "filer", "K9T", SECRET))
    process(ledger, certs_batch(beef_cert("AU", "6AU123456", 50000)), REGISTERED)
    lines = input_batch(site="2704", sender="K9T", password=SECRET, application="AE",
                        date=FILED, blocks=[("2704", "K9T", summary(
                            "0417203", beef_line("001", "AU", "6AU123456", "1000")).to_records())])
    for password in (SECRET, GUESS, SECRET.lower()):
        process(ledger, [lines[0][:8] + password + lines[0][14:], *lines[1:]], FILED)
    assert [a.outcome for a in ledger.attempts()] == [
        "accepted", "accepted", "wrong-password", "wrong-password"]
    for a in ledger.attempts():
        assert not {SECRET, GUESS} & {str(v).upper() for v in attrs.astuple(a)}
    files = [p for p in tmp_path.iterdir() if p.name.startswith("ledger.db")]
    data = b"".join(p.read_bytes() for p in files)
    ledger.close()
    data += path.read_bytes()  # after the checkpoint on close as well
    for text in (SECRET, GUESS):
        assert text.encode() not in data.upper(), text
    assert b"scrypt$" in data  # the hash is there: the search did look at the data


def test_journaled_digest_does_not_reveal_the_password() -> None:
    """The digest kept in the journal of attempts (and as the stored reply's key) is of the
    batch with its password columns (A and Z 9-14) blank: a reader of the ledger who
    rebuilds the batch (its A/B/Y/Z are mirrored in the stored reply) and tries passwords
    at SHA-256 speed never reproduces it; only the password-less batch does."""
    ledger = put(MemoryLedger(), participant("2704", "K9T", "filer", "K9T", SECRET,
                                             iors=[IOR_A]))
    sent = query_batch("2704", "K9T", SECRET)
    process(ledger, sent, ASKED)
    (attempt,) = ledger.attempts()
    assert ledger.stored_reply(attempt.batch_digest) is not None

    def sha256(lines: Sequence[str]) -> str:
        return hashlib.sha256("".join(x + "\n" for x in lines).encode("latin-1")).hexdigest()

    def with_password(password: str, *, in_z: bool = False) -> list[str]:
        a, *middle, z = sent
        return [a[:8] + password + a[14:], *middle,
                z[:8] + password + z[14:] if in_z else z]

    assert sent == with_password(SECRET)
    candidates = ["AAAAAA", "K9TPAS", GUESS, SECRET, "ZZZZZZ"]
    assert [(pw, in_z) for pw in candidates for in_z in (False, True)
            if sha256(with_password(pw, in_z=in_z)) == attempt.batch_digest] == []
    assert sha256(with_password(" " * 6)) == attempt.batch_digest
    # so the same batch under another password is the same batch
    assert batch_digest(with_password(GUESS)) == attempt.batch_digest


# --- an independent oracle of the query records ------------------------------------------
# Written from the layouts in specs/importer_usage_query.md, not from queries.py.

NARRATIVE = {None: "QUERY ANSWERED", "V20": "NO CERTIFICATES FOUND FOR QUERY",
             "V21": "IMPORTER NOT AUTHORIZED FOR REQUESTER",
             "V22": "COUNTRY NOT AUTHORIZED FOR REQUESTER",
             "V23": "CONTINUATION KEY INVALID", "V24": "DATE RANGE INVALID"}


def uc_line(c: CertState, ln: CertLine, used: int) -> str:
    return (f"UC{c.country}{c.programme}{c.number:<10}{ln.hts:<10}{ln.issued:012d}{used:012d}"
            f"{ln.issued - used:012d}{ln.unit:<3}{c.status}{c.quota_year:04d}"
            f"{c.expiry:%m%d%y}    ")


def uu_line(j: JournalEntry) -> str:
    return (f"UU{j.programme}{j.number:<10}{j.hts:<10}{j.filer:<3}{j.entry_number:<8}"
            f"{j.line_id:<3}{j.action}{j.quantity:012d}{j.as_of:%m%d%y}"
            f"{(j.ior or '').rstrip():<12}{j.seq:010d} ")


def ue_line(certs: int = 0, uses: int = 0, key: str | None = None,
            code: str | None = None) -> str:
    disposition = "A" if code in (None, "V20") else "R"
    return (f"UE{certs:06d}{uses:06d}{'Y' if key else ' '}{key or '':<20}{disposition}"
            f"{code or '':<3} {NARRATIVE[code]:<40}")


def answer_items(ledger: Ledger, wanted: Callable[[CertState], bool]) -> list[str]:
    """UC records of the wanted certificates (by country, programme, number, HTS) and UU
    records of their journal (by sequence), read from the ledger as it is now."""
    certs = sorted((c for c in ledger.certificates() if wanted(c)),
                   key=lambda c: (c.country, c.programme, c.number))
    held = {(c.programme, c.number) for c in certs}
    return ([uc_line(c, ln, ln.used) for c in certs
             for ln in sorted(c.lines, key=lambda x: x.hts)]
            + [uu_line(j) for j in sorted(ledger.journal(), key=lambda j: j.seq)
               if (j.programme, j.number) in held])


# --- paging at the real page size --------------------------------------------------------

def _accepted(reply: list[str]) -> bool:
    return any(r.startswith("E1A ") for r in reply) and not any(
        r.startswith("E1RF") for r in reply)


@pytest.fixture(scope="module")
def paging_numbers() -> list[str]:
    return [f"6AU{100000 + k}" for k in range(300)]


@pytest.fixture
def paging_ledger(paging_numbers: list[str]) -> MemoryLedger:
    """98-7654321: 300 certificates, 1,200 claims and credits (1,500 items, three full
    pages): summaries of 300, 300 and 200 lines, the last replaced (200 credits, 200
    decrements)."""
    ledger = put(MemoryLedger(), participant(*AU), participant(*K9T, iors=[IOR_A]))
    process(ledger, certs_batch(*[beef_cert("AU", n, 1000) for n in paging_numbers]),
            REGISTERED)
    for n, qty, count, action in (("0417301", "10", 300, "A"), ("0417302", "5", 300, "A"),
                                  ("0417303", "1", 200, "A"), ("0417303", "2", 200, "R")):
        s = summary(n, *[beef_line(f"{i + 1:03d}", "AU", c, qty)
                         for i, c in enumerate(paging_numbers[:count])], action=action)
        assert _accepted(process(ledger, summaries_batch(s), FILED))
    assert len(ledger.journal()) == 1200
    return ledger


def _page(reply: list[str]) -> tuple[list[str], str]:
    """(UC and UU records, UE record) of a one-query reply batch."""
    assert reply[-3][:2] == "UE" and reply[-1][:1] == "Z", reply[-3:]
    return reply[2:-3], reply[-3]


def _walk(ask: Callable[[str | None], list[str]]) -> list[tuple[list[str], str]]:
    pages = [_page(ask(None))]
    while pages[-1][1][14] == "Y":
        assert len(pages) < 10
        pages.append(_page(ask(pages[-1][1][15:35])))
    return pages


def _key(ue: str) -> str:
    """The continuation key of a UE record (16-35), checked for its form: the stored
    answer's 16 digits and the next page's 4."""
    key = ue[15:35]
    assert ue[14] == "Y" and key.isdigit() and key[16:] != "0000", ue
    return key


def test_paging_walks_every_item_once_from_one_snapshot(
        paging_ledger: MemoryLedger, paging_numbers: list[str]) -> None:
    ledger = paging_ledger

    def mine(c: CertState) -> bool:
        return normalise_ior(c.ior) == normalise_ior(IOR_A)

    before = answer_items(ledger, mine)
    assert len(before) == 1500 and len(set(before)) == 1500

    def ask(key: str | None, day: dt.date = ASKED) -> list[str]:
        return process(ledger, importer_query(IOR_A, day, continuation=key), day)

    first = _page(ask(None))
    assert len(first[0]) == 500
    # the key: the name of the answer stored for the batch's first query (block 1, query
    # 1), then the number of the next page, 0001 (the first page is page 0000)
    key = _key(first[1])
    name = queries.answer_token(f"{batch_digest(importer_query(IOR_A, ASKED))}:1:1")
    assert key == name + "0001"
    assert first[1] == ue_line(300, 200, key)
    # a claim committed between page 1 and page 2 belongs to another answer
    late = summary("0417304", beef_line("001", "AU", paging_numbers[0], "7"))
    assert _accepted(process(ledger, summaries_batch(late), FILED))
    second = _page(ask(key))
    assert second[1] == ue_line(0, 500, name + "0002")
    third = _page(ask(_key(second[1])))
    assert third[1] == ue_line(0, 500)
    assert first[0] + second[0] + third[0] == before  # no gap, no repeat, ledger order
    assert not any(r.endswith("0000001201 ") for r in second[0] + third[0])

    # asked afresh (the next day: a batch sent again byte for byte gets its stored reply),
    # the late claim is there: 1,501 items, the last alone on page 4, under a new name
    nextday = ASKED + dt.timedelta(days=1)
    pages = _walk(lambda k: ask(k, nextday))
    assert [len(items) for items, _ in pages] == [500, 500, 500, 1]
    keys = [_key(ue) for _, ue in pages[:-1]]
    renamed = keys[0][:16]
    assert renamed != name and keys == [renamed + f"{n:04d}" for n in (1, 2, 3)]
    assert [ue for _, ue in pages] == [ue_line(300, 200, keys[0]), ue_line(0, 500, keys[1]),
                                       ue_line(0, 500, keys[2]), ue_line(0, 1)]
    after = answer_items(ledger, mine)
    assert [r for items, _ in pages for r in items] == after
    assert uc_line(ledger.certificates()[0], ledger.certificates()[0].lines[0], 24) in after
    assert pages[3][0][0].endswith("0000001201 ")
    # the first answer's key, sent again the next day after the late claim: the same page
    # from the same snapshot
    assert _page(ask(key, nextday)) == second

    # the country's walk over the same certificates, its key at CQ 53-72
    country = _walk(lambda k: process(ledger, country_query("AU", nextday, continuation=k),
                                      nextday))
    assert [r for items, _ in country for r in items] == after
    assert len({_key(ue)[:16] for _, ue in country[:-1]} - {renamed, name}) == 1

    # keys this ledger never issued: page 0 (the first page is asked without a key), past
    # the end, a (snapshot, offset) shape of 10 + 10 digits, not digits, a space inside
    for bad in (name + "0000", name + "0003", renamed + "0004", "00000012000000000500",
                "00000012010000000500", "PAGE0000000000000500", name[:10] + " " + name[11:]
                + "0001", name):
        assert _page(ask(bad, nextday)) == ([], ue_line(code="V23")), bad


def test_a_key_is_worth_nothing_to_another_sender() -> None:
    """K9T's key, sent by another filer granted the same importer (2705/ZZ9), by another
    sender of filer K9T (2799/K9T) or by Australia, is V23, though each is authenticated
    and answered a first page of its own; K9T's key still gives K9T its page 2."""
    ledger = put(MemoryLedger(), participant(*AU), participant(*K9T, iors=[IOR_A]),
                 participant("2705", "ZZ9", "filer", "ZZ9", "ZZ9PAS", iors=[IOR_A]),
                 participant("2799", "K9T", "filer", "K9T", "K9TPA2", iors=[IOR_A]))
    process(ledger, certs_batch(*[beef_cert("AU", f"6AU10000{k}", 1000) for k in range(1, 5)]),
            REGISTERED)
    items = answer_items(ledger, lambda c: True)
    assert len(items) == 4

    def ask(site: str, sender_id: str, password: str, key: str | None = None) -> list[str]:
        blocks = [("2704", sender_id, UsageQuery("importer", ior=IOR_A, continuation=key)
                   .to_records())]
        lines = input_batch(site=site, sender=sender_id, password=password, application="EC",
                            date=ASKED, blocks=blocks)
        return process(ledger, lines, ASKED)[2:-2]

    with mock.patch.object(queries, "PAGE", 3):
        first = ask("2704", "K9T", "K9TPAS")
        key = _key(first[-1])
        assert first == [*items[:3], ue_line(3, 0, key)]
        for other in (("2705", "ZZ9", "ZZ9PAS"), ("2799", "K9T", "K9TPA2")):
            assert ask(*other, key) == [ue_line(code="V23")], other
            own = ask(*other)
            assert own == [*items[:3], ue_line(3, 0, _key(own[-1]))]
            assert _key(own[-1]) != key
        country = process(ledger, country_query("AU", continuation=key), ASKED)[2:-2]
        assert country == [ue_line(code="V23")]
        assert ask("2704", "K9T", "K9TPAS", key) == [items[3], ue_line(1, 0)]
    assert {a.outcome for a in ledger.attempts()} == {"accepted"}


def test_a_key_serves_only_the_query_it_was_issued_for() -> None:
    ledger = put(MemoryLedger(), participant(*AU), participant(*K9T, iors=[IOR_A, IOR_B]))
    process(ledger, certs_batch(*[beef_cert("AU", f"6AU10000{k}", 1000) for k in range(1, 5)],
                                beef_cert("AU", "6AU100009", 1000, ior=IOR_B)), REGISTERED)
    with mock.patch.object(queries, "PAGE", 3):
        first = process(ledger, importer_query(IOR_A), ASKED)[2:-2]
        key = _key(first[-1])
        change(ledger, "2704", "K9T", lambda p: attrs.evolve(
            p, iors=frozenset({normalise_ior(IOR_B)})))
        assert process(ledger, importer_query(IOR_A, continuation=key), ASKED)[2:-2] == [
            ue_line(code="V21")]
        assert process(ledger, importer_query(IOR_B, continuation=key), ASKED)[2:-2] == [
            ue_line(code="V23")]


# --- the journal of attempts in every store ----------------------------------------------

def test_every_attempt_is_journaled(ledger_factory: Callable[[], Ledger]) -> None:
    """Time, sender, application, outcome and batch digest of each attempt, in order, in
    every store; nothing of a refused batch is kept but its attempt."""
    ledger = put(ledger_factory(), participant(*AU), participant(*K9T, iors=[IOR_A]),
                 participant("2706", "DIS", "filer", "DIS", "DISPAS", enabled=False))
    sent = [query_batch("2704", "K9T", "K9TPAS"), query_batch("2704", "ZZZ", "K9TPAS"),
            query_batch("2704", "K9T", "WRONG1"), query_batch("2706", "DIS", "DISPAS"),
            query_batch("EAU1", "AUC", "AUPASS")]
    start = dt.datetime.now(dt.UTC)
    replies = [process(ledger, lines, ASKED) for lines in sent]
    got = [(a.site, a.sender_id, a.application, a.outcome, a.batch_digest)
           for a in ledger.attempts()]
    assert got == [
        ("2704", "K9T", "EC", "accepted", batch_digest(sent[0])),
        ("2704", "ZZZ", "EC", "unknown-sender", batch_digest(sent[1])),
        ("2704", "K9T", "EC", "wrong-password", batch_digest(sent[2])),
        ("2706", "DIS", "EC", "disabled", batch_digest(sent[3])),
        ("EAU1", "AUC", "EC", "application-not-permitted", batch_digest(sent[4]))]
    stamps = [a.at for a in ledger.attempts()]
    assert stamps == sorted(stamps) and start <= stamps[0] <= dt.datetime.now(dt.UTC)
    assert [a.seq for a in ledger.attempts(last=2)] == [a.seq for a in ledger.attempts()[-2:]]
    # only the accepted batch has a stored reply; the wrong-password batch is the same batch
    # (its digest leaves the password out), refused before the stored reply is looked up
    assert batch_digest(sent[2]) == batch_digest(sent[0])
    assert [ledger.stored_reply(batch_digest(b)) for b in sent] == [
        replies[0], None, replies[0], None, None]
    assert [r[2][:7] for r in replies[1:]] == ["X1 FX09"] * 4


def test_attempts_last_zero_is_none(ledger_factory: Callable[[], Ledger]) -> None:
    ledger = ledger_factory()
    with ledger.transaction() as tx:
        for n in range(3):
            tx.record_attempt("2704", "K9T", "EC", "accepted", str(n))
    assert [len(ledger.attempts(last=n)) for n in (None, 5, 2, 1, 0)] == [3, 3, 2, 1, 0]
