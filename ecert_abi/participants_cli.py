"""`ecert-abi participants`: the registry of who may send batches to a ledger.

Passwords are read from a prompt or from standard input, never from the command line
(where other users and shell histories would see them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click

from .access import Participant, check_password, hash_password, participants_from_toml
from .cli import _open_ledger, db_option
from .identifiers import ior_format_ok, normalise_ior

stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.")


@click.group()
def participants() -> None:
    """Who may send batches: participating countries and filers, their passwords, and the
    importers (IORs) each filer may query.

    \b
    Examples:
      ecert-abi participants add EAU1 AUC --country AU --db ledger.db
      ecert-abi participants add 2704 K9T --filer K9T --ior 98-7654321 --db ledger.db
      printf 'NEWPW1\\n' | ecert-abi participants passwd 2704 K9T --password-stdin
      ecert-abi participants attempts --db ledger.db
    """


@contextmanager
def _registry(db: str) -> Iterator[Any]:
    store = _open_ledger(db)
    try:
        yield store
    finally:
        store.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
    else:
        text = click.prompt("Password (6 letters/digits)", hide_input=True,
                            confirmation_prompt=True)
    try:
        return check_password(text)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def _iors(values: tuple[str, ...]) -> frozenset[str]:
    bad = [v for v in values if not ior_format_ok(v)]
    if bad:
        raise click.ClickException(f"not an IOR number: {', '.join(bad)} (IRS NN-NNNNNNN,"
                                   " with suffix NN-NNNNNNNss, SSN NNN-NN-NNNN or CBP"
                                   " YYDDPP-NNNNN)")
    return frozenset(normalise_ior(v) for v in values)


def _update(db: str, site: str, sender_id: str,
            change: Callable[[Participant], Participant]) -> Participant:
    with _registry(db) as store, store.transaction() as tx:
        who = tx.participant(site, sender_id)
        if who is None:
            raise click.ClickException(f"no participant {site}/{sender_id}")
        try:
            new = change(who)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        tx.put_participant(new)
        return new


@participants.command("add")
@click.argument("site")
@click.argument("sender_id")
@click.option("--country", help="A participating country's ISO code (it transmits VA, asks VQ).")
@click.option("--filer", help="A filer code (it files AE, asks EC).")
@click.option("--ior", "iors", multiple=True, help="An IOR the filer may query (repeatable).")
@stdin_option
@db_option
def add(site: str, sender_id: str, country: str | None, filer: str | None,
        iors: tuple[str, ...], password_stdin: bool, db: str) -> None:
    """Register a sender: its A-record site code (positions 2-5) and ID code (6-8); the
    password (A-record 9-14) is prompted for.

    \b
    Examples:
      ecert-abi participants add EAU1 AUC --country AU --db ledger.db
      printf 'K9TPAS\\n' | ecert-abi participants add 2704 K9T --filer K9T --password-stdin
    """
    if (country is None) == (filer is None):
        raise click.UsageError("give exactly one of --country or --filer")
    role, code = ("country", country) if country else ("filer", filer)
    assert code is not None
    try:
        new = Participant(site, sender_id, role, code, "-", iors=_iors(iors))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    new = attrs.evolve(new, password_hash=hash_password(_password(password_stdin)))
    with _registry(db) as store, store.transaction() as tx:
        if tx.participant(site, sender_id) is not None:
            raise click.ClickException(f"{site}/{sender_id} is already registered"
                                       " (change it with passwd, grant, revoke, disable)")
        tx.put_participant(new)
    click.echo(f"added {_describe(new)}")


@participants.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def import_(file: Path, db: str) -> None:
    """Add or replace the participants of a registry file (test environments: the file
    holds passwords in the clear).

    \b
    Example:
      ecert-abi participants import fixtures/participants.toml --db demo-ledger.db
    """
    try:
        found = participants_from_toml(file.read_text(encoding="utf-8"), str(file))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    with _registry(db) as store, store.transaction() as tx:
        for p in found:
            tx.put_participant(p)
    click.echo(f"{len(found)} participant(s) imported from {file}")


@participants.command("list")
@db_option
def list_(db: str) -> None:
    """Every participant (passwords are never shown).

    \b
    Example:
      ecert-abi participants list --db demo-ledger.db
    """
    with _registry(db) as store:
        for p in store.participants():
            click.echo(_describe(p))


@participants.command("passwd")
@click.argument("site")
@click.argument("sender_id")
@stdin_option
@db_option
def passwd(site: str, sender_id: str, password_stdin: bool, db: str) -> None:
    """Set a participant's password.

    \b
    Example:
      ecert-abi participants passwd 2704 K9T --db ledger.db
    """
    pw = hash_password(_password(password_stdin))
    _update(db, site, sender_id, lambda p: attrs.evolve(p, password_hash=pw))
    click.echo(f"password of {site}/{sender_id} changed")


@participants.command("disable")
@click.argument("site")
@click.argument("sender_id")
@db_option
def disable(site: str, sender_id: str, db: str) -> None:
    """Refuse every batch from a participant from now on (kept for the record).

    \b
    Example:
      ecert-abi participants disable 2704 K9T --db ledger.db
    """
    click.echo(_describe(_update(db, site, sender_id,
                                 lambda p: attrs.evolve(p, enabled=False))))


@participants.command("enable")
@click.argument("site")
@click.argument("sender_id")
@db_option
def enable(site: str, sender_id: str, db: str) -> None:
    """Accept batches from a disabled participant again.

    \b
    Example:
      ecert-abi participants enable 2704 K9T --db ledger.db
    """
    click.echo(_describe(_update(db, site, sender_id, lambda p: attrs.evolve(p, enabled=True))))


@participants.command("grant")
@click.argument("site")
@click.argument("sender_id")
@click.argument("iors", nargs=-1, required=True)
@db_option
def grant(site: str, sender_id: str, iors: tuple[str, ...], db: str) -> None:
    """Let a filer query the usage of these importers.

    \b
    Example:
      ecert-abi participants grant 2704 K9T 98-7654321 12-3456789AB --db ledger.db
    """
    more = _iors(iors)
    click.echo(_describe(_update(db, site, sender_id,
                                 lambda p: attrs.evolve(p, iors=p.iors | more))))


@participants.command("revoke")
@click.argument("site")
@click.argument("sender_id")
@click.argument("iors", nargs=-1, required=True)
@db_option
def revoke(site: str, sender_id: str, iors: tuple[str, ...], db: str) -> None:
    """Withdraw importers granted to a filer (those it has filed for stay in its scope).

    \b
    Example:
      ecert-abi participants revoke 2704 K9T 12-3456789AB --db ledger.db
    """
    less = _iors(iors)
    click.echo(_describe(_update(db, site, sender_id,
                                 lambda p: attrs.evolve(p, iors=p.iors - less))))


@participants.command("attempts")
@click.option("--last", default=20, show_default=True, help="How many of the latest.")
@db_option
def attempts(last: int, db: str) -> None:
    """The journal of authentication attempts: time, sender, application, outcome.

    \b
    Example:
      ecert-abi participants attempts --last 50 --db ledger.db
    """
    with _registry(db) as store:
        for a in store.attempts(last=last):
            click.echo(f"{a.seq:>6} {a.at.isoformat(timespec='seconds')} {a.site}/{a.sender_id}"
                       f" {a.application or '--':2} {a.outcome}")


def _describe(p: Participant) -> str:
    iors = f" iors={','.join(i.rstrip() for i in sorted(p.iors))}" if p.iors else ""
    state = "" if p.enabled else " DISABLED"
    return f"{p.site}/{p.sender_id} {p.role} {p.code}{iors}{state}"
