import subprocess
import sys

import pytest


def svp(*args):
    return subprocess.run([sys.executable, "-m", "sensevoice_pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_top_level_help_lists_commands():
    out = svp("--help")
    assert out.returncode == 0
    for command in ("export", "serve", "transcribe"):
        assert command in out.stdout


@pytest.mark.parametrize("command,expected", [
    ("export", "--precision"),
    ("serve", "--grpc-port"),
    ("transcribe", "SVP_TRITON_URL"),
])
def test_command_help(command, expected):
    out = svp(command, "--help")
    assert out.returncode == 0 and expected in out.stdout


def test_serve_refuses_an_empty_repository(tmp_path):
    out = svp("serve", "--repository", str(tmp_path))
    assert out.returncode == 2 and "not ready" in out.stderr and "svp export" in out.stderr


def test_serve_runs_in_the_foreground_until_sigterm(exported_repository):
    import signal
    import socket

    from sensevoice_pipeline.server import free_port

    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensevoice_pipeline.cli", "serve", "--repository", str(exported_repository),
         "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = ""
        while "Triton ready" not in line:
            line = proc.stdout.readline()
            assert line, "svp serve exited before it was ready"
        assert f"gRPC 127.0.0.1:{ports[1]}" in line and f"http://127.0.0.1:{ports[0]}" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    for port in ports:  # the server and its python stubs are gone
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
