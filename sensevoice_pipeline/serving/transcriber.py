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
from sensevoice_pipeline.speech import alignment
from sensevoice_pipeline.speech.alignment import WordTime
from sensevoice_pipeline.speech.decoder import CtcDecoder, Tokenizer, ctc_greedy_ids
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession, pad_features
from sensevoice_pipeline.speech.frontend import Frontend, FrontendConfig
from sensevoice_pipeline.speech.languages import language_id, textnorm_id
from sensevoice_pipeline.speech.tags import TagConfidences, tag_confidences
from sensevoice_pipeline.triton_contract import CTC_LOGITS, DECODE_OUTPUTS, ENCODER_OUT_LENS


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # mono float32 at 16 kHz
    language: str = "auto"
    use_itn: bool = DEFAULT_USE_ITN


@dataclass(frozen=True)
class Answer:
    text: str  # the rich transcription (the `sensevoice` TEXT)
    confidences: TagConfidences  # all None for an encoder version exported without tag probabilities
    words: tuple[
        WordTime, ...
    ] = ()  # word times from the start of the utterance's audio (speech/alignment.py)
    # False where the text re-tokenises into other tokens than the model emitted and no log-probabilities were
    # available to align those: the words' times are then those of the emitted tokens
    words_aligned: bool = True


# (speech [B,T,D], lengths [B], language [B], textnorm [B])
#   -> (token_ids [B,T'], encoder_out_lens [B], tag_probs [B, tags.TAG_PROBS_WIDTH] or None when the version lacks it)
EncodeFn = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]
]
# The same inputs -> (ctc_logits [B, T', V] (log-probabilities), encoder_out_lens [B]): asked only for the utterances whose words need a
# forced alignment (alignment.needs_emission); None where the serving path must not move them (the GPU encoder).
LogitsFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

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

    def answer(
        self, utterances: Sequence[Utterance], encode: EncodeFn, logits: LogitsFn | None = None
    ) -> list[Answer]:
        """Texts, tag confidences and word times in the order given (batched like ``transcribe``)."""
        answers: list[Answer | None] = [None] * len(utterances)
        for group in length_groups([u.audio.size for u in utterances]):
            features = self.features([utterances[i] for i in group])
            token_ids, out_lens, tag_probs = encode(*features)
            out_lens = np.asarray(out_lens).reshape(-1)
            texts = self.decoder.decode_batch(token_ids, out_lens)
            words = self._word_times(features, texts, token_ids, out_lens, logits)
            for row, (i, text) in enumerate(zip(group, texts)):
                answers[i] = Answer(
                    text,
                    tag_confidences(text, None if tag_probs is None else tag_probs[row]),
                    *words[row],
                )
        return answers

    def _word_times(self, features, texts, token_ids, out_lens, logits: LogitsFn | None):
        """(words, aligned) per row: from the argmax path where the text re-tokenises into the emitted tokens; from a
        forced alignment on the logits, asked for those rows only, where it does not and ``logits`` is given."""
        tokenizer, blank = self.decoder.tokenizer, self.decoder.blank_id
        speech = [alignment.speech_frame_ids(token_ids[row], out_lens[row]) for row in range(len(texts))]
        targets = [alignment.alignment_targets(tokenizer, text) for text in texts]
        paths = list(speech)
        aligned = [True] * len(texts)
        slow = [
            row for row in range(len(texts)) if alignment.needs_emission(targets[row], speech[row], blank)
        ]
        if slow and logits is not None:
            emissions = self._emissions(features, slow, [targets[row].ids for row in slow], logits)
            for row, emission in zip(slow, emissions):
                paths[row] = alignment.forced_align(emission, targets[row].ids, speech[row], blank)
        elif slow:
            for row in slow:  # the emitted tokens' own times
                emitted = ctc_greedy_ids(speech[row], speech[row].size, blank)
                targets[row] = alignment.Targets(tokenizer.id_pieces(emitted), emitted)
                aligned[row] = False
        return [
            (tuple(alignment.word_times(targets[row], paths[row], blank)), aligned[row])
            for row in range(len(texts))
        ]

    def _emissions(
        self, features, rows: list[int], targets: list[list[int]], logits: LogitsFn
    ) -> list[np.ndarray]:
        """The blank's and each target's log-probabilities at each speech frame of the batch's ``rows``, from the
        batch's own features (those rows only, padded to the longest of them as ``features`` would pad them)."""
        speech, lengths, languages, textnorms = features
        frames = int(lengths[rows].max())
        log_probs, out_lens = logits(speech[rows, :frames], lengths[rows], languages[rows], textnorms[rows])
        out_lens = np.asarray(out_lens).reshape(-1)
        columns = [[self.decoder.blank_id, *ids] for ids in targets]
        return [
            np.asarray(log_probs[k, alignment.QUERY_FRAMES : out_lens[k]][:, columns[k]])
            for k in range(len(rows))
        ]


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

    def _logits(self, speech, lengths, languages, textnorms):
        names = [CTC_LOGITS.name, ENCODER_OUT_LENS.name]
        out = self.session.run(speech, lengths, languages, textnorms, outputs=names)
        return out[names[0]], out[names[1]]

    def transcribe(self, utterances: Sequence[Utterance]) -> list[str]:
        return self.transcriber.transcribe(utterances, self._encode)

    def answer(self, utterances: Sequence[Utterance]) -> list[Answer]:
        return self.transcriber.answer(utterances, self._encode, self._logits)
