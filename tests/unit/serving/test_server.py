"""What `svp serve` checks before and says after starting tritonserver (serving/server.py): a port something holds
is refused up front, and a server that exited while starting is explained by its cause, not by its option table.
The server itself, started for real: tests/integration/serving/."""

from __future__ import annotations

import socket

from sensevoice_pipeline.serving.server import port_in_use, startup_cause

# The end of a real tritonserver 2.51 log (PyPI build) that could not bind its HTTP port: the option table, the
# services it did start, then the cause.
BUSY_PORT_LOG = """\
I1207 13:26:42.431040 17582 tritonserver.cc:2598]
+----------------------------------+-----------------------+
| Option                           | Value                 |
+----------------------------------+-----------------------+
| server_id                        | triton                |
| model_control_mode               | MODE_EXPLICIT         |
+----------------------------------+-----------------------+

I1207 13:26:42.432939 17582 grpc_server.cc:2558] "Started GRPCInferenceService at 127.0.0.1:18001"
I1207 13:26:42.433225 17582 http_server.cc:4713] "Started HTTPService at 127.0.0.1:18000"
E1207 13:26:42.477755 17582 main.cc:257] "failed to start HTTP service: Unavailable - Socket '127.0.0.1:18000' \
already in use "
"""


def test_the_cause_of_a_failed_start_is_its_last_error_line_without_glogs_prefix():
    assert startup_cause(BUSY_PORT_LOG) == (
        "failed to start HTTP service: Unavailable - Socket '127.0.0.1:18000' already in use"
    )
    assert startup_cause("I1207 13:26:42.4 1 x.cc:1] fine\nW1207 13:26:42.4 1 y.cc:2] a warning") is None


def test_a_port_that_is_bound_is_in_use_and_a_released_one_is_not():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_ports_picked_for_one_server_are_distinct_even_when_free_port_repeats_itself(monkeypatch):
    from sensevoice_pipeline.serving import server as server_mod

    handed = iter([5001, 5001, 5002, 5001, 5003])  # the OS hands a just-released port out again
    monkeypatch.setattr(server_mod, "free_port", lambda: next(handed))
    triton = server_mod.LocalTriton("repo", metrics_port=5002)  # a port the caller gave is kept and avoided
    triton._pick_ports(["http_port", "grpc_port"])
    assert (triton.http_port, triton.grpc_port, triton.metrics_port) == (5001, 5003, 5002)
