"""The speech tests' VAD: the vendored Silero model on onnxruntime, built once per module."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.speech.vad import SileroVad


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()
