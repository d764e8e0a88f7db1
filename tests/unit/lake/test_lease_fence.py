"""Leases that fence (issue 27) on a SQLite catalog: the writer lock is the fence, so a takeover that starts between
the commit's lease check and its COMMIT waits until the COMMIT is done (in-process, threads). The other fences, with
`svp run` processes and on PostgreSQL: tests/integration/catalog/test_leases.py."""

from __future__ import annotations

import threading
import time

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from tests.support.lake import lease_settings as settings_for
from tests.support.lake import runs_table

DAY = "2026-11-20"


def test_sqlite_takeovers_wait_for_a_commit_in_progress(tmp_path):
    """On a SQLite catalog the writer lock is the fence: a takeover that starts between the commit's lease check
    and its COMMIT waits until the COMMIT is done."""
    settings = settings_for(tmp_path, str(tmp_path / "catalog.sqlite"), ttl_s=0.2)
    lake, leases = Lake(settings.lake_root, settings.catalog), daily.leases(settings)
    lease = leases.acquire(DAY, "run-a")
    time.sleep(0.3)  # expired: anyone may take it over now
    events: list[str] = []
    taker = threading.Thread(target=lambda: (leases.acquire(DAY, "run-b"), events.append("taken over")))

    def check_then_race():
        leases.renew(DAY, "run-a", lease.token)
        time.sleep(0.3)  # expired again, and the taker is already trying
        taker.start()
        time.sleep(0.5)
        events.append("committing")

    lake.commit_day(
        DAY, {"runs": runs_table("run-a")}, before_commit=check_then_race, commit_info=lease.commit_info
    )
    events.append("committed")
    taker.join(timeout=30)
    assert events == ["committing", "committed", "taken over"]
    assert leases.holder(DAY) == "run-b" and lake.read("runs", DAY).column("run_id").to_pylist() == ["run-a"]
