"""The daily DAG's first task, `check_pool`, asks a real api-server (through the `sensevoice_airflow_api`
Connection) whether the transcription tasks' pool exists: missing, the run fails at once, naming the command that
creates it, instead of sitting in `running` while the scheduler skips the unschedulable tasks (`airflow dags test`
ignores pools, but the check does not depend on the scheduler); with no slots it fails too; present, it passes.
Without the Connection it only warns (test_arrival.py's runs)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from sensevoice_pipeline.demo.local_airflow import AirflowRunError
from sensevoice_pipeline.provider.pools import DEFAULT_API_CONN_ID
from tests.support.airflow import running_api_server

pytestmark = pytest.mark.airflow

MISSING_POOL_DAY = "2026-11-13"  # logical dates of their own: the session's Airflow home is shared
TASKS_TEST_DATE = "2031-01-15T00:00:00+00:00"
CREATE = 'airflow pools set sensevoice_triton <slots> "Triton fleet: servers x per-server concurrency"'


@pytest.fixture(scope="module")
def api_server_without_pool(tmp_path_factory):
    """A real api-server (simple auth manager, users svp_admin and svp_viewer) whose database has no
    sensevoice_triton pool; the Connection names it with the viewer's login."""
    home = tmp_path_factory.mktemp("pool-api-home")
    (lake := home / "lake").mkdir()
    (repo := home / "model_repository").mkdir()
    with running_api_server(home, lake, repo, "127.0.0.1:1") as server:
        conn = {
            "conn_type": "http",
            "host": server.url,
            "login": "svp_viewer",
            "password": server.passwords["svp_viewer"],
        }
        yield server, {f"AIRFLOW_CONN_{DEFAULT_API_CONN_ID.upper()}": json.dumps(conn)}


def _set_pool(server, slots: int) -> None:
    headers = {"Authorization": f"Bearer {server.token('svp_admin')}"}
    with server.client(headers=headers) as c:
        assert c.delete("/api/v2/pools/sensevoice_triton").status_code in (204, 404)
        r = c.post("/api/v2/pools", json={"name": "sensevoice_triton", "slots": slots})
    assert r.status_code in (200, 201), r.text


def _task_states(local_airflow, day: str) -> dict[str, tuple[str, int]]:
    con = sqlite3.connect(f"file:{local_airflow.home / 'airflow.db'}?mode=ro", uri=True, timeout=60)
    try:
        rows = con.execute(
            "SELECT ti.task_id, ti.state, ti.try_number FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE ti.dag_id = 'sensevoice_daily' AND dr.logical_date LIKE ?",
            (f"{day}%",),
        ).fetchall()
    finally:
        con.close()
    return {task: (state, tries) for task, state, tries in rows}


def test_a_missing_pool_fails_the_first_task_at_once_naming_the_command(
    tmp_path, local_airflow, api_server_without_pool
):
    _, env = api_server_without_pool
    (tmp_path / "raw").mkdir()
    conf = {
        "date": MISSING_POOL_DAY,
        "raw_root": str(tmp_path / "raw"),
        "lake_root": str(tmp_path / "lake"),
        "wait_timeout_minutes": 0,  # were the check missing, the sensor would fail the run, not wait for data
    }
    started = time.monotonic()
    with pytest.raises(AirflowRunError) as err:
        local_airflow.dags_test(
            "sensevoice_daily", f"{MISSING_POOL_DAY}T00:00:00+00:00", conf=conf, env=env, timeout=300
        )
    elapsed = time.monotonic() - started
    output = str(err.value)
    assert "the Airflow pool 'sensevoice_triton' does not exist" in output, output[-3000:]
    assert CREATE in output
    states = _task_states(local_airflow, MISSING_POOL_DAY)
    assert states["check_pool"] == ("failed", 1)  # not retried: a retry would not create the pool
    for task in ("wait_for_partition", "plan", "publish"):
        assert states[task][0] == "upstream_failed", states
    assert not (tmp_path / "lake" / "data").exists()
    assert elapsed < 120, f"the run took {elapsed:.0f} s to fail"


def test_a_pool_without_slots_fails_and_one_with_slots_passes(local_airflow, api_server_without_pool):
    server, env = api_server_without_pool

    def check_pool() -> str:
        out = local_airflow._airflow(
            "tasks", "test", "sensevoice_daily", "check_pool", TASKS_TEST_DATE, timeout=240, env=env
        )
        return out.stdout + out.stderr

    _set_pool(server, 0)
    text = check_pool()
    assert "the Airflow pool 'sensevoice_triton' has 0 slots" in text and CREATE in text, text[-3000:]
    _set_pool(server, 3)
    text = check_pool()
    assert "the Airflow pool 'sensevoice_triton' exists (3 slots" in text, text[-3000:]
    assert "AirflowFailException" not in text
