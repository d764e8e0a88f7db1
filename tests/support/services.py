"""The servers a test needs, started from the system packages scripts/install-system-deps.sh installs, on free
loopback ports, in throwaway folders: PostgreSQL and Redis. Each is a context manager that stops its server (and
removes its folder) on exit."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sensevoice_pipeline.serving.server import free_port


def _wait_for_port(
    port: int, what: str, timeout_s: float = 30.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{what} exited with {process.returncode} before listening on {port}"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s"
                ) from None
            time.sleep(0.1)


# -- PostgreSQL --------------------------------------------------------------------------------------------------------


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(
            f"PostgreSQL's {name} is missing: run scripts/install-system-deps.sh (Debian postgresql)"
        )
    return found[-1]


@dataclass
class Postgres:
    """A running cluster: superuser ``postgres`` without a password, on 127.0.0.1:``port``."""

    port: int
    folder: Path

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres", env: dict | None = None) -> str:
        out = subprocess.run(
            [_postgres_bin("psql"), "-v", "ON_ERROR_STOP=1", "-qAt", self.url(database), "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def new_database(self, prefix: str = "test") -> str:
        """A fresh, empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb + postgres on a free port (as the ``postgres`` user when run as root: PostgreSQL refuses root)."""
    folder = Path(tempfile.mkdtemp(prefix="svp-postgres-"))  # under /tmp: the postgres user must reach it
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            [
                *as_user,
                _postgres_bin("initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        server = subprocess.Popen(
            [
                *as_user,
                _postgres_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(folder),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "server.log", "w"),
        )
        try:
            _wait_for_port(port, "postgres", process=server)
            yield Postgres(port, folder)
        finally:
            _stop_postgres(data, server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stop_postgres(data: Path, server: subprocess.Popen) -> None:
    """A "fast" shutdown (SIGINT) of the postmaster itself (``server`` may be runuser, which need not pass it on)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, IndexError):
        server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


# -- Redis -------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(password: str | None = None) -> Iterator[int]:
    """redis-server on a free port, nothing persisted; yields the port."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError(
            "redis-server is missing: run scripts/install-system-deps.sh (Debian redis-server)"
        )
    folder, port = Path(tempfile.mkdtemp(prefix="svp-redis-")), free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    if password:
        args += ["--requirepass", password]
    server = subprocess.Popen(args, stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, "redis-server", process=server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)
