"""The unit tier's rule: no processes, no network.

Every test under tests/unit runs with ``subprocess.Popen`` and TCP/UDP ``socket.connect`` made to raise, so a
test that starts Triton, Airflow, moto, Postgres, a browser or ``svp`` as a subprocess fails at once with a
message that says where it belongs (tests/integration/<feature>/). Unix sockets and in-process sqlite/duckdb work.

One child process is the library's own and allowed: the first time a process creates a SQLite lake catalog,
lake/sqlite_wal.py switches the file to WAL mode in a short-lived ``python -c`` (it must not be done in-process:
DuckDB carries its own copy of SQLite, see its docstring). Any lake a unit test commits to starts it once.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from sensevoice_pipeline.lake import sqlite_wal

_INET = (socket.AF_INET, socket.AF_INET6)
_REAL_POPEN = subprocess.Popen


class UnitTierViolation(RuntimeError):
    """A unit test tried to start a process or open a network connection."""


def _is_the_wal_switch(command) -> bool:
    """The journal-mode switch of lake/sqlite_wal.py: ``[sys.executable, "-c", _WAL_SCRIPT, <catalog path>]``."""
    return (
        isinstance(command, list | tuple)
        and len(command) == 4
        and list(command[:3]) == [sys.executable, "-c", sqlite_wal._WAL_SCRIPT]
    )


def _refuse_popen(*args, **kwargs):
    command = args[0] if args else kwargs.get("args")
    if _is_the_wal_switch(command):
        return _REAL_POPEN(*args, **kwargs)
    raise UnitTierViolation(
        f"unit tests start no processes (tried subprocess.Popen({command!r})); "
        "move this test to tests/integration/<feature>/"
    )


def _guarded_connect(original):
    def connect(self, address):
        if self.family in _INET:
            raise UnitTierViolation(
                f"unit tests open no network connections (tried to connect to {address!r}); "
                "move this test to tests/integration/<feature>/"
            )
        return original(self, address)

    return connect


def _guarded_connect_ex(original):
    def connect_ex(self, address):
        if self.family in _INET:
            raise UnitTierViolation(
                f"unit tests open no network connections (tried to connect to {address!r}); "
                "move this test to tests/integration/<feature>/"
            )
        return original(self, address)

    return connect_ex


@pytest.fixture(autouse=True)
def _no_processes_no_network(monkeypatch):
    """Make subprocess.Popen and TCP/UDP connects raise for the duration of each unit test."""
    monkeypatch.setattr(subprocess, "Popen", _refuse_popen)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex(socket.socket.connect_ex))
    yield
