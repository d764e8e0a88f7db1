"""Test-only Triton python model: the real `sensevoice_encoder` (EncoderModel: onnxruntime on this version's
model.onnx) that fails or stalls when a marker language id reaches it. Copied as `sensevoice_encoder/<N>/model.py`
into a fault repository by `tests.support.fault_models.build_fault_repository`; never part of a real repository.

- language id of "nospeech" in the batch: raise, so the whole encoder batch fails (what a crashing encoder does);
- language id of "ko" in the batch: sleep `stall_s` (a config parameter), then answer normally.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

from sensevoice_pipeline.serving.triton_models import EncoderModel
from sensevoice_pipeline.speech.languages import language_id

RAISE_ID = language_id("nospeech")
STALL_ID = language_id("ko")


class TritonPythonModel:
    def initialize(self, args):
        self.model = EncoderModel(pb_utils, args)
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.stall_s = float(parameters.get("stall_s", {}).get("string_value", "3"))

    def execute(self, requests):
        ids = {
            int(i)
            for r in requests
            for i in np.ravel(pb_utils.get_input_tensor_by_name(r, "language").as_numpy())
        }
        if RAISE_ID in ids:
            raise RuntimeError(f"injected encoder fault: language id {RAISE_ID} in the batch")
        if STALL_ID in ids:
            time.sleep(self.stall_s)
        return self.model.execute(requests)
