"""The senders of the bundled sample batches (fixtures/participants.toml), registered in a
test ledger so batches go through authentication as they do in production."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ecert_abi.access import Participant, participants_from_toml
from ecert_abi.ledger import Ledger

REGISTRY = Path(__file__).resolve().parent.parent / "fixtures" / "participants.toml"


@cache
def fixture_participants() -> tuple[Participant, ...]:
    """Hashed once per test process (scrypt is deliberately slow)."""
    return tuple(participants_from_toml(REGISTRY.read_text(encoding="utf-8"), str(REGISTRY)))


def register(ledger: Ledger) -> Ledger:
    with ledger.transaction() as tx:
        for p in fixture_participants():
            tx.put_participant(p)
    return ledger
