"""Run a DAG of this project once, for real, with a throwaway Airflow home: `airflow db migrate`, then
`airflow dags test`. Used by `svp demo` and the end-to-end tests (no Airflow import in this process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.resources import DAGS_DIR, PLUGINS_DIR


class AirflowRunError(SvpError, RuntimeError):
    pass


@dataclass
class LocalAirflow:
    home: Path | None = None
    dags_folder: Path = DAGS_DIR
    plugins_folder: Path = PLUGINS_DIR
    extra_env: dict[str, str] | None = None

    def __post_init__(self):
        self.home = Path(self.home or tempfile.mkdtemp(prefix="svp-airflow-"))
        self._migrated = False

    def env(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(self.plugins_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        )
        env.update(self.extra_env or {})
        env.update(overrides or {})
        return env

    def _airflow(
        self, *args: str, timeout: float, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "airflow", *args]
        return subprocess.run(cmd, env=self.env(env), capture_output=True, text=True, timeout=timeout)

    def migrate(self) -> None:
        if self._migrated:
            return
        out = self._airflow("db", "migrate", timeout=300)
        if out.returncode != 0:
            raise AirflowRunError(f"airflow db migrate failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
        self._migrated = True

    def dags_test(
        self,
        dag_id: str,
        logical_date: str,
        conf: dict | None = None,
        timeout: float = 900,
        env: dict[str, str] | None = None,
    ) -> str:
        """`airflow dags test`; returns its output, raises with the tail of it when the run did not succeed.
        ``env`` adds variables for this run only (e.g. ``triton_connection_env(url)``)."""
        self.migrate()
        args = ["dags", "test", dag_id, logical_date]
        if conf:
            args += ["--conf", json.dumps(conf)]
        out = self._airflow(*args, timeout=timeout, env=env)
        text = out.stdout + out.stderr
        if out.returncode != 0 or "state=failed" in text or "DagRunState.FAILED" in text:
            raise AirflowRunError(
                f"airflow dags test {dag_id} {logical_date} did not succeed:\n{text[-6000:]}"
            )
        self._check_tasks_ran(dag_id, logical_date, text, env)
        return text

    def _check_tasks_ran(self, dag_id: str, logical_date: str, text: str, env: dict[str, str] | None) -> None:
        """A run whose logical date precedes the DAG's start_date succeeds without running a single task."""
        run_id = re.search(r"run_id=['\"]?([^'\",\s]+)", text)
        if not run_id:
            raise AirflowRunError(f"airflow dags test {dag_id} {logical_date}: no run id in its output")
        out = self._airflow(
            "tasks", "states-for-dag-run", dag_id, run_id.group(1), "-o", "json", timeout=120, env=env
        )
        try:
            states = [t.get("state") for t in json.loads(out.stdout[out.stdout.index("[") :])]
        except ValueError as exc:
            raise AirflowRunError(
                f"cannot read the task states of {run_id.group(1)}: {out.stderr[-2000:]}"
            ) from exc
        if "success" not in states:
            raise AirflowRunError(
                f"airflow dags test {dag_id} {logical_date} ran no task (task states: {states}); "
                "is the logical date before the DAG's start_date?"
            )


def triton_connection_env(grpc_url: str, conn_id: str = "sensevoice_triton") -> dict[str, str]:
    host, _, port = grpc_url.rpartition(":")
    conn = {"conn_type": "sensevoice_triton", "host": host, "port": int(port)}
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}
