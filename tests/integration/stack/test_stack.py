"""The production stack, running (issue 27): docker-compose.yml's Airflow services as processes, with the compose
file's own settings (read from it and interpolated from .env.example with generated secrets; only hosts, ports and
the timing knobs below differ), on real servers started here: PostgreSQL (Airflow's metadata and, in a database and
role of its own made by docker/postgres-init/, the lake's catalog), Redis (the Celery broker), moto (the object
store, standing in for MinIO), and two `svp serve` Tritons. Airflow: api-server, scheduler, dag-processor, triggerer,
two Celery workers of the default queue, each in a working directory of its own with no lake folder in common (only
S3 and PostgreSQL are shared), and the release worker on its own queue. Every service starts through
docker/check-secrets.sh, as in the image.

The scenario: a 3-day catchup of sensevoice_daily, the last day's audio arriving late (its sensor waits in the
triggerer), one worker SIGKILLed in the middle of a transcription (the scheduler finds the task without heartbeat and
it is retried on the other worker); then sensevoice_model_release exports, stages, canaries and promotes a new
version on both Tritons. Checked: each day is one commit whose rows equal an `svp run` of the same day; the release's
row and report exist; nothing is left staged or leased.

Run it alone with ``make test-stack`` (``pytest -m stack``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from sensevoice_pipeline.lake.storage import ObjectPath
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_clips
from tests.support.lake import rows_without_run
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.stack import (
    DAYS,
    LATE_DAY,
    WORKERS,
    kill_a_worker_mid_transcription,
    run_states,
    task_instances,
    upload_day,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]


def test_the_production_stack_runs_a_catchup_survives_a_dead_worker_and_releases(stack, tmp_path):
    started = time.monotonic()
    local_raw = tmp_path / "raw"
    write_sample_day(local_raw, DAYS[0])  # the long day: the one whose transcription is interrupted
    write_clips(local_raw, DAYS[1], 6)
    write_clips(local_raw, LATE_DAY, 4)
    for day in DAYS[:2]:
        upload_day(stack, day, local_raw)

    stack.airflow("dags", "unpause", "sensevoice_daily")
    killed = kill_a_worker_mid_transcription(stack)

    def late_day_waiting():  # its sensor found nothing and handed the wait to the triggerer
        return any(
            ti["state"] == "deferred" and str(ti["interval_start"].date()) == LATE_DAY
            for ti in task_instances(stack, "sensevoice_daily", "wait_for_partition")
        )

    wait_for(f"{LATE_DAY}'s sensor to defer", late_day_waiting, 300, stack)
    upload_day(stack, LATE_DAY, local_raw)

    def all_days_done() -> bool:
        states = run_states(stack, "sensevoice_daily")
        assert "failed" not in states.values(), f"a daily run failed: {states}\n{stack.failure_report()}"
        return all(states.get(day) == "success" for day in DAYS)

    wait_for("the three daily runs", all_days_done, 600, stack, every_s=2)
    catchup_s = time.monotonic() - started

    # The killed task was retried, and its last try ran on the worker that is left.
    (retried,) = [
        ti
        for ti in task_instances(stack, "sensevoice_daily", "transcribe")
        if (ti["run_id"], ti["map_index"]) == (killed["run_id"], killed["map_index"])
    ]
    assert retried["state"] == "success" and retried["try_number"] > killed["try_number"], retried
    survivor = next(w for w in WORKERS if w != killed["worker"])
    assert retried["external_executor_id"] in stack.log(survivor)

    # Each day: one commit, holding what `svp run` publishes for the same day.
    lake = Lake(stack.lake_root, stack.catalog)
    with lake.reader() as con:
        commits = dict(
            con.execute(
                f"SELECT commit_message, count(*) FROM {ALIAS}.snapshots() "
                "WHERE commit_message LIKE 'publish %' GROUP BY ALL"
            ).fetchall()
        )
    assert commits == {f"publish {d}": 1 for d in DAYS}, commits
    for day in DAYS:
        reference = Settings(
            raw_root=stack.raw_root,
            lake_root=tmp_path / "reference",
            model_version="1",
            triton_url=",".join(url for url, _, _ in stack.tritons),
        )
        daily.run_date(reference, day, show_progress=False)
        for table in tables.DAILY_TABLES:
            assert rows_without_run(lake.read(table, day)) == rows_without_run(
                Lake(reference.lake_root).read(table, day)
            ), (day, table)

    # A host that never published (here: the api-server's settings, its own folder) answers BI queries: it builds
    # its own warehouse file of views over the shared catalog.
    reader = stack.folder / "bi-host"
    reader.mkdir()
    query = subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "query", "emotion-trend"],
        cwd=reader,
        env=stack.env("airflow-apiserver", reader),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0 and all(day in query.stdout for day in DAYS), (
        query.stdout + query.stderr[-3000:]
    )

    # The release, on the release worker's queue, promotes version 2 on both Tritons.
    checkpoint = Path(shutil.copytree(FIXTURE_MODEL_DIR, stack.folder / "checkpoint"))
    stack.airflow("dags", "unpause", "sensevoice_model_release")
    stack.airflow(
        "dags",
        "trigger",
        "sensevoice_model_release",
        "--conf",
        json.dumps({"checkpoint": str(checkpoint), "precision": "fp32"}),
    )
    state = wait_for(
        "the release",
        lambda: next(
            (s for s in run_states(stack, "sensevoice_model_release").values() if s in ("success", "failed")),
            None,
        ),
        600,
        stack,
        every_s=2,
    )
    assert state == "success", stack.failure_report()
    release_tasks = stack.metadata(
        "SELECT queue, external_executor_id FROM task_instance WHERE dag_id = 'sensevoice_model_release'"
    )
    assert {queue for queue, _ in release_tasks} == {
        stack.compose["x-airflow-common"]["environment"]["SVP_RELEASE_QUEUE"]
    }
    assert all(executor_id in stack.log("release-worker") for _, executor_id in release_tasks if executor_id)
    for url, http_port, _ in stack.tritons:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{http_port}/v2/models/sensevoice/versions/2/ready", timeout=10
        ) as r:
            assert r.status == 200, url
    (release,) = lake.read("model_releases").to_pylist()
    assert (release["outcome"], release["candidate_version"], release["serving_after"]) == (
        "promoted",
        "2",
        "2",
    )
    assert (
        ObjectPath.parse(release["report_path"], stack.s3)
        .filesystem.get_file_info(ObjectPath.parse(release["report_path"], stack.s3).fs_path)
        .size
        > 0
    )

    # Nothing staged, nothing leased.
    assert not (stack.lake_root / daily.STAGING).list_files()
    assert not daily.leases(Settings(lake_root=stack.lake_root, catalog=stack.catalog)).list()[0]
    print(
        f"\nstack: catchup of {len(DAYS)} days with a worker killed in {catchup_s:.0f} s; whole scenario "
        f"{time.monotonic() - started:.0f} s"
    )
