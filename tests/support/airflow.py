"""A real Airflow api-server with the project's plugin, as the plugin's page and its browser tests use it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, url: str, home: Path, passwords: dict[str, str]):
        self.url, self.home, self.passwords = url, home, passwords

    def client(self, **kwargs):
        import httpx

        return httpx.Client(base_url=self.url, trust_env=False, timeout=30, **kwargs)

    def token(self, user: str) -> str:
        with self.client() as c:
            r = c.post("/auth/token", json={"username": user, "password": self.passwords[user]})
        assert r.status_code == 201, r.text
        return r.json()["access_token"]


@contextlib.contextmanager
def running_api_server(home: Path, lake: Path, model_repo: Path, triton_url: str) -> Iterator[ApiServer]:
    """A real api-server with the plugin, over ``lake``; its ``sensevoice_triton`` Connection (an AIRFLOW_CONN_
    variable, as a deployment may set it) names the Triton at ``triton_url``, and $SVP_TRITON_URL, the hook's
    fallback, a dead address: a clip answered right shows that the Connection was used."""
    import httpx

    from sensevoice_pipeline.demo.local_airflow import triton_connection_env

    (home / "dags").mkdir()
    passwords = {"svp_admin": secrets.token_urlsafe(12), "svp_viewer": secrets.token_urlsafe(12)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    (home / "paths.json").write_text(json.dumps([str(lake), str(model_repo)]))  # what the page must not show
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="svp_admin:admin,svp_viewer:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
        SVP_LAKE_ROOT=str(lake),
        SVP_MODEL_REPOSITORY=str(model_repo),
        SVP_TRITON_URL=f"127.0.0.1:{free_port()}",  # nobody listens: only the Connection leads to Triton
        **triton_connection_env(triton_url),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("SVP_WAREHOUSE", None)
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]
    port = free_port()
    log_path = home / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api-server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not ready after 180 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield ApiServer(url, home, passwords)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:  # workers left behind by the server, if any
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
