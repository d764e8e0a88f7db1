"""Serving faults on a real Triton: the fixture model with a faulty encoder (tests/support/fault_models; the language
hint picks the fault). One poisoned request fails alone inside its dynamic batch, a malformed request is refused as
INVALID_ARGUMENT (the client's RequestRejectedError), and a stall runs into the client's deadline."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.errors import ServingError
from sensevoice_pipeline.serving.client import (
    RequestRejectedError,
    SenseVoiceClient,
    TritonClientError,
    TritonDeadlineError,
)
from tests.support.fault_models import (
    DEFAULT_STALL_S,
    RAISE_LANGUAGE,
    STALL_LANGUAGE,
    model_statistics,
)
from tests.support.fixture_model import SPEECH_CLIPS as SPEECH
from tests.support.fixture_model import clip, expected_text

pytestmark = pytest.mark.triton

FAST = {"backoff_s": 0.01}  # a fault that is retried fails again: do not wait for it


async def one_by_one(url: str, names: list[str]) -> list[str]:
    async with SenseVoiceClient(url) as client:
        return [(await client.transcribe(clip(n), "auto")).text for n in names]


@pytest.mark.timeout(300)
def test_a_poisoned_request_fails_alone_and_the_rest_of_its_dynamic_batch_is_answered(fault_triton):
    names, poisoned = SPEECH[:8], 3
    alone = asyncio.run(one_by_one(fault_triton.grpc_url, names))
    assert alone == [expected_text(n) for n in names]  # the wrapped encoder is the real one

    async def together():
        async with SenseVoiceClient(fault_triton.grpc_url, max_concurrency=8, retries=1, **FAST) as client:
            hints = [RAISE_LANGUAGE if i == poisoned else "auto" for i in range(len(names))]
            return await asyncio.gather(
                *(client.transcribe(clip(n), h) for n, h in zip(names, hints)), return_exceptions=True
            )

    before = model_statistics(fault_triton.grpc_url)
    results = asyncio.run(together())
    after = model_statistics(fault_triton.grpc_url)

    error = results.pop(poisoned)
    assert isinstance(error, ServingError) and not isinstance(error, RequestRejectedError), repr(error)
    assert (
        isinstance(error, TritonClientError)
        and "injected encoder fault" in str(error)
        and "INTERNAL" in str(error)
    )
    assert [r.text for r in results] == alone[:poisoned] + alone[poisoned + 1 :]
    # The 8 were one dynamic batch (then the poisoned request's one retry ran alone).
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert (requests, executions) == (9, 2)
    assert after["batches"].get(8, 0) - before["batches"].get(8, 0) == 1


@pytest.mark.timeout(300)
def test_a_malformed_request_is_rejected_as_invalid_argument_and_the_server_keeps_serving(fault_triton):
    url, good = fault_triton.grpc_url, SPEECH[0]
    bad = {
        "one sample": (np.array([0.1], np.float32), "at least 2 samples"),
        "NaN": (np.full(1600, np.nan, np.float32), "NaN or Inf"),
    }

    async def mixed():
        # bad and good requests sent at once, so that they share a dynamic batch
        async with SenseVoiceClient(url, max_concurrency=8, **FAST) as client:
            audios = [clip(good), *(audio for audio, _ in bad.values()), clip(good)]
            return await asyncio.gather(
                *(client.transcribe(a, "auto") for a in audios), return_exceptions=True
            )

    first, *rejected, last = asyncio.run(mixed())
    assert first.text == last.text == expected_text(good)
    for error, (name, (_, message)) in zip(rejected, bad.items()):
        assert isinstance(error, RequestRejectedError) and message in str(error), (name, repr(error))

    async def raw_status(language: str) -> str:
        """An unknown hint, sent past the client's own check: the model's answer's gRPC status."""
        client = grpcaio.InferenceServerClient(url)
        tensors = [
            ("AUDIO", clip(good).reshape(1, -1), "FP32"),
            ("LANGUAGE", np.array([[language.encode()]], np.object_), "BYTES"),
            ("USE_ITN", np.array([[True]]), "BOOL"),
        ]
        inputs = []
        for name, value, dtype in tensors:
            inputs.append(grpcaio.InferInput(name, list(value.shape), dtype))
            inputs[-1].set_data_from_numpy(value)
        try:
            await client.infer("sensevoice", inputs, client_timeout=60)
        except InferenceServerException as exc:
            return f"{exc.status()}: {exc.message()}"
        finally:
            await client.close()
        return "answered"

    status = asyncio.run(raw_status("klingon"))
    assert status.startswith("StatusCode.INVALID_ARGUMENT") and "klingon" in status, status
    assert asyncio.run(one_by_one(url, [good])) == [expected_text(good)]


@pytest.mark.timeout(300)
def test_a_stalled_request_runs_into_the_client_deadline(fault_triton):
    url, name, timeout_s = fault_triton.grpc_url, SPEECH[0], 1.0
    assert timeout_s < DEFAULT_STALL_S

    async def stalled():
        async with SenseVoiceClient(url, timeout_s=timeout_s, **FAST) as client:
            await client.transcribe(clip(name), STALL_LANGUAGE)

    t0 = time.perf_counter()
    with pytest.raises(TritonDeadlineError, match="did not answer within the deadline"):
        asyncio.run(stalled())
    assert time.perf_counter() - t0 < 3 * timeout_s + 1  # one deadline retry (the default), then it gave up
    # The stall ends and the server answers again (this waits behind the stalled requests).
    assert asyncio.run(one_by_one(url, [name])) == [expected_text(name)]
