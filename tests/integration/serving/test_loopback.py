"""Triton listens on loopback only (issue 9): the local Triton and `svp serve` bind every port to 127.0.0.1."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from sensevoice_pipeline.serving.server import LocalTriton, free_port

pytestmark = pytest.mark.triton


def bound_sockets(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every listening TCP socket and bound UDP socket of the process and its descendants."""
    root = psutil.Process(pid)
    found = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for c in connections:
            if c.laddr and not c.raddr and c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE):
                found.add((_unmapped(c.laddr.ip), c.laddr.port))
    return sorted(found)


def _unmapped(ip: str) -> str:
    """gRPC listens on a dual-stack socket: ``::ffff:127.0.0.1`` is IPv4 loopback seen through IPv6."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


# -- 5. Triton listens on loopback only --------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_local_triton_and_svp_serve_bind_to_loopback_only(tmp_path, fixture_repository):
    repo = shutil.copytree(fixture_repository, tmp_path / "model_repository")
    with LocalTriton(repo) as server:
        sockets = bound_sockets(server.process.pid)
        ports = {server.http_port, server.grpc_port, server.metrics_port}
    assert ports <= {port for _, port in sockets}, sockets
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets

    ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
    args = [x for kv in ports.items() for x in (kv[0], str(kv[1]))]
    serve = subprocess.Popen(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "serve", "--repository", str(repo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Triton ready"):
                break
        assert lines and lines[-1].startswith("Triton ready"), "".join(lines)[-3000:]
        assert f"gRPC 127.0.0.1:{ports['--grpc-port']}" in lines[-1]
        triton_pids = [c.pid for c in psutil.Process(serve.pid).children(recursive=True)]
        sockets = bound_sockets(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, rest[-3000:]
    assert set(ports.values()) <= {port for _, port in sockets}, sockets
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in triton_pids
    )
