"""Late data under a real `airflow dags test`: the provider's deferrable sensor in a DAG of its own, and the
sensevoice_daily DAG waiting for a partition that lands only after the run started. `arrival.check_partition` /
`wait_for_partition` on local dirs: tests/unit/lake/test_arrival.py; on S3 (moto), and the trigger on its own:
tests/integration/storage/test_arrival_s3.py.

`airflow dags test` (Airflow 3.3.2) runs a deferred task's trigger in-process: `DAG.test()` -> `_run_task(...,
run_triggerer=True)` instantiates the trigger from the DeferTask message and awaits its first event
(`InProcessTestSupervisor.run_trigger_in_process`), logging "[DAG TEST] running trigger in line"; no triggerer is
needed. It does not enforce the `timeout` given to `defer()` (the scheduler does that), so the trigger keeps its own
deadline."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sqlite3
import textwrap
import threading
import time

import pytest

from sensevoice_pipeline.demo.local_airflow import AirflowRunError, LocalAirflow, triton_connection_env
from sensevoice_pipeline.lake.catalog import Lake
from tests.integration.airflow.conftest import StatsdListener
from tests.support.paths import ASSETS

pytestmark = pytest.mark.airflow

TRIGGER_CLASS = "sensevoice_pipeline.provider.triggers.PartitionArrivalTrigger"
DAY = "2026-11-22"


# -- the sensor in a DAG of its own, under `airflow dags test` ------------------------------------------------------

PROBE_DAG = textwrap.dedent("""
    import datetime as dt

    import pendulum
    from airflow.sdk import Param, dag, task

    from sensevoice_pipeline.provider.sensors import PartitionArrivalSensor


    @dag(dag_id="arrival_probe", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False,
         params={"date": Param("", type="string"), "raw_root": Param("", type="string"),
                 "ready_marker": Param("", type="string"), "wait_timeout_minutes": Param(1, type="number"),
                 "poke_interval_seconds": Param(1, type="number")})
    def arrival_probe():
        wait = PartitionArrivalSensor(
            task_id="wait_for_partition", raw_root="{{ params.raw_root }}", ready_marker="{{ params.ready_marker }}",
            wait_timeout_minutes="{{ params.wait_timeout_minutes }}",
            poke_interval_seconds="{{ params.poke_interval_seconds }}",
            retries=1, retry_delay=dt.timedelta(seconds=1))  # a timeout must not be retried

        @task
        def after(arrived: dict) -> None:
            print("ARRIVED " + repr(sorted(arrived.items())))

        after(wait.output)


    arrival_probe()
""")


@pytest.fixture(scope="module")
def probe_airflow(tmp_path_factory) -> LocalAirflow:
    dags = tmp_path_factory.mktemp("probe-dags")
    (dags / "arrival_probe.py").write_text(PROBE_DAG)
    airflow = LocalAirflow(home=tmp_path_factory.mktemp("probe-home"), dags_folder=dags)
    airflow.migrate()
    return airflow


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _query(airflow: LocalAirflow, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(f"file:{airflow.home / 'airflow.db'}?mode=ro", uri=True, timeout=60)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _run_id(output: str) -> str:
    return re.search(r"run_id=['\"]?([^'\",\s]+)", output).group(1)


class LateArrival(threading.Thread):
    """Waits until the sensor of a `dags test` run has deferred (its trigger's row is in the metadata DB), then lets
    ``land()`` create the partition, ``delay`` seconds later. Records when each happened."""

    def __init__(self, airflow: LocalAirflow, land, delay: float = 2.0, limit: float = 240.0):
        super().__init__(daemon=True)
        self.airflow, self.land, self.delay, self.limit = airflow, land, delay, limit
        self.since = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self.deferred_at: dt.datetime | None = None
        self.landed_at: dt.datetime | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        while time.monotonic() < deadline:
            rows = _query(
                self.airflow,
                "SELECT created_date FROM trigger WHERE classpath = ? AND created_date > ?",
                TRIGGER_CLASS,
                self.since.isoformat(sep=" "),
            )
            if rows:
                self.deferred_at = _utc(rows[0][0])
                break
            time.sleep(0.5)
        else:
            return  # never deferred: leave the partition missing, the run times out and the test says why
        time.sleep(self.delay)
        self.land()
        self.landed_at = dt.datetime.now(dt.UTC)


def test_sensor_defers_and_resumes_when_the_partition_lands(probe_airflow, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    part = raw / f"date={DAY}"

    def land():
        part.mkdir()
        (part / ".call.wav.part").write_bytes(b"x")  # still uploading: not ready
        time.sleep(2.5)
        (part / ".call.wav.part").rename(part / "call.wav")

    late = LateArrival(probe_airflow, land)
    late.start()
    conf = {"date": DAY, "raw_root": str(raw), "wait_timeout_minutes": 3, "poke_interval_seconds": 1}
    output = probe_airflow.dags_test("arrival_probe", "2026-11-23T00:00:00+00:00", conf=conf)
    late.join(timeout=10)
    assert late.deferred_at and late.landed_at, "the sensor never deferred"
    assert "[DAG TEST] running trigger in line" in output
    assert "the partition folder does not exist yet; next check in 1 s" in output
    assert "the partition folder exists but holds no file yet; next check in 1 s" in output
    waited = re.search(r"ARRIVED .*\('checks', (\d+)\).*\('waited_s', ([\d.]+)\)", output)
    assert waited, output[-3000:]
    checks, waited_s = int(waited.group(1)), float(waited.group(2))
    # By construction: the folder lands 2 s after the deferral and stays partial 2.5 s; and at least one check saw
    # each state (missing, partial, ready). How many more checks fit in is up to the machine's load.
    assert checks >= 3 and waited_s >= 4.5
    ((state, try_number, end),) = _query(
        probe_airflow,
        "SELECT state, try_number, end_date FROM task_instance WHERE run_id = ? AND task_id = ?",
        _run_id(output),
        "wait_for_partition",
    )
    assert (state, try_number) == ("success", 1)
    assert late.deferred_at < late.landed_at <= _utc(end)


def test_sensor_timeout_fails_at_once_with_a_clear_message(probe_airflow, tmp_path):
    part = tmp_path / "raw" / f"date={DAY}"
    part.mkdir(parents=True)
    (part / "call.wav").write_bytes(b"x")  # data, but no marker: the export is not finished
    conf = {
        "date": DAY,
        "raw_root": str(tmp_path / "raw"),
        "ready_marker": "_SUCCESS",
        "wait_timeout_minutes": 0.05,
        "poke_interval_seconds": 1,
    }
    started = time.monotonic()
    with pytest.raises(AirflowRunError) as err:
        probe_airflow.dags_test("arrival_probe", "2026-11-24T00:00:00+00:00", conf=conf)
    output = str(err.value)
    assert (
        "AirflowSensorTimeout: the raw partition of 2026-11-22 was not ready after 3 s: "
        f"{part} (waiting for the ready marker _SUCCESS); ready means its ready marker _SUCCESS. Check the "
        "upstream export, or give it longer (DAG Param wait_timeout_minutes)." in output
    )
    ((state, try_number),) = _query(
        probe_airflow,
        "SELECT state, try_number FROM task_instance WHERE run_id = ? AND task_id = ?",
        _run_id(output),
        "wait_for_partition",
    )
    assert (state, try_number) == ("failed", 1), "a sensor timeout must not be retried"
    assert time.monotonic() - started < 120


def test_sensor_fails_at_once_for_a_raw_root_that_does_not_exist(probe_airflow, tmp_path):
    conf = {"date": DAY, "raw_root": str(tmp_path / "typo"), "wait_timeout_minutes": 1}
    with pytest.raises(AirflowRunError) as err:
        probe_airflow.dags_test("arrival_probe", "2026-11-25T00:00:00+00:00", conf=conf)
    assert (
        f"AirflowFailException: the raw root {tmp_path / 'typo'} does not exist or is not a directory"
        in str(err.value)
    )
    ((state, try_number),) = _query(
        probe_airflow,
        "SELECT state, try_number FROM task_instance WHERE run_id = ? AND task_id = ?",
        _run_id(str(err.value)),
        "wait_for_partition",
    )
    assert (state, try_number) == ("failed", 1)


# -- the daily DAG: a late partition, end to end ---------------------------------------------------------------------


@pytest.mark.triton
def test_daily_dag_waits_for_a_partition_that_lands_after_the_run_started(
    fixture_triton, local_airflow, tmp_path
):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    raw.mkdir()
    part = raw / f"date={DAY}"
    clips = ("en.mp3", "ko.mp3")

    def land():  # the export writes the audio, then its manifest last: the manifest is the ready marker
        part.mkdir()
        for name in clips:
            shutil.copy(ASSETS / "audio" / name, part / name)
        time.sleep(2.0)
        (part / "manifest.csv").write_text("path,language\nen.mp3,en\nko.mp3,ko\n")

    late = LateArrival(local_airflow, land)
    late.start()
    conf = {
        "date": DAY,
        "raw_root": str(raw),
        "lake_root": str(lake),
        "ready_marker": "manifest.csv",
        "wait_timeout_minutes": 4,
        "poke_interval_seconds": 1,
        "failure_budget": 0.0,
    }
    output = local_airflow.dags_test(
        "sensevoice_daily",
        f"{DAY}T00:00:00+00:00",
        conf=conf,
        env=triton_connection_env(fixture_triton.grpc_url),
    )
    late.join(timeout=10)
    assert late.deferred_at and late.landed_at, "the sensor never deferred"
    assert "[DAG TEST] running trigger in line" in output
    assert "waiting for the ready marker manifest.csv; next check in 1 s" in output
    assert re.search(r"ready marker manifest.csv is present \(waited [\d.]+ s, \d+ checks\)", output)

    states = {
        task: (state, start, end)
        for task, state, start, end in _query(
            local_airflow,
            "SELECT task_id, state, start_date, end_date FROM task_instance WHERE run_id = ?",
            _run_id(output),
        )
    }
    assert {task: s[0] for task, s in states.items()} == {
        "check_pool": "success",  # no sensevoice_airflow_api Connection: not checked, a warning
        "wait_for_partition": "success",
        "plan": "success",
        "transcribe": "success",
        "publish": "success",
        "release": "success",
    }
    assert (
        late.deferred_at < late.landed_at <= _utc(states["wait_for_partition"][2]) <= _utc(states["plan"][1])
    )

    recordings = Lake(lake).read("recordings", DAY).to_pylist()
    assert sorted((r["source_path"], r["status"], r["language_hint"]) for r in recordings) == [
        (f"date={DAY}/en.mp3", "ok", "en"),
        (f"date={DAY}/ko.mp3", "ok", "ko"),
    ]


@pytest.mark.triton
def test_a_run_over_its_failure_budget_publishes_fails_once_and_still_releases(
    fixture_triton, local_airflow, tmp_path
):
    """The failure_budget Param reaches Settings; FailureBudgetExceeded ends publish without retries (a retry
    would only find the staging gone); the teardown runs after the failure and the date's lease is free. The day's
    metrics are sent all the same: its rows are in the lake."""
    day = "2026-11-21"
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    part = raw / f"date={day}"
    part.mkdir(parents=True)
    for name in ("en.mp3", "ko.mp3"):
        shutil.copy(ASSETS / "audio" / name, part / name)
    (part / "broken.wav").write_bytes(b"RIFF, but not audio")
    conf = {"date": day, "raw_root": str(raw), "lake_root": str(lake), "failure_budget": 0.25}
    with StatsdListener() as statsd, pytest.raises(AirflowRunError) as err:
        local_airflow.dags_test(
            "sensevoice_daily",
            f"{day}T00:00:00+00:00",
            conf=conf,
            env={**triton_connection_env(fixture_triton.grpc_url), **statsd.env()},
        )
    output = str(err.value)
    ours = [p for p in statsd.packets if p.startswith("airflow.sensevoice.daily.")]
    for packet in ("files:3|c", "files_failed:1|c", "files_ok:2|c", "days:1|c"):
        assert f"airflow.sensevoice.daily.{packet}" in ours, ours
    assert any(p.startswith("airflow.sensevoice.daily.publish:") and p.endswith("|ms") for p in ours), ours
    assert (
        f"AirflowFailException: {day} was published, but 1 of 3 files failed (33%, over the failure budget of "
        "25%)" in output
    )
    states = {
        task: (state, tries)
        for task, state, tries in _query(
            local_airflow,
            "SELECT task_id, state, try_number FROM task_instance WHERE run_id = ?",
            _run_id(output),
        )
    }
    assert states == {
        "check_pool": ("success", 1),
        "wait_for_partition": ("success", 1),
        "plan": ("success", 1),
        "transcribe": ("success", 1),
        "publish": ("failed", 1),
        "release": ("success", 1),
    }
    assert sorted(r["status"] for r in Lake(lake).read("recordings", day).to_pylist()) == [
        "failed",
        "ok",
        "ok",
    ]
    from sensevoice_pipeline.jobs import daily
    from sensevoice_pipeline.settings import Settings

    assert daily.leases(Settings(raw_root=raw, lake_root=lake)).holder(day) is None
