"""A local CPU Triton: the `tritonserver` binary that ships in the nvidia-pytriton wheel (python backend only).

Production runs the NGC container (see docker-compose.yml); this is the embedded default for one machine, the
demo and the tests. It binds to 127.0.0.1, loads models explicitly (poll mode hung while folders changed), lints the
repository first (a python model without model.py hangs the load and ignores SIGTERM), and always ends its whole
process group.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.serving.admin import (
    check_admin_key,
    configured_admin_key,
    new_admin_key,
    restricted_api_args,
)
from sensevoice_pipeline.serving.repository import LOCAL_CONFIG_NAME, MODELS, ModelRepository

log = logging.getLogger(__name__)

PY_TAG = f"{sys.version_info.major}.{sys.version_info.minor}"


class ServerError(SvpError, RuntimeError):
    pass


PORTS = ("http_port", "grpc_port", "metrics_port")
PORT_ATTEMPTS = 3
PORT_TAKEN = "already in use"  # how tritonserver says it could not bind a port, before it exits
STARTED_HTTP = "Started HTTPService at"  # its log line once its own HTTP endpoint listens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something already holds ``host:port`` (tritonserver would start, print its whole option table, then
    exit on it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT does not count
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# tritonserver's log lines are glog's: "E1207 13:26:42.477755 17582 main.cc:257] "failed to start ..."".
_GLOG_ERROR = re.compile(r'^E\d{4} [\d:.]+\s+\d+ [^\]]+\] "?(?P<message>.*?)"?\s*$')


def startup_cause(log_text: str) -> str | None:
    """The last error line of a tritonserver log, without glog's prefix: why a server that exited did."""
    causes = [m.group("message").strip() for m in map(_GLOG_ERROR.match, log_text.splitlines()) if m]
    return causes[-1] if causes else None


def _pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise ServerError("the local Triton needs nvidia-pytriton: pip install -e '.[serve]'") from exc
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


@dataclass
class LocalTriton:
    """Start with ``with LocalTriton(repo) as server:`` or ``start()`` / ``stop()``."""

    repository: str | Path
    http_port: int = 0  # 0: pick a free port
    grpc_port: int = 0
    metrics_port: int = 0
    config_name: str | None = LOCAL_CONFIG_NAME
    models: tuple[str, ...] = MODELS
    host: str = "127.0.0.1"
    startup_timeout: float = 120.0
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    # The key of the control plane (serving/admin.py); None: $SVP_TRITON_ADMIN_KEY (or its file), else a random one
    # (the control plane is then closed to everybody but this object's holder).
    admin_key: str | None = field(default=None, repr=False)
    process: subprocess.Popen | None = field(default=None, init=False)
    _workdir: Path | None = field(default=None, init=False)
    _log_offset: int = field(default=0, init=False)  # where this start's lines begin in a reused log file

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    def start(self) -> LocalTriton:
        repository = self._checked_repository()
        self.admin_key = (
            check_admin_key(self.admin_key, "admin_key")
            if self.admin_key
            else (configured_admin_key() or new_admin_key())
        )
        picked = [name for name in PORTS if not getattr(self, name)]
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._pick_ports(picked)
            try:
                return self._launch(repository)
            except ServerError as exc:
                # free_port() finds a port free at that moment only: another process (a parallel test worker,
                # another server starting) can bind it before Triton does, and Triton then exits. Ports this
                # server picked are picked again; ports it was given are the caller's to change.
                if not picked or attempt == PORT_ATTEMPTS or PORT_TAKEN not in str(exc):
                    raise
                log.warning(
                    "tritonserver could not bind a port it was given by free_port(); trying new ports"
                )
        raise AssertionError("unreachable")

    def _pick_ports(self, names: list[str]) -> None:
        """A free port for each of ``names``, none the same as another port of this server: free_port() releases
        the port it found, so two calls in a row can hand out the same one (Triton then refuses to listen to HTTP
        and gRPC on one port)."""
        for name in names:
            taken = {getattr(self, other) for other in PORTS if other != name and other not in names}
            taken |= {getattr(self, other) for other in names[: names.index(name)]}
            port = free_port()
            for _ in range(20):
                if port not in taken:
                    break
                port = free_port()
            setattr(self, name, port)

    def _launch(self, repository: str) -> LocalTriton:
        self._workdir = Path(tempfile.mkdtemp(prefix="svp-triton-"))
        cmd = self._command(repository, self._backends())
        self.log_file = self.log_file or self._workdir / "tritonserver.log"
        log.info("starting tritonserver: %s", " ".join(cmd).replace(self.admin_key, "***"))
        self._log_offset = Path(self.log_file).stat().st_size if Path(self.log_file).exists() else 0
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _checked_repository(self) -> str:
        """What ``--model-repository`` gets: a local folder, linted first; or an ``s3://`` repository in Triton's own
        syntax (``releases.remote.triton_repository_uri``), passed as it is: Triton reads it with the AWS_* variables,
        and there is nothing local to lint."""
        if str(self.repository).startswith("s3://"):
            return str(self.repository)
        repo = ModelRepository(self.repository)
        problems = repo.lint(self.config_name)
        if problems:
            raise ServerError(f"model repository {repo.path} is not ready:\n  " + "\n  ".join(problems))
        return str(repo.path.resolve())

    def _backends(self) -> Path:
        """A private copy of the wheel's backends folder with the python stub for this interpreter beside the
        backend, where Triton looks for it."""
        src = _pytriton_dir()
        backends = self._workdir / "backends"
        shutil.copytree(src / "backends", backends)
        stub = src / "python_backend_stubs" / PY_TAG / "triton_python_backend_stub"
        if not stub.is_file():
            raise ServerError(f"no Triton python stub for Python {PY_TAG} in {src}")
        shutil.copy2(stub, backends / "python" / stub.name)
        return backends

    def _command(self, repo_path: str, backends: Path) -> list[str]:
        binary = _pytriton_dir() / "bin" / "tritonserver"
        cmd = [
            str(binary),
            f"--model-repository={repo_path}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in self.models],
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--log-verbose=0",
            *restricted_api_args(self.admin_key),
        ]
        if self.config_name:
            cmd.append(f"--model-config-name={self.config_name}")
        return cmd + self.extra_args

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The python stub finds its interpreter (and so this venv and its packages) through `python3` on PATH.
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        libs = [
            sysconfig.get_config_var("LIBDIR"),
            str(_pytriton_dir().parent.parent / "nvidia_pytriton.libs"),
        ]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")])
        # Each python model instance is one process. An encoder instance takes its share of the cores
        # (triton_models.instance_threads) unless SVP_ORT_THREADS, passed on from this environment, says otherwise.
        return env

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(self._exit_message())
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    # 200 from this port is this server's only once its log says it listens there: another
                    # server holding the port would answer while this one fails to bind it.
                    if resp.status == 200 and self._own_http_started():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise ServerError(
            f"tritonserver was not ready after {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def _exit_message(self) -> str:
        """Why the server exited first (its last error line), then where the log is and its last lines: the
        option table it prints before failing is in the log, not in front of the cause."""
        tail = self.log_tail(200)
        cause = startup_cause(tail) or "see its log"
        last = [line for line in tail.splitlines() if not line.startswith(("|", "+"))][-8:]
        return (
            f"tritonserver exited with code {self.process.returncode} while starting: {cause}\n"
            f"(log {self.log_file}, last lines:)\n" + "\n".join(last)
        )

    def _own_http_started(self) -> bool:
        with open(self.log_file, "rb") as log_file:
            log_file.seek(self._log_offset)
            return f"{STARTED_HTTP} {self.host}:{self.http_port}".encode() in log_file.read()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file or not Path(self.log_file).exists():
            return ""
        return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver ignored SIGTERM for %.0f s; killing its process group", timeout)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # python stubs left behind, if any
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if self._workdir is not None:
            keep_log = self.log_file and str(self.log_file).startswith(str(self._workdir))
            if not keep_log:
                shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
