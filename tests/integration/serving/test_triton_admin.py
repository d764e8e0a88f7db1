"""Triton's control plane behind a key (issue 28), against real local Tritons: without the key nobody unloads the
serving model or loads code into the server; inference, health, metadata and statistics stay open; the release path
works with the key and says which setting is missing without it. A placeholder or weak key, refused before any
server is asked: tests/unit/serving/test_admin.py."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.admin import (
    ADMIN_HEADER,
    KEY_ENV,
    KEY_FILE_ENV,
    grpc_admin_headers,
)
from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from tests.support.audio import synthetic_clip
from tests.support.triton import TEST_ADMIN_KEY

pytestmark = pytest.mark.triton

# A python model whose initialize() leaves a marker: what an attacker's load request would run inside the server.
PAYLOAD = """
import pathlib
class TritonPythonModel:
    def initialize(self, args):
        pathlib.Path({marker!r}).write_text("code ran inside triton")
    def execute(self, requests):
        return []
"""
PAYLOAD_CONFIG = {
    "name": "intruder",
    "backend": "python",
    "max_batch_size": 0,
    "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [1]}],
    "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [1]}],
}


def http_post(server, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{server.http_url}{path}",
        method="POST",
        data=json.dumps(body or {}).encode(),
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_without_the_key_nobody_unloads_the_serving_model_or_loads_code(fixture_triton, tmp_path):
    marker = tmp_path / "pwned"
    files = {"file:1/model.py": base64.b64encode(PAYLOAD.format(marker=str(marker)).encode()).decode()}
    status, body = http_post(
        fixture_triton,
        "/v2/repository/models/intruder/load",
        {"parameters": {"config": json.dumps(PAYLOAD_CONFIG), **files}},
    )
    assert status == 403 and f"expecting header '{ADMIN_HEADER}'" in body, (status, body)
    status, body = http_post(
        fixture_triton,
        f"/v2/repository/models/{PIPELINE_MODEL}/unload",
        headers={ADMIN_HEADER: "a-guessed-key-0123456789"},
    )
    assert status == 403, (status, body)
    client = grpcclient.InferenceServerClient(fixture_triton.grpc_url)
    try:
        for call in (
            lambda: client.unload_model(PIPELINE_MODEL),
            lambda: client.get_model_repository_index(),
            lambda: client.get_model_config(PIPELINE_MODEL),
            lambda: client.get_log_settings(),
            lambda: client.get_trace_settings(),
            lambda: client.get_system_shared_memory_status(),
        ):
            with pytest.raises(InferenceServerException, match="restricted"):
                call()
        # what serves traffic stays open
        assert client.is_server_live() and client.is_model_ready(PIPELINE_MODEL)
        assert client.get_model_metadata(PIPELINE_MODEL).name == PIPELINE_MODEL
        assert client.get_inference_statistics(PIPELINE_MODEL).model_stats
    finally:
        client.close()
    time.sleep(1)
    assert not marker.exists()
    assert transcribe_sync([synthetic_clip(2.0, seed=1)], "en", url=fixture_triton.grpc_url)[
        0
    ].text.startswith("<|")


def test_the_release_path_sends_the_key_and_says_which_setting_is_missing(fixture_triton, monkeypatch):
    assert releases.TritonControl(fixture_triton.grpc_url).ready_versions(PIPELINE_MODEL) == {
        1
    }  # the session key
    for name in (KEY_ENV, KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        releases.ReleaseError,
        match=f"refused to list its models: no admin key was given; set {KEY_ENV} \\(or {KEY_FILE_ENV}\\)",
    ):
        releases.TritonControl(fixture_triton.grpc_url).ready_versions(PIPELINE_MODEL)
    with pytest.raises(
        releases.ReleaseError, match="refused to unload sensevoice: the admin key was refused"
    ):
        releases.TritonControl(fixture_triton.grpc_url, admin_key="not-the-servers-key-0123").unload(
            PIPELINE_MODEL
        )
    client = grpcclient.InferenceServerClient(fixture_triton.grpc_url)
    try:
        assert client.is_model_ready(PIPELINE_MODEL)  # nothing was unloaded
    finally:
        client.close()


@pytest.mark.timeout(180)
def test_svp_serve_without_a_key_writes_one_only_its_owner_reads_and_locks_with_it(
    tmp_path, fixture_repository
):
    from sensevoice_pipeline.serving.server import free_port

    env = {k: v for k, v in os.environ.items() if k not in (KEY_ENV, KEY_FILE_ENV)}
    grpc = free_port()
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "serve",
            "--repository",
            str(fixture_repository),
            "--grpc-port",
            str(grpc),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in serve.stdout:
            lines.append(line)
            if line.startswith("Triton ready") or serve.poll() is not None:
                break
        key_file = tmp_path / "var" / "triton-admin.key"
        assert any(f"export {KEY_FILE_ENV}={key_file}" in line for line in lines), lines
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert key != TEST_ADMIN_KEY and key not in "".join(lines)
        url = f"127.0.0.1:{grpc}"
        assert releases.TritonControl(url, admin_key=key).ready_versions(PIPELINE_MODEL) == {1}
        with pytest.raises(releases.ReleaseError, match="the admin key was refused"):
            releases.TritonControl(url, admin_key=TEST_ADMIN_KEY).ready_versions(PIPELINE_MODEL)
        client = grpcclient.InferenceServerClient(url)
        try:
            client.get_model_repository_index(headers=grpc_admin_headers(key))
        finally:
            client.close()
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
