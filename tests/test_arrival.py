"""Late data: `arrival.check_partition` / `wait_for_partition` on local dirs and on S3 (moto), the provider's
deferrable sensor and its trigger, and the sensevoice_daily DAG waiting under a real `airflow dags test` for a
partition that lands only after the run started.

`airflow dags test` (Airflow 3.3.2) runs a deferred task's trigger in-process: `DAG.test()` -> `_run_task(...,
run_triggerer=True)` instantiates the trigger from the DeferTask message and awaits its first event
(`InProcessTestSupervisor.run_trigger_in_process`), logging "[DAG TEST] running trigger in line"; no triggerer is
needed. It does not enforce the `timeout` given to `defer()` (the scheduler does that), so the trigger keeps its own
deadline."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sensevoice_pipeline.demo.local_airflow import AirflowRunError, LocalAirflow, triton_connection_env
from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake import arrival, partition
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.storage import ObjectPath, S3Options, StorageError

from .conftest import ASSETS
from .test_storage import RAW_BUCKET, aws_env, buckets, options, s3_endpoint  # noqa: F401

TRIGGER_CLASS = "sensevoice_pipeline.provider.triggers.PartitionArrivalTrigger"
DAY = "2026-11-22"


# -- arrival.py on a local dir ---------------------------------------------------------------------------------------


def test_without_a_marker_a_partition_is_ready_once_it_holds_a_visible_file(tmp_path):
    part = tmp_path / f"date={DAY}"
    state = arrival.check_partition(tmp_path, DAY)
    assert not state.ready and state.partition == str(part) and "does not exist yet" in state.detail
    part.mkdir()
    assert "holds no file yet" in arrival.check_partition(tmp_path, DAY).detail
    (part / "queue-a").mkdir()
    (part / "queue-a" / ".call.wav.part").write_bytes(b"x")  # an upload in progress is not data
    assert not arrival.check_partition(tmp_path, DAY).ready
    (part / "queue-a" / "call.wav").write_bytes(b"x")
    state = arrival.check_partition(str(tmp_path), DAY)
    assert state.ready and state.files == 1 and state.detail == "the partition holds 1 file(s)"


def test_with_a_marker_only_the_marker_counts(tmp_path):
    part = tmp_path / f"date={DAY}"
    part.mkdir()
    (part / "call.wav").write_bytes(b"x")
    state = arrival.check_partition(tmp_path, DAY, "_SUCCESS")
    assert not state.ready and state.detail == "waiting for the ready marker _SUCCESS"
    (part / "_SUCCESS").mkdir()  # a folder of that name is not the marker
    assert not arrival.check_partition(tmp_path, DAY, "_SUCCESS").ready
    (part / "_SUCCESS").rmdir()
    (part / "_SUCCESS").write_bytes(b"")
    assert arrival.check_partition(tmp_path, DAY, " _SUCCESS ").ready
    assert not arrival.check_partition(tmp_path, DAY, "meta/done").ready
    (part / "meta").mkdir()
    (part / "meta" / "done").write_text("ok")
    assert arrival.check_partition(tmp_path, DAY, "meta/done").detail == "ready marker meta/done is present"


def test_bad_markers_and_dates_are_configuration_errors(tmp_path):
    for marker in ("../_SUCCESS", "/etc/passwd", "a//b", "./x", "a\\b", "meta/"):
        with pytest.raises(ConfigurationError, match="bad ready marker"):
            arrival.check_partition(tmp_path, DAY, marker)
    with pytest.raises(ConfigurationError, match="not a date: '2026-13-01'"):
        arrival.check_partition(tmp_path, "2026-13-01")
    with pytest.raises(ConfigurationError, match=f"the raw root {tmp_path / 'nowhere'} does not exist"):
        arrival.check_partition(
            tmp_path / "nowhere", DAY
        )  # a wrong root fails now instead of waiting for hours


def test_the_partition_is_the_one_the_pipeline_reads(tmp_path):
    assert arrival.partition_path(tmp_path, DAY) == partition.partition_dir(tmp_path, DAY)
    uri = "s3://bucket/raw"
    assert (
        str(arrival.partition_path(uri, DAY)) == str(partition.partition_dir(uri, DAY)) == f"{uri}/date={DAY}"
    )


def test_wait_times_out_with_a_message_that_says_what_is_missing(tmp_path):
    (tmp_path / f"date={DAY}").mkdir()
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(arrival.ArrivalTimeout) as err:
        arrival.wait_for_partition(
            tmp_path, DAY, "_SUCCESS", timeout_s=1500, poke_interval_s=600, sleep=sleep, clock=lambda: now[0]
        )
    assert sleeps == [600, 600, 300]  # the last check happens at the deadline
    assert str(err.value) == (
        f"the raw partition of {DAY} was not ready after 25 min: {tmp_path / f'date={DAY}'} (waiting for the ready "
        "marker _SUCCESS); ready means its ready marker _SUCCESS. Check the upstream export, or give it longer "
        "(DAG Param wait_timeout_minutes)."
    )
    assert isinstance(err.value, ConfigurationError)  # exit code 2 in svp


def test_wait_returns_as_soon_as_the_marker_lands(tmp_path):
    part = tmp_path / f"date={DAY}"
    checks = []

    def sleep(seconds):
        checks.append(seconds)
        if len(checks) == 2:
            part.mkdir()
            (part / "manifest.csv").write_text("path\n")

    state = arrival.wait_for_partition(
        tmp_path, DAY, "manifest.csv", timeout_s=60, poke_interval_s=5, sleep=sleep
    )
    assert state.ready and len(checks) == 2


# -- arrival.py on S3 (moto) -----------------------------------------------------------------------------------------


def _put(root: ObjectPath, rel: str, data: bytes = b"x") -> None:
    with root.filesystem.open_output_stream((root / rel).fs_path) as out:
        out.write(data)


def test_s3_partitions_marker_and_missing_bucket(buckets, options):  # noqa: F811
    root = ObjectPath.parse(f"s3://{RAW_BUCKET}/arrival", options)
    state = arrival.check_partition(root, DAY)
    assert not state.ready and state.detail == "no object below the partition's prefix yet"
    _put(root, f"date={DAY}/.call.wav.part")
    assert not arrival.check_partition(root, DAY).ready
    _put(root, f"date={DAY}/queue/call.wav")
    assert arrival.check_partition(root, DAY).files == 1
    assert arrival.check_partition(root, DAY, "_SUCCESS").detail == "waiting for the ready marker _SUCCESS"
    _put(root, f"date={DAY}/_SUCCESS", b"")
    assert arrival.check_partition(root, DAY, "_SUCCESS").ready
    missing = ObjectPath.parse("s3://no-such-bucket/raw", options)
    for marker in ("", "_SUCCESS"):  # a wrong bucket fails at once instead of waiting for hours
        with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
            arrival.check_partition(missing, DAY, marker)


# -- the trigger, on its own (a subprocess: importing Airflow needs its own AIRFLOW_HOME) -----------------------------

TRIGGER_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys, time
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize
    from sensevoice_pipeline.provider.triggers import PartitionArrivalTrigger

    async def first_event(trigger):
        return await anext(trigger.run())

    for case in json.loads(sys.argv[1]):
        now = time.time()
        trigger = PartitionArrivalTrigger(raw_root=case["root"], date=case["date"], ready_marker=case["marker"],
                                          poke_interval=0.2, deadline=now + case["timeout"],
                                          timeout_s=case["timeout"], aws_conn_id=case.get("conn"), started_at=now)
        classpath, kwargs = trigger.serialize()
        # what the task hands the triggerer (DeferTask: serde-encoded kwargs), and back
        again = import_string(classpath)(**deserialize(json.loads(json.dumps(serialize(kwargs)))))
        assert again.serialize() == (classpath, kwargs), (again.serialize(), kwargs)
        event = asyncio.run(first_event(again))
        print("EVENT " + json.dumps({"classpath": classpath, "seconds": time.time() - now, **event.payload}))
""")


def run_triggers(env: dict, *cases: dict) -> list[dict]:
    """Each case's trigger, serialised and re-created as the triggerer would, run to its first event."""
    out = subprocess.run(
        [sys.executable, "-c", TRIGGER_SCRIPT, json.dumps(cases)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return [
        json.loads(line[len("EVENT ") :]) for line in out.stdout.splitlines() if line.startswith("EVENT ")
    ]


def test_trigger_is_serialisable_and_reports_ready_timeout_and_errors(tmp_path, buckets, aws_env):  # noqa: F811
    raw = tmp_path / "raw"
    (raw / f"date={DAY}").mkdir(parents=True)
    (raw / f"date={DAY}" / "call.wav").write_bytes(b"x")
    root = ObjectPath.parse(f"s3://{RAW_BUCKET}/trigger", S3Options.from_env(aws_env))
    _put(root, f"date={DAY}/_SUCCESS", b"")
    # s3://: the store's endpoint comes from the `aws` connection; the environment's is a closed port
    conn = {
        "conn_type": "aws",
        "extra": {"endpoint_url": aws_env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"},
    }
    env = {
        **LocalAirflow(home=tmp_path / "home").env(),
        **aws_env,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AIRFLOW_CONN_SVP_S3": json.dumps(conn),
    }
    ready, late, bad, s3_ready, s3_down = run_triggers(
        env,
        {"root": str(raw), "date": DAY, "marker": "", "timeout": 5},
        {"root": str(raw), "date": DAY, "marker": "_SUCCESS", "timeout": 1},
        {"root": str(raw), "date": DAY, "marker": "../x", "timeout": 5},
        {"root": str(root), "date": DAY, "marker": "_SUCCESS", "timeout": 5, "conn": "svp_s3"},
        {
            "root": str(root),
            "date": DAY,
            "marker": "_SUCCESS",
            "timeout": 5,
        },  # no connection: the closed port
    )
    assert ready["classpath"] == TRIGGER_CLASS
    assert ready["status"] == "ready" and ready["files"] == 1 and ready["checks"] == 1

    assert late["status"] == "timeout" and late["checks"] >= 5 and 1 <= late["seconds"] < 10
    assert late["message"].startswith(
        f"the raw partition of {DAY} was not ready after 1 s: {raw / f'date={DAY}'} "
        "(waiting for the ready marker _SUCCESS)"
    )

    assert (
        bad["status"] == "error"
        and bad["kind"] == "ConfigurationError"
        and "bad ready marker" in bad["message"]
    )

    assert s3_ready["status"] == "ready" and s3_ready["partition"] == f"{root}/date={DAY}"
    assert s3_down["status"] == "error" and s3_down["kind"] == "StorageError"
    assert "cannot reach the object store at http://127.0.0.1:9" in s3_down["message"]


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
    assert checks >= 5 and waited_s >= 4.5  # 2 s before the folder, 2.5 s of the partial upload
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


def test_a_run_over_its_failure_budget_publishes_fails_once_and_still_releases(
    fixture_triton, local_airflow, tmp_path
):
    """The failure_budget Param reaches Settings; FailureBudgetExceeded ends publish without retries (a retry
    would only find the staging gone); the teardown runs after the failure and the date's lease is free."""
    day = "2026-11-21"
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    part = raw / f"date={day}"
    part.mkdir(parents=True)
    for name in ("en.mp3", "ko.mp3"):
        shutil.copy(ASSETS / "audio" / name, part / name)
    (part / "broken.wav").write_bytes(b"RIFF, but not audio")
    conf = {"date": day, "raw_root": str(raw), "lake_root": str(lake), "failure_budget": 0.25}
    with pytest.raises(AirflowRunError) as err:
        local_airflow.dags_test(
            "sensevoice_daily",
            f"{day}T00:00:00+00:00",
            conf=conf,
            env=triton_connection_env(fixture_triton.grpc_url),
        )
    output = str(err.value)
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


DAG_SHAPE = textwrap.dedent("""
    import json
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder={dags!r})
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["sensevoice_daily"]
    print("SHAPE " + json.dumps({{
        "max_active_runs": dag.max_active_runs,
        "params": {{k: dag.params.get_param(k).schema for k in ("failure_budget", "ready_marker",
                                                               "wait_timeout_minutes", "poke_interval_seconds")}},
        "tasks": {{t.task_id: {{"type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                              "teardown": t.is_teardown, "retries": t.retries,
                              "rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                              "deferrable": getattr(t, "deferrable", None)}} for t in dag.tasks}},
    }}))
""")


def test_daily_dag_shape(local_airflow):
    script = DAG_SHAPE.format(dags=str(Path(__file__).resolve().parents[1] / "dags"))
    out = subprocess.run(
        [sys.executable, "-c", script], env=local_airflow.env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    shape = json.loads(out.stdout.split("SHAPE ", 1)[1])
    tasks = shape["tasks"]
    assert (
        tasks["wait_for_partition"]["type"] == "PartitionArrivalSensor"
        and tasks["wait_for_partition"]["deferrable"]
    )
    assert (
        tasks["plan"]["upstream"] == ["wait_for_partition"] and tasks["plan"]["retries"] >= 5
    )  # the lease wait
    assert tasks["release"] == {
        "type": "_PythonDecoratedOperator",
        "upstream": ["plan", "publish"],
        "teardown": True,
        "retries": 2,
        "rule": "all_done_setup_success",
        "deferrable": None,
    }
    assert shape["max_active_runs"] == 2  # different dates; one date is serialised by the lease
    params = shape["params"]
    assert params["failure_budget"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert params["wait_timeout_minutes"]["minimum"] == 0 and params["ready_marker"]["type"] == "string"
