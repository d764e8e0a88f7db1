"""A version switch has no N→N window (issue 15, item 5): `sensevoice` N calls `sensevoice_encoder` N by BLS, and a
load that removes version N of `sensevoice` returns while N is still UNLOADING with the requests it took (seen
here: Triton's repository index). Promote and roll back on a real local Triton under steady concurrent traffic
sent with tritonclient; every change of the encoder set must come when no `sensevoice` version outside it is live
on the server, and no request may fail.

With the old order (the encoder set shrunk as soon as the `sensevoice` load returned), the rollback's encoder load
was asked for while `sensevoice` 2 was still UNLOADING, and this test fails on that check."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.admin import grpc_admin_headers
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, META_FILE, MODELS, PIPELINE_MODEL
from sensevoice_pipeline.serving.server import LocalTriton

from .conftest import TEST_ADMIN_KEY, synthetic_clip

GRPC_KEY = grpc_admin_headers(TEST_ADMIN_KEY)  # every Triton of the session takes it (conftest)


def repository_with_two_versions(source: Path, dst: Path) -> Path:
    """A copy of an exported repository plus version 2 (a file copy of version 1, its meta saying 2); 1 serves."""
    repo = shutil.copytree(source, dst)
    for model in MODELS:
        shutil.copytree(repo / model / "1", repo / model / "2")
    meta = repo / PIPELINE_MODEL / "2" / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 2}))
    releases.promote(repo, 1, url=None)
    return repo


LIVE_STATES = {"READY", "LOADING", "UNLOADING"}  # a version in these still runs (or will run) requests


def live_versions(url: str, model: str) -> set[int]:
    """Versions of ``model`` the server's repository index shows READY, LOADING or UNLOADING."""
    client = grpcclient.InferenceServerClient(url)
    try:
        index = client.get_model_repository_index(client_timeout=10, headers=GRPC_KEY)
    finally:
        client.close()
    return {int(m.version) for m in index.models if m.name == model and m.state in LIVE_STATES and m.version}


def settled_versions(url: str, model: str, timeout_s: float = 60.0) -> set[int]:
    """The READY versions of ``model`` once none is LOADING or UNLOADING any more (a removed version drains after
    the load that removed it returned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        client = grpcclient.InferenceServerClient(url)
        try:
            index = client.get_model_repository_index(client_timeout=10, headers=GRPC_KEY)
        finally:
            client.close()
        states = {(int(m.version), m.state) for m in index.models if m.name == model and m.version}
        if not any(state in ("LOADING", "UNLOADING") for _, state in states) or time.monotonic() > deadline:
            return {v for v, state in states if state == "READY"}
        time.sleep(0.1)


@dataclass
class Answer:
    url: str
    started: float
    ended: float
    version: str | None
    error: str | None


@dataclass
class Traffic:
    """Unpinned `sensevoice` requests through tritonclient (gRPC), ``streams`` at a time per server, from background
    threads until stopped; no retries, so every failure counts. Long enough utterances that a version being removed
    still holds requests when the load that removes it returns."""

    urls: list[str]
    streams: int = 3
    seconds_of_audio: float = 6.0
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, i), daemon=True)
            for url in self.urls
            for i in range(self.streams)
        ]

    def _inputs(self, seed: int) -> list[grpcclient.InferInput]:
        audio = synthetic_clip(self.seconds_of_audio, seed)[None, :]
        tensors = [
            grpcclient.InferInput("AUDIO", list(audio.shape), "FP32"),
            grpcclient.InferInput("LANGUAGE", [1, 1], "BYTES"),
            grpcclient.InferInput("USE_ITN", [1, 1], "BOOL"),
        ]
        tensors[0].set_data_from_numpy(audio)
        tensors[1].set_data_from_numpy(np.array([[b"auto"]], dtype=object))
        tensors[2].set_data_from_numpy(np.array([[True]]))
        return tensors

    def _run(self, url: str, seed: int) -> None:
        client = grpcclient.InferenceServerClient(url)  # one per thread: tritonclient clients are not shared
        inputs = self._inputs(seed)
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            try:
                result = client.infer(PIPELINE_MODEL, inputs, client_timeout=60)
                self.answers.append(
                    Answer(url, t, time.monotonic(), result.get_response().model_version, None)
                )
            except Exception as exc:  # noqa: BLE001 -- counted, not raised
                self.answers.append(Answer(url, t, time.monotonic(), None, " ".join(str(exc).split())[:300]))
        client.close()

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        self.wait_for(2 * len(self._threads))
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def wait_for(self, more: int, timeout: float = 90.0) -> None:
        target, deadline = len(self.answers) + more, time.monotonic() + timeout
        while len(self.answers) < target:
            assert time.monotonic() < deadline, "traffic stalled"
            time.sleep(0.05)

    def wait_for_each(self, since: float, timeout: float = 90.0) -> None:
        """Until every server has answered a request started after ``since`` (a loaded machine can starve one
        stream for a while, so a count of answers is not enough)."""
        deadline = time.monotonic() + timeout
        while any(not self.versions_since(since, url) for url in self.urls):
            assert time.monotonic() < deadline, f"not every server answered within {timeout:.0f} s"
            time.sleep(0.1)

    def failures(self) -> list[str]:
        return [a.error for a in self.answers if a.error]

    def versions_since(self, t: float, url: str | None = None) -> set[str | None]:
        return {a.version for a in self.answers if a.started >= t and (url is None or a.url == url)}


class EncoderChanges:
    """Every encoder load the release operations ask of a server, with what the server's index showed live of
    `sensevoice` at that moment and the encoder versions the configs then named. A spy: the real load runs."""

    def __init__(self, repo: Path, monkeypatch: pytest.MonkeyPatch):
        self.repo, self.seen = repo, []
        real_load = releases.TritonControl.load

        def load(control, model, config=None, files=None):
            if model == ENCODER_MODEL:
                self.seen.append(
                    (
                        control.url,
                        live_versions(control.url, PIPELINE_MODEL),
                        set(releases.policy_versions(self.repo, ENCODER_MODEL)),
                    )
                )
            return real_load(control, model, config=config, files=files)

        monkeypatch.setattr(releases.TritonControl, "load", load)

    def too_early(self) -> list[str]:
        """The changes asked for while a `sensevoice` version whose encoder they drop was still live."""
        return [
            f"{url}: encoder set {sorted(encoders)} while sensevoice {sorted(live)} live"
            for url, live, encoders in self.seen
            if not live <= encoders
        ]


@pytest.fixture()
def switch_repo(exported_repository, tmp_path) -> Path:
    return repository_with_two_versions(exported_repository, tmp_path / "model_repository")


def test_promote_and_rollback_keep_each_encoder_until_its_pipeline_version_is_gone(switch_repo, monkeypatch):
    repo = switch_repo
    with LocalTriton(repo) as server:
        url = server.grpc_url
        changes = EncoderChanges(repo, monkeypatch)
        with Traffic([url]) as traffic:
            promoted = releases.promote(repo, 2, url)
            t_promoted = time.monotonic()
            traffic.wait_for(6)
            rolled = releases.rollback(repo, url)  # 2 → 1: version 2 of both models leaves
            t_rolled = time.monotonic()
            traffic.wait_for(6)
        assert settled_versions(url, ENCODER_MODEL) == {1} and settled_versions(url, PIPELINE_MODEL) == {1}

    assert promoted["serving"] == 2 and rolled["serving"] == 1 and rolled["encoder_versions"] == [1]
    assert any(not encoders >= {2} for _, _, encoders in changes.seen), "the rollback never dropped encoder 2"
    assert changes.too_early() == []
    failures = traffic.failures()
    assert not failures, f"{len(failures)} of {len(traffic.answers)} requests failed: {failures[:3]}"
    assert traffic.versions_since(t_promoted) >= {"2"} and traffic.versions_since(t_rolled) == {"1"}
    print(f"\n{len(traffic.answers)} requests, 0 failed; encoder changes: {changes.seen}")
