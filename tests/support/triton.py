"""The exported models the tests serve, a real local Triton on them, and what the session's Tritons are locked with."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

# Every Triton of the session locks its control plane with this key, and every release call sends it
# (serving/admin.py; tests/conftest.py sets it as SVP_TRITON_ADMIN_KEY); tests of the lock itself start servers with
# keys of their own.
TEST_ADMIN_KEY = "svp-test-admin-key-0123456789"


def export_fresh_repository(model_dir: Path, repo: Path) -> Path:
    """``model_dir`` exported (fp32, legacy exporter) as version 1 of a new repository at ``repo``."""
    from sensevoice_export.pipeline import run_export

    result = run_export(str(model_dir), repo, "fp32", "legacy", progress=lambda *_: None)
    assert result.version == 1
    return repo


def serve(repository: Path):
    """A real local Triton on ``repository`` for as long as the fixture lives."""
    from sensevoice_pipeline.serving.server import LocalTriton

    with LocalTriton(repository) as server:
        yield server


def funasr_text(auto, audio: np.ndarray, language: str, use_itn: bool) -> str:
    """What funasr's own AutoModel ``auto`` answers for ``audio``."""
    from sensevoice_export.checkpoint import quiet_funasr

    with quiet_funasr():
        return auto.generate(input=audio, language=language, use_itn=use_itn, disable_pbar=True)[0]["text"]


T = TypeVar("T")


def requests_answered(url: str, model: str = "sensevoice", version: str = "") -> int:
    """Triton's own count of the requests ``model`` (``version``, or all versions) answered successfully."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model, str(version), client_timeout=10)
        return sum(s.inference_stats.success.count for s in stats.model_stats)
    finally:
        client.close()


def counted(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """``read()`` once ``done`` holds for it (or after ``timeout_s``, for the caller's assertion to show).

    Triton records an execution's statistics after its response has gone out: under load the last request of a burst
    can be counted a moment after the client has its answer, so a count read straight after the answers is short."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


LIVE_STATES = {"READY", "LOADING", "UNLOADING"}  # a version in these still runs (or will run) requests


def live_versions(url: str, model: str) -> set[int]:
    """Versions of ``model`` the server's repository index shows READY, LOADING or UNLOADING."""
    import tritonclient.grpc as grpcclient

    from sensevoice_pipeline.serving.admin import grpc_admin_headers

    client = grpcclient.InferenceServerClient(url)
    try:
        index = client.get_model_repository_index(
            client_timeout=10, headers=grpc_admin_headers(TEST_ADMIN_KEY)
        )
    finally:
        client.close()
    return {int(m.version) for m in index.models if m.name == model and m.state in LIVE_STATES and m.version}


def settled_versions(url: str, model: str, timeout_s: float = 60.0) -> set[int]:
    """The READY versions of ``model`` once none is LOADING or UNLOADING any more (a removed version drains after
    the load that removed it returned)."""
    import tritonclient.grpc as grpcclient

    from sensevoice_pipeline.serving.admin import grpc_admin_headers

    deadline = time.monotonic() + timeout_s
    while True:
        client = grpcclient.InferenceServerClient(url)
        try:
            index = client.get_model_repository_index(
                client_timeout=10, headers=grpc_admin_headers(TEST_ADMIN_KEY)
            )
        finally:
            client.close()
        states = {(int(m.version), m.state) for m in index.models if m.name == model and m.version}
        if not any(state in ("LOADING", "UNLOADING") for _, state in states) or time.monotonic() > deadline:
            return {v for v, state in states if state == "READY"}
        time.sleep(0.1)


def repository_with_two_versions(source: Path, dst: Path) -> Path:
    """A copy of an exported repository plus version 2 (a file copy of version 1, its meta saying 2); 1 serves."""
    import json
    import shutil

    from sensevoice_pipeline import releases
    from sensevoice_pipeline.serving.repository import META_FILE, MODELS, PIPELINE_MODEL

    repo = shutil.copytree(source, dst)
    for model in MODELS:
        shutil.copytree(repo / model / "1", repo / model / "2")
    meta = repo / PIPELINE_MODEL / "2" / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 2}))
    releases.promote(repo, 1, url=None)
    return repo
