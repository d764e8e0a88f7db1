"""lake/lease.py: DateLeases over a SQLite lease file, in one process. Expiry is made with a negative TTL and dead
holders with a lease row whose process start time is not this pid's (a reused pid), so nothing sleeps."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

import pytest

from sensevoice_pipeline.errors import PublishError
from sensevoice_pipeline.lake.catalog_db import SqliteCatalog
from sensevoice_pipeline.lake.lease import (
    DateBusyError,
    DateLeases,
    Lease,
    LeaseLostError,
    SqliteLeaseStore,
    date_leases,
    lost_lease_error,
    process_start,
)

DAY = "2026-03-14"


@pytest.fixture
def store(tmp_path) -> SqliteLeaseStore:
    return SqliteLeaseStore(tmp_path / "leases.sqlite")


def put(store: SqliteLeaseStore, **fields) -> Lease:
    """A lease row written as another run would have left it."""
    now = time.time()
    lease = Lease(
        **{
            "date": DAY,
            "holder": "other-run",
            "token": "t" * 32,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": process_start(os.getpid()),
            "bound_to_process": True,
            "acquired_at": now,
            "expires_at": now + 3600,
            **fields,
        }
    )
    with store.transaction() as tx:
        tx.put(lease)
    return lease


def test_a_lease_records_this_process_and_round_trips_through_the_store(store):
    before = time.time()
    lease = DateLeases(store, ttl_s=600).acquire(DAY, "run-a", bound_to_process=True)
    assert (lease.host, lease.pid, lease.process_start) == (
        socket.gethostname(),
        os.getpid(),
        process_start(os.getpid()),
    )
    assert lease.process_start is not None and lease.bound_to_process is True
    assert before <= lease.acquired_at <= time.time() and lease.expires_at == lease.acquired_at + 600
    assert lease.commit_info == f"svp-lease {DAY} {lease.token}" and len(lease.token) == 32
    rows, now = DateLeases(store, ttl_s=1).list()  # another DateLeases: what the file holds
    assert rows == [lease] and lease.state(now) == "held"


def test_a_second_holder_is_refused_while_the_lease_is_live(store):
    leases = DateLeases(store, ttl_s=600)
    held = leases.acquire(DAY, "run-a")
    with pytest.raises(
        DateBusyError, match=rf"run 'run-a' \(host .*, pid {os.getpid()}, since .* UTC"
    ) as busy:
        leases.acquire(DAY, "run-b")
    assert f"svp lease break {DAY} --yes" in str(busy.value)
    assert leases.list()[0] == [held] and leases.holder(DAY) == "run-a"
    assert leases.acquire("2026-03-15", "run-b").holder == "run-b"  # leases are per date


def test_a_retry_of_the_holder_gets_a_new_token_and_the_old_one_is_fenced(store):
    leases = DateLeases(store, ttl_s=600)
    first = leases.acquire(DAY, "run-a")
    again = leases.acquire(DAY, "run-a")
    assert again.token != first.token
    with pytest.raises(LeaseLostError, match=r"run 'run-a' lost its lease on .* \(run 'run-a' holds it now"):
        leases.renew(DAY, "run-a", first.token)
    renewed = leases.renew(DAY, "run-a", again.token)
    assert (renewed.token, renewed.acquired_at) == (again.token, again.acquired_at)
    assert renewed.expires_at >= again.expires_at


def test_an_expired_lease_is_taken_over_and_its_holder_can_no_longer_renew(store, caplog):
    lapsed = DateLeases(store, ttl_s=-1).acquire(DAY, "run-a")  # expired the moment it was taken
    leases = DateLeases(store, ttl_s=600)
    assert lapsed.state(time.time()) == "expired" and leases.holder(DAY) is None
    with caplog.at_level(logging.WARNING, logger="sensevoice_pipeline.lake.lease"):
        taker = leases.acquire(DAY, "run-b")
    assert (
        f"{DAY}: taking over the date from run 'run-a'" in caplog.text and "its lease expired" in caplog.text
    )
    with pytest.raises(LeaseLostError, match="run 'run-b' holds it now") as lost:
        leases.renew(DAY, "run-a", lapsed.token)
    assert isinstance(lost.value, PublishError) and "nothing of it was published" in str(lost.value)
    leases.release(DAY, "run-a")  # not run-a's any more: nothing happens
    assert leases.holder(DAY) == "run-b" and leases.renew(DAY, "run-b", taker.token).holder == "run-b"


def test_an_expired_lease_nobody_took_can_still_be_renewed_by_its_token(store):
    lease = DateLeases(store, ttl_s=-1).acquire(DAY, "run-a")
    renewed = DateLeases(store, ttl_s=600).renew(DAY, "run-a", lease.token)
    assert renewed.expires_at > time.time() + 500 and DateLeases(store, 600).holder(DAY) == "run-a"


def test_a_dead_process_bound_holder_is_taken_over_before_its_lease_expires(store, caplog):
    put(store, process_start=process_start(os.getpid()) + 1)  # this pid, another process: its holder died
    leases = DateLeases(store, ttl_s=600)
    (dead,), now = leases.list()
    assert dead.holder_is_dead() and dead.state(now) == "dead" and leases.holder(DAY) is None
    with caplog.at_level(logging.WARNING, logger="sensevoice_pipeline.lake.lease"):
        assert leases.acquire(DAY, "run-b").holder == "run-b"
    assert "from run 'other-run'" in caplog.text and "its process is dead" in caplog.text


@pytest.mark.parametrize(
    "bound, host, started_elsewhere",
    [
        (False, None, True),  # a DAG run's lease: many processes, only expiry frees it
        (True, "another-host.example", True),  # a process elsewhere cannot be seen from here
        (True, None, False),  # this very process: alive
    ],
    ids=["unbound", "another-host", "alive"],
)
def test_a_live_or_unknowable_holder_keeps_the_date_until_expiry(store, bound, host, started_elsewhere):
    put(
        store,
        bound_to_process=bound,
        host=host or socket.gethostname(),
        process_start=process_start(os.getpid()) + started_elsewhere,
    )
    leases = DateLeases(store, ttl_s=600)
    with pytest.raises(DateBusyError):
        leases.acquire(DAY, "run-b")
    assert leases.holder(DAY) == "other-run"


def test_release_frees_only_the_holders_date_and_break_frees_it_for_anyone(store):
    leases = DateLeases(store, ttl_s=600)
    lease = leases.acquire(DAY, "run-a")
    leases.release(DAY, "run-b")
    assert leases.holder(DAY) == "run-a"
    leases.release(DAY, "run-a")
    assert leases.list()[0] == [] and leases.break_lease(DAY) is None
    lease = leases.acquire(DAY, "run-a")
    assert leases.break_lease(DAY) == lease and leases.holder(DAY) is None
    with pytest.raises(LeaseLostError, match="nobody holds it now"):
        leases.renew(DAY, "run-a", lease.token)


def test_acquire_and_break_hold_the_fence_while_renew_release_and_reads_do_not(store):
    events: list[str] = []

    @contextlib.contextmanager
    def fence():
        events.append("fence")
        yield

    leases = DateLeases(store, ttl_s=600, fence=fence)
    lease = leases.acquire(DAY, "run-a")
    with pytest.raises(DateBusyError):
        leases.acquire(DAY, "run-b")  # refused inside the fence as well
    assert len(events) == 2
    leases.renew(DAY, "run-a", lease.token)
    leases.holder(DAY)
    leases.list()
    leases.release(DAY, "run-a")
    assert len(events) == 2
    leases.break_lease(DAY)
    assert len(events) == 3


def test_a_sqlite_catalogs_leases_live_beside_it_fenced_by_its_writer_lock(tmp_path):
    catalog = SqliteCatalog(tmp_path / "lake" / "catalog.sqlite")
    leases = date_leases(catalog, ttl_s=42)
    lease = leases.acquire(DAY, "run-a")
    assert lease.expires_at == lease.acquired_at + 42
    assert (tmp_path / "lake" / "leases.sqlite").is_file() and not catalog.path.exists()
    assert (tmp_path / "lake" / ".catalog.sqlite.lock").is_file()  # the writer lock was taken
    assert DateLeases(SqliteLeaseStore(catalog.leases_path), 1).holder(DAY) == "run-a"


def wait_for_thread_end(name: str) -> None:
    deadline = time.monotonic() + 20
    while any(t.name == name for t in threading.enumerate()):
        assert time.monotonic() < deadline, f"{name} never ended"
        time.sleep(0.01)


def test_keep_alive_renews_in_the_background_and_raises_a_loss_when_the_block_ends(store):
    leases = DateLeases(store, ttl_s=600)
    lease = leases.acquire(DAY, "run-a")
    with pytest.raises(LeaseLostError, match="nobody holds it now"):
        with leases.keep_alive(lease, every_s=0.01) as latest:
            deadline = time.monotonic() + 20
            while latest().expires_at == lease.expires_at:
                assert time.monotonic() < deadline, "never renewed"
                time.sleep(0.01)
            assert latest().token == lease.token
            leases.break_lease(DAY)
            wait_for_thread_end(f"svp-lease-{DAY}")  # the thread stops at the loss ...
        # ... and the block's end raises it


def test_keep_alive_lets_the_blocks_own_error_through(store):
    leases = DateLeases(store, ttl_s=600)
    lease = leases.acquire(DAY, "run-a")
    with pytest.raises(ValueError, match="the batch failed"):
        with leases.keep_alive(lease, every_s=0.01):
            leases.break_lease(DAY)
            wait_for_thread_end(f"svp-lease-{DAY}")
            raise ValueError("the batch failed")


def test_lost_lease_error_reads_the_catalogs_trigger_message():
    trigger = Exception(
        "svp-lease-lost: the lease on 2026-03-14 that this run took is no longer current (taken over or broken)\n"
        "CONTEXT:  PL/pgSQL function svp_check_date_lease() line 9 at RAISE"
    )
    lost = lost_lease_error(trigger)
    assert isinstance(lost, LeaseLostError)
    assert str(lost) == (
        "the commit was refused, nothing was published: the lease on 2026-03-14 that this run took is no "
        "longer current (taken over or broken)"
    )
    assert lost_lease_error(Exception("could not serialize access due to concurrent update")) is None
    assert lost_lease_error(RuntimeError("svp-lease-lost")).args == (
        "the commit was refused, nothing was published: svp-lease-lost",
    )


@pytest.fixture
def local_time_off_utc():
    """A local time 3 h off UTC (a POSIX rule: no tz database needed), so that UTC output is told from local."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("TZ", "XYZ-3")
        time.tzset()
        yield
    time.tzset()


def test_a_lease_is_held_until_the_moment_it_expires_and_described_in_utc(local_time_off_utc):
    lease = Lease(
        DAY, "h", "t", socket.gethostname(), os.getpid(), process_start(os.getpid()), True, 0.0, 10.0
    )
    assert (lease.state(9.999), lease.state(10.0)) == ("held", "expired")
    assert (
        "since 1970-01-01 00:00:00 UTC" in lease.describe()
        and "until 1970-01-01 00:00:10 UTC" in lease.describe()
    )
