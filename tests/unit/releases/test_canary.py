"""releases/canary.py's judgement: transcripts, emotions and latency gate a candidate against what serves (or the
golden set's expected texts), and a segmented call is judged by its joined text and each segment's tags."""

from __future__ import annotations

import pytest

from sensevoice_pipeline import releases
from tests.support.paths import FIXTURE_MODEL_DIR

CLIP = FIXTURE_MODEL_DIR / "clips" / "en_refund_angry.wav"
CLIP_TEXT = "<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund."


def answered(*raw_texts: str, seconds: float = 0.010, version: str = "2") -> releases.CaseAnswer:
    """One golden recording's answer on one side: a raw text per segment."""
    return releases.CaseAnswer(raw_texts, seconds, (version,))


def test_canary_gates_on_transcripts_emotions_and_latency():
    cases = [releases.GoldenCase(CLIP, "auto", True, (CLIP_TEXT,))] * 10
    same = [answered(CLIP_TEXT, version="1")] * 10

    def judge(staged, thresholds=None):
        thresholds = thresholds or releases.CanaryThresholds()
        return releases.judge(cases, {"serving": same, "staged": staged}, thresholds, 2, 1)

    ok = judge([answered(CLIP_TEXT, seconds=0.012)] * 10)
    assert ok.passed and ok.transcript_agreement == 1.0 and ok.latency_ratio == pytest.approx(1.2)
    assert ok.segments_per_case == [1] * 10
    happy = CLIP_TEXT.replace("ANGRY", "HAPPY")  # same words, another emotion
    result = judge([answered(happy)] * 2 + [answered(CLIP_TEXT)] * 8)
    assert not result.passed and result.reasons == ["emotion agreement 0.800 < 0.95"]
    assert result.transcript_agreement == 1.0 and len(result.disagreements) == 2
    other = "<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund now."
    result = judge([answered(other, seconds=0.030)] * 10)
    assert result.reasons == ["transcript agreement 0.000 < 0.95", "latency ratio 3.00 > 1.5"]
    assert judge([answered(other)] * 10, releases.CanaryThresholds(0.0, 0.95, 1.5)).passed
    # nothing serving yet: the golden set's expected texts are the baseline, latency is not gated
    first = releases.judge(
        cases,
        {"staged": [answered(CLIP_TEXT, seconds=0.5, version="1")] * 10},
        releases.CanaryThresholds(),
        1,
        None,
    )
    assert first.passed and first.baseline == "expected texts of the golden set"
    assert first.latency_ratio is None and first.expected_match_staged == 1.0


def test_canary_judges_a_segmented_call_by_its_joined_text_and_each_segments_tags():
    call = [releases.GoldenCase(CLIP)]
    angry, happy = "<|en|><|ANGRY|><|Speech|><|withitn|>", "<|en|><|HAPPY|><|Speech|><|withitn|>"
    serving = {"serving": [answered(angry + "I want", happy + "a refund.", version="1")]}
    judge = lambda *staged: releases.judge(  # noqa: E731
        call, {**serving, "staged": [answered(*staged)]}, releases.CanaryThresholds(), 2, 1
    )
    assert judge(angry + "I want", happy + "a refund.").passed
    # the same words in one segment: the text agrees, the emotions (angry, happy) and (angry,) do not
    one_segment = judge(angry + "I want a refund.")
    assert one_segment.transcript_agreement == 1.0 and one_segment.emotion_agreement == 0.0
    assert one_segment.segments_per_case == [1]
    # every segment's emotion counts, not only the first one's
    assert judge(angry + "I want", angry + "a refund.").emotion_agreement == 0.0
    assert judge(angry + "I want", happy + "a refund!").transcript_agreement == 0.0
