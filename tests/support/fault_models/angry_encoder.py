"""Test-only Triton python model: the real `sensevoice_encoder` (EncoderModel: onnxruntime on this version's
model.onnx) that makes every utterance whose language id is a marker angry. Copied as `sensevoice_encoder/<N>/model.py`
into a candidate version by `tests.support.fault_models.add_angry_version`, with ``angry.json`` beside it; never part
of a real repository.

- an utterance whose language id is the marker's (``angry.json``: ``marker_id``, "yue" by default): the real
  encoder's answer with the emotion query frame (frame 1, export/graph.py TAG_FRAMES) changed so that the ANGRY token
  (``angry_id``) is its top token by far: its logit set to the frame's highest plus ``ANGRY_MARGIN``, the frame then
  log-softmaxed again (``ctc_logits`` are log-probabilities). Every output derived from that frame follows:
  ``token_ids`` (the argmax, so the decoded text carries ``<|ANGRY|>``), ``token_scores`` and the emotion slice of
  ``tag_probs`` (``emotion_ids``: the tokens of tags.TAG_FAMILIES' emotions), so the emotion confidence is ANGRY's
  (~1) and the emotion distribution's top is angry;
- every other frame, utterance and request: the real encoder's answer, unchanged (texts equal those of the version it
  was copied from).

`sensevoice` asks the encoder for token_ids, encoder_out_lens and tag_probs only (and ctc_logits for a forced
alignment), so a marker request is run here with ctc_logits added to what it asked for, edited, and answered with
what it asked for.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from sensevoice_pipeline import triton_contract as contract
from sensevoice_pipeline.serving.triton_models import EncoderModel
from sensevoice_pipeline.speech.tags import TAG_FAMILIES

CONFIG_FILE = "angry.json"
EMOTION_FRAME = 1  # export/graph.py TAG_FRAMES["emotion"]
ANGRY_MARGIN = 20.0  # ANGRY's logit above the frame's highest: its probability is then ~1 - V * e^-20
_FAMILIES = [family for family, _ in TAG_FAMILIES]
EMOTION_OFFSET = sum(len(names) for _, names in TAG_FAMILIES[: _FAMILIES.index("emotion")])
LOGITS = contract.CTC_LOGITS.name
IDS = contract.TOKEN_IDS.name
SCORES = contract.TOKEN_SCORES.name
TAG_PROBS = contract.TAG_PROBS.name
LENS = contract.ENCODER_OUT_LENS.name


class TritonPythonModel:
    def initialize(self, args):
        self.model = EncoderModel(pb_utils, args)
        config = json.loads(
            (Path(args["model_repository"]) / args["model_version"] / CONFIG_FILE).read_text()
        )
        self.marker_id = int(config["marker_id"])
        self.angry_id = int(config["angry_id"])
        self.emotion_ids = [int(i) for i in config["emotion_ids"]]

    def execute(self, requests):
        return [self._answer(r) for r in requests]

    def _answer(self, request):
        languages = np.ravel(pb_utils.get_input_tensor_by_name(request, contract.LANGUAGE_ID.name).as_numpy())
        rows = np.flatnonzero(languages == self.marker_id)
        if rows.size == 0:
            (response,) = self.model.execute([request])
            return response
        return self._angry(request, rows)

    def _angry(self, request, rows):
        """The request run by the real encoder's session with ctc_logits added, its marker ``rows`` made angry."""
        session = self.model.session
        wanted = session.available(request.requested_output_names() or session.output_names)
        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        try:
            out = session.run(
                *(get(name) for name in contract.names(contract.ENCODER_INPUTS)),
                list(dict.fromkeys([*wanted, LOGITS])),
            )
        except Exception as exc:  # noqa: BLE001 -- as EncoderModel: the error goes back to the caller
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
        out = {name: value if value.flags.writeable else value.copy() for name, value in out.items()}
        for row in rows:
            self._make_angry(out, int(row))
        if LENS in wanted:
            out[LENS] = out[LENS].reshape(-1, 1)  # config dims [1] per batch item
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, out[n]) for n in wanted])

    def _make_angry(self, out: dict, row: int) -> None:
        logits = out[LOGITS]
        frame = logits[row, EMOTION_FRAME].astype(np.float64)
        frame[self.angry_id] = frame.max() + ANGRY_MARGIN
        top = frame.max()
        frame = frame - (top + np.log(np.exp(frame - top).sum()))  # log-softmax again
        logits[row, EMOTION_FRAME] = frame.astype(logits.dtype)
        if IDS in out:
            out[IDS][row, EMOTION_FRAME] = self.angry_id
        if SCORES in out:
            out[SCORES][row, EMOTION_FRAME] = frame[self.angry_id]
        if TAG_PROBS in out:
            probs = [np.exp(frame[i]) if i >= 0 else 0.0 for i in self.emotion_ids]
            out[TAG_PROBS][row, EMOTION_OFFSET : EMOTION_OFFSET + len(probs)] = probs
