"""Waveforms -> rich transcriptions for one exported model version, whatever runs the encoder.

The same code serves the Triton `sensevoice` model (encoder reached through BLS) and in-process inference
(encoder run by onnxruntime here), so both give the same text for the same audio.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensevoice_pipeline.constants import DEFAULT_USE_ITN
from sensevoice_pipeline.serving.repository import (
    ENCODER_FILE,
    ENCODER_MODEL,
    FRONTEND_FILE,
    PIPELINE_MODEL,
    ModelRepository,
)
from sensevoice_pipeline.speech.decoder import CtcDecoder, Tokenizer
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession, pad_features
from sensevoice_pipeline.speech.frontend import Frontend, FrontendConfig
from sensevoice_pipeline.speech.languages import language_id, textnorm_id
from sensevoice_pipeline.speech.tags import TagConfidences, tag_confidences
from sensevoice_pipeline.triton_contract import DECODE_OUTPUTS


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # mono float32 at 16 kHz
    language: str = "auto"
    use_itn: bool = DEFAULT_USE_ITN


@dataclass(frozen=True)
class Answer:
    text: str  # the rich transcription (the `sensevoice` TEXT)
    confidences: TagConfidences  # all None for an encoder version exported without tag probabilities


# (speech [B,T,D], lengths [B], language [B], textnorm [B])
#   -> (token_ids [B,T'], encoder_out_lens [B], tag_probs [B, tags.TAG_PROBS_WIDTH] or None when the version lacks it)
EncodeFn = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]
]

# Padding is computed like real frames (and attention grows with the square of the padded length), so a batch that
# mixes a 3 s and a 30 s utterance costs the 3 s one nearly a 30 s run. Batches are cut so that at most this share
# of their frames is padding. Measured on the full-size int8 model, 2 CPU threads, batches of 8 clips of 3-30 s:
# one padded batch 63.5 s, length groups 38.7 s, one at a time 43.9 s (benchmarks/, issue 8).
MAX_PADDING = 0.2


def length_groups(lengths: Sequence[int], max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices of ``lengths`` in batches of similar length: sorted, and a batch grows only while its padded size
    (longest x count) stays within ``(1 + max_padding)`` x its real size."""
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        if current and lengths[i] * (len(current) + 1) > (1 + max_padding) * (real + lengths[i]):
            groups.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        groups.append(current)
    return groups


class Transcriber:
    """Frontend and decoder of one version of the `sensevoice` model."""

    def __init__(self, version_dir: str | Path):
        version_dir = Path(version_dir)
        spec = json.loads((version_dir / FRONTEND_FILE).read_text())
        self.frontend = Frontend(
            FrontendConfig.from_dict(spec["frontend_conf"]), version_dir / spec["cmvn_file"]
        )
        self.decoder = CtcDecoder(
            Tokenizer(version_dir / spec["tokenizer"]), blank_id=spec.get("blank_id", 0)
        )

    def features(self, utterances: Sequence[Utterance]):
        feats = [self.frontend(u.audio) for u in utterances]
        speech, lengths = pad_features(feats, self.frontend.config.feature_dim)
        languages = np.array([language_id(u.language) for u in utterances], dtype=np.int32)
        textnorms = np.array([textnorm_id(u.use_itn) for u in utterances], dtype=np.int32)
        return speech, lengths, languages, textnorms

    def transcribe(self, utterances: Sequence[Utterance], encode: EncodeFn) -> list[str]:
        """Texts in the order given; the encoder sees the utterances in batches of similar length."""
        return [answer.text for answer in self.answer(utterances, encode)]

    def answer(self, utterances: Sequence[Utterance], encode: EncodeFn) -> list[Answer]:
        """Texts and tag confidences in the order given (batched like ``transcribe``)."""
        answers: list[Answer | None] = [None] * len(utterances)
        for group in length_groups([u.audio.size for u in utterances]):
            batch = [utterances[i] for i in group]
            token_ids, out_lens, tag_probs = encode(*self.features(batch))
            texts = self.decoder.decode_batch(token_ids, np.asarray(out_lens).reshape(-1))
            for row, (i, text) in enumerate(zip(group, texts)):
                answers[i] = Answer(
                    text, tag_confidences(text, None if tag_probs is None else tag_probs[row])
                )
        return answers


class LocalTranscriber:
    """A model version run in this process with onnxruntime (no Triton): for benchmarks and checks."""

    def __init__(self, repository: str | Path, version: int | None = None, threads: int | None = None):
        repo = ModelRepository(repository)
        self.version = version or repo.latest_complete_version()
        if self.version is None:
            raise FileNotFoundError(f"no complete model version in {repo.path}")
        self.transcriber = Transcriber(repo.version_dir(PIPELINE_MODEL, self.version))
        self.session = EncoderSession(
            repo.version_dir(ENCODER_MODEL, self.version) / ENCODER_FILE, threads=threads
        )

    def _encode(self, speech, lengths, languages, textnorms):
        wanted = DECODE_OUTPUTS
        out = self.session.run(speech, lengths, languages, textnorms, outputs=self.session.available(wanted))
        token_ids, lens, _ = DECODE_OUTPUTS
        return out[token_ids], out[lens], out.get(TAG_PROBS)

    def transcribe(self, utterances: Sequence[Utterance]) -> list[str]:
        return self.transcriber.transcribe(utterances, self._encode)

    def answer(self, utterances: Sequence[Utterance]) -> list[Answer]:
        return self.transcriber.answer(utterances, self._encode)
