"""Triton python model `sensevoice` (copied into each version by `svp export`). All logic lives in the library."""

import triton_python_backend_utils as pb_utils

from sensevoice_pipeline.serving.triton_models import SenseVoiceModel


class TritonPythonModel:
    def initialize(self, args):
        self.model = SenseVoiceModel(pb_utils, args)

    def execute(self, requests):
        return self.model.execute(requests)
