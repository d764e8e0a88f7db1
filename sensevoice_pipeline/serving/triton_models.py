"""The implementations behind the Triton python models in `model_repository/*/model.py`.

``pb_utils`` (triton_python_backend_utils) exists only inside Triton's python stub, so it is passed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensevoice_pipeline.speech.encoder import EncoderSession
from sensevoice_pipeline.speech.languages import UnknownLanguageError, language_id
from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL
from sensevoice_pipeline.serving.transcriber import Transcriber, Utterance
from sensevoice_pipeline.constants import MIN_REQUEST_SAMPLES

ENCODER_OUTPUTS = ("token_ids", "encoder_out_lens")


def _version_dir(args: dict) -> tuple[Path, int]:
    return Path(args["model_repository"]) / args["model_version"], int(args["model_version"])


class SenseVoiceModel:
    """`sensevoice`: AUDIO, LANGUAGE, USE_ITN -> TEXT. Requests are batched for the encoder; each keeps its own
    length, language and ITN switch."""

    max_encoder_batch = 32

    def __init__(self, pb_utils, args: dict):
        self.pb = pb_utils
        version_dir, self.version = _version_dir(args)
        self.transcriber = Transcriber(version_dir)

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
        return [self._error(str(p), self.pb.TritonError.INVALID_ARG) if isinstance(p, Exception) else next(answers)
                for p in parsed]

    def _answer(self, requests: list[list[Utterance]]) -> list:
        """One TEXT response per request; the utterances of all requests share the encoder batches."""
        texts = iter(self._transcribe([u for utterances in requests for u in utterances]))
        return [self._text([next(texts) for _ in utterances]) for utterances in requests]

    def _answer_alone(self, utterances: list[Utterance]):
        try:
            (response,) = self._answer([utterances])
            return response
        except Exception as exc:  # noqa: BLE001 -- this request's own failure, as its error
            return self._error(str(exc), self.pb.TritonError.INTERNAL)

    def _parse(self, request) -> list[Utterance] | Exception:
        try:
            audio = self.pb.get_input_tensor_by_name(request, "AUDIO").as_numpy()
            languages = _strings(self.pb.get_input_tensor_by_name(request, "LANGUAGE"), audio.shape[0], "auto")
            itn = self.pb.get_input_tensor_by_name(request, "USE_ITN")
            itn = np.zeros(audio.shape[0], bool) if itn is None else itn.as_numpy().reshape(-1).astype(bool)
            utterances = [Utterance(audio[i].astype(np.float32), languages[i], bool(itn[i])) for i in range(audio.shape[0])]
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

    def _transcribe(self, utterances: list[Utterance]) -> list[str]:
        texts: list[str] = []
        for start in range(0, len(utterances), self.max_encoder_batch):
            texts += self.transcriber.transcribe(utterances[start : start + self.max_encoder_batch], self._encode)
        return texts

    def _encode(self, speech, lengths, languages, textnorms):
        column = lambda a: np.asarray(a, dtype=np.int32).reshape(-1, 1)  # noqa: E731
        inputs = [
            self.pb.Tensor("speech", speech),
            self.pb.Tensor("speech_lengths", column(lengths)),
            self.pb.Tensor("language", column(languages)),
            self.pb.Tensor("textnorm", column(textnorms)),
        ]
        request = self.pb.InferenceRequest(
            model_name=ENCODER_MODEL,
            model_version=self.version,
            requested_output_names=list(ENCODER_OUTPUTS),
            inputs=inputs,
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{ENCODER_MODEL} version {self.version}: {response.error().message()}")
        token_ids = self.pb.get_output_tensor_by_name(response, "token_ids").as_numpy()
        lens = self.pb.get_output_tensor_by_name(response, "encoder_out_lens").as_numpy().reshape(-1)
        return token_ids, lens

    def _text(self, texts: list[str]):
        rows = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor("TEXT", rows)])

    def _error(self, message: str, code):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message, code))


class EncoderModel:
    """`sensevoice_encoder` on the local CPU Triton: this version's model.onnx in onnxruntime."""

    def __init__(self, pb_utils, args: dict):
        self.pb = pb_utils
        version_dir, _ = _version_dir(args)
        self.session = EncoderSession(version_dir / ENCODER_FILE)

    def execute(self, requests):
        return [self._run(r) for r in requests]

    def _run(self, request):
        get = lambda name: self.pb.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        names = request.requested_output_names() or self.session.output_names
        try:
            out = self.session.run(get("speech"), get("speech_lengths"), get("language"), get("textnorm"), names)
        except Exception as exc:  # noqa: BLE001 -- onnxruntime errors go back to the caller, not the log
            return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(str(exc)))
        if "encoder_out_lens" in out:
            out["encoder_out_lens"] = out["encoder_out_lens"].reshape(-1, 1)  # config dims [1] per batch item
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(n, v) for n, v in out.items()])


def _strings(tensor, n: int, default: str) -> list[str]:
    if tensor is None:
        return [default] * n
    values = tensor.as_numpy().reshape(-1)
    out = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    return out if len(out) == n else [out[0]] * n
