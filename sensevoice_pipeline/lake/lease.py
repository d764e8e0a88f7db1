"""One run per date at a time: a lease on the date, with an expiry, held from plan to publish.

Two runs of one date (a scheduled run and an operator's re-run, two `svp run` started together) would each publish
a whole day, and the last one would win; worse, each would clear or read the other's work. The lease makes the
second one wait (the DAG's plan task retries) or refuse with a message naming the holder. It expires
``ttl_s`` after the holder's last heartbeat (every batch, and publish, renews it), so a killed run does not block the
date for ever, and a run that lost its lease cannot publish (checked inside the commit's transaction).

The leases live in a SQLite file beside the lake's catalog: every writer of the lake shares the catalog anyway
(catalog.py), and SQLite gives the compare-and-set this needs across processes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from pathlib import Path

from sensevoice_pipeline.errors import ConfigurationError, PublishError


class DateBusyError(ConfigurationError):
    """Another run holds the date."""


class LeaseLostError(PublishError):
    """This run's lease on the date expired and another run took it: its work must not be published."""


class DateLeases:
    def __init__(self, path: Path, ttl_s: float):
        self.path = Path(path)
        self.ttl_s = ttl_s

    @contextlib.contextmanager
    def _transaction(self):
        """An immediate (write-locked) transaction: the read and the write of a lease are one atomic step."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("CREATE TABLE IF NOT EXISTS leases (date TEXT PRIMARY KEY, holder TEXT NOT NULL, "
                        "expires_at REAL NOT NULL)")
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    def acquire(self, date: str, holder: str) -> None:
        """Take ``date`` for ``holder`` (again, if it already holds it); raise DateBusyError if another run holds it."""
        with self._transaction() as con:
            current = con.execute("SELECT holder, expires_at FROM leases WHERE date = ?", [date]).fetchone()
            if current and current[0] != holder and current[1] > time.time():
                raise DateBusyError(
                    f"{date} is being processed by run {current[0]!r} (its lease runs until {_utc(current[1])} "
                    "unless it finishes or renews it): wait for that run, or run this date again later"
                )
            con.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", [date, holder, time.time() + self.ttl_s])

    def renew(self, date: str, holder: str) -> None:
        """Extend ``holder``'s lease; raise LeaseLostError if another run has taken the date since."""
        with self._transaction() as con:
            current = con.execute("SELECT holder FROM leases WHERE date = ?", [date]).fetchone()
            if current and current[0] != holder:
                raise LeaseLostError(
                    f"run {holder!r} lost its lease on {date} to run {current[0]!r} (it was silent for more than "
                    f"{self.ttl_s:.0f} s); nothing of it was published"
                )
            con.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", [date, holder, time.time() + self.ttl_s])

    def release(self, date: str, holder: str) -> None:
        """Give the date up, if ``holder`` holds it (a no-op otherwise)."""
        with self._transaction() as con:
            con.execute("DELETE FROM leases WHERE date = ? AND holder = ?", [date, holder])

    def holder(self, date: str) -> str | None:
        """Who holds ``date`` now (None: nobody, or an expired lease)."""
        with self._transaction() as con:
            row = con.execute("SELECT holder FROM leases WHERE date = ? AND expires_at > ?", [date, time.time()]).fetchone()
        return row[0] if row else None


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
