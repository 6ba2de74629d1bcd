"""Shared fixtures: an embedded PostgreSQL server and a ledger of each kind.

`pg_url` starts one real PostgreSQL server per test session (tests/pgserver_support.py);
if it cannot start, every test that needs it fails (never skips). `pg_ledger_url` is a
fresh, empty database on it for one test. `ledger_factory` runs a test once per ledger
kind (memory, sqlite, postgres). Tests that use the server get the `postgres` marker
automatically, so `pytest -m "not postgres"` runs without it.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ecert_abi.ledger import Ledger, MemoryLedger
from ecert_abi.sqlite_ledger import SqliteLedger

try:
    from tests.pgserver_support import start_server
except ImportError:  # pytest run without the project root on sys.path
    from pgserver_support import start_server  # type: ignore[no-redef]

LEDGER_KINDS = ["memory", "sqlite", "postgres"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server (database `postgres`).

    Its data lives in a directory of its own, not under pytest's tmp_path: as root the
    server runs as user `pgserver`, which needs o+x on every parent, and each pytest
    session that starts resets /tmp/pytest-of-root to 0700, so a concurrent test run
    would crash this server (PANIC: could not open pg_control: Permission denied).
    """
    home = Path(tempfile.mkdtemp(prefix="ecert-abi-pg-"))
    try:
        uri, stop = start_server(home)
        try:
            yield uri
        finally:
            stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    """`server_url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


@pytest.fixture
def new_database(pg_url: str) -> Iterator[Callable[[], str]]:
    """A callable making a fresh, empty database per call (URL); all dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return database_url(pg_url, name)

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_ledger_url(new_database: Callable[[], str]) -> str:
    """URL of a fresh, empty database, dropped after the test."""
    return new_database()


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.postgres) if k == "postgres" else k
                        for k in LEDGER_KINDS])
def ledger_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_factory(ledger_kind: str, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Iterator[Callable[[], Ledger]]:
    """A zero-arg callable making a new, empty ledger of the parametrised kind per call
    (the first SQLite one is tmp_path/"l.db", the first PostgreSQL one is on
    `pg_ledger_url`); every ledger made is closed after the test."""
    made: list[Any] = []
    # set up now, so the databases are dropped after the ledgers are closed
    new_db = request.getfixturevalue("new_database") if ledger_kind == "postgres" else None

    def make() -> Ledger:
        ledger: Any
        if ledger_kind == "memory":
            ledger = MemoryLedger()
        elif ledger_kind == "sqlite":
            ledger = SqliteLedger(str(tmp_path / ("l.db" if not made else f"l{len(made)}.db")))
        else:
            from ecert_abi.pg_ledger import PostgresLedger

            assert new_db is not None
            url = request.getfixturevalue("pg_ledger_url") if not made else new_db()
            ledger = PostgresLedger(url)
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.close()
