"""A SQLite catalog in WAL mode, so that readers and the one writer never block each other (catalog_db.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sensevoice_pipeline.errors import ConfigurationError


class WalError(ConfigurationError):
    """The SQLite catalog cannot be put in WAL mode."""


def ensure_wal(path: Path) -> None:
    """:func:`_use_wal`, once per catalog file in this process: the mode is a property of the file, so only a file
    this process has not switched yet (a new path, or a catalog recreated under the same one) costs the child
    process. ``stat`` opens no descriptor, so it cannot drop DuckDB's locks the way reading the file would."""
    identity = (path.resolve(), path.stat().st_ino) if path.exists() else None
    if identity is not None and identity in _WAL_FILES:
        return
    _use_wal(path)
    _WAL_FILES.add((path.resolve(), path.stat().st_ino))


_WAL_FILES: set[tuple[Path, int]] = set()  # catalogs this process has put in WAL mode


def _use_wal(path: Path) -> None:
    """Put the SQLite catalog in WAL mode (a property of the file: set once, kept). In SQLite's default rollback
    journal mode a reader's shared lock makes a COMMIT fail at once with "database is locked" (DuckDB's SQLite
    scanner sets no busy timeout), and a commit in progress fails readers the same way: a BI tool polling the lake
    would fail the daily publish. In WAL mode readers and the one writer never block each other. WAL needs the
    file on a local file system (shared memory beside it), which the catalog always is.

    The switch runs in a child process: DuckDB carries its own copy of SQLite, and a second copy in this process
    (Python's sqlite3) closing the file would drop the POSIX locks DuckDB's connections hold on it (SQLite's
    "multiple copies" hazard: the last-closer then truncates the shared memory others still map)."""
    out = subprocess.run(
        [sys.executable, "-c", _WAL_SCRIPT, str(path)], capture_output=True, text=True, timeout=120
    )
    mode = out.stdout.strip()
    if out.returncode != 0 or mode != "wal":
        reason = " ".join((out.stderr or mode).split())[-300:]
        raise WalError(
            f"cannot put the lake catalog {path} in WAL mode ({reason}): readers would make commits "
            "fail; is it on a network file system?"
        )


# waits up to a minute for readers of a catalog still in rollback mode (the switch needs the file to itself)
_WAL_SCRIPT = (
    "import contextlib, sqlite3, sys\n"
    "with contextlib.closing(sqlite3.connect(sys.argv[1], timeout=60)) as db:\n"
    "    print(db.execute('PRAGMA journal_mode=WAL').fetchone()[0])\n"
)
