"""LocalTriton and ports picked by free_port(): another process may bind one first (two test workers, two servers
starting at once); the server then picks again. A port the caller gave is never changed."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from sensevoice_pipeline.serving import server as server_mod
from sensevoice_pipeline.serving.server import PORTS, LocalTriton, ServerError

pytestmark = pytest.mark.triton


@pytest.fixture
def taken_port():
    """A port someone else listens on (and never answers HTTP on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("taken", ["http_port", "grpc_port"])
def test_a_picked_port_that_another_process_took_is_picked_again(
    fixture_repository, taken_port, monkeypatch, taken
):
    """free_port() hands out the taken port for ``taken`` on the first try, as a race with another process would."""
    handed_out: list[int] = []
    real_free_port = server_mod.free_port

    def racing_free_port() -> int:
        handed_out.append(taken_port if len(handed_out) == PORTS.index(taken) else real_free_port())
        return handed_out[-1]

    monkeypatch.setattr(server_mod, "free_port", racing_free_port)
    with LocalTriton(fixture_repository) as server:
        assert taken_port not in (server.http_port, server.grpc_port, server.metrics_port)
        with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready", timeout=5) as resp:
            assert resp.status == 200
    # a second try (and more ports where free_port() handed out one this server already had)
    assert handed_out[PORTS.index(taken)] == taken_port and len(handed_out) >= 2 * len(PORTS)


def test_a_port_the_caller_gave_is_not_changed(fixture_repository, taken_port):
    with pytest.raises(ServerError, match="already in use"):
        LocalTriton(fixture_repository, grpc_port=taken_port).start()
