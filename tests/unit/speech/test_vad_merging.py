"""Adjacent VAD segments of one channel joined into fewer, longer requests (speech.vad.merge_adjacent, issue 18):
never across channels, never cutting a speech region, never past max_segment_s, true times kept; 0 = today's
segments exactly. The daily job's rows and the server's own request count, against the real local Triton:
tests/integration/daily/test_segment_merging.py."""

from __future__ import annotations

import numpy as np
import pytest

from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.serving.recordings import cut_segments
from sensevoice_pipeline.speech.vad import Segment, merge_adjacent, segment_for_asr
from tests.support.audio import turn_taking_call


@pytest.fixture(scope="module")
def call(sentences) -> np.ndarray:
    return turn_taking_call(sentences)


def covering(merged: list[Segment], seg: Segment) -> list[Segment]:
    return [m for m in merged if m.start < seg.end and seg.start < m.end]


def assert_joins_whole_segments(merged: list[Segment], segments: list[Segment], limit_samples: int) -> None:
    """Each merged segment is one run of consecutive ``segments``: it starts at the first one's start, ends at the
    last one's end, and holds every segment whole (no cut inside one); none grows past the limit unless it is a
    single segment that already was longer; the join is greedy (the next segment would not have fitted)."""
    i = 0
    for m in merged:
        first = i
        while i < len(segments) and segments[i].end <= m.end:
            i += 1
        group = segments[first:i]
        assert group, f"{m} holds no segment"
        assert (m.start, m.end) == (group[0].start, group[-1].end)
        assert m.end - m.start <= limit_samples or len(group) == 1
        if i < len(segments):
            assert segments[i].end - m.start > limit_samples, "greedy: the next segment would have fitted"
    assert i == len(segments)
    for seg in segments:
        assert len(covering(merged, seg)) == 1, f"{seg} is cut or lost"


# -- the rule on its own -----------------------------------------------------------------------------------------------


def random_segments(rng: np.random.Generator, n: int) -> list[Segment]:
    """Sorted, disjoint segments of 0.1-35 s with gaps of 0-3 s (some touching: pieces of one split run)."""
    out, pos = [], int(rng.integers(0, SAMPLE_RATE))
    for _ in range(n):
        length = int(rng.uniform(0.1, 35.0 if rng.random() < 0.1 else 6.0) * SAMPLE_RATE)
        out.append(Segment(pos, pos + length))
        pos += length + (0 if rng.random() < 0.2 else int(rng.uniform(0.0, 3.0) * SAMPLE_RATE))
    return out


@pytest.mark.parametrize(
    "merge_s, max_s", [(15.0, 30.0), (5.0, 30.0), (25.0, 10.0), (30.0, 30.0), (1.0, 30.0)]
)
def test_joins_only_whole_neighbours_up_to_the_smaller_limit(merge_s, max_s):
    rng = np.random.default_rng(int(merge_s * 100 + max_s))
    limit = int(min(merge_s, max_s) * SAMPLE_RATE)
    for _ in range(200):
        segments = random_segments(rng, int(rng.integers(0, 40)))
        merged = merge_adjacent(segments, merge_s, max_s)
        assert_joins_whole_segments(merged, segments, limit)


def test_off_and_trivial_inputs_are_unchanged():
    segments = random_segments(np.random.default_rng(0), 30)
    assert merge_adjacent(segments, 0.0) == segments
    assert merge_adjacent([], 15.0) == [] and merge_adjacent(segments[:1], 15.0) == segments[:1]


def test_a_pause_is_kept_inside_the_joined_segment():
    a, b = Segment(16000, 48000), Segment(64000, 80000)  # 1-3 s and 4-5 s: joined, 3-4 s of pause inside
    assert merge_adjacent([a, b], 15.0) == [Segment(16000, 80000)]
    assert merge_adjacent([a, b], 4.0) == [Segment(16000, 80000)]  # exactly 4 s: fits
    assert merge_adjacent([a, b], 3.9) == [a, b]


def test_refuses_a_negative_length_and_unsorted_segments():
    with pytest.raises(ValueError, match="merge_segment_s"):
        merge_adjacent([Segment(0, 10)], -1.0)
    with pytest.raises(ValueError, match="sorted and disjoint"):
        merge_adjacent([Segment(0, 100), Segment(50, 200)], 15.0)


# -- real speech through the real VAD -------------------------------------------------------------------------------


def test_off_gives_todays_segments_exactly(vad, call):
    for channel in call:
        assert segment_for_asr(channel, vad, 30.0, merge_segment_s=0.0) == vad.segments(channel, 30.0)


@pytest.mark.parametrize("merge_s, max_s", [(15.0, 30.0), (10.0, 30.0), (25.0, 12.0)])
def test_vad_segments_of_a_real_call_are_joined_whole(vad, call, merge_s, max_s):
    for channel in call:
        segments = vad.segments(channel, max_s)
        merged = segment_for_asr(channel, vad, max_s, merge_segment_s=merge_s)
        assert len(segments) >= 5 and len(merged) < len(segments)
        assert_joins_whole_segments(merged, segments, int(min(merge_s, max_s) * SAMPLE_RATE))


def test_a_short_channel_stays_one_whole_segment(vad, sentences):
    clip = sentences[0]
    assert segment_for_asr(clip, vad, 30.0, merge_segment_s=15.0) == [Segment(0, clip.size)]


def test_never_across_channels_and_true_times(vad, call):
    """Split channels: each joined segment is a stretch of its own channel's audio, built from that channel's VAD
    segments only, though the other channel's turns lie between them in time."""
    pieces = cut_segments(list(call), vad, 30.0, merge_segment_s=25.0)
    assert {p.channel for p in pieces} == {0, 1}
    for channel, audio in enumerate(call):
        own = [p for p in pieces if p.channel == channel]
        assert [p.index for p in own] == list(range(len(own)))
        want = merge_adjacent(vad.segments(audio, 30.0), 25.0, 30.0)
        assert [(p.start_s, p.end_s) for p in own] == [(m.start_s, m.end_s) for m in want]
        for p, m in zip(own, want):
            assert np.array_equal(p.audio, audio[m.start : m.end])  # this channel's samples, start to end
    # the other channel's turns lie inside joined segments' time spans, yet only each channel's own runs were joined
    spans = {c: [(p.start_s, p.end_s) for p in pieces if p.channel == c] for c in (0, 1)}
    other_runs = [(s.start_s, s.end_s) for s in vad.segments(call[1], 30.0)]
    assert any(a <= s and e <= b for s, e in other_runs for a, b in spans[0])
