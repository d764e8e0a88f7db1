"""One run per date at a time: a lease on the date, held from plan to publish, that fences a run which lost it.

Two runs of one date (a scheduled run and an operator's re-run, two `svp run` started together) would each publish
a whole day, and the last one would win; worse, each would clear or read the other's work. The lease makes the
second one wait (the DAG's plan task retries) or refuse with a message naming the holder.

- **A token per acquisition.** ``acquire`` returns a :class:`Lease` with a fresh random token; ``renew`` (every
  batch, and a keep-alive thread while a batch or `svp run` works) and the commit present it. A run whose lease was
  taken over, broken, or released by another run cannot renew or publish any more, even after the taker has
  finished and given the date back: its token is gone. (Matching only the holder's name would let it publish.)
- **Expiry and dead holders.** A lease expires ``ttl_s`` after its last renewal, so a run that went silent does not
  block the date for ever. A lease records the host, pid and process start time of whoever took it; an `svp run`
  (a process that *is* the run) marks its lease bound to its process, and a holder found dead on the same host is
  taken over at once, with a log line saying so. (A DAG run's tasks are many processes: its lease only expires.)
  `svp lease list` shows them; `svp lease break DATE --yes` frees a date by hand.
- **The commit checks the lease in its own transaction.** With a PostgreSQL catalog the leases are a table of the
  catalog database, and a trigger on DuckLake's ``ducklake_snapshot_changes`` refuses a commit whose message names
  a lease token that is no longer current: the check and the commit are one transaction (``FOR SHARE`` holds the
  lease row until the commit ends, so a takeover waits for it). With a SQLite catalog (one host) the leases are a
  file beside it (a second SQLite library touching the catalog file itself would break DuckDB's locks, see
  sqlite_wal.py), and the catalog's writer lock is the fence: the commit checks the token while holding it, and a
  takeover or a break takes it too, so neither can happen between the check and the COMMIT.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from sensevoice_pipeline.errors import PublishError, RetryLaterError
from sensevoice_pipeline.lake.catalog_db import CatalogDatabase, PostgresCatalog, SqliteCatalog

log = logging.getLogger(__name__)

COMMIT_MARKER = "svp-lease"  # a commit's extra info "svp-lease <date> <token>": what the trigger checks
LOST_MARKER = "svp-lease-lost"  # the trigger's error starts with it
FROZEN_CLIENT_TIMEOUT_MS = (
    10_000  # PostgreSQL ends a lease transaction whose client stopped answering this long
)


class DateBusyError(RetryLaterError):
    """Another run holds the date: try again once it is done (exit code 75)."""


class LeaseLostError(PublishError):
    """This run's lease on the date expired and another run took it (or it was broken): its work must not be
    published."""


@dataclass(frozen=True)
class Lease:
    date: str
    holder: str  # the run id
    token: str  # this acquisition's: renewals and the commit present it
    host: str
    pid: int
    process_start: (
        int | None
    )  # the pid's start time (clock ticks since boot): a reused pid is another process
    bound_to_process: bool  # True: the holder process is the run (`svp run`), so its death ends the lease
    acquired_at: float  # epoch seconds
    expires_at: float

    @property
    def commit_info(self) -> str:
        """The commit's extra info that the catalog's lease check reads."""
        return f"{COMMIT_MARKER} {self.date} {self.token}"

    def state(self, now: float) -> str:
        if self.holder_is_dead():
            return "dead"
        return "held" if self.expires_at > now else "expired"

    def holder_is_dead(self) -> bool:
        """The holder process is gone: only knowable for a process-bound lease taken on this host."""
        if not self.bound_to_process or self.host != socket.gethostname() or not _PROC_AVAILABLE:
            return False
        return process_start(self.pid) != self.process_start

    def describe(self) -> str:
        return (
            f"run {self.holder!r} (host {self.host}, pid {self.pid}, since {_utc(self.acquired_at)}; its lease "
            f"runs until {_utc(self.expires_at)} unless it finishes or renews it)"
        )


# -- the leases --------------------------------------------------------------------------------------------------------


class DateLeases:
    """The leases of one lake. ``fence``: held while a lease is taken over or broken (a SQLite catalog's writer
    lock, see the module doc); the PostgreSQL store needs none."""

    def __init__(
        self, store: LeaseStore, ttl_s: float, fence: Callable[[], AbstractContextManager] | None = None
    ):
        self.store = store
        self.ttl_s = ttl_s
        self._fence = fence or contextlib.nullcontext

    def acquire(self, date: str, holder: str, bound_to_process: bool = False) -> Lease:
        """Take ``date`` for ``holder`` (again, if it holds it: a task's retry) with a new token; raise
        DateBusyError while another run holds it. A dead holder (see :meth:`Lease.holder_is_dead`) or an expired
        lease is taken over."""
        # Always inside the fence: a takeover must not fall between a commit's lease check and its COMMIT (on a
        # SQLite catalog the fence is the writer lock: plan waits for a commit in progress, seconds at most).
        with self._fence(), self.store.transaction() as tx:
            current, now = tx.get(date), tx.now()
            if current and current.holder != holder:
                if self._still_held(current, now):
                    raise DateBusyError(
                        f"{date} is being processed by {current.describe()}: wait for that run, or "
                        f"run this date again later (if it is dead: svp lease break {date} --yes)"
                    )
                why = "its process is dead" if current.holder_is_dead() else "its lease expired"
                log.warning(
                    "%s: taking over the date from run %r (host %s, pid %d): %s",
                    date,
                    current.holder,
                    current.host,
                    current.pid,
                    why,
                )
            lease = Lease(
                date=date,
                holder=holder,
                token=uuid.uuid4().hex,
                host=socket.gethostname(),
                pid=os.getpid(),
                process_start=process_start(os.getpid()),
                bound_to_process=bound_to_process,
                acquired_at=now,
                expires_at=now + self.ttl_s,
            )
            tx.put(lease)
        return lease

    @staticmethod
    def _still_held(lease: Lease, now: float) -> bool:
        return lease.expires_at > now and not lease.holder_is_dead()

    def renew(self, date: str, holder: str, token: str) -> Lease:
        """Extend the lease ``token`` stands for; LeaseLostError when it is no longer the date's (taken over,
        broken, or given back by another run after a takeover)."""
        with self.store.transaction() as tx:
            current = tx.get(date)
            if current is None or current.token != token:
                now = f"run {current.holder!r} holds it now" if current else "nobody holds it now"
                raise LeaseLostError(
                    f"run {holder!r} lost its lease on {date} ({now}; it was taken over after more than "
                    f"{self.ttl_s:g} s without a renewal, or broken by hand); nothing of it was published"
                )
            renewed = replace(current, expires_at=tx.now() + self.ttl_s)
            tx.put(renewed)
        return renewed

    def release(self, date: str, holder: str) -> None:
        """Give the date up, if ``holder`` holds it (a no-op otherwise)."""
        with self.store.transaction() as tx:
            current = tx.get(date)
            if current and current.holder == holder:
                tx.delete(date)

    def break_lease(self, date: str) -> Lease | None:
        """Free ``date`` whoever holds it (`svp lease break`); returns the lease that was broken. Its holder, if it
        still runs, can no longer renew or publish."""
        with self._fence(), self.store.transaction() as tx:
            current = tx.get(date)
            if current:
                tx.delete(date)
        if current:
            log.warning(
                "%s: lease of run %r (host %s, pid %d) broken by hand",
                date,
                current.holder,
                current.host,
                current.pid,
            )
        return current

    def holder(self, date: str) -> str | None:
        """Who holds ``date`` now (None: nobody, an expired lease, or a dead holder)."""
        with self.store.transaction() as tx:
            current, now = tx.get(date), tx.now()
        return current.holder if current and self._still_held(current, now) else None

    def list(self) -> tuple[list[Lease], float]:
        """Every lease row (expired ones included) and the store's time now."""
        with self.store.transaction() as tx:
            return tx.all(), tx.now()

    @contextlib.contextmanager
    def keep_alive(self, lease: Lease, every_s: float | None = None) -> Iterator[Callable[[], Lease]]:
        """Renew ``lease`` in the background while the block runs (a third of the TTL apart), so that a long batch
        or a long day does not let it expire. Yields a function returning the latest lease. A loss found by the
        thread is raised when the block ends (unless it raises something itself); a store that cannot be reached
        is logged and tried again."""
        state = {"lease": lease, "lost": None}
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s or max(0.05, self.ttl_s / 3)):
                try:
                    state["lease"] = self.renew(lease.date, lease.holder, lease.token)
                except LeaseLostError as exc:
                    state["lost"] = exc
                    return
                except Exception as exc:  # noqa: BLE001 -- a store that is briefly unreachable: try again
                    log.warning("renewing the lease on %s failed (will retry): %s", lease.date, exc)

        thread = threading.Thread(target=beat, name=f"svp-lease-{lease.date}", daemon=True)
        thread.start()
        try:
            yield lambda: state["lease"]
        finally:
            stop.set()
            thread.join()
        if state["lost"] is not None:
            raise state["lost"]


def date_leases(catalog: CatalogDatabase, ttl_s: float) -> DateLeases:
    """The leases of the lake whose catalog is ``catalog`` (see the module doc for where they live)."""
    if isinstance(catalog, PostgresCatalog):
        return DateLeases(PostgresLeaseStore(catalog), ttl_s)
    assert isinstance(catalog, SqliteCatalog)
    return DateLeases(SqliteLeaseStore(catalog.leases_path), ttl_s, fence=catalog.writer_lock)


def lost_lease_error(exc: Exception) -> LeaseLostError | None:
    """The catalog's trigger refused a commit (PostgreSQL): the error as LeaseLostError, else None."""
    text = str(exc)
    if LOST_MARKER not in text:
        return None
    found = re.search(rf"{LOST_MARKER}: ([^\n]*)", text)
    return LeaseLostError(
        f"the commit was refused, nothing was published: {found.group(1) if found else text}"
    )


# -- stores ------------------------------------------------------------------------------------------------------------

_COLUMNS = (
    "date",
    "holder",
    "token",
    "host",
    "pid",
    "process_start",
    "bound_to_process",
    "acquired_at",
    "expires_at",
)


class LeaseTransaction:
    """One transaction on the lease table, serialised against every other lease transaction of the lake."""

    def __init__(self, execute: Callable, now: float):
        self._execute = execute
        self._now = now

    def now(self) -> float:
        return self._now

    def get(self, date: str) -> Lease | None:
        rows = self._execute(
            f"SELECT {', '.join(_COLUMNS)} FROM {{table}} WHERE date = :date", {"date": date}
        )
        return _lease(rows[0]) if rows else None

    def all(self) -> list[Lease]:
        return [
            _lease(r) for r in self._execute(f"SELECT {', '.join(_COLUMNS)} FROM {{table}} ORDER BY date", {})
        ]

    def put(self, lease: Lease) -> None:
        values = {c: getattr(lease, c) for c in _COLUMNS}
        self._execute("DELETE FROM {table} WHERE date = :date", {"date": lease.date})
        self._execute(
            f"INSERT INTO {{table}} ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})",
            values,
        )

    def delete(self, date: str) -> None:
        self._execute("DELETE FROM {table} WHERE date = :date", {"date": date})


def _lease(row) -> Lease:
    values = dict(zip(_COLUMNS, row))
    values["bound_to_process"] = bool(values["bound_to_process"])
    return Lease(**values)


class LeaseStore:
    def transaction(self) -> AbstractContextManager[LeaseTransaction]:
        raise NotImplementedError


class SqliteLeaseStore(LeaseStore):
    """A SQLite file of leases (one host: the SQLite catalog's)."""

    TABLE = "date_leases"  # (the first version's table, ``leases``, had no token: left unused)

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LeaseTransaction]:
        """An immediate (write-locked) transaction: the read and the write of a lease are one atomic step."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (date TEXT PRIMARY KEY, holder TEXT NOT NULL, "
                "token TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, process_start INTEGER, "
                "bound_to_process INTEGER NOT NULL, acquired_at REAL NOT NULL, expires_at REAL NOT NULL)"
            )
            con.execute("BEGIN IMMEDIATE")
            try:
                yield LeaseTransaction(
                    lambda sql, params: con.execute(sql.format(table=self.TABLE), params).fetchall(),
                    time.time(),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()


class PostgresLeaseStore(LeaseStore):
    """The leases as a table of a PostgreSQL catalog's database; times from the database's clock, so that hosts
    whose clocks disagree still agree on expiry."""

    TABLE = "svp_date_leases"

    def __init__(self, catalog: PostgresCatalog):
        self.catalog = catalog

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LeaseTransaction]:
        with self.catalog.connect(autocommit=False) as con:
            # A lease transaction lasts milliseconds; one whose client froze (paused, partitioned) must not hold
            # the table lock, and with it every other run's leases, for longer than this.
            con.execute(f"SET idle_in_transaction_session_timeout = {FROZEN_CLIENT_TIMEOUT_MS}")
            ensure_lease_table(con)
            # Lease transactions take turns (SHARE ROW EXCLUSIVE conflicts with itself), while a commit's FOR SHARE
            # on a lease row (the trigger) is not blocked by it; changing that row waits for the commit to end.
            con.execute(f"LOCK TABLE {self.TABLE} IN SHARE ROW EXCLUSIVE MODE")
            now = con.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]

            def execute(sql: str, params: dict):
                cursor = con.execute(re.sub(r":(\w+)", r"%(\1)s", sql.format(table=self.TABLE)), params)
                return cursor.fetchall() if cursor.description else []

            yield LeaseTransaction(execute, now)
            con.commit()


_LEASE_TABLE_SQL = f"""
CREATE TABLE IF NOT EXISTS {PostgresLeaseStore.TABLE} (
    date text PRIMARY KEY, holder text NOT NULL, token text NOT NULL, host text NOT NULL, pid integer NOT NULL,
    process_start bigint, bound_to_process boolean NOT NULL, acquired_at double precision NOT NULL,
    expires_at double precision NOT NULL)
"""

# The lease check inside the commit (see the module doc). DuckLake writes one ducklake_snapshot_changes row per
# commit, carrying the message set with ``set_commit_message``; a commit that names a lease is refused unless that
# lease (date and token) is still the date's, and the row stays locked until the commit ends.
_COMMIT_CHECK_SQL = f"""
CREATE OR REPLACE FUNCTION svp_check_date_lease() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE lease text[];
BEGIN
    IF NEW.commit_extra_info IS NULL OR NEW.commit_extra_info NOT LIKE '{COMMIT_MARKER} %' THEN
        RETURN NEW;
    END IF;
    lease := string_to_array(NEW.commit_extra_info, ' ');
    PERFORM 1 FROM {PostgresLeaseStore.TABLE} WHERE date = lease[2] AND token = lease[3] FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '{LOST_MARKER}: the lease on % that this run took is no longer current (taken over or broken)',
            lease[2];
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER svp_check_date_lease BEFORE INSERT ON ducklake_snapshot_changes
    FOR EACH ROW EXECUTE FUNCTION svp_check_date_lease();
"""

_SCHEMA_LOCK_KEY = (
    0x5356505F53434845  # "SVP_SCHE" (below 2**63): hosts creating the tables at once take turns
)


def ensure_lease_table(con) -> None:
    """Create the lease table if missing (inside ``con``'s transaction; concurrent creators take turns)."""
    if con.execute(f"SELECT to_regclass('{PostgresLeaseStore.TABLE}')").fetchone()[0] is None:
        con.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK_KEY])
        con.execute(_LEASE_TABLE_SQL)


def install_commit_check(catalog: PostgresCatalog) -> None:
    """The trigger that checks a commit's lease, on a catalog whose DuckLake tables exist (idempotent)."""
    with catalog.connect(autocommit=False) as con:
        present = con.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'svp_check_date_lease' "
            "AND tgrelid = to_regclass('ducklake_snapshot_changes')"
        ).fetchone()[0]
        if not present:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK_KEY])
            ensure_lease_table(con)
            con.execute(_COMMIT_CHECK_SQL)
            log.info("installed the date-lease check on the %s", catalog.describe())
        con.commit()


# -- processes -----------------------------------------------------------------------------------------------------


_PROC_AVAILABLE = Path("/proc/self/stat").exists()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22); None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
