"""Token and word times of a transcription, as funasr answers ``generate(..., output_timestamp=True)``.

funasr 1.4.16 (``SenseVoiceSmall.inference``, models/sense_voice/model.py) re-tokenises the decoded text (its
pieces after the four leading tags), force-aligns those tokens to the speech frames' CTC log-probabilities
(``ctc_forced_align``: Viterbi over the blank-interleaved targets), turns each token's run of frames into times
(60 ms frames, half a frame earlier, clipped to the speech), and merges pieces into words (``post``).

What the alignment needs is cheap in the common case. When the re-tokenised text is the very token sequence the
greedy decoder emitted (always so for the trained fixture model; a model trained with CTC on sentencepiece targets
emits their canonical segmentation), the best alignment *is* the per-frame argmax path: that path collapses to the
targets and takes each frame's highest log-probability, so no constrained path scores higher. Its times come from
the per-frame ids the decoder already has, and no log-probabilities are needed at all. Only
where the two sequences differ is the forced alignment run (:func:`forced_align`), on the log-probabilities of the
blank and the target tokens at each speech frame. Those come from the encoder's ``ctc_logits``, which only the
local CPU encoder offers: the GPU encoder's config does not list them (a [T, 25055] copy off the GPU per utterance),
so there such an utterance keeps its emitted tokens' times (docs/call-analytics.md, "Word times").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensevoice_pipeline.speech.decoder import BLANK_ID, Tokenizer, ctc_greedy_ids

FRAME_MS = 60  # one encoder output frame: 6 LFR-stacked 10 ms fbank frames
QUERY_FRAMES = 4  # language, event, emotion and text-norm queries precede the speech frames
# funasr aligns a piece that sentencepiece encodes to nothing as this id (models/sense_voice/model.py); kept so that
# the targets, and so the times, are funasr's.
FUNASR_EMPTY_PIECE_ID = 124
WORD_START = "\u2581"  # sentencepiece's word-start mark


@dataclass(frozen=True)
class WordTime:
    word: str
    start_s: float  # from the start of the audio the model was given
    end_s: float

    def shifted(self, offset_s: float) -> WordTime:
        return WordTime(self.word, round(self.start_s + offset_s, 3), round(self.end_s + offset_s, 3))

    def as_list(self) -> list:
        return [self.word, self.start_s, self.end_s]


@dataclass(frozen=True)
class Targets:
    pieces: list[str]  # the text's pieces after its four leading tags
    ids: list[int]  # what funasr aligns: each piece's ids, FUNASR_EMPTY_PIECE_ID for a piece with none


def alignment_targets(tokenizer: Tokenizer, text: str) -> Targets:
    """The tokens funasr aligns for the rich transcription ``text``."""
    pieces = tokenizer.pieces(text)[QUERY_FRAMES:]
    ids: list[int] = []
    for piece_ids in tokenizer.ids_of_pieces(pieces):
        ids.extend(piece_ids or [FUNASR_EMPTY_PIECE_ID])
    return Targets(pieces, ids)


def speech_frame_ids(frame_ids: np.ndarray, length: int) -> np.ndarray:
    """The per-frame argmax ids of the speech frames (after the query frames, up to the utterance's length)."""
    return np.asarray(frame_ids).reshape(-1)[QUERY_FRAMES : int(length)]


def needs_emission(targets: Targets, speech_ids: np.ndarray, blank_id: int = BLANK_ID) -> bool:
    """Whether the argmax path is not the alignment of ``targets`` (the text re-tokenises differently from what
    the decoder emitted over the speech frames), so that :func:`forced_align` must run."""
    return bool(targets.ids) and targets.ids != ctc_greedy_ids(speech_ids, speech_ids.size, blank_id)


def forced_align(
    emission: np.ndarray, targets: Sequence[int], speech_ids: np.ndarray, blank_id: int = BLANK_ID
):
    """The best CTC alignment of ``targets`` (funasr's ``ctc_forced_align``, same recursion and tie order).

    ``emission`` [frames, 1 + len(targets)]: log-probabilities of the blank (column 0) and of each target token
    (column 1 + k) at each speech frame. Returns the token id at each frame (``blank_id`` between tokens).
    funasr first sets the blank's log-probability to 0 where the frame's argmax is the blank; so does this."""
    frames, labels = emission.shape[0], len(targets)
    blank_scores = np.where(np.asarray(speech_ids) == blank_id, 0.0, emission[:, 0])
    # extended label sequence: blank, t0, blank, t1, ..., blank (2L + 1 states); column of each state in emission
    states = 2 * labels + 1
    column = np.zeros(states, dtype=np.int64)
    column[1::2] = np.arange(1, labels + 1)
    label = np.full(states, blank_id, dtype=np.int64)
    label[1::2] = targets
    skip_allowed = np.zeros(states, dtype=bool)  # from s-2: only between two different tokens
    skip_allowed[2:] = label[2:] != label[:-2]

    def scores_at(t: int) -> np.ndarray:
        row = emission[t, column].astype(np.float64)
        row[0::2] = blank_scores[t]
        return row

    best = np.full(states, -np.inf)
    first = scores_at(0)
    best[0] = first[0]
    if states > 1:
        best[1] = first[1]
    back = np.zeros((frames, states), dtype=np.int8)
    for t in range(1, frames):
        stay = best
        step = np.concatenate(([-np.inf], best[:-1]))
        skip = np.where(skip_allowed, np.concatenate(([-np.inf, -np.inf], best[:-2])), -np.inf)
        candidates = np.stack((stay, step, skip))
        choice = candidates.argmax(axis=0)  # first maximum on a tie, as torch's max on CPU
        back[t] = choice
        best = scores_at(t) + candidates[choice, np.arange(states)]
    last = states - 2 if labels and best[states - 2] >= best[states - 1] else states - 1
    path = np.empty(frames, dtype=np.int64)
    state = last
    for t in range(frames - 1, -1, -1):
        path[t] = label[state]
        state -= back[t, state]
    return path


def token_times(
    path: np.ndarray, pieces: Sequence[str], blank_id: int = BLANK_ID
) -> list[tuple[str, float, float]]:
    """(piece, start_s, end_s) for each run of one token in the alignment ``path`` (funasr's frame-to-time rule:
    a run of frames [a, b) spans (a * 60 - 30, b * 60 - 30) ms, clipped to 0 and to the last speech frame)."""
    out = []
    start = 0
    last_ms = path.size * FRAME_MS - FRAME_MS / 2
    for token, run in itertools.groupby(path.tolist()):
        end = start + len(list(run))
        if token != blank_id and len(out) < len(pieces):
            left = max((start * FRAME_MS - FRAME_MS / 2) / 1000, 0.0)
            right = min((end * FRAME_MS - FRAME_MS / 2) / 1000, last_ms / 1000)
            out.append((pieces[len(out)], left, right))
        start = end
    return out


def merge_words(tokens: Sequence[tuple[str, float, float]]) -> list[WordTime]:
    """Pieces merged into words as funasr's ``post`` does: a piece starting a word (``▁``) opens one, ASCII letters
    continue an ASCII word, anything else (a CJK character, punctuation) is a word of its own; times in whole ms."""
    words: list[list] = []
    previous: str | None = None
    for i, (piece, start, end) in enumerate(tokens):
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        if piece == WORD_START:
            continue
        if i > 0 and piece.startswith(WORD_START):
            piece = piece[1:]
            words.append([piece, start_ms, end_ms])
        elif i > 0 and previous is not None and _ascii_letters(previous) and _ascii_letters(piece):
            piece = previous + piece
            words[-1][0], words[-1][2] = piece, end_ms
        else:
            words.append([piece, start_ms, end_ms])
        previous = piece
    # funasr keeps the word-start mark on a first piece; a word never shows it here
    return [WordTime(w.removeprefix(WORD_START), s / 1000, e / 1000) for w, s, e in words]


def _ascii_letters(text: str) -> bool:
    return text.isalpha() and text.isascii()


def word_times(targets: Targets, path: np.ndarray, blank_id: int = BLANK_ID) -> list[WordTime]:
    """Words and their times (from the start of the utterance's audio) of an alignment ``path``."""
    return merge_words(token_times(path, targets.pieces, blank_id))
