"""Silero VAD on onnxruntime alone, against the silero-vad package (torch) on the same vendored model."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from sensevoice_pipeline.constants import DEFAULT_MERGE_SEGMENT_S
from sensevoice_pipeline.speech.audio import load_mono_16k
from sensevoice_pipeline.speech.vad import (
    DEFAULT_MODEL,
    SAMPLE_RATE,
    WINDOW,
    Segment,
    SileroVad,
    merge_adjacent,
    segment_for_asr,
)
from tests.support.paths import EXAMPLE_AUDIO

MAX_S = 30.0


@pytest.fixture(scope="module")
def silero():
    """silero's own OnnxWrapper on its own copy of silero_vad.onnx, and its get_speech_timestamps."""
    silero_vad = pytest.importorskip("silero_vad")
    return silero_vad.load_silero_vad(onnx=True), silero_vad.get_speech_timestamps


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    assert len(EXAMPLE_AUDIO) == 5
    return [load_mono_16k(p) for p in EXAMPLE_AUDIO]


@pytest.fixture(scope="module")
def long_call(clips):
    """The five clips with 1.5-3 s of low noise (about -50 dBFS) between them, repeated to about 90 s.

    Returns the audio and the (offset, clip) placements."""
    rng = np.random.default_rng(7)
    parts, placed, n = [], [], 0
    while n < 90 * SAMPLE_RATE:
        for clip in clips:
            gap = (0.003 * rng.standard_normal(int(rng.uniform(1.5, 3.0) * SAMPLE_RATE))).astype(np.float32)
            parts.append(gap)
            n += gap.size
            placed.append((n, clip))
            parts.append(clip)
            n += clip.size
            if n >= 90 * SAMPLE_RATE:
                break
    parts.append((0.003 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32))
    return np.concatenate(parts), placed


@pytest.fixture(scope="module")
def babble(clips, vad) -> np.ndarray:
    """67 s of continuous speech: three voices talking over each other, so no window falls below the threshold.

    The clips are trimmed to their speech first; the first 3 s (before all three voices are in) are dropped."""
    cores = []
    for clip in clips:
        segs = vad.segments(clip)
        cores.append(clip[segs[0].start : segs[-1].end])
    total = 70 * SAMPLE_RATE
    mix = np.zeros(total, dtype=np.float32)
    for voice, offset_s in enumerate((0.0, 1.3, 2.9)):
        pos, i = int(offset_s * SAMPLE_RATE), 0
        while pos < total:
            core = cores[(i + voice) % len(cores)]
            m = min(core.size, total - pos)
            mix[pos : pos + m] += core[:m]
            pos, i = pos + m, i + 1
    return (mix / np.abs(mix).max())[3 * SAMPLE_RATE :]


def assert_well_formed(segments: list[Segment], n_samples: int, max_s: float = MAX_S) -> None:
    for seg in segments:
        assert 0 <= seg.start < seg.end <= n_samples, seg
        assert seg.end - seg.start <= int(max_s * SAMPLE_RATE), seg
    for a, b in zip(segments, segments[1:]):
        assert a.end <= b.start, (a, b)


def silero_bounds(silero, audio: np.ndarray, **kwargs) -> list[tuple[int, int]]:
    import torch

    model, get_speech_timestamps = silero
    found = get_speech_timestamps(torch.from_numpy(audio), model, sampling_rate=SAMPLE_RATE, **kwargs)
    return [(d["start"], d["end"]) for d in found]


# (a) the probabilities -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_AUDIO, ids=lambda p: p.stem)
def test_probabilities_match_silero_onnx_wrapper(vad, silero, path):
    import torch

    audio = load_mono_16k(
        path
    )  # none of the clips is a multiple of 512 samples: the zero-padded tail is covered
    want = silero[0].audio_forward(torch.from_numpy(audio), SAMPLE_RATE).numpy()[0]
    got = vad.speech_probabilities(audio)
    assert got.dtype == np.float32 and got.shape == (-(-audio.size // WINDOW),)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert got.max() > 0.9  # real speech, not a trivially silent comparison


@pytest.mark.parametrize("n", [0, 1, 511, 512, 513, 1600])
def test_one_probability_per_started_window(vad, clips, n):
    assert vad.speech_probabilities(clips[0][:n]).shape == (-(-n // WINDOW),)


def test_model_is_the_documented_vendored_file():
    readme = (DEFAULT_MODEL.parent / "README.md").read_text()
    digest = hashlib.sha256(Path(DEFAULT_MODEL).read_bytes()).hexdigest()
    assert re.search(rf"\b{digest}\b", readme)


# (b) a long call -----------------------------------------------------------------------------------------------


def test_long_call_segments(vad, silero, long_call):
    audio, placed = long_call
    assert 88 <= audio.size / SAMPLE_RATE <= 100
    segments = vad.segments(audio)
    assert_well_formed(segments, audio.size)

    covered = np.zeros(audio.size, dtype=bool)
    for seg in segments:
        covered[seg.start : seg.end] = True
    for offset, clip in placed:
        # Loud region: 20 ms frames within 20 dB of the clip's loudest frame. All of them must be kept.
        n = clip.size // 320
        rms = np.sqrt((clip[: n * 320].reshape(n, 320) ** 2).mean(axis=1))
        loud = np.flatnonzero(rms > 0.1 * rms.max())
        assert covered[offset + loud * 320 + 160].all(), (
            f"loud frames of a clip at {offset / SAMPLE_RATE:.1f} s dropped"
        )
    # The noise between clips is not speech: no segment bridges two clips.
    for (offset, clip), (next_offset, _) in zip(placed, placed[1:]):
        gap_middle = (offset + clip.size + next_offset) // 2
        assert not covered[gap_middle]

    # Every clip is shorter than 30 s, so nothing is split and the rules are silero's: the same probabilities
    # give the same boundaries. One window (32 ms) of slack absorbs a probability within 1e-5 of a threshold
    # flipping one decision; the count must match exactly.
    want = silero_bounds(silero, audio, max_speech_duration_s=MAX_S)
    assert len(segments) == len(want)
    got = np.array([(s.start, s.end) for s in segments])
    assert np.abs(got - np.array(want)).max() <= WINDOW


# (c) continuous speech -----------------------------------------------------------------------------------------


def test_continuous_speech_is_split_into_pieces_of_at_most_30s(vad, silero, babble):
    probs = vad.speech_probabilities(babble)
    assert probs.min() >= vad.threshold  # no pause anywhere: only a hard cut can split it
    segments = vad.segments(babble)
    assert_well_formed(segments, babble.size)
    assert len(segments) == 3  # 67 s
    # All speech: the pieces tile the clip, and each but the last is as long as allowed (30 s less the padding).
    assert segments[0].start == 0 and segments[-1].end == babble.size
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.end_s - s.start_s > MAX_S - 0.2 for s in segments[:-1])
    # silero cuts continuous speech at the same length limit (it has no pause > 98 ms to prefer either).
    want = silero_bounds(silero, babble, max_speech_duration_s=MAX_S)
    assert len(want) == len(segments)
    assert np.abs(np.array([(s.start, s.end) for s in segments]) - np.array(want)).max() <= 0.1 * SAMPLE_RATE


class ScriptedVad(SileroVad):
    """The segmentation rules on given probabilities, to reach each kind of cut deterministically."""

    def __init__(self, probs: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.probs = np.asarray(probs, dtype=np.float32)

    def speech_probabilities(self, audio: np.ndarray) -> np.ndarray:
        assert self.probs.size == -(-audio.size // WINDOW)
        return self.probs


def scripted(probs) -> tuple[ScriptedVad, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float32)
    return ScriptedVad(probs), np.zeros(probs.size * WINDOW, dtype=np.float32)


def windows(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE / WINDOW)


def test_split_prefers_the_longest_pause():
    probs = np.full(windows(70), 0.95)
    probs[windows(20) : windows(20) + 3] = 0.05  # 96 ms: too short to end the segment, the longest pause
    probs[windows(25)] = 0.05  # a shorter one, later
    vad, audio = scripted(probs)
    segments = vad.segments(audio)
    assert_well_formed(segments, audio.size)
    # The pause is left out of both pieces; at 96 ms it is wider than two paddings, so each side gets a full one.
    assert segments[0].end == windows(20) * WINDOW + vad.pad_samples
    assert segments[1].start == (windows(20) + 3) * WINDOW - vad.pad_samples
    assert len(segments) == 3


def test_split_at_least_speech_like_window_when_nothing_is_quiet():
    probs = np.full(windows(40), 0.95)
    probs[windows(22)] = 0.4  # above the exit threshold (0.35), below the speech threshold
    vad, audio = scripted(probs)
    segments = vad.segments(audio)
    assert [(s.start, s.end) for s in segments] == [
        (0, windows(22) * WINDOW),
        (windows(22) * WINDOW, audio.size),
    ]


def test_split_falls_back_to_a_hard_cut():
    probs = np.full(windows(70), 0.95)
    vad, audio = scripted(probs)
    segments = vad.segments(audio)
    assert_well_formed(segments, audio.size)
    assert len(segments) == 3
    assert segments[0] == Segment(0, (int(MAX_S * SAMPLE_RATE) - 2 * vad.pad_samples) // WINDOW * WINDOW)


def test_split_respects_a_smaller_limit_and_padding():
    probs = np.zeros(windows(60))
    probs[windows(5) : windows(52)] = 0.95
    vad, audio = scripted(probs)
    segments = vad.segments(audio, max_segment_s=10.0)
    assert_well_formed(segments, audio.size, max_s=10.0)
    assert len(segments) == 5
    assert segments[0].start == windows(5) * WINDOW - vad.pad_samples
    assert segments[-1].end == windows(52) * WINDOW + vad.pad_samples


def test_short_blips_are_dropped():
    probs = np.zeros(windows(5))
    probs[windows(1) : windows(1) + 4] = 0.99  # 128 ms
    probs[windows(3) : windows(3) + 10] = 0.99  # 320 ms
    vad, audio = scripted(probs)
    assert [(s.start_s, s.end_s) for s in vad.segments(audio)] == [
        pytest.approx(
            (windows(3) * WINDOW / SAMPLE_RATE - 0.03, (windows(3) + 10) * WINDOW / SAMPLE_RATE + 0.03)
        )
    ]


# (d) silence, short clips, empty audio -------------------------------------------------------------------------


def test_silence_has_no_segments(vad):
    noise = (0.003 * np.random.default_rng(1).standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    assert vad.segments(noise) == []
    assert vad.segments(np.zeros(10 * SAMPLE_RATE, dtype=np.float32)) == []
    assert vad.segments(np.zeros(0, dtype=np.float32)) == []


def test_segment_for_asr_short_clip_is_one_whole_segment(vad):
    silence = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)
    assert segment_for_asr(silence, vad) == [Segment(0, silence.size)]
    assert segment_for_asr(np.zeros(0, dtype=np.float32), vad) == []


def test_segment_for_asr_long_audio_uses_vad(vad, long_call):
    audio, _ = long_call
    assert segment_for_asr(audio, vad, merge_segment_s=0.0) == vad.segments(audio)
    # by default, adjacent segments joined as the daily job sends them (tests/unit/speech/test_vad_merging.py)
    assert segment_for_asr(audio, vad) == merge_adjacent(vad.segments(audio), DEFAULT_MERGE_SEGMENT_S)
    assert segment_for_asr(np.zeros(40 * SAMPLE_RATE, dtype=np.float32), vad) == []


# (e) the length limit itself -----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_s", [MAX_S, 5.0])
def test_clip_exactly_at_the_limit_is_one_segment(vad, max_s):
    n = int(max_s * SAMPLE_RATE)
    assert segment_for_asr(np.zeros(n, dtype=np.float32), vad, max_segment_s=max_s) == [Segment(0, n)]
    # One sample more goes through the VAD, which finds no speech in silence.
    assert segment_for_asr(np.zeros(n + 1, dtype=np.float32), vad, max_segment_s=max_s) == []


def test_segment_seconds():
    seg = Segment(8000, 24000)
    assert (seg.start_s, seg.end_s) == (0.5, 1.5)


def test_rejects_stereo_and_impossible_limits(vad):
    with pytest.raises(ValueError, match="1-D"):
        vad.speech_probabilities(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="max_segment_s"):
        segment_for_asr(np.zeros(16000, dtype=np.float32), vad, max_segment_s=0)
    with pytest.raises(ValueError, match="max_segment_s"):
        vad.segments(np.zeros(16000, dtype=np.float32), max_segment_s=0.05)
