"""Steady traffic against real Tritons from background threads, every answer recorded: what a version switch or a
release must not disturb. Two kinds: ``Traffic`` sends raw `sensevoice` requests with tritonclient to one or more
servers; ``ClientTraffic`` sends the fixture model's clip through the project's own client."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import tritonclient.grpc as grpcclient

from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from tests.support.audio import synthetic_clip
from tests.support.fixture_model import CLIPS

CLIP = CLIPS / "en_refund_angry.wav"


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


@dataclass
class ClientAnswer:
    started: float
    ended: float
    version: str | None
    text: str | None
    error: str | None


@dataclass
class ClientTraffic:
    """Unpinned requests, one after another, from a background thread until stopped (bounded: at most
    ``max_requests`` or ``max_seconds``). No client retries: every failure counts."""

    url: str
    max_requests: int = 2000
    max_seconds: float = 120.0
    pause_s: float = 0.02
    answers: list[ClientAnswer] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._audio = sf.read(CLIP, dtype="float32")[0]

    async def _run(self):
        deadline = time.monotonic() + self.max_seconds
        async with SenseVoiceClient(self.url, retries=0, timeout_s=30) as client:
            while (
                not self._stop.is_set()
                and len(self.answers) < self.max_requests
                and time.monotonic() < deadline
            ):
                t = time.monotonic()
                try:
                    r = await client.transcribe(self._audio, "auto", True)
                    self.answers.append(ClientAnswer(t, time.monotonic(), r.model_version, r.text, None))
                except Exception as exc:  # noqa: BLE001 -- counted, not raised
                    self.answers.append(ClientAnswer(t, time.monotonic(), None, None, repr(exc)))
                await asyncio.sleep(self.pause_s)

    def __enter__(self) -> ClientTraffic:
        self._thread.start()
        self.wait_for(3)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, more: int, timeout: float = 60.0) -> None:
        """Until ``more`` further answers have come back."""
        target, deadline = len(self.answers) + more, time.monotonic() + timeout
        while len(self.answers) < target:
            assert self._thread.is_alive() or len(self.answers) >= target, "traffic stopped early"
            assert time.monotonic() < deadline, "traffic stalled"
            time.sleep(0.05)

    def between(self, start: float, end: float = float("inf")) -> list[ClientAnswer]:
        return [a for a in self.answers if a.started >= start and a.ended <= end]
