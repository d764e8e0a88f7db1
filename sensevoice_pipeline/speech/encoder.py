"""An exported `sensevoice_encoder` graph run in-process with onnxruntime.

Used by the local Triton config (python backend around onnxruntime CPU), by the export parity check, and by
benchmarks that compare Triton with in-process inference.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sensevoice_pipeline.triton_contract import (
    ENCODER_INPUTS,
    LANGUAGE_ID,
    SPEECH,
    SPEECH_LENGTHS,
    TEXTNORM,
    names,
)
from sensevoice_pipeline.triton_contract import TAG_PROBS as TAG_PROBS_TENSOR

INPUTS = names(ENCODER_INPUTS)
TAG_PROBS = TAG_PROBS_TENSOR.name  # optional: graphs exported before it existed lack it (triton_contract)


class EncoderSession:
    def __init__(self, onnx_path: str | Path, threads: int | None = None, providers: list[str] | None = None):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = threads or int(os.environ.get("SVP_ORT_THREADS", "0"))
        if threads:
            options.intra_op_num_threads = threads
        # Idle pool threads spin by default, taking cores from whatever else runs here (the frontend, VAD, the other
        # Triton stub, other jobs). On the 2-core dev machine that made 2 threads slower than 1; without spinning,
        # 2 threads ran the full-size encoder 17% (int8) and 24% (fp32) faster (benchmarks/, issue 8).
        # SVP_ORT_SPINNING=1 restores it, for a CPU server whose cores are the encoder's alone: on an idle 2-core
        # machine the day job ran 1.13x faster with it (issue 18), and with one other busy process the encoder
        # ran 2x slower (benchmarks/README.md, the seed-loop pair).
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", os.environ.get("SVP_ORT_SPINNING", "0")
        )
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
        self.output_names = [o.name for o in self.session.get_outputs()]

    def available(self, names: Iterable[str]) -> list[str]:
        """``names`` less those this graph does not have (an optional output of an older export)."""
        return [name for name in names if name in self.output_names]

    def run(
        self,
        speech: np.ndarray,
        speech_lengths: np.ndarray,
        language: np.ndarray,
        textnorm: np.ndarray,
        outputs: Iterable[str] | None = None,
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs is not None else self.output_names
        feeds = {
            SPEECH.name: np.ascontiguousarray(speech, dtype=np.float32),
            SPEECH_LENGTHS.name: np.asarray(speech_lengths, dtype=np.int32).reshape(-1),
            LANGUAGE_ID.name: np.asarray(language, dtype=np.int32).reshape(-1),
            TEXTNORM.name: np.asarray(textnorm, dtype=np.int32).reshape(-1),
        }
        return dict(zip(names, self.session.run(names, feeds)))


def pad_features(features: list[np.ndarray], feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-utterance features ``[T_i, D]`` into a zero-padded ``[B, max T, D]`` batch and their lengths."""
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    batch = np.zeros((len(features), max(int(lengths.max(initial=0)), 1), feature_dim), dtype=np.float32)
    for i, f in enumerate(features):
        batch[i, : f.shape[0]] = f
    return batch, lengths
