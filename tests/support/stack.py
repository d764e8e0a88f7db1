"""The production stack of tests/integration/stack/ as processes: docker-compose.yml's Airflow services started with
the compose file's own settings (only hosts, ports and the timing knobs below differ), what the images' init steps
do, and what the scenario reads back from Airflow's metadata database and the Tritons."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from sensevoice_pipeline.lake.storage import ObjectPath, S3Options
from sensevoice_pipeline.serving.server import free_port
from tests.support.compose import ROOT, env_of
from tests.support.services import Postgres

TODAY = dt.datetime.now(dt.UTC).date()
DAYS = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1)]  # the catchup: three data intervals
LATE_DAY = DAYS[-1]
# What the test shortens (timing and size only): a dead worker's task is retried in seconds, not minutes.
TIMING = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
    "AIRFLOW__API__WORKERS": "1",
}
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
WORKERS = ("worker-1", "worker-2")


@dataclass
class Stack:
    folder: Path
    values: dict[str, str]  # .env
    compose: dict  # interpolated
    postgres: Postgres
    hosts: dict[str, str]  # compose host:port -> 127.0.0.1:port
    s3: S3Options
    repository: Path
    tritons: list[tuple[str, int, subprocess.Popen]] = field(
        default_factory=list
    )  # (grpc url, http port, process)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    api_port: int = 0

    # -- settings as compose gives them ------------------------------------------------------------------------------

    def env(self, service: str, directory: Path) -> dict[str, str]:
        """``service``'s environment from the compose file, hosts and paths made local (and none of this test
        process's own SVP_* settings, such as its Triton admin key: only the services compose gives one have it)."""
        env = {
            k: self._local(v) for k, v in env_of(self.compose["services"][service]).items() if v is not None
        }
        env["SVP_MODEL_REPOSITORY"] = str(self.repository)
        env["SVP_WAREHOUSE"] = str(directory / "warehouse" / "warehouse.duckdb")
        env.update(TIMING)
        home = directory / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("SVP_")
        }  # the compose file's own only
        return {
            **inherited,
            **env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.folder / "airflow-logs"),  # the shared logs volume
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }

    def _local(self, value: str) -> str:
        for compose_host, local in self.hosts.items():
            value = value.replace(compose_host, local)
        return value

    def start(self, name: str, service: str, *extra_args: str) -> subprocess.Popen:
        """``service``'s command (compose's, with ``extra_args``) through check-secrets.sh, in a folder of its own."""
        directory = self.folder / name
        directory.mkdir(parents=True, exist_ok=True)
        raw = self.compose["services"][service]["command"]
        command = raw.split() if isinstance(raw, str) else [str(a) for a in raw]
        process = subprocess.Popen(
            ["sh", str(ROOT / "docker" / "check-secrets.sh"), "airflow", *command, *extra_args],
            cwd=directory,
            env=self.env(service, directory),
            start_new_session=True,
            stdout=open(directory / "out.log", "w"),
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def airflow(self, *args: str, timeout: float = 180) -> str:
        """An `airflow` CLI command as `docker compose exec airflow-apiserver airflow ...` would run it."""
        directory = self.folder / "cli"
        directory.mkdir(exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env("airflow-apiserver", directory),
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, f"airflow {' '.join(args)}: {out.stdout[-2000:]}{out.stderr[-3000:]}"
        return out.stdout

    def log(self, name: str) -> str:
        path = self.folder / name / "out.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- what the stack holds ----------------------------------------------------------------------------------------

    def metadata(self, sql: str, params: tuple = ()) -> list[tuple]:
        """A query on Airflow's metadata database."""
        with psycopg.connect(self.postgres.url(self.values["POSTGRES_DB"])) as con:
            return con.execute(sql, params).fetchall()

    @property
    def catalog(self) -> str:
        return self._local(self.compose["x-airflow-common"]["environment"]["SVP_CATALOG"])

    @property
    def lake_root(self) -> ObjectPath:
        return ObjectPath.parse(self.compose["x-airflow-common"]["environment"]["SVP_LAKE_ROOT"], self.s3)

    @property
    def raw_root(self) -> ObjectPath:
        return ObjectPath.parse(self.compose["x-airflow-common"]["environment"]["SVP_RAW_ROOT"], self.s3)

    def inferences(self) -> int:
        """Requests `sensevoice` has answered, over both Tritons."""
        total = 0
        for _, http_port, _ in self.tritons:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/v2/models/sensevoice/stats", timeout=10
            ) as r:
                total += sum(m["inference_stats"]["success"]["count"] for m in json.load(r)["model_stats"])
        return total

    def failure_report(self) -> str:
        """The errors of every failed task (from the shared task logs), then each service's log tail."""
        errors = []
        for path in sorted((self.folder / "airflow-logs").rglob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if '"level":"error"' in line:
                    event = json.loads(line)
                    details = "; ".join(
                        f"{d['exc_type']}: {d['exc_value']}" for d in event.get("error_detail", [])
                    )
                    errors.append(
                        f"{path.relative_to(self.folder / 'airflow-logs')}: {event['event']} {details}"
                    )
        tails = "\n".join(f"--- {name}\n{self.log(name)[-2000:]}" for name in self.processes)
        return "task errors:\n" + "\n".join(errors[-20:]) + "\n" + tails


def upload_day(stack: Stack, date: str, local: Path) -> None:
    target = stack.raw_root / f"date={date}"
    for path in sorted(p for p in (local / f"date={date}").rglob("*") if p.is_file()):
        with target.filesystem.open_output_stream(
            (target / path.relative_to(local / f"date={date}").as_posix()).fs_path
        ) as out:
            out.write(path.read_bytes())


def wait_for(what: str, check, timeout_s: float, stack: Stack, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        for name, process in stack.processes.items():
            assert process.poll() is None or name == "killed", (
                f"{name} exited while waiting for {what}:\n{stack.log(name)[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}\n{stack.failure_report()}"
            )
        time.sleep(every_s)


def stop_groups(processes: list[subprocess.Popen], timeout_s: float = 5) -> None:
    """SIGTERM every process group at once, then SIGKILL what is left after ``timeout_s``."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def init_postgres(postgres: Postgres, compose: dict) -> None:
    """What the postgres image does on its first start: POSTGRES_USER (a superuser) with its password and database,
    then the scripts of /docker-entrypoint-initdb.d (docker/postgres-init/, mounted there by the compose file)."""
    env = env_of(compose["services"]["postgres"])
    user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    postgres.psql(f"CREATE ROLE \"{user}\" SUPERUSER LOGIN PASSWORD '{password}'")
    postgres.psql(f'CREATE DATABASE "{database}" OWNER "{user}"')
    (mount,) = [
        v.split(":")[0]
        for v in compose["services"]["postgres"]["volumes"]
        if ":/docker-entrypoint-initdb.d" in v
    ]
    for script in sorted((ROOT / mount).glob("*.sh")):
        subprocess.run(
            ["sh", str(script)],
            check=True,
            timeout=60,
            capture_output=True,
            env={**os.environ, **env, "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port)},
        )


def run_init(stack: Stack) -> None:
    """airflow-init's script, as compose runs it: migrate, admin user, the Triton connection, the pool."""
    directory = stack.folder / "airflow-init"
    directory.mkdir()
    shell, flag, script = stack.compose["services"]["airflow-init"]["command"]
    assert (shell, flag) == ("bash", "-c")
    out = subprocess.run(
        ["sh", str(ROOT / "docker" / "check-secrets.sh"), "bash", "-c", script],
        cwd=directory,
        env=stack.env("airflow-init", directory),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"airflow-init failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"


def healthy(stack: Stack) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{stack.api_port}/api/v2/monitor/health", timeout=5
        ) as r:
            return r.status == 200
    except OSError:
        return False


# -- the scenario ------------------------------------------------------------------------------------------------------


def task_instances(stack: Stack, dag_id: str, task_id: str) -> list[dict]:
    rows = stack.metadata(
        "SELECT ti.run_id, ti.map_index, ti.state, ti.pid, ti.try_number, ti.external_executor_id, ti.queue, "
        "dr.data_interval_start FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = "
        "ti.run_id WHERE ti.dag_id = %s AND ti.task_id = %s ORDER BY dr.data_interval_start, ti.map_index",
        (dag_id, task_id),
    )
    keys = (
        "run_id",
        "map_index",
        "state",
        "pid",
        "try_number",
        "external_executor_id",
        "queue",
        "interval_start",
    )
    return [dict(zip(keys, row)) for row in rows]


def run_states(stack: Stack, dag_id: str) -> dict[str, str]:
    return {
        str(start.date()) if start else run_id: state
        for run_id, state, start in stack.metadata(
            "SELECT run_id, state, data_interval_start FROM dag_run WHERE dag_id = %s", (dag_id,)
        )
    }


def worker_of(stack: Stack, pid: int) -> str | None:
    """The Celery worker whose process tree holds ``pid``."""
    try:
        ancestors = {p.pid for p in psutil.Process(pid).parents()}
    except psutil.NoSuchProcess:
        return None
    return next((name for name in WORKERS if stack.processes[name].pid in ancestors), None)


def kill_a_worker_mid_transcription(stack: Stack) -> dict:
    """Once a transcription task is running and Triton has answered its first requests, freeze both Tritons (so it
    cannot finish), SIGKILL the worker running it, and let the Tritons go on."""
    before = stack.inferences()

    def transcribing():
        running = [
            ti
            for ti in task_instances(stack, "sensevoice_daily", "transcribe")
            if ti["state"] == "running" and ti["pid"]
        ]
        return running[0] if running and stack.inferences() > before else None

    ti = wait_for("a transcription under way", transcribing, 300, stack, every_s=0.05)
    for _, _, triton in stack.tritons:
        os.killpg(triton.pid, signal.SIGSTOP)
    try:
        (now,) = [
            t
            for t in task_instances(stack, "sensevoice_daily", "transcribe")
            if (t["run_id"], t["map_index"]) == (ti["run_id"], ti["map_index"])
        ]
        assert now["state"] == "running" and now["try_number"] == ti["try_number"], now
        victim = worker_of(stack, ti["pid"])
        assert victim, f"task pid {ti['pid']} is not under a worker"
        os.killpg(stack.processes[victim].pid, signal.SIGKILL)
        stack.processes[victim].wait(timeout=30)
        stack.processes["killed"] = stack.processes.pop(victim)
    finally:
        for _, _, triton in stack.tritons:
            os.killpg(triton.pid, signal.SIGCONT)
    return {**ti, "worker": victim}
