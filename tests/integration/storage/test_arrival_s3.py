"""Late data on S3 (moto's server, tests/integration/storage/conftest.py): `arrival.check_partition` on a bucket, and
the provider's trigger on its own, serialised and re-created as the triggerer would, on local and S3 roots. On a
local dir: tests/unit/lake/test_arrival.py; the sensor in a DAG: tests/integration/airflow/test_arrival.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from sensevoice_pipeline.demo.local_airflow import LocalAirflow
from sensevoice_pipeline.lake import arrival
from sensevoice_pipeline.lake.storage import ObjectPath, S3Options, StorageError
from tests.support.s3 import RAW_BUCKET

pytestmark = pytest.mark.s3

TRIGGER_CLASS = "sensevoice_pipeline.provider.triggers.PartitionArrivalTrigger"
DAY = "2026-11-22"


# -- arrival.py on S3 (moto) -----------------------------------------------------------------------------------------


def _put(root: ObjectPath, rel: str, data: bytes = b"x") -> None:
    with root.filesystem.open_output_stream((root / rel).fs_path) as out:
        out.write(data)


def test_s3_partitions_marker_and_missing_bucket(buckets, options):
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


@pytest.mark.airflow
def test_trigger_is_serialisable_and_reports_ready_timeout_and_errors(tmp_path, buckets, aws_env):
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

    # at least the first check and one at the deadline; how many 0.2 s pauses fit in between depends on the load
    assert late["status"] == "timeout" and late["checks"] >= 2 and 1 <= late["seconds"] < 10
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
    assert s3_down["status"] == "error" and s3_down["kind"] == "StoreUnreachableError"
    assert s3_down["storage"]  # the sensor leaves it to the task's retries
    assert "cannot reach the object store at http://127.0.0.1:9" in s3_down["message"]
