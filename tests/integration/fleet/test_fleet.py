"""Several Triton servers behind one client (serving/fleet.py, serving/client.py), real processes: two local Triton
servers on one exported repository (the session's `triton` and a second one started here): requests split between
them with the single server's answers; a server SIGKILLed mid-run costs no request, and once restarted on its ports
it is readmitted and answers again. Also: the Connection's host list and the daily DAG's pool, and a new channel to a
server that came back. The balancing policy on a fake clock: tests/unit/serving/test_fleet.py."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.errors import ServingUnavailableError
from sensevoice_pipeline.releases.control import TritonControl
from sensevoice_pipeline.serving.client import (
    ModelNotReadyError,
    RequestRejectedError,
    SenseVoiceClient,
    new_grpc_client,
)
from sensevoice_pipeline.serving.server import LocalTriton, free_port
from tests.support.audio import synthetic_clip
from tests.support.triton import counted, requests_answered

# -- real servers ------------------------------------------------------------------------------------------------------

CLIPS = [synthetic_clip(0.6 + 0.1 * (i % 5), seed=i) for i in range(24)]


@pytest.fixture(scope="module")
def second(exported_repository):
    """A second Triton on the session's repository; ``holder["server"]`` may be replaced by a restarted one."""
    holder = {"server": LocalTriton(exported_repository).start()}
    yield holder
    holder["server"].stop()


def served_since(urls: list[str], before: list[int]) -> list[int]:
    """The `sensevoice` requests each server answered since its count was ``before``."""
    return [requests_answered(u) - b for u, b in zip(urls, before)]


async def transcribe_all(url: str, clips, **kwargs):
    async with SenseVoiceClient(url, **kwargs) as client:
        return [
            (t.text, t.model_version) for t in await asyncio.gather(*(client.transcribe(c) for c in clips))
        ]


@pytest.fixture(scope="module")
def single_answers(triton):
    return asyncio.run(transcribe_all(triton.grpc_url, CLIPS))


@pytest.mark.triton
@pytest.mark.timeout(300)
def test_requests_split_across_two_servers_and_equal_the_single_server_answers(
    triton, second, single_answers
):
    urls = [triton.grpc_url, second["server"].grpc_url]
    before = [requests_answered(u) for u in urls]
    answers = asyncio.run(transcribe_all(",".join(urls), CLIPS, max_concurrency=8))
    served = counted(lambda: served_since(urls, before), lambda s: sum(s) >= len(CLIPS))
    assert answers == single_answers and {v for _, v in answers} == {"1"}
    # Least outstanding requests: the faster server (here the warm one) may take more, but both take a share.
    assert sum(served) == len(CLIPS) and min(served) > 0, served

    # One request at a time: nothing outstanding anywhere, so the tie-break alternates exactly.
    before = [requests_answered(u) for u in urls]
    one_by_one = asyncio.run(transcribe_all(",".join(urls), CLIPS[:8], max_concurrency=1))
    assert one_by_one == single_answers[:8]
    assert counted(lambda: served_since(urls, before), lambda s: sum(s) >= 8) == [4, 4]


@pytest.mark.triton
@pytest.mark.timeout(120)
def test_a_pinned_version_is_asked_of_every_server_and_a_missing_one_fails_as_not_loaded(
    triton, second, single_answers
):
    urls = ",".join([triton.grpc_url, second["server"].grpc_url])
    assert asyncio.run(transcribe_all(urls, CLIPS[:4], version=1, max_concurrency=1)) == single_answers[:4]

    async def missing():
        async with SenseVoiceClient(urls, version=99, backoff_s=0.01) as client:
            with pytest.raises(ModelNotReadyError, match="version 99 is not loaded"):
                await client.transcribe(CLIPS[0])
            return [e.ejected for e in client.fleet.endpoints]

    assert asyncio.run(missing()) == [True, True]  # both asked (at once, no backoff), neither has it


@pytest.mark.triton
@pytest.mark.timeout(120)
def test_a_dead_address_costs_no_request_and_no_backoff(triton, single_answers):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there

    async def run():
        async with SenseVoiceClient(f"{dead},{triton.grpc_url}", backoff_s=30.0) as client:
            t0 = time.perf_counter()
            answers = [
                (t.text, t.model_version)
                for t in await asyncio.gather(*(client.transcribe(c) for c in CLIPS[:8]))
            ]
            return answers, time.perf_counter() - t0, client.fleet.endpoint(dead).ejected

    answers, seconds, ejected = asyncio.run(run())
    assert answers == single_answers[:8] and ejected
    assert seconds < 30.0  # sent elsewhere at once, not after the 30 s backoff


@pytest.mark.timeout(60)
def test_with_every_server_down_the_request_fails_as_unavailable_after_the_usual_retries():
    dead = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))

    async def run():
        async with SenseVoiceClient(dead, retries=2, backoff_s=0.01) as client:
            with pytest.raises(ServingUnavailableError, match="cannot reach Triton"):
                await client.transcribe(CLIPS[0])

    asyncio.run(run())


@pytest.mark.triton
@pytest.mark.timeout(120)
def test_a_refused_request_is_not_sent_to_another_server(triton, second):
    urls = [triton.grpc_url, second["server"].grpc_url]

    async def run():
        async with SenseVoiceClient(",".join(urls), backoff_s=0.01) as client:
            with pytest.raises(RequestRejectedError, match="at least 2 samples"):
                await client.transcribe(np.array([0.1], np.float32))
            return [(e.answered, e.ejected) for e in client.fleet.endpoints]

    # one server refused it (the refusal is its answer), nobody else was asked, nobody was ejected
    assert sorted(asyncio.run(run())) == [(0, False), (1, False)]


@pytest.mark.triton
@pytest.mark.timeout(300)
def test_a_server_killed_mid_run_costs_no_request_and_is_readmitted_once_restarted(
    exported_repository, triton, second, single_answers, caplog
):
    caplog.set_level("INFO", logger="sensevoice_pipeline.serving")
    victim = second["server"]
    ports = {
        "http_port": victim.http_port,
        "grpc_port": victim.grpc_port,
        "metrics_port": victim.metrics_port,
    }
    urls = [triton.grpc_url, victim.grpc_url]
    clips, answers = CLIPS * 3, single_answers * 3

    async def run():
        async with SenseVoiceClient(
            ",".join(urls), max_concurrency=4, probe_base_s=0.2, probe_max_s=1.0, health_check_every_s=1.0
        ) as client:
            killed = asyncio.Event()

            async def kill_when_busy():
                while client.fleet.endpoint(victim.grpc_url).answered < 4:
                    await asyncio.sleep(0.01)
                os.killpg(victim.process.pid, signal.SIGKILL)  # the server and its python stubs, mid-run
                killed.set()

            killer = asyncio.create_task(kill_when_busy())
            got = await asyncio.gather(*(client.transcribe(c) for c in clips))
            await killer
            out_after_kill = client.fleet.endpoint(victim.grpc_url).ejected

            victim.stop()  # reaps the killed process
            restarted = await asyncio.to_thread(lambda: LocalTriton(exported_repository, **ports).start())
            second["server"] = restarted
            deadline = time.monotonic() + 30
            while client.fleet.endpoint(restarted.grpc_url).ejected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            readmitted = not client.fleet.endpoint(restarted.grpc_url).ejected
            before = requests_answered(restarted.grpc_url)
            again = await asyncio.gather(*(client.transcribe(c) for c in CLIPS))
            return got, out_after_kill, readmitted, requests_answered(restarted.grpc_url) - before, again

    got, out_after_kill, readmitted, served_after, again = asyncio.run(run())
    assert [(t.text, t.model_version) for t in got] == answers  # every request answered, none refused
    assert out_after_kill and readmitted
    assert served_after > 0 and [(t.text, t.model_version) for t in again] == single_answers
    logged = caplog.text
    assert f"Triton {victim.grpc_url} ejected" in logged and f"Triton {victim.grpc_url} readmitted" in logged
    assert "sending the request to" in logged  # requests in flight on the killed server went to the other one


# -- Airflow: the Connection's host list, the DAG's pool ---------------------------------------------------------------

AIRFLOW_SCRIPT = textwrap.dedent("""
    from airflow.dag_processing.dagbag import DagBag
    from sensevoice_pipeline.provider.hooks import SenseVoiceTritonHook
    print("URL", SenseVoiceTritonHook().get_url())
    print("URL", SenseVoiceTritonHook("mixed_ports").get_url())
    bag = DagBag(dag_folder=DAGS)
    assert not bag.import_errors, bag.import_errors
    print("POOL", bag.dags["sensevoice_daily"].get_task("transcribe").pool)
""")


@pytest.mark.airflow
@pytest.mark.timeout(180)
def test_the_connection_lists_several_servers_and_transcription_tasks_take_the_triton_pool(tmp_path):
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow

    airflow = LocalAirflow(home=tmp_path / "airflow-home")
    env = airflow.env(
        {
            "AIRFLOW_CONN_SENSEVOICE_TRITON": "sensevoice-triton://triton-0,triton-1:8001",
            "AIRFLOW_CONN_MIXED_PORTS": '{"conn_type": "sensevoice_triton", "host": "gpu-a:8001,gpu-b:8002"}',
            "SVP_TRITON_POOL": "triton_fleet_a",
        }
    )
    script = AIRFLOW_SCRIPT.replace("DAGS", repr(str(airflow.dags_folder)))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("URL ", "POOL "))]
    assert lines == [
        ["URL", "triton-0:8001,triton-1:8001"],
        ["URL", "gpu-a:8001,gpu-b:8002"],
        ["POOL", "triton_fleet_a"],
    ]


# -- a server back on its address is reachable at once over a new channel -------------------------------------------


class LiveOnly(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Triton's ServerLive and nothing else: a server that comes up in a millisecond, so the test does not depend
    on how long a real Triton takes to start compared with gRPC's reconnect backoff."""

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)


def test_a_new_channel_reaches_a_server_that_came_back_while_an_old_one_was_in_reconnect_backoff():
    """gRPC's C core shares subchannels among a process's channels by default: after one channel failed to connect
    (connection refused, reconnect backoff >= 0.8 s), a channel created after the server came up failed at once with
    the stale error. The library's channels (the fleet's clients and probes, TritonControl) have pools of their own."""
    url = f"127.0.0.1:{free_port()}"

    async def scenario():
        old = new_grpc_client(url)
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            await old.is_server_live(client_timeout=5)  # nobody listens: the old channel is now in backoff
        server = grpc.aio.server()
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(LiveOnly(), server)
        server.add_insecure_port(url)
        await server.start()
        try:
            t0 = time.perf_counter()
            fresh = new_grpc_client(url)
            live = await fresh.is_server_live(client_timeout=5)
            control_live = await asyncio.to_thread(
                TritonControl(url).check_live
            )  # the sync client, the same way
            waited = time.perf_counter() - t0
            await fresh.close()
        finally:
            await old.close()
            await server.stop(0)
        return live, control_live, waited

    live, control_live, waited = asyncio.run(scenario())
    assert live and control_live is None  # check_live raises unless live
    assert waited < 0.8  # answered, not waited out the backoff (gRPC's initial 1 s, jitter 0.2)
