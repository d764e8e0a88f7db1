"""A real tritonserver process serving the exported micro model: parity with funasr, batching, API, errors. What the
client and `svp transcribe` say with no server at all: test_no_server.py; the configs alone:
tests/unit/serving/test_model_configs.py."""

import asyncio
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from sensevoice_pipeline.serving.admin import http_admin_headers
from sensevoice_pipeline.serving.client import ModelNotReadyError, Request, SenseVoiceClient
from sensevoice_pipeline.speech.audio import load_mono_16k
from sensevoice_pipeline.speech.languages import UnknownLanguageError
from tests.support.audio import synthetic_clip
from tests.support.paths import EXAMPLE_AUDIO
from tests.support.triton import TEST_ADMIN_KEY, funasr_text

pytestmark = pytest.mark.triton

LANGUAGES = ["auto", "zh", "en", "yue"]


def run(coro):
    return asyncio.run(coro)


async def transcribe_all(url, requests, **kwargs):
    async with SenseVoiceClient(url, **kwargs) as client:
        return await client.transcribe_many(requests)


@pytest.fixture(scope="module")
def clips():
    examples = {path.stem: load_mono_16k(path) for path in EXAMPLE_AUDIO}
    generated = {
        f"generated_{s}": synthetic_clip(seconds, seed=s) for s, seconds in [(1, 0.7), (2, 2.3), (3, 6.1)]
    }
    return {**examples, **generated}


def test_text_equals_funasr_for_every_language_and_itn(triton, funasr_model, clips):
    cases = [(name, lang, itn) for name in clips for lang in LANGUAGES for itn in (True, False)]
    results = run(transcribe_all(triton.grpc_url, [Request(clips[n], lang, itn) for n, lang, itn in cases]))
    mismatches = []
    for (name, lang, itn), result in zip(cases, results):
        want = funasr_text(funasr_model, clips[name], lang, itn)
        if result.text != want:
            mismatches.append((name, lang, itn, result.text, want))
    assert not mismatches, mismatches[:3]
    assert len(cases) == len(clips) * 8 >= 64
    # the hint and the switch really reach the model: the random-weight model answers differently
    assert len({r.text for r in results}) > len(clips)


def test_sixteen_at_once_equal_one_by_one(triton, clips):
    audios = list(clips.values())
    requests = [
        Request(audios[i % len(audios)][: 16000 + 3000 * i], LANGUAGES[i % 4], i % 2 == 0) for i in range(16)
    ]
    together = run(transcribe_all(triton.grpc_url, requests, max_concurrency=16))

    async def one_by_one():
        async with SenseVoiceClient(triton.grpc_url) as client:
            return [await client.transcribe(r.audio, r.language, r.use_itn) for r in requests]

    assert [r.text for r in together] == [r.text for r in run(one_by_one())]


def test_answers_report_the_model_version(triton, clips):
    (result,) = run(transcribe_all(triton.grpc_url, [Request(clips["en"], "en", True)]))
    assert (result.model_name, result.model_version) == ("sensevoice", "1")


def test_health_metadata_and_repository_index_over_grpc_and_http(triton):
    http = httpclient.InferenceServerClient(triton.http_url)
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    assert http.is_server_live() and http.is_server_ready()
    assert grpc.is_server_live() and grpc.is_server_ready()
    for client in (http, grpc):
        assert client.is_model_ready("sensevoice", "1") and client.is_model_ready("sensevoice_encoder", "1")
    meta = http.get_model_metadata("sensevoice")
    assert {i["name"] for i in meta["inputs"]} == {"AUDIO", "LANGUAGE", "USE_ITN"}
    # confidences: issue 18; word times: issue 31
    assert [o["name"] for o in meta["outputs"]] == ["TEXT", "CONFIDENCE", "EMOTION_PROBS", "WORDS"]
    index = {
        (m["name"], m.get("version"), m.get("state"))
        for m in http.get_model_repository_index(headers=http_admin_headers(TEST_ADMIN_KEY))
    }
    assert ("sensevoice", "1", "READY") in index and ("sensevoice_encoder", "1", "READY") in index
    encoder = grpc.get_model_metadata("sensevoice_encoder")
    assert [i.name for i in encoder.inputs] == ["speech", "speech_lengths", "language", "textnorm"]


def test_bad_requests_get_an_error_and_the_model_keeps_serving(triton, clips):
    """Sent past the client's own checks: a one-sample clip (it used to abort the python stub, failing every later
    request), NaN samples and an unknown language each get their own error; the next request is answered."""
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)

    def infer(audio, language="auto"):
        audio = np.asarray(audio, np.float32).reshape(1, -1)
        tensors = [
            ("AUDIO", audio, "FP32"),
            ("LANGUAGE", np.array([[language.encode()]], np.object_), "BYTES"),
            ("USE_ITN", np.array([[True]]), "BOOL"),
        ]
        inputs = []
        for name, value, dtype in tensors:
            inputs.append(grpcclient.InferInput(name, list(value.shape), dtype))
            inputs[-1].set_data_from_numpy(value)
        return grpc.infer("sensevoice", inputs).as_numpy("TEXT").reshape(-1)[0].decode()

    for audio, language, message in [
        ([0.1], "auto", "at least 2 samples"),
        ([np.nan] * 1600, "auto", "NaN or Inf"),
        (clips["generated_1"], "klingon", "klingon"),
    ]:
        with pytest.raises(Exception, match=message):
            infer(audio, language)
    (expected,) = run(transcribe_all(triton.grpc_url, [Request(clips["generated_1"], "auto", True)]))
    assert infer(clips["generated_1"]) == expected.text


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 1), (16000, 2), (22050, 2)])
def test_transcribe_command_handles_rates_and_stereo(tmp_path, triton, funasr_model, rate, channels):
    base = synthetic_clip(1.5, seed=rate + channels, rate=rate)
    data = np.stack([base, 0.5 * base[::-1]], axis=1) if channels == 2 else base
    path = tmp_path / f"call_{rate}_{channels}.wav"
    sf.write(path, data, rate)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "transcribe",
            str(path),
            "--language",
            "en",
            "--url",
            triton.grpc_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    file_col, raw, _clean = out.stdout.rstrip("\n").split("\t")
    assert file_col == str(path)
    assert raw == funasr_text(funasr_model, load_mono_16k(path), "en", True)
    assert raw  # never empty, whatever the input rate


def test_unknown_language_is_refused_before_sending(triton):
    with pytest.raises(UnknownLanguageError, match="expected one of auto, zh, en"):
        run(transcribe_all(triton.grpc_url, [Request(np.zeros(16000, np.float32), "klingon")]))


def test_model_not_loaded_gives_a_clear_error(triton):
    async def check():
        async with SenseVoiceClient(triton.grpc_url, version=99) as client:
            await client.check_ready()

    with pytest.raises(ModelNotReadyError, match="sensevoice version 99 is not loaded"):
        run(check())
