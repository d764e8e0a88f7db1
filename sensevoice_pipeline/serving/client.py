"""Async gRPC client for the `sensevoice` Triton model: one utterance per request, language hint and ITN switch per
request, bounded concurrency, a deadline per request, retries with backoff on serving faults.

Every failure is classified once, here (errors.py): the model refusing a request as invalid (gRPC
INVALID_ARGUMENT, which `triton_models` sets only for a bad request) is an :class:`~.errors.InputError` about that
audio; everything else -- unreachable, not ready, deadline, internal error -- is a :class:`~.errors.ServingError`,
retried here with backoff and then raised, so that the task fails instead of recording good files as failed."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.errors import InputError, ServingError, ServingTimeoutError, ServingUnavailableError
from sensevoice_pipeline.speech.languages import language_id
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL

log = logging.getLogger(__name__)

DEFAULT_URL = "127.0.0.1:8001"
URL_ENV = "SVP_TRITON_URL"
UNREACHABLE = {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED"}
REJECTED = "StatusCode.INVALID_ARGUMENT"
DEADLINE = "StatusCode.DEADLINE_EXCEEDED"


def default_url() -> str:
    """``--url`` default: $SVP_TRITON_URL, then 127.0.0.1:8001."""
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


@dataclass(frozen=True)
class Request:
    audio: np.ndarray
    language: str = "auto"
    use_itn: bool = True


class SenseVoiceClient:
    """``async with SenseVoiceClient(url) as client: await client.transcribe(audio, "yue")``"""

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
    ):
        self.url = url or default_url()
        self.model = model
        self.version = "" if version in (None, "") else str(version)
        self.timeout_s = timeout_s
        self.retries = retries
        self.deadline_retries = min(deadline_retries, retries)  # each costs a whole timeout_s
        self.backoff_s = backoff_s
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._client: grpcclient.InferenceServerClient | None = None

    async def __aenter__(self) -> "SenseVoiceClient":
        self._client = grpcclient.InferenceServerClient(self.url)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            raise TritonClientError("use the client inside `async with SenseVoiceClient(...)`")
        return self._client

    async def check_ready(self) -> str:
        """Raise a clear error unless the server is up and the model is ready; returns the ready version."""
        try:
            live = await self.client.is_server_live(client_timeout=5)
        except InferenceServerException as exc:
            raise TritonUnavailableError(f"cannot reach Triton at {self.url}: {exc.message()}") from exc
        if not live:
            raise TritonUnavailableError(f"Triton at {self.url} is not live")
        if not await self.client.is_model_ready(self.model, self.version, client_timeout=5):
            pinned = f" version {self.version}" if self.version else ""
            raise ModelNotReadyError(f"model {self.model}{pinned} is not loaded on Triton at {self.url}")
        meta = await self.client.get_model_metadata(self.model, self.version, client_timeout=5)
        return max(meta.versions, key=int) if not self.version else self.version

    async def transcribe(self, audio: np.ndarray, language: str = "auto", use_itn: bool = True) -> Transcription:
        language_id(language)  # a clear error before anything is sent
        inputs = self._inputs(np.asarray(audio, dtype=np.float32).reshape(1, -1), language, use_itn)
        async with self._semaphore:
            result = await self._infer_with_retries(inputs)
        text = result.as_numpy("TEXT").reshape(-1)[0]
        response = result.get_response()
        return Transcription(
            text=text.decode("utf-8") if isinstance(text, bytes) else str(text),
            model_name=response.model_name,
            model_version=response.model_version,
        )

    async def transcribe_many(self, requests: Iterable[Request]) -> list[Transcription]:
        """All requests at once (bounded by ``max_concurrency``); results in the order given."""
        return list(
            await asyncio.gather(*(self.transcribe(r.audio, r.language, r.use_itn) for r in requests))
        )

    @staticmethod
    def _inputs(audio: np.ndarray, language: str, use_itn: bool) -> list[grpcclient.InferInput]:
        audio_in = grpcclient.InferInput("AUDIO", list(audio.shape), "FP32")
        audio_in.set_data_from_numpy(audio)
        lang_in = grpcclient.InferInput("LANGUAGE", [1, 1], "BYTES")
        lang_in.set_data_from_numpy(np.array([[language.encode("utf-8")]], dtype=np.object_))
        itn_in = grpcclient.InferInput("USE_ITN", [1, 1], "BOOL")
        itn_in.set_data_from_numpy(np.array([[use_itn]], dtype=bool))
        return [audio_in, lang_in, itn_in]

    async def _infer_with_retries(self, inputs):
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return await self.client.infer(
                    self.model,
                    inputs,
                    model_version=self.version,
                    outputs=[grpcclient.InferRequestedOutput("TEXT")],
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as exc:
                error = _translate(exc, self.url, self.model, self.version)
                if not self._worth_retrying(error, attempt):
                    raise error from exc
                log.warning("%s; retry %d in %.1f s", error, attempt + 1, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _worth_retrying(self, error: Exception, attempt: int) -> bool:
        """Serving faults are retried (a restarting server, a transient internal error); a rejected request or a
        model that is not loaded will not change by asking again."""
        if isinstance(error, (RequestRejectedError, ModelNotReadyError)):
            return False
        if isinstance(error, TritonDeadlineError):
            return attempt < self.deadline_retries
        return attempt < self.retries


def _translate(exc: InferenceServerException, url: str, model: str, version: str) -> InputError | ServingError:
    status, message = str(exc.status()), exc.message() or str(exc)
    if status == REJECTED:
        return RequestRejectedError(f"the model refused the audio: {message}")
    if status in UNREACHABLE:
        return TritonUnavailableError(f"cannot reach Triton at {url}: {message}")
    if status == DEADLINE:
        return TritonDeadlineError(f"Triton at {url} did not answer within the deadline: {message}")
    if ("unknown model" in message or "is not ready" in message or "unavailable model" in message
            or "is not healthy" in message):  # a crashed python stub: the model is gone until Triton restarts
        pinned = f" version {version}" if version else ""
        return ModelNotReadyError(f"model {model}{pinned} is not loaded on Triton at {url}: {message}")
    return TritonClientError(f"Triton at {url} failed ({status.removeprefix('StatusCode.')}): {message}")


def transcribe_sync(
    audios: Sequence[np.ndarray], language: str = "auto", use_itn: bool = True, url: str | None = None, **kwargs
) -> list[Transcription]:
    """Blocking helper for scripts: transcribe several utterances with the same hint."""

    async def run():
        async with SenseVoiceClient(url, **kwargs) as client:
            await client.check_ready()
            return await client.transcribe_many(Request(a, language, use_itn) for a in audios)

    return asyncio.run(run())
