"""One run per date (issue 13): the date lease refuses a second run, expires when its run goes silent, and fences a
run that lost it (jobs/daily.leases over the lake's SQLite catalog, in-process). With `svp run` processes and on
PostgreSQL: tests/integration/catalog/test_leases.py."""

from __future__ import annotations

import threading

import pytest

from sensevoice_pipeline.errors import PublishError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.lease import DateBusyError
from sensevoice_pipeline.settings import Settings

DAY = "2026-09-14"


def test_the_date_lease_refuses_a_second_run_expires_and_fences_a_run_that_lost_it(tmp_path):
    settings = Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", lease_ttl_s=0.5)
    leases = daily.leases(settings)
    first = leases.acquire(DAY, "first")
    again = leases.acquire(DAY, "first")  # a retry of the same run takes it again, with a new token
    assert again.token != first.token
    with pytest.raises(DateBusyError, match=f"{DAY} is being processed by run 'first'"):
        leases.acquire(DAY, "second")
    threading.Event().wait(0.6)  # the first run went silent: its lease expired
    leases.acquire(DAY, "second")
    with pytest.raises(PublishError, match="run 'first' lost its lease"):
        leases.renew(DAY, "first", again.token)
    leases.release(DAY, "first")  # not its lease: nothing happens
    assert leases.holder(DAY) == "second"
    leases.release(DAY, "second")
    assert leases.holder(DAY) is None
    with pytest.raises(PublishError, match="run 'first' lost its lease"):  # nobody holds it now: still lost
        leases.renew(DAY, "first", again.token)
