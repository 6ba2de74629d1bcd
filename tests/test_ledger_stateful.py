"""Stateful test: MemoryLedger (the model), SqliteLedger and PostgresLedger driven side by
side through `Processor`, their senders registered and authenticated.

Hypothesis registers, replaces and cancels certificates, files entry summaries (add,
replace, delete; multi-line; some over the balance, some for the wrong importer, some
over the quota pool), replays earlier batches and reopens the SQLite file. After every
step all ledgers must have given identical replies and hold the same snapshot, and the
ledger invariants must hold in each:

- 0 <= used <= issued on every certificate line;
- per certificate line, journal decrements minus credits = used = the claims of the
  summaries on file;
- each quota pool's fill = the pool shares of the claims of the summaries on file, and
  never above its limit;
- a batch sent again gets its first reply and changes nothing.

Certificates list their HTS lines in any order (replacements may reorder them).
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import hypothesis.strategies as st
import psycopg
import pytest
from conftest import database_url
from engine_cases import (
    IOR_A,
    IOR_B,
    batch_digests,
    case_rules,
    certs_batch,
    entry,
    register_participants,
)
from engine_cases import summaries_batch as ae_batch
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ecert_abi.ledger import Ledger, MemoryLedger, snapshot
from ecert_abi.pg_ledger import PostgresLedger
from ecert_abi.processor import Processor
from ecert_abi.sqlite_ledger import SqliteLedger
from ecert_abi.transactions import (
    Certificate,
    CertificateLine,
    EntryLine,
    EntrySummary,
    Tariff,
)

D = dt.date
AS_OF = D(2026, 3, 2)
CERTS = (("AU", "6AU000001"), ("AU", "6AU000002"), ("AU", "6AU000003"), ("NZ", "6NZ000001"))
HTS = ("0201305085", "0202305015")
ENTRIES = ("0000011", "0000012", "0000013", "0000014", "0000015")
POOL_LIMIT = 90000  # BEEF-AU, small enough to be reached
PG_SERVER: list[str] = []  # the session's server URL, set by the fixture below

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres(pg_url: str) -> Iterator[None]:
    PG_SERVER[:] = [pg_url]
    yield
    PG_SERVER.clear()

cert_lines = st.lists(st.tuples(st.sampled_from(HTS), st.sampled_from([5000, 20000, 60000])),
                      min_size=1, max_size=2, unique_by=lambda t: t[0])
claim_lines = st.lists(
    st.tuples(st.sampled_from(CERTS), st.sampled_from(HTS),
              st.sampled_from([1, 2500, 5000, 12000, 30000]),
              st.sampled_from([None] * 7 + ["NZ"])),  # None: the certificate's country
    min_size=1, max_size=3)
summary_specs = st.lists(
    st.tuples(st.sampled_from(ENTRIES), st.sampled_from("AR"),
              st.sampled_from([IOR_A] * 7 + [IOR_B]), claim_lines),
    min_size=1, max_size=2, unique_by=lambda t: t[0])


def check_invariants(led: Ledger, limits: dict[str, int]) -> None:
    used: dict[tuple[str, str, str], int] = {}
    for c in led.certificates():
        for ln in c.lines:
            assert 0 <= ln.used <= ln.issued, (c.number, ln)
            used[(c.programme, c.number, ln.hts)] = ln.used
    net: dict[tuple[str, str, str], int] = defaultdict(int)
    for j in led.journal():
        net[(j.programme, j.number, j.hts)] += j.quantity if j.action == "D" else -j.quantity
    for key, n in net.items():
        assert n == used.get(key, 0), (key, n, used.get(key))
    for key, u in used.items():
        assert net.get(key, 0) == u, (key, u)
    on_file: dict[tuple[str, str, str], int] = defaultdict(int)
    pools: dict[tuple[str, int], int] = defaultdict(int)
    for s in led.summaries():
        for cl in s.claims:
            on_file[(cl.programme, cl.number, cl.hts)] += cl.quantity
            for pool, year, amount in cl.pools:
                pools[(pool, year)] += amount
    assert {k: v for k, v in on_file.items() if v} == {k: v for k, v in used.items() if v}
    fills = led.pool_fills()
    assert {k: v for k, v in pools.items() if v} == fills
    for (pool, _year), fill in fills.items():
        assert 0 < fill <= limits[pool]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ecert-stateful-"))
        self.rules = case_rules(limits={"BEEF-AU": POOL_LIMIT})
        self.limits = {p.name: p.limit for p in self.rules.pools}
        self.mem = MemoryLedger(self.rules)
        self.sql = SqliteLedger(str(self.dir / "ledger.db"), self.rules)
        self.db = f"stateful_{self.dir.name.replace('-', '_').lower()}"
        with psycopg.connect(PG_SERVER[0], autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.pg = PostgresLedger(database_url(PG_SERVER[0], self.db), self.rules)
        for led in (self.mem, self.sql, self.pg):
            register_participants(led)
        self.sent: dict[str, list[str]] = {}  # batch digest -> its first reply
        self.batches: list[list[str]] = []
        self.serial = 0

    def teardown(self) -> None:
        self.sql.close()
        self.pg.close()
        with psycopg.connect(PG_SERVER[0], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers ---
    def date(self) -> dt.date:
        self.serial += 1
        return D(2026, 2, 1) + dt.timedelta(days=self.serial)

    def _process(self, led: Ledger, lines: list[str]) -> list[str]:
        data = "".join(x + "\n" for x in lines).encode("latin-1")
        replies = list(Processor(led, AS_OF, self.rules).process_stream(io.BytesIO(data)))
        assert len(replies) == 1, "one reply batch per input batch"
        return replies[0]

    def send(self, lines: list[str]) -> list[str]:
        (key,) = batch_digests(lines)
        known = self.sent.get(key)
        before = snapshot(self.mem) if known is not None else None
        a = self._process(self.mem, lines)
        b = self._process(self.sql, lines)
        c = self._process(self.pg, lines)
        assert a == b == c, "backends replied differently"
        assert not any(x.startswith("X1") and x[4:7] == "X09" for x in a), "sender refused"
        assert a[0][0] == "A" and a[-1][0] == "Z"
        assert sum(1 for x in a if x[0] == "A") == 1
        for x in a:  # what the run exercised (shown by --hypothesis-show-statistics)
            if x[:2] in ("E1", "C1") and x[4:7].strip():
                event(f"condition {x[4:7]}")
            elif x[:2] in ("E1", "C1") and x[2] in "AR":
                event(f"final {x[:2]} {x[10:50].strip()}")
        if known is not None:
            event("replay")
            assert a == known, "a replayed batch got another reply"
            assert snapshot(self.mem) == before, "a replayed batch changed the ledger"
        else:
            self.sent[key] = a
            self.batches.append(lines)
        return a

    # --- rules ---
    @initialize()
    def register_certificates(self) -> None:
        """Start with every certificate registered (two HTS lines of 40,000 kg each), so
        that claims are often accepted; the rules then replace and cancel them."""
        lines = tuple(CertificateLine(h, 40000, "KG") for h in reversed(HTS))
        certs = [Certificate("A", country, "05", number, IOR_A, 2026, D(2026, 1, 15),
                             D(2026, 12, 31), lines) for country, number in CERTS]
        replies = [*self.send(certs_batch(*certs[:3], date=self.date())),
                   *self.send(certs_batch(certs[3], date=self.date()))]
        assert sum("CERTIFICATE ADDED" in x for x in replies) == 4, replies

    @rule(cert=st.sampled_from(CERTS), action=st.sampled_from("AR"),
          ior=st.sampled_from([IOR_A, IOR_A, IOR_B]), lines=cert_lines)
    def transmit_certificate(self, cert: tuple[str, str], action: str, ior: str,
                             lines: list[tuple[str, int]]) -> None:
        country, number = cert
        c = Certificate(action, country, "05", number, ior, 2026, D(2026, 1, 15),
                        D(2026, 12, 31),
                        tuple(CertificateLine(h, q, "KG") for h, q in lines))
        self.send(certs_batch(c, date=self.date()))

    @rule(cert=st.sampled_from(CERTS))
    def cancel_certificate(self, cert: tuple[str, str]) -> None:
        country, number = cert
        c = Certificate("C", country, "05", number, None, None, None, None)
        self.send(certs_batch(c, date=self.date()))

    @rule(specs=summary_specs)
    def file_summaries(self, specs: list[tuple[str, str, str, list[tuple[
            tuple[str, str], str, int, str | None]]]]) -> None:
        sums = []
        for n, action, ior, claims in specs:
            lines = tuple(
                EntryLine(f"{i:03d}", origin or country,
                          (Tariff(hts, Decimal(qty), "KG", Decimal("10.00"), 100),),
                          D(2026, 2, 20), licence_type="05", licence_number=number)
                for i, ((country, number), hts, qty, origin) in enumerate(claims, 1))
            sums.append(EntrySummary(action, "K9T", entry(n), "2704", "02", ior, lines,
                                     f"BRK-{n[-4:]}"))
        self.send(ae_batch(*sums, date=self.date()))

    @rule(n=st.sampled_from(ENTRIES), action=st.sampled_from("AR"), cert=st.sampled_from(CERTS),
          hts=st.sampled_from(HTS), qty=st.sampled_from([1, 2500, 5000, 12000, 30000]))
    def file_single_claim(self, n: str, action: str, cert: tuple[str, str], hts: str,
                          qty: int) -> None:
        """One well-formed line for the right importer: accepted while balance and pool
        allow (adds and replaces of the same few entry numbers)."""
        self.file_summaries([(n, action, IOR_A, [(cert, hts, qty, None)])])

    @rule(n=st.sampled_from(ENTRIES))
    def delete_summary(self, n: str) -> None:
        s = EntrySummary("D", "K9T", entry(n), "2704", "02", None, (), f"BRK-{n[-4:]}")
        self.send(ae_batch(s, date=self.date()))

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        lines = data.draw(st.sampled_from(self.batches), label="earlier batch")
        self.send(lines)

    @rule()
    def reopen_sqlite(self) -> None:
        """Everything committed survives closing and reopening the SQLite file."""
        self.sql.close()
        self.sql = SqliteLedger(str(self.dir / "ledger.db"), self.rules)

    # --- invariants ---
    @invariant()
    def ledgers_agree(self) -> None:
        assert snapshot(self.mem) == snapshot(self.sql) == snapshot(self.pg)

    @invariant()
    def balances_hold(self) -> None:
        check_invariants(self.mem, self.limits)
        check_invariants(self.sql, self.limits)
        check_invariants(self.pg, self.limits)


LedgerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestLedgerMachine = LedgerMachine.TestCase
