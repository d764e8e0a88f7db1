"""The project's DAGs as Airflow parses them: they import without errors, and the sensevoice_daily DAG has the
shape its tasks rely on (the pool check first, then a deferrable sensor, the lease wait's retries, the teardown
that releases the date, the Params' schemas, the transcription tasks' execution timeout); its plan task refuses
Params beyond the deployment's allow-list (issue 28)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support.paths import ROOT as PROJECT_ROOT

pytestmark = pytest.mark.airflow

DAY = "2026-11-20"


def test_dags_import_without_errors(local_airflow):
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(PROJECT_ROOT / 'dags')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "print(sorted(bag.dag_ids))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=local_airflow.env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sensevoice_daily" in out.stdout


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
                              "deferrable": getattr(t, "deferrable", None),
                              "on_failure": [getattr(c, "__name__", repr(c)) for c in
                                             (t.on_failure_callback if isinstance(t.on_failure_callback, list)
                                              else [t.on_failure_callback] if t.on_failure_callback else [])]}}
                  for t in dag.tasks}},
    }}))
""")


def test_daily_dag_shape(local_airflow):
    script = DAG_SHAPE.format(dags=str(PROJECT_ROOT / "dags"))
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
    # a day whose audio never arrives is notified (provider/notify.py; tests/integration/airflow/test_alerts.py)
    assert tasks["wait_for_partition"]["on_failure"] == ["partition_late"]
    assert (
        tasks["plan"]["upstream"] == ["wait_for_partition"] and tasks["plan"]["retries"] >= 5
    )  # the lease wait
    # first of all, the check that the transcription tasks' pool exists (provider/pools.py)
    assert tasks["check_pool"]["upstream"] == [] and tasks["wait_for_partition"]["upstream"] == ["check_pool"]
    assert tasks["release"] == {
        "type": "_PythonDecoratedOperator",
        "upstream": ["plan", "publish"],
        "teardown": True,
        "retries": 2,
        "rule": "all_done_setup_success",
        "deferrable": None,
        "on_failure": [],
    }
    assert shape["max_active_runs"] == 2  # different dates; one date is serialised by the lease
    params = shape["params"]
    assert params["failure_budget"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert params["wait_timeout_minutes"]["minimum"] == 0 and params["ready_marker"]["type"] == "string"


def test_transcription_tasks_have_an_execution_timeout(local_airflow):
    """A hung batch (a decode that never returns, a server that never answers) is failed and retried."""
    dags = PROJECT_ROOT / "dags"
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(dags)!r})\n"
        "print(bag.dags['sensevoice_daily'].get_task('transcribe').execution_timeout.total_seconds())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=local_airflow.env({"SVP_BATCH_TIMEOUT_S": "5400"}),
    )
    assert out.stdout.strip().splitlines()[-1] == "5400.0", out.stderr[-2000:]


@pytest.mark.timeout(300)
def test_the_dags_plan_refuses_params_beyond_the_allow_list(tmp_path, local_airflow):
    params = {"date": DAY, "raw_root": str(tmp_path / "raw"), "lake_root": "s3://not-ours/lake"}
    out = local_airflow._airflow(
        "tasks",
        "test",
        "sensevoice_daily",
        "plan",
        "2031-01-14T00:00:00+00:00",  # its own date: `tasks test` reuses any DAG run of its date
        "--task-params",
        json.dumps(params),
        timeout=240,
        env={"SVP_ALLOWED_ROOTS": "", "SVP_LAKE_ROOT": str(tmp_path / "lake")},
    )
    text = out.stdout + out.stderr
    assert "the Param raw_root=" in text and "is outside what this deployment allows" in text, text[-3000:]
    assert not (tmp_path / "lake").exists()
