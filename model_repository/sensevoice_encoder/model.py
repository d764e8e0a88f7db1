"""Triton python model `sensevoice_encoder` for the local CPU config: onnxruntime on this version's model.onnx.
(copied into each version by `svp export`; the production config serves model.onnx with the onnxruntime backend)"""

import triton_python_backend_utils as pb_utils

from sensevoice_pipeline.serving.triton_models import EncoderModel


class TritonPythonModel:
    def initialize(self, args):
        self.model = EncoderModel(pb_utils, args)

    def execute(self, requests):
        return self.model.execute(requests)
