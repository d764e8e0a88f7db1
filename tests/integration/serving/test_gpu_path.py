"""The GPU path, checked without a GPU: the `sensevoice` model against encoder results that live in GPU memory the
way Triton's python backend represents them, and the frame buckets that let encoder calls merge, on the exported
micro model run in-process (no server). The configs alone: tests/unit/serving/test_model_configs.py; what each
setting is for: docs/gpu.md."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Transcriber, Utterance
from sensevoice_pipeline.serving.triton_models import (
    ENCODER_OUTPUTS,
    SenseVoiceModel,
    bucketed_frames,
    frame_buckets,
    pad_frames,
)
from sensevoice_pipeline.speech.encoder import EncoderSession
from tests.support.audio import synthetic_clip
from tests.support.model_configs import config, triton_json

pytestmark = pytest.mark.export


# -- a stand-in for triton_python_backend_utils -------------------------------------------------------------------
# Modelled on python_backend r24.10 (the Triton 2.51 / NGC 24.10 that production runs):
#  - src/pb_tensor.cc PbTensor::AsNumpy: a tensor not in CPU memory raises TritonModelException
#    "Tensor is stored in GPU and cannot be converted to NumPy."; is_cpu(), to_dlpack(), __dlpack__ and
#    __dlpack_device__ are bound in src/pb_stub.cc.
#  - src/request_executor.cc ResponseAlloc: a BLS output is allocated where the request's preferred_memory says;
#    without one (kDefault) where the producing backend prefers, and the onnxruntime backend on a KIND_GPU instance
#    prefers GPU memory (onnxruntime_backend r24.10 src/onnxruntime.cc: preferred_memory_type = GPU).
# There is no GPU here, so "GPU" tensors hold host memory and say so to DLPack consumers (__dlpack_device__ is the
# host's); everything else about them behaves as on the device.


class TritonModelException(Exception):
    pass


class StandInTensor:
    def __init__(self, name: str, array: np.ndarray, on_gpu: bool = False):
        self._name, self._array, self._on_gpu = name, np.ascontiguousarray(array), on_gpu

    def name(self) -> str:
        return self._name

    def is_cpu(self) -> bool:
        return not self._on_gpu

    def as_numpy(self) -> np.ndarray:
        if self._on_gpu:
            raise TritonModelException("Tensor is stored in GPU and cannot be converted to NumPy.")
        return self._array

    def to_dlpack(self):
        return self._array.__dlpack__()

    def __dlpack__(self, stream=None):
        return self._array.__dlpack__()

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class TritonError:
    INTERNAL, INVALID_ARG = "INTERNAL", "INVALID_ARG"

    def __init__(self, message: str, code=INTERNAL):
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self):
        return self._code


class InferenceResponse:
    def __init__(self, output_tensors, error=None):
        self.output_tensors, self._error = {t.name(): t for t in output_tensors}, error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self):
        return self._error


class PreferredMemory:
    def __init__(self, preferred_memory_type, preferred_device_id=0):
        self.type, self.device_id = preferred_memory_type, preferred_device_id


class GpuEncoder:
    """`sensevoice_encoder` on a KIND_GPU instance of the onnxruntime backend: the real exported graph (run here on
    the CPU) whose outputs are placed as python_backend places BLS results. ``honours_preferred_memory=False``
    stands for a server that leaves them on the GPU whatever the request asks."""

    def __init__(self, onnx_path: Path, honours_preferred_memory: bool = True):
        self.session = EncoderSession(onnx_path)
        self.honours_preferred_memory = honours_preferred_memory
        self.frames_seen: list[int] = []

    def infer(self, request: StandInRequest) -> InferenceResponse:
        feeds = {t.name(): t.as_numpy() for t in request.inputs}
        self.frames_seen.append(feeds["speech"].shape[1])
        out = self.session.run(
            feeds["speech"],
            feeds["speech_lengths"],
            feeds["language"],
            feeds["textnorm"],
            request.requested_output_names,
        )
        asked_cpu = request.preferred_memory is not None and request.preferred_memory.type == "CPU"
        on_gpu = not (asked_cpu and self.honours_preferred_memory)
        return InferenceResponse([StandInTensor(n, v, on_gpu=on_gpu) for n, v in out.items()])


class StandInRequest:
    def __init__(
        self,
        encoder: GpuEncoder,
        model_name,
        requested_output_names,
        inputs,
        model_version=-1,
        preferred_memory=None,
        **_,
    ):
        assert model_name == ENCODER_MODEL
        self.encoder, self.requested_output_names, self.inputs = encoder, requested_output_names, inputs
        self.preferred_memory = preferred_memory

    def exec(self) -> InferenceResponse:
        return self.encoder.infer(self)


def stand_in_pb_utils(encoder: GpuEncoder) -> SimpleNamespace:
    by_name = lambda holder, name: holder.get(name)  # noqa: E731
    return SimpleNamespace(
        Tensor=StandInTensor,
        TritonError=TritonError,
        TritonModelException=TritonModelException,
        InferenceResponse=InferenceResponse,
        InferenceRequest=lambda **kwargs: StandInRequest(encoder, **kwargs),
        PreferredMemory=PreferredMemory,
        TRITONSERVER_MEMORY_CPU="CPU",
        TRITONSERVER_MEMORY_GPU="GPU",
        get_input_tensor_by_name=lambda request, name: by_name(request, name),
        get_output_tensor_by_name=lambda response, name: by_name(response.output_tensors, name),
    )


def client_request(utterance: Utterance) -> dict:
    """A `sensevoice` request as the python backend hands it over (inputs in CPU memory: its default)."""
    return {
        "AUDIO": StandInTensor("AUDIO", utterance.audio.reshape(1, -1)),
        "LANGUAGE": StandInTensor("LANGUAGE", np.array([[utterance.language.encode()]], dtype=np.object_)),
        "USE_ITN": StandInTensor("USE_ITN", np.array([[utterance.use_itn]])),
    }


@pytest.fixture(scope="module")
def utterances() -> list[Utterance]:
    seconds = [0.7, 2.3, 4.1, 6.1, 1.3]
    return [
        Utterance(synthetic_clip(s, seed=i), ["auto", "en", "zh", "yue", "auto"][i], i % 2 == 0)
        for i, s in enumerate(seconds)
    ]


def serve_on_stand_in(repository: Path, encoder: GpuEncoder, utterances: list[Utterance]) -> list[str]:
    args = {
        "model_repository": str(repository / PIPELINE_MODEL),
        "model_version": "1",
        "model_config": triton_json(config(PIPELINE_MODEL)),
    }  # production: frame buckets on
    model = SenseVoiceModel(stand_in_pb_utils(encoder), args)
    responses = model.execute([client_request(u) for u in utterances])
    errors = [r.error().message() for r in responses if r.has_error()]
    assert not errors, errors[:2]
    return [r.output_tensors["TEXT"].as_numpy()[0][0].decode() for r in responses]


def test_encoder_results_on_a_gpu_instance_are_read_in_cpu_memory(exported_repository, utterances):
    encoder = GpuEncoder(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    texts = serve_on_stand_in(exported_repository, encoder, utterances)
    assert texts == LocalTranscriber(exported_repository).transcribe(utterances)
    # the calls really were padded to the production buckets (what lets the encoder's batcher merge them)
    buckets = frame_buckets(triton_json(config(PIPELINE_MODEL)))
    assert encoder.frames_seen and set(encoder.frames_seen) <= set(buckets)


def test_results_left_on_the_gpu_are_copied_to_the_host_through_dlpack(exported_repository, utterances):
    pytest.importorskip("torch")  # the DLPack consumer available here (cupy where a GPU image has it)
    encoder = GpuEncoder(
        exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE, honours_preferred_memory=False
    )
    texts = serve_on_stand_in(exported_repository, encoder, utterances)
    assert texts == LocalTranscriber(exported_repository).transcribe(utterances)


# -- frame buckets ------------------------------------------------------------------------------------------------


def test_bucketed_padding_gives_the_same_token_ids_as_exact_padding(exported_repository, utterances):
    transcriber = Transcriber(exported_repository / PIPELINE_MODEL / "1")
    session = EncoderSession(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    buckets = frame_buckets(triton_json(config(PIPELINE_MODEL)))
    padded_frames = 0
    for batch in ([utterances[0]], utterances[1:3], utterances):  # one alone, a pair, everything in one batch
        speech, lengths, languages, textnorms = transcriber.features(batch)
        bucketed = pad_frames(speech, bucketed_frames(speech.shape[1], buckets))
        padded_frames += bucketed.shape[1] - speech.shape[1]
        exact = session.run(speech, lengths, languages, textnorms, ENCODER_OUTPUTS)
        padded = session.run(bucketed, lengths, languages, textnorms, ENCODER_OUTPUTS)
        np.testing.assert_array_equal(exact["encoder_out_lens"], padded["encoder_out_lens"])
        for row, n in enumerate(exact["encoder_out_lens"].reshape(-1)):
            np.testing.assert_array_equal(exact["token_ids"][row, :n], padded["token_ids"][row, :n])
    assert padded_frames > 0  # the buckets did pad: the comparison above is not exact vs exact
