"""Async gRPC client for the `sensevoice` Triton model: one utterance per request, language hint and ITN switch per
request, bounded concurrency, a deadline per request, retries with backoff on serving faults.

Every failure is classified once, here (errors.py): the model refusing a request as invalid (gRPC
INVALID_ARGUMENT, which `triton_models` sets only for a bad request) is an :class:`~.errors.InputError` about that
audio; everything else -- unreachable, not ready, deadline, internal error -- is a :class:`~.errors.ServingError`,
retried here with backoff and then raised, so that the task fails instead of recording good files as failed.

The address may list several servers (``a:8001,b:8001``): requests are balanced across the healthy ones, a serving
fault sends the request to another server at once and may eject the server, probes readmit it (serving/fleet.py).
A refused request is never sent elsewhere."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import KeepAliveOptions
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.errors import InputError, ServingError, ServingTimeoutError, ServingUnavailableError
from sensevoice_pipeline.serving.fleet import Endpoint, Fleet, parse_addresses
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from sensevoice_pipeline.speech.alignment import WordTime
from sensevoice_pipeline.speech.languages import language_id
from sensevoice_pipeline.speech.tags import TagConfidences
from sensevoice_pipeline.triton_contract import (
    AUDIO,
    CONFIDENCE_OUTPUTS,
    LANGUAGE,
    OPTIONAL_OUTPUTS,
    TEXT,
    USE_ITN,
    WORDS,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "127.0.0.1:8001"
URL_ENV = "SVP_TRITON_URL"
UNREACHABLE = {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED"}
REJECTED = "StatusCode.INVALID_ARGUMENT"
DEADLINE = "StatusCode.DEADLINE_EXCEEDED"
PROBE_TIMEOUT_S = 2.0
MAX_GRPC_MESSAGE_BYTES = (
    2**31 - 1
)  # tritonclient's own limit (a 30-minute call is ~115 MB of float32 samples)


def grpc_channel_args() -> list[tuple[str, int]]:
    """tritonclient's default channel options (message sizes, keepalive), plus a subchannel pool of the channel's
    own. gRPC's C core shares one subchannel per address among all the channels of a process, and a subchannel
    whose server went away sits in reconnect backoff (1 s, growing to 2 minutes): every channel to that address,
    even one created after the server came back, then fails at once with the stale "connection refused"
    (grpc/grpc#17282). With a pool of its own, a new channel connects for real: the fleet's probe of an ejected
    server, the next task's client after a Triton restart, a release step that waits for a server."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.use_local_subchannel_pool", 1),
    ]


def new_grpc_client(address: str) -> grpcclient.InferenceServerClient:
    """An asyncio Triton client on a channel of its own (:func:`grpc_channel_args`)."""
    return grpcclient.InferenceServerClient(address, channel_args=grpc_channel_args())


def default_url() -> str:
    """``--url`` default: $SVP_TRITON_URL, then 127.0.0.1:8001. Either may list several servers, comma-separated."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


class TritonClientError(ServingError):
    """Triton failed to answer (internal error, crashed model, ...): a serving fault, never a fact about the audio."""


class TritonUnavailableError(TritonClientError, ServingUnavailableError):
    """The server cannot be reached (down, wrong address, or restarting beyond the retry budget)."""


class ModelNotReadyError(TritonClientError, ServingUnavailableError):
    """The server answers but the model (or the pinned version) is not loaded."""


class TritonDeadlineError(TritonClientError, ServingTimeoutError):
    """The server did not answer within the request's deadline."""


class RequestRejectedError(InputError):
    """The model refused this request's audio or hint as invalid (gRPC INVALID_ARGUMENT): a fault of the input."""


@dataclass(frozen=True)
class Transcription:
    text: str
    model_name: str
    model_version: str
    # all None when the server offers no confidences or the answering version's encoder had none
    confidences: TagConfidences = TagConfidences()
    # word times from the start of the request's audio; None when the server's model offers no WORDS
    words: tuple[WordTime, ...] | None = None


@dataclass(frozen=True)
class Request:
    audio: np.ndarray
    language: str = "auto"
    use_itn: bool = True


class SenseVoiceClient:
    """``async with SenseVoiceClient(url) as client: await client.transcribe(audio, "yue")``

    ``url`` may name several servers, ``"a:8001,b:8001"`` (serving/fleet.py: balancing, ejection, readmission):
    each request goes to one healthy server; a serving fault there sends it to another healthy server at once, and
    the backoff only runs between rounds in which every healthy server was tried. A refused request
    (RequestRejectedError) is never sent elsewhere: its audio is the fault. With one address everything is as it was
    before fleets (the retries with backoff on that address). Health probes of a fleet run in the background while
    the client is open."""

    def __init__(
        self,
        url: str | None = None,
        model: str = PIPELINE_MODEL,
        version: str | int | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        deadline_retries: int = 1,
        probe_base_s: float = 1.0,
        probe_max_s: float = 30.0,
        health_check_every_s: float = 10.0,
        faults_to_eject: int = 3,
    ):
        self.url = url or default_url()
        self.model = model
        self.version = "" if version in (None, "") else str(version)
        self.timeout_s = timeout_s
        self.retries = retries
        self.deadline_retries = min(deadline_retries, retries)  # each costs a whole timeout_s
        self.backoff_s = backoff_s
        self.fleet = Fleet(
            parse_addresses(self.url),
            probe_base_s=probe_base_s,
            probe_max_s=probe_max_s,
            check_every_s=health_check_every_s,
            faults_to_eject=faults_to_eject,
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._clients: dict[str, grpcclient.InferenceServerClient] = {}
        self._replaced: list[
            grpcclient.InferenceServerClient
        ] = []  # closed with the client (requests may be on them)
        self._prober: asyncio.Task | None = None
        self._outputs: dict[
            str, list[str]
        ] = {}  # per server: the outputs its model offers of TEXT + confidences

    async def __aenter__(self) -> SenseVoiceClient:
        self._clients = {address: new_grpc_client(address) for address in self.fleet.addresses}
        if not self.fleet.single:
            self._prober = asyncio.create_task(self._probe_forever(), name=f"triton-probes {self.url}")
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)
        clients, self._clients = [*self._clients.values(), *self._replaced], {}
        self._replaced = []
        for client in clients:
            await client.close()

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        """The gRPC client of the first address (the only one, without a fleet)."""
        return self._client_for(self.fleet.addresses[0])

    def _client_for(self, address: str) -> grpcclient.InferenceServerClient:
        if not self._clients:
            raise TritonClientError("use the client inside `async with SenseVoiceClient(...)`")
        return self._clients[address]

    async def check_ready(self) -> str:
        """Raise a clear error unless a server is up with the model ready; returns the ready version. In a fleet,
        servers that are not ready are ejected (and probed again later); the error is raised only when none is."""
        if self.fleet.single:
            return await self._ready_version(self.fleet.addresses[0])
        outcomes = await asyncio.gather(
            *(self._ready_version(a) for a in self.fleet.addresses), return_exceptions=True
        )
        ready = {}
        for endpoint, outcome in zip(self.fleet.endpoints, outcomes):
            if isinstance(outcome, ServingError):
                self.fleet.server_out(endpoint, str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                ready[endpoint.address] = outcome
        if not ready:
            raise outcomes[0]
        if (
            len(set(ready.values())) > 1
        ):  # a rolling release in progress, or drift: each answer names its version
            log.warning(
                "Triton servers answer with different %s versions: %s",
                self.model,
                ", ".join(f"{a}: {v}" for a, v in ready.items()),
            )
        return next(iter(ready.values()))

    async def _ready_version(self, address: str) -> str:
        client = self._client_for(address)
        try:
            live = await client.is_server_live(client_timeout=5)
        except InferenceServerException as exc:
            raise TritonUnavailableError(f"cannot reach Triton at {address}: {exc.message()}") from exc
        if not live:
            raise TritonUnavailableError(f"Triton at {address} is not live")
        if not await client.is_model_ready(self.model, self.version, client_timeout=5):
            pinned = f" version {self.version}" if self.version else ""
            raise ModelNotReadyError(f"model {self.model}{pinned} is not loaded on Triton at {address}")
        meta = await client.get_model_metadata(self.model, self.version, client_timeout=5)
        return max(meta.versions, key=int) if not self.version else self.version

    async def transcribe(
        self, audio: np.ndarray, language: str = "auto", use_itn: bool = True
    ) -> Transcription:
        language_id(language)  # a clear error before anything is sent
        inputs = self._inputs(np.asarray(audio, dtype=np.float32).reshape(1, -1), language, use_itn)
        async with self._semaphore:
            result = await self._infer_with_retries(inputs)
        text = result.as_numpy(TEXT.name).reshape(-1)[0]
        response = result.get_response()
        return Transcription(
            text=text.decode("utf-8") if isinstance(text, bytes) else str(text),
            model_name=response.model_name,
            model_version=response.model_version,  # the version of the server that answered
            confidences=_confidences(result),
            words=_words(result),
        )

    async def transcribe_many(self, requests: Iterable[Request]) -> list[Transcription]:
        """All requests at once (bounded by ``max_concurrency``); results in the order given."""
        return list(
            await asyncio.gather(*(self.transcribe(r.audio, r.language, r.use_itn) for r in requests))
        )

    @staticmethod
    def _inputs(audio: np.ndarray, language: str, use_itn: bool) -> list[grpcclient.InferInput]:
        audio_in = grpcclient.InferInput(AUDIO.name, list(audio.shape), AUDIO.dtype)
        audio_in.set_data_from_numpy(audio)
        lang_in = grpcclient.InferInput(LANGUAGE.name, [1, 1], "BYTES")  # Triton STRING on the wire
        lang_in.set_data_from_numpy(np.array([[language.encode("utf-8")]], dtype=np.object_))
        itn_in = grpcclient.InferInput(USE_ITN.name, [1, 1], USE_ITN.dtype)
        itn_in.set_data_from_numpy(np.array([[use_itn]], dtype=bool))
        return [audio_in, lang_in, itn_in]

    async def _infer_with_retries(self, inputs):
        """One request until it is answered: each round tries the healthy servers one after the other (at once: a
        request is idempotent), then the backoff and the next round, while ``_worth_retrying`` allows."""
        delay, attempt = self.backoff_s, 0
        tried: set[str] = set()
        endpoint = self.fleet.pick()
        while True:
            tried.add(endpoint.address)
            self.fleet.sent(endpoint)
            try:
                outputs = await self._outputs_of(endpoint.address)
                result = await self._client_for(endpoint.address).infer(
                    self.model,
                    inputs,
                    model_version=self.version,
                    outputs=[grpcclient.InferRequestedOutput(name) for name in outputs],
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as exc:
                cause, error = exc, _translate(exc, endpoint.address, self.model, self.version)
            else:
                self.fleet.answered(endpoint)
                return result
            finally:
                self.fleet.done(endpoint)
            if isinstance(error, RequestRejectedError):
                self.fleet.answered(endpoint)  # the server is fine; the audio is the fault, on every server
                raise error from cause
            self._judge(endpoint, error)
            elsewhere = self.fleet.pick(exclude=tried) if _fails_over(error) else None
            if elsewhere is not None:
                log.warning("%s; sending the request to %s", error, elsewhere.address)
                endpoint = elsewhere
                continue
            if not self._worth_retrying(error, attempt):
                raise error from cause
            log.warning("%s; retry %d in %.1f s", error, attempt + 1, delay)
            await asyncio.sleep(delay)
            delay, attempt, tried = delay * 2, attempt + 1, set()
            endpoint = self.fleet.pick()

    async def _outputs_of(self, address: str) -> list[str]:
        """TEXT, plus the optional outputs (confidences, WORDS) the server's model metadata lists (asked once per
        server)."""
        if address not in self._outputs:
            meta = await self._client_for(address).get_model_metadata(
                self.model, self.version, client_timeout=self.timeout_s
            )
            offered = {output.name for output in meta.outputs}
            self._outputs[address] = [TEXT.name, *(name for name in OPTIONAL_OUTPUTS if name in offered)]
        return self._outputs[address]

    def _judge(self, endpoint: Endpoint, error: ServingError) -> None:
        """What a serving fault says about the server that answered it (fleet.py: ejection)."""
        if isinstance(error, ServingUnavailableError):  # unreachable, or the model is not ready there
            self.fleet.server_out(endpoint, str(error))
        elif not isinstance(error, TritonDeadlineError):  # a slow answer is not a dead server
            self.fleet.server_fault(endpoint, str(error))

    async def _probe_forever(self) -> None:
        """The fleet's health probes, for as long as the client is open."""
        while True:
            due = self.fleet.due_for_probe()
            if due:
                await asyncio.gather(*(self._probe(endpoint) for endpoint in due))
            await asyncio.sleep(min(max(self.fleet.seconds_to_next_probe(), 0.05), 1.0))

    async def _probe(self, endpoint: Endpoint) -> None:
        """Server live and the model (the pinned version, if any) ready: Triton's health API (KServe v2 protocol
        ServerLive / ModelReady). An ejected server is probed over a new channel, which replaces its old one when
        the probe passes: the old channel may sit in gRPC's reconnect backoff (up to minutes) after the server died."""
        fresh = endpoint.ejected
        client = new_grpc_client(endpoint.address) if fresh else self._client_for(endpoint.address)
        try:
            live = await client.is_server_live(client_timeout=PROBE_TIMEOUT_S)
            ready = live and await client.is_model_ready(
                self.model, self.version, client_timeout=PROBE_TIMEOUT_S
            )
            reason = (
                "" if ready else "not live" if not live else f"model {self.model} {self.version} not ready"
            )
        except Exception as exc:  # noqa: BLE001 -- any failure of a probe means: not healthy (the prober must live)
            ready, reason = (
                False,
                (exc.message() if isinstance(exc, InferenceServerException) else "") or repr(exc),
            )
        if fresh and ready and self._clients:
            self._replaced.append(self._clients[endpoint.address])
            self._clients[endpoint.address] = client
        elif fresh:
            await client.close()
        self.fleet.probed(endpoint, ready, reason)

    def _worth_retrying(self, error: Exception, attempt: int) -> bool:
        """Serving faults are retried (a restarting server, a transient internal error); a rejected request or a
        model that is not loaded will not change by asking again."""
        if isinstance(error, (RequestRejectedError, ModelNotReadyError)):
            return False
        if isinstance(error, TritonDeadlineError):
            return attempt < self.deadline_retries
        return attempt < self.retries


def _fails_over(error: ServingError) -> bool:
    """Sent to another server at once: unreachable, model not ready there, internal error. Not a deadline (it already
    cost a whole ``timeout_s``; the backoff rounds and ``deadline_retries`` bound it, as with one server)."""
    return not isinstance(error, TritonDeadlineError)


def _confidences(result) -> TagConfidences:
    """The answer's CONFIDENCE / EMOTION_PROBS (NaN: null), all None when it has neither."""
    confidence, emotion_probs = (
        result.as_numpy(name) for name in CONFIDENCE_OUTPUTS
    )  # None when not asked for
    return TagConfidences.from_vectors(
        None if confidence is None else confidence.reshape(-1).tolist(),
        None if emotion_probs is None else emotion_probs.reshape(-1).tolist(),
    )


def _words(result) -> tuple[WordTime, ...] | None:
    """The answer's WORDS (``[[word, start_s, end_s], ...]``), None when it has none."""
    value = result.as_numpy(WORDS.name)
    if value is None:
        return None
    raw = value.reshape(-1)[0]
    items = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    return tuple(WordTime(str(word), float(start), float(end)) for word, start, end in items)


def _translate(
    exc: InferenceServerException, url: str, model: str, version: str
) -> InputError | ServingError:
    status, message = str(exc.status()), exc.message() or str(exc)
    if status == REJECTED:
        return RequestRejectedError(f"the model refused the audio: {message}")
    if status in UNREACHABLE:
        return TritonUnavailableError(f"cannot reach Triton at {url}: {message}")
    if status == DEADLINE:
        return TritonDeadlineError(f"Triton at {url} did not answer within the deadline: {message}")
    if (
        "unknown model" in message
        or "is not ready" in message
        or "unavailable model" in message
        or "is not healthy" in message
    ):  # a crashed python stub: the model is gone until Triton restarts
        pinned = f" version {version}" if version else ""
        return ModelNotReadyError(f"model {model}{pinned} is not loaded on Triton at {url}: {message}")
    return TritonClientError(f"Triton at {url} failed ({status.removeprefix('StatusCode.')}): {message}")


def transcribe_sync(
    audios: Sequence[np.ndarray],
    language: str = "auto",
    use_itn: bool = True,
    url: str | None = None,
    **kwargs,
) -> list[Transcription]:
    """Blocking helper for scripts: transcribe several utterances with the same hint."""

    async def run():
        async with SenseVoiceClient(url, **kwargs) as client:
            await client.check_ready()
            return await client.transcribe_many(Request(a, language, use_itn) for a in audios)

    return asyncio.run(run())
