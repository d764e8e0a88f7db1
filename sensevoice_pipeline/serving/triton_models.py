"""The implementations behind the Triton python models in `model_repository/*/model.py`.

``pb_utils`` (triton_python_backend_utils) exists only inside Triton's python stub, so it is passed in.
docs/gpu.md says why the GPU-facing choices here (CPU-memory BLS results, frame buckets) are what they are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sensevoice_pipeline import triton_contract as contract
from sensevoice_pipeline.constants import MIN_REQUEST_SAMPLES
from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL
from sensevoice_pipeline.serving.transcriber import Answer, Transcriber, Utterance
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession
from sensevoice_pipeline.speech.languages import UnknownLanguageError, language_id
from sensevoice_pipeline.speech.tags import EMOTION_NAMES, TagConfidences
from sensevoice_pipeline.triton_contract import DECODE_OUTPUTS

# What `sensevoice` asks of the encoder, and all that the production encoder configs list (tag_probs only where the
# `sensevoice` config offers CONFIDENCE: ``SenseVoiceModel.encoder_outputs``). Names: triton_contract.
ENCODER_OUTPUTS = DECODE_OUTPUTS
CONFIDENCE_OUTPUT = contract.CONFIDENCE.name
EMOTION_PROBS_OUTPUT = contract.EMOTION_PROBS.name
WORDS_OUTPUT = contract.WORDS.name
# `parameters { key: "ALIGN_WITH_LOGITS" value: { string_value: "true" } }`: the encoder's config lists ctc_logits,
# so a text whose words need a forced alignment gets one (speech/alignment.py); the local config only.
ALIGN_WITH_LOGITS_PARAMETER = "ALIGN_WITH_LOGITS"

# `parameters { key: "ENCODER_FRAME_BUCKETS" value: { string_value: "32,64,..." } }` in a `sensevoice` config: the
# encoder input's frame counts that BLS calls are padded up to. Triton's dynamic batcher merges requests only when
# every input has the same shape (docs: user_guide/ragged_batching.md), so calls padded to their own longest
# utterance never merge in the encoder's batcher; calls padded to a shared bucket can. Absent: exact padding.
FRAME_BUCKETS_PARAMETER = "ENCODER_FRAME_BUCKETS"


def _version_dir(args: dict) -> tuple[Path, int]:
    return Path(args["model_repository"]) / args["model_version"], int(args["model_version"])


def frame_buckets(model_config: str | dict | None) -> tuple[int, ...]:
    """The frame buckets a model config asks for (its ``ENCODER_FRAME_BUCKETS`` parameter), ascending; () when it
    asks for none. ``model_config`` is the JSON Triton passes as ``args["model_config"]``. A malformed list raises
    ValueError, so the model fails to load with the reason rather than serving with a surprise."""
    config = json.loads(model_config) if isinstance(model_config, str) else (model_config or {})
    text = config.get("parameters", {}).get(FRAME_BUCKETS_PARAMETER, {}).get("string_value", "").strip()
    if not text:
        return ()
    try:
        buckets = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"{FRAME_BUCKETS_PARAMETER} must be comma-separated frame counts, not {text!r}"
        ) from None
    if any(b <= 0 for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ValueError(f"{FRAME_BUCKETS_PARAMETER} must be positive and strictly ascending, not {text!r}")
    return buckets


THREADS_LOG = "intra-op threads"  # the encoder instance's log line says how many threads it took


def instance_count(model_config: str | dict | None) -> int:
    """How many instances of the model a config asks for (the counts of its instance groups summed; 1 if none)."""
    config = json.loads(model_config) if isinstance(model_config, str) else (model_config or {})
    return max(1, sum(int(group.get("count", 1)) for group in config.get("instance_group", [])))


def instance_threads(model_config: str | dict | None, cores: int | None = None) -> int:
    """onnxruntime threads for one instance of the local encoder under ``model_config``: see
    :func:`threads_per_instance`."""
    return threads_per_instance(instance_count(model_config), cores)


def threads_per_instance(instances: int, cores: int | None = None) -> int:
    """``SVP_ORT_THREADS`` when set, else this machine's cores shared out among ``instances`` (at least 1 each).
    Several single-threaded instances beat one instance with every core: onnxruntime wakes its pool for each of the
    graph's ~2,000 nodes, and on 2 cores two 1-thread sessions ran the same 36 clips 1.4-1.5x faster than one
    2-thread session (benchmarks/README.md, issue 18)."""
    explicit = int(os.environ.get("SVP_ORT_THREADS") or 0)
    if explicit > 0:
        return explicit
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, instances))


def config_flag(model_config: str | dict | None, key: str) -> bool:
    """Whether a model config's string parameter ``key`` is "true"."""
    config = json.loads(model_config) if isinstance(model_config, str) else (model_config or {})
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return value.strip().lower() == "true"


def config_outputs(model_config: str | dict | None) -> tuple[str, ...]:
    """The output names a model config lists (``args["model_config"]``, JSON)."""
    config = json.loads(model_config) if isinstance(model_config, str) else (model_config or {})
    return tuple(output.get("name", "") for output in config.get("output", []))


def bucketed_frames(frames: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``frames``; ``frames`` itself above the largest bucket (a rare long request is
    sent as it is rather than padded to a multiple) or when there are no buckets."""
    return next((b for b in buckets if b >= frames), frames)


def pad_frames(speech: np.ndarray, frames: int) -> np.ndarray:
    """``speech`` [B, T, D] zero-padded along T to ``frames``. The encoder masks frames past each utterance's
    ``speech_lengths``, so the padding changes no answer (tests/unit/serving/test_model_configs.py checks the token ids)."""
    extra = frames - speech.shape[1]
    return speech if extra <= 0 else np.pad(speech, ((0, 0), (0, extra), (0, 0)))


def host_array(tensor) -> np.ndarray:
    """A BLS output tensor as a numpy array in host memory.

    ``_encode`` asks for its outputs in CPU memory, and python_backend's BLS allocator (src/request_executor.cc,
    ``ResponseAlloc``, r24.10) then allocates them in CPU shared memory whatever the producing backend prefers; so
    ``is_cpu()`` is true here. Should a tensor still arrive on the GPU, ``as_numpy()`` would raise
    ("Tensor is stored in GPU and cannot be converted to NumPy", src/pb_tensor.cc) and numpy's own ``from_dlpack``
    accepts host memory only; so it is copied through DLPack (``Tensor.__dlpack__``, no stream to wait on:
    src/pb_tensor.cc ``PbTensor::DLPack``) by a GPU array library when the serving environment has one."""
    if tensor.is_cpu():
        return tensor.as_numpy()
    return _device_to_host(tensor)


def _device_to_host(tensor) -> np.ndarray:
    # Optional GPU libraries, imported only on this path: the Triton image installs neither (the stub needs only
    # the core package), which is why the BLS request asks for CPU memory in the first place.
    try:
        import cupy
    except ImportError:
        pass
    else:
        return cupy.asnumpy(cupy.from_dlpack(tensor))
    try:
        import torch
    except ImportError:
        pass
    else:
        return torch.from_dlpack(tensor).cpu().numpy()
    raise RuntimeError(
        "an encoder output arrived in GPU memory and neither cupy nor torch is installed to copy it "
        "to the host; the BLS request asks for CPU memory (pb_utils.PreferredMemory), so this Triton "
        "ignored that request"
    )


class SenseVoiceModel:
    """`sensevoice`: AUDIO, LANGUAGE, USE_ITN -> TEXT. Requests are batched for the encoder; each keeps its own
    length, language and ITN switch."""

    max_encoder_batch = 32

    def __init__(self, pb_utils, args: dict):
        self.pb = pb_utils
        version_dir, self.version = _version_dir(args)
        self.transcriber = Transcriber(version_dir)
        self.frame_buckets = frame_buckets(args.get("model_config"))
        # A repository's two configs ship together: one whose `sensevoice` offers CONFIDENCE has an encoder config
        # listing tag_probs; an older pair has neither, and Triton would refuse a request for an unlisted output.
        outputs = config_outputs(args.get("model_config"))
        offers_confidences = CONFIDENCE_OUTPUT in outputs
        self.encoder_outputs = [n for n in ENCODER_OUTPUTS if n != TAG_PROBS or offers_confidences]
        self.offers_words = WORDS_OUTPUT in outputs  # a config written before WORDS would refuse the tensor
        self.logits = (
            self._logits if config_flag(args.get("model_config"), ALIGN_WITH_LOGITS_PARAMETER) else None
        )

    def execute(self, requests):
        parsed: list[list[Utterance] | Exception] = [self._parse(r) for r in requests]
        valid = [p for p in parsed if not isinstance(p, Exception)]
        try:
            answers = self._answer(valid)
        except Exception as exc:  # noqa: BLE001 -- every request gets an answer or its own error, none is lost
            # One request can fail the whole dynamic batch (the encoder, the frontend). Ask again one request at a
            # time, so that only the guilty request gets the error and the others of the batch their text.
            if len(valid) == 1:  # already alone: asking again would only repeat the failure
                answers = [self._error(str(exc), self.pb.TritonError.INTERNAL)]
            else:
                answers = [self._answer_alone(utterances) for utterances in valid]
        answers = iter(answers)
        # INVALID_ARG (gRPC INVALID_ARGUMENT) only for a request refused while parsing: the client records that
        # audio as a failed input. Everything else is INTERNAL: a serving fault the client retries, then raises.
        return [
            self._error(str(p), self.pb.TritonError.INVALID_ARG)
            if isinstance(p, Exception)
            else next(answers)
            for p in parsed
        ]

    def _answer(self, requests: list[list[Utterance]]) -> list:
        """One response per request (TEXT and the confidences); the utterances of all requests share the encoder
        batches."""
        answers = iter(self._transcribe([u for utterances in requests for u in utterances]))
        return [self._response([next(answers) for _ in utterances]) for utterances in requests]

    def _answer_alone(self, utterances: list[Utterance]):
        try:
            (response,) = self._answer([utterances])
            return response
        except Exception as exc:  # noqa: BLE001 -- this request's own failure, as its error
            return self._error(str(exc), self.pb.TritonError.INTERNAL)

    def _parse(self, request) -> list[Utterance] | Exception:
        try:
            audio = self.pb.get_input_tensor_by_name(request, contract.AUDIO.name).as_numpy()
            languages = _strings(
                self.pb.get_input_tensor_by_name(request, contract.LANGUAGE.name), audio.shape[0], "auto"
            )
            itn = self.pb.get_input_tensor_by_name(request, contract.USE_ITN.name)
            itn = np.zeros(audio.shape[0], bool) if itn is None else itn.as_numpy().reshape(-1).astype(bool)
            utterances = [
                Utterance(audio[i].astype(np.float32), languages[i], bool(itn[i]))
                for i in range(audio.shape[0])
            ]
            if any(not np.isfinite(u.audio).all() for u in utterances):
                raise ValueError("AUDIO contains NaN or Inf samples")
            if any(u.audio.size < MIN_REQUEST_SAMPLES for u in utterances):
                # kaldi-native-fbank aborts the whole stub process on a one-sample window: refuse it here, per request
                raise ValueError(f"AUDIO needs at least {MIN_REQUEST_SAMPLES} samples")
            for u in utterances:
                language_id(u.language)  # reject an unknown hint here, not in the middle of a batch
            return utterances
        except (UnknownLanguageError, ValueError) as exc:
            return exc

    def _transcribe(self, utterances: list[Utterance]) -> list[Answer]:
        answers: list[Answer] = []
        for start in range(0, len(utterances), self.max_encoder_batch):
            answers += self.transcriber.answer(
                utterances[start : start + self.max_encoder_batch], self._encode, self.logits
            )
        return answers

    def _encode(self, speech, lengths, languages, textnorms):
        response = self._encoder_call((speech, lengths, languages, textnorms), self.encoder_outputs)
        token_ids = host_array(self.pb.get_output_tensor_by_name(response, "token_ids"))
        lens = host_array(
            self.pb.get_output_tensor_by_name(response, contract.ENCODER_OUT_LENS.name)
        ).reshape(-1)
        # Absent from the answer of an encoder version exported before tag_probs (EncoderModel leaves it out).
        tag_probs = self.pb.get_output_tensor_by_name(response, TAG_PROBS)
        return token_ids, lens, None if tag_probs is None else host_array(tag_probs)

    def _logits(self, speech, lengths, languages, textnorms):
        names = [contract.CTC_LOGITS.name, contract.ENCODER_OUT_LENS.name]
        response = self._encoder_call((speech, lengths, languages, textnorms), names)
        logits, lens = (host_array(self.pb.get_output_tensor_by_name(response, n)) for n in names)
        return logits, lens.reshape(-1)

    def _encoder_call(self, features, outputs: list[str]):
        speech, lengths, languages, textnorms = features
        column = lambda a: np.asarray(a, dtype=np.int32).reshape(-1, 1)  # noqa: E731
        speech = pad_frames(speech, bucketed_frames(speech.shape[1], self.frame_buckets))
        inputs = [
            self.pb.Tensor(contract.SPEECH.name, speech),
            self.pb.Tensor(contract.SPEECH_LENGTHS.name, column(lengths)),
            self.pb.Tensor(contract.LANGUAGE_ID.name, column(languages)),
            self.pb.Tensor(contract.TEXTNORM.name, column(textnorms)),
        ]
        request = self.pb.InferenceRequest(
            model_name=ENCODER_MODEL,
            model_version=self.version,
            requested_output_names=outputs,
            inputs=inputs,
            # On a KIND_GPU encoder instance the onnxruntime backend's outputs are GPU memory, and a BLS result
            # stays where the producer put it unless the request says otherwise (python_backend README, "Using BLS
            # with Decoupled Models": preferred_memory, since 23.04). The decoder runs on the CPU: ask for CPU.
            preferred_memory=self.pb.PreferredMemory(self.pb.TRITONSERVER_MEMORY_CPU, 0),
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{ENCODER_MODEL} version {self.version}: {response.error().message()}")
        return response

    def _response(self, answers: list[Answer]):
        rows = np.array([[a.text.encode("utf-8")] for a in answers], dtype=np.object_)
        confidence = np.array([a.confidences.as_vector() for a in answers], dtype=np.float32)
        emotion_probs = np.array([_emotion_vector(a.confidences) for a in answers], dtype=np.float32)
        tensors = [
            self.pb.Tensor(contract.TEXT.name, rows),
            self.pb.Tensor(CONFIDENCE_OUTPUT, confidence),
            self.pb.Tensor(EMOTION_PROBS_OUTPUT, emotion_probs),
        ]
        if self.offers_words:
            words = [[words_json(a.words).encode("utf-8")] for a in answers]
            tensors.append(self.pb.Tensor(WORDS_OUTPUT, np.array(words, dtype=np.object_)))
        return self.pb.InferenceResponse(output_tensors=tensors)

    def _error(self, message: str, code):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message, code))


class EncoderModel:
    """`sensevoice_encoder` on the local CPU Triton: this version's model.onnx in onnxruntime."""

    def __init__(self, pb_utils, args: dict):
        self.pb = pb_utils
        version_dir, _ = _version_dir(args)
        threads = instance_threads(args.get("model_config"))
        self.session = EncoderSession(version_dir / ENCODER_FILE, threads=threads)
        pb_utils.Logger.log_info(
            f"{args.get('model_instance_name', ENCODER_MODEL)}: onnxruntime CPU, {THREADS_LOG} {threads}"
        )

    def execute(self, requests):
        return [self._run(r) for r in requests]

    def _run(self, request):
        get = lambda name: self.pb.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        # An optional output this version's graph lacks (tag_probs of an older export) is left out of the answer:
        # python_backend sends the tensors a response holds (src/infer_response.cc, r24.10), so the caller sees
        # no such output rather than an error.
        names = self.session.available(request.requested_output_names() or self.session.output_names)
        try:
            out = self.session.run(*(get(name) for name in contract.names(contract.ENCODER_INPUTS)), names)
        except Exception as exc:  # noqa: BLE001 -- onnxruntime errors go back to the caller, not the log
            return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(str(exc)))
        lens = contract.ENCODER_OUT_LENS.name
        if lens in out:
            out[lens] = out[lens].reshape(-1, 1)  # config dims [1] per batch item
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(n, v) for n, v in out.items()])


def words_json(words) -> str:
    """WORDS: ``[[word, start_s, end_s], ...]``, compact JSON (speech/alignment.WordTime)."""
    return json.dumps([w.as_list() for w in words], ensure_ascii=False, separators=(",", ":"))


def _emotion_vector(confidences: TagConfidences) -> list[float]:
    return (
        list(confidences.emotion_probs)
        if confidences.emotion_probs is not None
        else [np.nan] * len(EMOTION_NAMES)
    )


def _strings(tensor, n: int, default: str) -> list[str]:
    if tensor is None:
        return [default] * n
    values = tensor.as_numpy().reshape(-1)
    out = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    return out if len(out) == n else [out[0]] * n
