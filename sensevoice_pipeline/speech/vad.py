"""Voice-activity segmentation of long recordings with Silero VAD, on onnxruntime alone (no torch).

SenseVoice's attention cost grows faster than linearly with the input length, so long calls are cut into speech
segments of at most ~30 s before recognition. The model is Silero VAD's ONNX export, vendored from the silero-vad
6.2.3 wheel (see ``data/README.md``); the ``silero-vad`` package itself needs torch, which Airflow workers and
Triton's Python models do not have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sensevoice_pipeline.constants import DEFAULT_MAX_SEGMENT_S, DEFAULT_MERGE_SEGMENT_S, SAMPLE_RATE
from sensevoice_pipeline.resources import VAD_MODEL

WINDOW = 512  # samples per model call: the only window Silero VAD accepts at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees in front of each window
DEFAULT_MODEL = VAD_MODEL
# Digital silence: windows whose peak stays below -80 dBFS (about 3 LSB of 16-bit audio; mu-law and PCM silence
# decode to exact zeros). A stretch of them longer than 2 x QUIET_RUN_WINDOWS (20 s) runs through the model only
# for its first and last 10 s; the middle gets probability 0. The model costs ~7 ms per second of audio (52 s for a
# silent two-hour file, 0.6 s with this) and answers ~0.001-0.01 on silence, far below any usable threshold.
# Silences up to 20 s (the mp3 clips carry ~1 s of exact zeros) are run exactly as silero runs them; after a longer
# one the recurrent state differs from silero's, so the next probabilities can differ by up to ~0.3 and a segment
# edge by a window (measured: one edge of seven moved by 512 samples after 60 s silences).
QUIET_PEAK = 1e-4
QUIET_RUN_WINDOWS = 10 * SAMPLE_RATE // WINDOW


@dataclass(frozen=True)
class Segment:
    start: int  # sample index at 16 kHz, inclusive
    end: int  # exclusive

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


class SileroVad:
    """Silero VAD speech probabilities, and speech segments short enough for SenseVoice."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 100,
        speech_pad_ms: int = 30,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if min(min_speech_ms, min_silence_ms, speech_pad_ms) < 0:
            raise ValueError("min_speech_ms, min_silence_ms and speech_pad_ms must not be negative")
        self.threshold = float(threshold)
        # Silero's exit threshold: hysteresis keeps a segment open through brief dips in the probability.
        # The 0.01 floor is silero's too, so very low thresholds still have a reachable exit.
        self.neg_threshold = max(self.threshold - 0.15, 0.01)
        self.min_speech_samples = SAMPLE_RATE * min_speech_ms // 1000
        self.min_silence_samples = SAMPLE_RATE * min_silence_ms // 1000
        self.pad_samples = SAMPLE_RATE * speech_pad_ms // 1000

        options = ort.SessionOptions()
        # One thread, as silero runs it: the model is tiny and sequential, more threads only add contention.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or DEFAULT_MODEL), sess_options=options, providers=["CPUExecutionProvider"]
        )
        # Names differ between silero exports, so they are recognised by rank rather than hard-coded:
        # audio [batch, samples], state [2, batch, 128], sr a scalar; outputs prob [batch, 1], new state rank 3.
        inputs = {len(i.shape): i.name for i in self._session.get_inputs()}
        outputs = {len(o.shape): o.name for o in self._session.get_outputs()}
        if sorted(inputs) != [0, 2, 3] or sorted(outputs) != [2, 3]:
            raise ValueError(
                f"{model_path or DEFAULT_MODEL} does not look like a Silero VAD v5/v6 ONNX model"
            )
        self._audio_in, self._state_in, self._sr_in = inputs[2], inputs[3], inputs[0]
        self._prob_out, self._state_out = outputs[2], outputs[3]

    def speech_probabilities(self, audio: np.ndarray) -> np.ndarray:
        """One speech probability per 512-sample window, streamed exactly as silero's OnnxWrapper does.

        The recurrent state and the 64-sample context carry from window to window, so the result equals silero's
        own ``audio_forward`` and the thresholds tuned for silero keep their meaning. The one exception is long
        digital silence (see QUIET_PEAK): its middle gets probability 0 without running the model, so hours of
        silence cost well under a second.
        """
        audio = _mono_float32(audio)
        n_windows = -(-audio.size // WINDOW)
        skip = _skippable(_quiet_windows(audio, n_windows), QUIET_RUN_WINDOWS)
        # Zeros in front are the first window's context; zeros behind pad the last window, as silero pads it.
        # One window at a time (no padded copy of the whole signal: two hours at 16 kHz are 0.46 GB).
        chunk = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        state = np.zeros((2, 1, 128), dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        probs = np.empty(n_windows, dtype=np.float32)
        for i in range(n_windows):
            if skip[i]:
                probs[i] = 0.0
                continue
            start = i * WINDOW
            window = audio[start : start + WINDOW]
            chunk[0, :CONTEXT] = audio[start - CONTEXT : start] if i else 0.0
            chunk[0, CONTEXT : CONTEXT + window.size] = window
            chunk[0, CONTEXT + window.size :] = 0.0
            prob, state = self._session.run(
                [self._prob_out, self._state_out],
                {self._audio_in: chunk, self._state_in: state, self._sr_in: sr},
            )
            probs[i] = prob[0, 0]
        return probs

    def segments(self, audio: np.ndarray, max_segment_s: float = DEFAULT_MAX_SEGMENT_S) -> list[Segment]:
        """Padded speech segments, sorted and disjoint, none longer than ``max_segment_s``."""
        audio = _mono_float32(audio)
        return self._segments_from_probabilities(self.speech_probabilities(audio), audio.size, max_segment_s)

    def _segments_from_probabilities(
        self, probs: np.ndarray, n_samples: int, max_segment_s: float
    ) -> list[Segment]:
        max_samples = _max_samples(max_segment_s)
        # Padding can add up to pad_samples on each side, so the unpadded piece must leave room for both.
        limit = (max_samples - 2 * self.pad_samples) // WINDOW
        if limit < 1:
            raise ValueError(
                f"max_segment_s={max_segment_s} leaves no room for one {WINDOW}-sample window "
                f"plus {self.pad_samples} samples of padding on each side"
            )
        min_piece = max(1, -(-self.min_speech_samples // WINDOW))

        pieces: list[tuple[int, int]] = []
        for start, end in self._speech_runs(probs):
            if min(end * WINDOW, n_samples) - start * WINDOW < self.min_speech_samples:
                continue  # clicks and blips: too short to be speech worth sending to ASR
            pieces.extend(self._split(probs, start, end, limit, min_piece))

        bounds = [(start * WINDOW, min(end * WINDOW, n_samples)) for start, end in pieces]
        return _pad(bounds, self.pad_samples, n_samples)

    def _speech_runs(self, probs: np.ndarray) -> list[tuple[int, int]]:
        """Speech as [start, end) window ranges, by hysteresis on the probabilities.

        A run opens at a window with probability >= threshold. It closes only after a quiet spell: measured from
        the first window below the exit threshold (since the last confident speech window) to a later window that
        is still below it, the spell must last min_silence_ms. The run then ends where the quiet spell began, as
        in silero, so the boundaries match silero's for segments that need no splitting.
        """
        runs = []
        start: int | None = None
        quiet_from: int | None = None
        for i, p in enumerate(probs.tolist()):
            if start is None:
                if p >= self.threshold:
                    start, quiet_from = i, None
                continue
            if p >= self.threshold:
                quiet_from = None
            elif p < self.neg_threshold:
                if quiet_from is None:
                    quiet_from = i
                if (i - quiet_from) * WINDOW >= self.min_silence_samples:
                    runs.append((start, quiet_from))
                    start = quiet_from = None
        if start is not None:
            runs.append((start, len(probs)))
        return runs

    def _split(
        self, probs: np.ndarray, start: int, end: int, limit: int, min_piece: int
    ) -> list[tuple[int, int]]:
        """Cut a run longer than ``limit`` windows where the speaker is most likely pausing.

        Each cut keeps the piece before it between limit/2 and limit windows long (so a run is not shredded into
        needlessly many pieces), leaves at least ``min_piece`` windows after it, and, once what is left fits in
        one more piece, keeps that remainder within ``limit`` as well.
        """
        pieces = []
        while end - start > limit:
            n = end - start
            lo = start + max(limit // 2, 1, n - limit if n <= 2 * limit else 0)
            hi = start + min(limit, n - min_piece)
            if lo > hi:  # the soft constraints conflict (tiny limits): honour only the hard one
                lo = hi = start + limit
            left_end, right_start = self._cut(probs, lo, hi)
            pieces.append((start, left_end))
            start = right_start
        pieces.append((start, end))
        return pieces

    def _cut(self, probs: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
        """Where to cut inside windows [lo, hi): (end of the piece before, start of the piece after).

        Preference: the longest stretch below the exit threshold (a real pause, left out of both pieces); else
        the single least speech-like window, if it is below the speech threshold (a likely breath; the cut falls at
        its start and nothing is dropped); else a hard cut at ``hi``, the longest piece allowed.
        """
        span = probs[lo:hi]
        quiet = span < self.neg_threshold
        if quiet.any():
            edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
            run_starts, run_ends = edges[0::2], edges[1::2]
            lengths = run_ends - run_starts
            # Among equally long pauses the latest wins: it makes the piece before it longer, and pieces fewer.
            best = len(lengths) - 1 - int(np.argmax(lengths[::-1]))
            return lo + int(run_starts[best]), lo + int(run_ends[best])
        if span.size and float(span.min()) < self.threshold:
            k = lo + int(np.argmin(span))
            return k, k
        return hi, hi


def segment_for_asr(
    audio: np.ndarray,
    vad: SileroVad | None = None,
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S,
    merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S,
) -> list[Segment]:
    """What the daily job sends for one channel: the whole clip as one segment when it is at most max_segment_s
    long (SenseVoice handles silence itself and short clips need no cutting); otherwise VAD speech segments, none
    longer than max_segment_s, adjacent ones joined up to merge_segment_s (:func:`merge_adjacent`; 0: not joined).
    Empty audio -> []."""
    audio = _mono_float32(audio)
    if audio.size == 0:
        return []
    if audio.size <= _max_samples(max_segment_s):
        return [Segment(0, audio.size)]
    segments = (vad or _default_vad()).segments(audio, max_segment_s)
    return merge_adjacent(segments, merge_segment_s, max_segment_s)


def merge_adjacent(
    segments: list[Segment], merge_segment_s: float, max_segment_s: float = DEFAULT_MAX_SEGMENT_S
) -> list[Segment]:
    """Runs of adjacent ``segments`` (sorted, disjoint) joined into one segment each, from the first one's start to
    the last one's end, while that stays within ``merge_segment_s`` and ``max_segment_s``; ``merge_segment_s`` 0:
    ``segments`` as they are.

    Why: a call of short sentences otherwise becomes one request per sentence, each paying the per-request cost
    and, in a dynamic batch, padding up to its longest neighbour. funasr's own VAD pipeline joins segments the same
    way for SenseVoice (``AutoModel.inference_with_vad`` with ``merge_vad=True``, ``merge_length_s`` default 15:
    ``funasr.utils.vad_utils.merge_vad``, funasr 1.4.16). Like funasr's, a joined segment is one contiguous stretch
    of the channel: the pauses between its speech runs are sent with it (the model hears the real pause, not an
    abrupt splice). Unlike funasr's, which tiles the audio from 0 to the last speech end (leading silence included,
    every pause included), silence before the first and after the last run stays out, and a segment never grows past
    ``max_segment_s``.

    Only whole segments are joined, so no cut falls inside a speech region that the VAD kept whole; a segment
    already longer than the limit stays as it is. The result's start and end are true times in the channel.
    """
    if not (math.isfinite(merge_segment_s) and merge_segment_s >= 0):
        raise ValueError(
            f"merge_segment_s must be 0 (off) or a positive number of seconds, got {merge_segment_s}"
        )
    if merge_segment_s == 0 or len(segments) < 2:
        return list(segments)
    limit = min(_max_samples(merge_segment_s), _max_samples(max_segment_s))
    merged = [segments[0]]
    for seg in segments[1:]:
        current = merged[-1]
        if seg.start < current.end:
            raise ValueError(f"segments must be sorted and disjoint: {seg} starts before {current} ends")
        if seg.end - current.start <= limit:
            merged[-1] = Segment(current.start, seg.end)
        else:
            merged.append(seg)
    return merged


@lru_cache(maxsize=1)
def _default_vad() -> SileroVad:
    """Shared across calls: building the session costs more than a short clip's inference, and run() is
    thread-safe because the recurrent state lives in each call, not in the object."""
    return SileroVad()


def _max_samples(max_segment_s: float) -> int:
    if not (math.isfinite(max_segment_s) and max_segment_s > 0):
        raise ValueError(f"max_segment_s must be a positive number of seconds, got {max_segment_s}")
    return int(max_segment_s * SAMPLE_RATE)


def _quiet_windows(audio: np.ndarray, n_windows: int) -> np.ndarray:
    """Per 512-sample window: is its peak below QUIET_PEAK? (max/min along rows: no full-size temporary)"""
    full = audio.size // WINDOW
    peaks = np.empty(n_windows, dtype=np.float32)
    if full:
        rows = audio[: full * WINDOW].reshape(full, WINDOW)
        peaks[:full] = np.maximum(rows.max(axis=1), -rows.min(axis=1))
    if n_windows > full:
        peaks[full] = np.abs(audio[full * WINDOW :]).max()
    return peaks < QUIET_PEAK


def _skippable(quiet: np.ndarray, keep: int) -> np.ndarray:
    """Windows inside a quiet stretch that are more than ``keep`` windows from both of its ends."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    skip = np.zeros(quiet.size, dtype=bool)
    for start, end in zip(edges[0::2], edges[1::2]):
        if end - start > 2 * keep:
            skip[start + keep : end - keep] = True
    return skip


def _mono_float32(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D mono audio at {SAMPLE_RATE} Hz, got shape {audio.shape}")
    return audio


def _pad(bounds: list[tuple[int, int]], pad: int, n_samples: int) -> list[Segment]:
    """Widen each segment by ``pad`` samples per side so word edges are not clipped.

    Between two segments closer than 2 * pad each takes half the gap, so padding never makes them overlap
    (silero's rule); the first and last stop at the ends of the audio.
    """
    out = []
    for i, (start, end) in enumerate(bounds):
        room_before = (start - bounds[i - 1][1]) // 2 if i else start
        room_after = (bounds[i + 1][0] - end) // 2 if i + 1 < len(bounds) else n_samples - end
        out.append(Segment(start - min(pad, room_before), end + min(pad, room_after)))
    return out
