"""One run per date (issue 13) in the DAG: a second DAG run of a date another run holds fails its `plan` task with the
holder's name (its retries are the wait), and the published day is untouched; `airflow tasks test` against the
fixture Triton.

Its `tasks test` runs on a logical date of its own: on a date another test of the worker's Airflow home has run the
DAG for, `tasks test` reuses that DAG run and its Params instead of the ones given here."""

from __future__ import annotations

import json

import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_named_clips as write_clips
from tests.support.fixture_model import SPEECH_CLIPS
from tests.support.lake import lake_state

pytestmark = [pytest.mark.airflow, pytest.mark.triton]

DAY = "2026-09-14"


@pytest.mark.timeout(300)
@pytest.mark.airflow
def test_the_dags_plan_task_refuses_a_date_another_run_holds(tmp_path, fixture_triton, local_airflow):
    """A second DAG run of a date (an operator's re-run while the scheduled run is still at work): its `plan` task
    fails with the holder's name -- its retries are the wait -- and the published day is untouched."""
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    write_clips(settings.raw_root, DAY, SPEECH_CLIPS[:1])
    daily.run_date(settings, DAY, run_id="published", show_progress=False)
    before = lake_state(settings)
    daily.plan(settings, DAY, "scheduled__2026-09-15T00:00:00+00:00")  # the other run, still at work
    params = {"date": DAY, "raw_root": str(settings.raw_root), "lake_root": str(settings.lake_root)}
    out = local_airflow._airflow(
        "tasks",
        "test",
        "sensevoice_daily",
        "plan",
        "2031-01-13T00:00:00+00:00",  # a logical date no other test runs (see above)
        "--task-params",
        json.dumps(params),
        timeout=240,
    )
    text = out.stdout + out.stderr  # (`tasks test` exits 0 whatever the task did: its log says)
    assert f"DateBusyError: {DAY} is being processed by run 'scheduled__2026-09-15T00:00:00+00:00'" in text, (
        text[-3000:]
    )
    assert lake_state(settings) == before
    assert daily.leases(settings).holder(DAY) == "scheduled__2026-09-15T00:00:00+00:00"
