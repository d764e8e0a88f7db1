"""lake/sqlite_wal.py: the catalog file is switched to WAL once per file and process, and a failed switch says why.

The switch runs in a child process (the module doc says why); the unit tier starts none, so ``subprocess.run`` is
replaced by one that runs the module's own child script in this process, on files no DuckDB connection has open.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys

import pytest

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake import sqlite_wal
from sensevoice_pipeline.lake.sqlite_wal import WalError, ensure_wal


def journal_mode(path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def rollback_mode_file(path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.commit()
    assert journal_mode(path) == "delete"


@pytest.fixture
def children(monkeypatch) -> list[list[str]]:
    """The child processes ``ensure_wal`` asked for, each run here: its script with its argv, stdout captured."""
    calls: list[list[str]] = []

    def run(argv, **kwargs):
        calls.append(argv)
        assert argv[:2] == [sys.executable, "-c"] and kwargs["capture_output"] and kwargs["text"]
        out = io.StringIO()
        with monkeypatch.context() as m, contextlib.redirect_stdout(out):
            m.setattr(sys, "argv", ["-c", *argv[3:]])
            exec(argv[2], {"__name__": "__main__"})
        return subprocess.CompletedProcess(argv, 0, out.getvalue(), "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_a_rollback_mode_catalog_is_switched_to_wal_and_stays_so(tmp_path, children):
    path = tmp_path / "catalog.sqlite"
    rollback_mode_file(path)
    ensure_wal(path)
    assert len(children) == 1 and children[0][3:] == [str(path)]
    assert journal_mode(path) == "wal"  # a property of the file: a new connection sees it too


def test_a_missing_catalog_file_is_created_in_wal_mode(tmp_path, children):
    path = tmp_path / "new.sqlite"
    ensure_wal(path)
    assert path.is_file() and journal_mode(path) == "wal"


def test_the_child_runs_once_per_file_until_the_file_is_recreated(tmp_path, children):
    path = tmp_path / "catalog.sqlite"
    rollback_mode_file(path)
    ensure_wal(path)
    ensure_wal(path)
    ensure_wal(tmp_path / "." / "catalog.sqlite")  # the same file under another spelling
    assert len(children) == 1
    # A catalog recreated under the same name (a new inode: the new file exists before the old one goes).
    replacement = tmp_path / "replacement.sqlite"
    rollback_mode_file(replacement)
    os.replace(replacement, path)
    assert journal_mode(path) == "delete"
    ensure_wal(path)
    assert len(children) == 2 and journal_mode(path) == "wal"


@pytest.mark.parametrize(
    "returncode, stdout, stderr, reason",
    [
        (0, "delete\n", "", "(delete)"),  # the file system refused WAL: SQLite stays in its old mode
        (1, "", "Traceback ...\n  sqlite3.OperationalError:\n   database is locked\n", "database is locked"),
    ],
)
def test_a_failed_switch_is_a_configuration_error_naming_the_file_and_is_tried_again(
    tmp_path, monkeypatch, returncode, stdout, stderr, reason
):
    path = tmp_path / "catalog.sqlite"
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(WalError) as refused:
        ensure_wal(path)
    message = str(refused.value)
    assert isinstance(refused.value, ConfigurationError)
    assert str(path) in message and reason in message and "network file system" in message
    assert "\n" not in message  # the child's stderr is folded into one line
    with pytest.raises(WalError):
        ensure_wal(path)  # a failure is not remembered as done
    assert len(calls) == 2


def test_the_child_script_prints_the_mode_sqlite_answers(tmp_path):
    """What the child runs, in this process: ``_use_wal`` compares its output with "wal"."""
    path = tmp_path / "catalog.sqlite"
    rollback_mode_file(path)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stdout(out):
        m.setattr(sys, "argv", ["-c", str(path)])
        exec(sqlite_wal._WAL_SCRIPT, {"__name__": "__main__"})
    assert out.getvalue() == "wal\n" and journal_mode(path) == "wal"
