"""The `ecert-abi` command line. It parses options, opens files and picks a store; the work
is done by the library.

Exit codes: 0 success (no defects), 1 defects found or batches rejected, 2 usage or I/O
error.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from . import specs as specs_mod
from .envelope import frame
from .jsonl import json_to_text, record_to_json
from .layout import Defect, EmitError, LayoutError
from .record import catalogue, read_lines

EXAMPLES_DIR = "fixtures"


@contextmanager
def _open_in(path: str) -> Iterator[IO[bytes]]:
    """`with _open_in(path) as stream`: the file, closed afterwards, or for '-' standard
    input, left open because it belongs to the caller (CliRunner, an embedding program)."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115  # closed by the `with` below
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror}") from None
    with stream:
        yield stream


@contextmanager
def _open_out(path: str) -> Iterator[IO[bytes]]:
    """Like _open_in for writing; standard output is flushed, never closed."""
    if path == "-":
        try:
            yield sys.stdout.buffer
        finally:
            sys.stdout.buffer.flush()
        return
    try:
        stream = open(path, "wb")  # noqa: SIM115  # closed by the `with` below
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror}") from None
    with stream:
        yield stream


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            e.exit_code = 2  # type: ignore[misc]  # usage and I/O errors exit 2
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecert-abi")
def main() -> None:
    """eCERT 2.0 quota certificates over ABI: parse, check and process 80-column batches.

    \b
    Examples:
      ecert-abi check fixtures/*.abi
      ecert-abi parse fixtures/au-certificates.abi | ecert-abi emit - -o copy.abi
      ecert-abi process fixtures/au-certificates.abi --db ledger.db
    """


@main.command()
@click.argument("file", default="-")
def parse(file: str) -> None:
    """Print FILE's records as JSON Lines: line, layout, typed fields, defects, raw text.

    \b
    Example:
      ecert-abi parse fixtures/au-certificates.abi | head -3
    """
    out = sys.stdout
    with _open_in(file) as stream:
        for batch in frame(read_lines(stream)):
            for rec in batch.records:
                out.write(json.dumps(record_to_json(rec)) + "\n")


@main.command()
@click.argument("file", default="-")
@click.option("-o", "--output", default="-", help="Where to write the records ('-' = stdout).")
@click.option("--crlf", is_flag=True, help="End records with CRLF instead of LF.")
def emit(file: str, output: str, crlf: bool) -> None:
    """Write 80-column records from JSON Lines (parse's output or hand-written objects).

    Each object needs "layout" and "fields" (or "raw"). A value that does not fit its field
    is an error naming the line, record and field; nothing is truncated.

    \b
    Example:
      echo '{"layout": "R51", "fields": {"standard_visa_number": "6AU123456"}}' \\
        | ecert-abi emit
    """
    cat = catalogue()
    newline = b"\r\n" if crlf else b"\n"
    with _open_in(file) as stream:
        lines = stream.read().decode("utf-8").splitlines()
    texts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            texts.append(json_to_text(json.loads(line), cat))
        except (ValueError, KeyError, EmitError) as e:
            raise click.ClickException(f"{file}:{n}: {e}") from None
    with _open_out(output) as out:
        for t in texts:
            out.write(t.encode("latin-1") + newline)


def _caret(text: str, start: int, end: int) -> str:
    shown = "".join(c if 0x20 <= ord(c) <= 0x7E else "?" for c in text[:200])
    end = max(start, min(end, max(len(shown), start)))
    return f"    {shown}\n    {' ' * (start - 1)}{'^' * (end - start + 1)}"


def diagnostics(path: str) -> Iterator[str]:
    """Every defect of a file as `file:line:col: CODE message` plus the caret lines."""
    with _open_in(path) as stream:
        for batch in frame(read_lines(stream)):
            by_line = {r.line: r for r in batch.records}
            found: list[Defect] = []
            for rec in batch.records:
                found.extend(rec.defects)
            envelope = [f.defect for f in batch.faults if f.defect not in found]
            for d in sorted(found + envelope, key=lambda d: (d.line, d.start)):
                located = by_line.get(d.line)
                where = f" {d.field}:" if d.field else ""
                yield f"{path}:{d.line}:{d.start}: {d.code or '-'}{where} {d.message}"
                if located is not None:
                    yield _caret(located.text, d.start, d.end)


@main.command()
@click.argument("files", nargs=-1, required=True)
def check(files: tuple[str, ...]) -> None:
    """Check batches and print each defect with a caret under its columns.

    Exit 0 when clean, 1 when any defect is found, 2 on usage or I/O errors.

    \b
    Example:
      ecert-abi check fixtures/*.abi
    """
    bad = 0
    for path in files:
        for line in diagnostics(path):
            click.echo(line)
            bad += not line.startswith(" ")
    click.echo(f"{len(files)} file(s) checked, {bad} defect(s)", err=True)
    sys.exit(1 if bad else 0)


@main.command("specs")
@click.option("--dir", "directory", default="specs", type=click.Path(file_okay=False),
              help="Where the chapters go.")
@click.option("--check", "check_only", is_flag=True,
              help="Exit 1 if the files on disk differ from the layouts.")
def specs_cmd(directory: str, check_only: bool) -> None:
    """Render one CATAIR-style Markdown chapter per layout file into specs/.

    \b
    Examples:
      ecert-abi specs
      ecert-abi specs --check
    """
    from .specdoc import chapter_extra

    try:
        chapters = catalogue().chapters
    except LayoutError as e:
        raise click.ClickException(str(e)) from None
    stale = []
    root = Path(directory)
    for ch in chapters.values():
        text = specs_mod.render(ch, chapter_extra)
        path = root / f"{ch.name}.md"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(str(path))
            if not check_only:
                root.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if check_only and stale:
        click.echo("stale: " + ", ".join(stale) + " (run `ecert-abi specs`)", err=True)
        sys.exit(1)
    click.echo(f"{len(chapters)} chapter(s) " + ("checked" if check_only else "written"),
               err=True)


def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()  # the CLI is the edge: the core never reads the clock
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not YYYY-MM-DD", param_hint="--as-of") from None


db_option = click.option(
    "--db", envvar="ECERT_ABI_DB", default="ecert-ledger.db", show_default=True,
    help="Ledger: a SQLite file path, ':memory:', or postgresql://... (env ECERT_ABI_DB).")


@main.command()
@click.argument("infile", default="-")
@click.option("-o", "--output", default="-", help="Where the reply batches go ('-' = stdout).")
@db_option
@click.option("--as-of", "as_of", default=None, help="Processing date YYYY-MM-DD (default: today).")
@click.option("--json-summary", is_flag=True, help="Print the end summary as JSON on stderr.")
@click.option("--trust-senders", is_flag=True,
              help="Skip authentication and authorisation: every sender may do anything"
                   " (local validation against a scratch ledger only).")
def process(infile: str, output: str, db: str, as_of: str | None, json_summary: bool,
            trust_senders: bool) -> None:
    """Process batches against the ledger; write exactly one reply batch per input batch.

    Country transmissions (VA) register certificates, entry summaries (AE) decrement them,
    usage queries (EC, VQ) report. A batch sent again is answered with the stored reply.

    \b
    Exit codes: 0 all batches processed (transactions may still be rejected: read the
    reply), 1 a batch was rejected whole, 2 usage or I/O error.

    \b
    Example:
      ecert-abi process fixtures/01-au-certificates.abi --db ledger.db --as-of 2026-03-02
    """
    from .ledger import LedgerUnavailable, open_ledger
    from .processor import Processor

    date = _as_of(as_of)
    try:
        ledger = open_ledger(db)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    proc = Processor(ledger, date, trust_senders=trust_senders)
    if not trust_senders and not ledger.participants():
        where = "the PostgreSQL ledger" if "://" in db else db  # a URL may hold a password
        click.echo(f"warning: no participants are registered in {where}, so every batch will be"
                   " refused (X09); register senders with `ecert-abi participants add` (or"
                   " `participants import`), or use --trust-senders to validate locally",
                   err=True)
    progress = sys.stderr.isatty() and output != "-"
    try:
        with _open_in(infile) as stream, _open_out(output) as out:
            for reply in proc.process_stream(stream):
                out.write(("\n".join(reply) + "\n").encode("latin-1"))
                out.flush()
                if progress:
                    click.echo(f"\r{proc.tally.batches} batch(es)", nl=False, err=True)
    except LedgerUnavailable as e:
        # every reply written is committed; running again resumes (replays answer the rest)
        raise click.ClickException(f"{e}; {proc.tally.batches - 1} batch(es) answered before"
                                   " it; run again to resume") from None
    finally:
        ledger.close()
    t = proc.tally
    if json_summary:
        click.echo(json.dumps({"batches": t.batches, "rejected_batches": t.rejected_batches,
                               "replayed": t.replayed, "accepted": t.accepted,
                               "rejected": t.rejected, "conditions": dict(t.conditions)}),
                   err=True)
    else:
        codes = ", ".join(f"{c}x{n}" for c, n in sorted(t.conditions.items())) or "none"
        click.echo(f"{'' if not progress else chr(10)}{t.batches} batch(es): "
                   f"{t.rejected_batches} rejected whole, {t.replayed} replayed; "
                   f"transactions {t.accepted} accepted, {t.rejected} rejected; "
                   f"conditions: {codes}", err=True)
    sys.exit(1 if t.rejected_batches else 0)


@main.group()
def ledger() -> None:
    """Look into the certificate ledger.

    \b
    Examples:
      ecert-abi ledger show 6AU123456 --db demo-ledger.db
      ecert-abi ledger export --format csv --db demo-ledger.db
      ecert-abi ledger stats --db demo-ledger.db
    """


def _open_ledger(db: str) -> Any:
    from .ledger import open_ledger

    try:
        return open_ledger(db)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None


@ledger.command("show")
@click.argument("number")
@db_option
def ledger_show(number: str, db: str) -> None:
    """Show one certificate: lines with issued/used/remaining, and its journal.

    \b
    Example:
      ecert-abi ledger show 6AU123456 --db demo-ledger.db
    """
    store = _open_ledger(db)
    try:
        certs = [c for c in store.certificates() if c.number == number]
        if not certs:
            raise click.ClickException(f"no certificate {number!r} in {db}")
        for c in certs:
            click.echo(f"{c.programme} {c.number} {c.country} IOR {c.ior.strip()} "
                       f"year {c.quota_year} valid {c.effective}..{c.expiry} "
                       f"status {'active' if c.status == 'A' else 'cancelled'}")
            for ln in c.lines:
                click.echo(f"  {ln.hts} issued {ln.issued} used {ln.used} "
                           f"remaining {ln.issued - ln.used} {ln.unit}")
            for j in store.journal(programme=c.programme, number=c.number):
                click.echo(f"  #{j.seq} {j.as_of} {'decrement' if j.action == 'D' else 'credit'}"
                           f" {j.quantity} {j.hts} entry {j.filer}-{j.entry_number} line "
                           f"{j.line_id}")
    finally:
        store.close()


@ledger.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@db_option
def ledger_export(fmt: str, db: str) -> None:
    """Export every certificate line (issued, used, remaining) as JSON Lines or CSV.

    \b
    Example:
      ecert-abi ledger export --format csv --db demo-ledger.db > lines.csv
    """
    import csv

    store = _open_ledger(db)
    try:
        rows = [{"country": c.country, "programme": c.programme, "number": c.number,
                 "ior": c.ior.strip(), "quota_year": c.quota_year, "status": c.status,
                 "effective": c.effective.isoformat(), "expiry": c.expiry.isoformat(),
                 "hts": ln.hts, "unit": ln.unit, "issued": ln.issued, "used": ln.used,
                 "remaining": ln.issued - ln.used}
                for c in store.certificates() for ln in c.lines]
    finally:
        store.close()
    if fmt == "jsonl":
        for r in rows:
            click.echo(json.dumps(r))
    else:
        fields = ["country", "programme", "number", "ior", "quota_year", "status", "effective",
                  "expiry", "hts", "unit", "issued", "used", "remaining"]
        w = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


@ledger.command("stats")
@db_option
def ledger_stats(db: str) -> None:
    """Per country and programme: issued, used, remaining and fill %.

    \b
    Example:
      ecert-abi ledger stats --db demo-ledger.db
    """
    store = _open_ledger(db)
    try:
        totals: dict[tuple[str, str, str], list[int]] = {}
        for c in store.certificates():
            for ln in c.lines:
                t = totals.setdefault((c.country, c.programme, ln.unit), [0, 0])
                t[0] += ln.issued
                t[1] += ln.used
        pools = store.pool_fills()
    finally:
        store.close()
    click.echo(f"{'country':7} {'prog':4} {'unit':4} {'issued':>14} {'used':>14} "
               f"{'remaining':>14} {'fill':>7}")
    for (country, prog, unit), (issued, used) in sorted(totals.items()):
        click.echo(f"{country:7} {prog:4} {unit:4} {issued:>14,} {used:>14,} "
                   f"{issued - used:>14,} {100 * used / issued if issued else 0:>6.1f}%")
    if pools:
        from .engine import default_rules

        limits = {p.name: p.limit for p in default_rules().pools}
        click.echo("quota pools:")
        for (pool, year), used in sorted(pools.items()):
            limit = limits.get(pool, 0)
            click.echo(f"  {pool} {year}: {used:,} of {limit:,} "
                       f"({100 * used / limit if limit else 0:.2f}%)")


def _register_commands() -> None:
    # imported late: these modules use the options and helpers defined above; conformance
    # imports Hypothesis only when it runs
    from .conformance import conformance
    from .participants_cli import participants

    main.add_command(participants)
    main.add_command(conformance)


_register_commands()
