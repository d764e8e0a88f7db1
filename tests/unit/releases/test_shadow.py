"""releases/shadow.py in-process: the sample of recent published recordings (stratified, the latest days, failed files
left out) from a real lake, and the judgement of the candidate's answers against the published rows, on answers
whose every figure is known by construction. Through a real Triton with a candidate built to turn angry:
tests/integration/releases/test_shadow_canary.py."""

from __future__ import annotations

import datetime as dt

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.releases.shadow import (
    SampledRecording,
    ShadowThresholds,
    judge_shadow,
    sample_recordings,
)

AT = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
DAYS = ("2026-11-18", "2026-11-19", "2026-11-20")


def recording(rec: str, hint: str, mode: str, status: str = "ok") -> dict:
    return {
        "recording_id": rec,
        "source_path": f"calls/{rec}.wav",
        "channels": 2 if mode == "split" else 1,
        "duration_s": 4.0,
        "status": status,
        "language_hint": hint,
        "channel_mode": mode,
        "processed_at": AT,
    }


def utterance(rec: str, index: int, emotion: str | None, text: str, channel: int = 0) -> dict:
    return {
        "recording_id": rec,
        "source_path": f"calls/{rec}.wav",
        "channel": channel,
        "segment_index": index,
        "start_s": float(index),
        "end_s": index + 1.0,
        "language": "en",
        "emotion": emotion,
        "event": "Speech",
        "text": text,
        "itn": True,
        "model_version": "1",
        "processed_at": AT,
    }


def publish(lake: Lake, date: str, recordings: list[dict], utterances: list[dict]) -> None:
    rec, utt = tables.to_table(recordings, tables.RECORDINGS), tables.to_table(utterances, tables.UTTERANCES)
    lake.commit_day(date, {"recordings": rec, "utterances": utt, **tables.rollups(utt, rec)})


def test_the_sample_takes_the_strata_in_turns_from_the_latest_days(tmp_path):
    lake = Lake(tmp_path / "lake")
    for day in DAYS:
        d = day[-2:]
        recordings = [
            *(recording(f"en-{d}-{i}", "en", "mono") for i in range(6)),
            recording(f"yue-{d}", "yue", "mono"),
            recording(f"split-{d}", "en", "split"),
            recording(f"bad-{d}", "yue", "split", status="failed"),
        ]
        publish(lake, day, recordings, [utterance(f"yue-{d}", 0, "neutral", "hello")])
    dates, sample = sample_recordings(lake, ShadowThresholds(sample_size=5, look_back_days=2))
    assert set(dates) <= {"2026-11-20", "2026-11-19"} and dates == sorted(dates, reverse=True)
    assert len(sample) == 5
    strata = [(r.language_hint, r.channel_mode) for r in sample]
    # each of the three ok strata gives one before any gives a second; failed files are never sampled
    assert set(strata[:3]) == {("en", "mono"), ("en", "split"), ("yue", "mono")}
    assert not any(r.recording_id.startswith("bad") for r in sample)
    yue = next(r for r in sample if r.language_hint == "yue")
    assert [u["text"] for u in yue.published] == ["hello"] and yue.use_itn is True
    assert (
        sample_recordings(lake, ShadowThresholds(sample_size=5, look_back_days=2))[1] == sample
    )  # the same sample
    assert sample_recordings(Lake(tmp_path / "none"), ShadowThresholds()) == ([], [])


def sampled(rec: str, *segments: dict) -> SampledRecording:
    return SampledRecording("2026-11-20", rec, f"calls/{rec}.wav", "en", "mono", True, segments)


def seg(index: int, emotion: str | None, text: str, channel: int = 0) -> dict:
    return {"channel": channel, "segment_index": index, "text": text, "emotion": emotion, "event": "Speech",
            "language": "en"}  # fmt: skip


def test_the_judgement_measures_text_tags_and_shares_and_refuses_an_angry_shift():
    # 10 recordings of 2 segments, published neutral; the candidate makes 2 of the 20 segments angry (shift 0.1),
    # answers one without an emotion (unknown) and changes "hello" to "hallo" once (1 edit)
    sample = [sampled(f"r{i}", seg(0, "neutral", "hello"), seg(1, "neutral", "thank you")) for i in range(10)]
    answers = {f"r{i}": [seg(0, "neutral", "hello"), seg(1, "neutral", "thank you")] for i in range(10)}
    answers["r0"] = [seg(0, "angry", "hello"), seg(1, "angry", "thank you")]
    answers["r1"] = [seg(0, "neutral", "hallo"), seg(1, None, "thank you")]
    verdict = judge_shadow(
        sample,
        answers,
        [],
        [0.1] * 10,
        ShadowThresholds(max_angry_share_shift=0.05, max_cer=0.2),
        2,
        ["2026-11-20"],
    )
    assert verdict.answered == 10 and verdict.segments_published == verdict.segments_staged == 20
    assert verdict.cer == round(1 / (10 * len("hello thank you")), 4)  # a channel's texts joined with a space
    assert verdict.emotion_agreement == 17 / 20 and verdict.event_agreement == 1.0
    assert verdict.emotion_share_published == {"neutral": 1.0}
    assert verdict.emotion_share_staged == {"angry": 0.1, "neutral": 0.85, "unknown": 0.05}
    assert verdict.angry_share_shift == 0.1 and verdict.emotion_share_shift["neutral"] == -0.15
    assert (verdict.unknown_rate_published, verdict.unknown_rate_staged) == (0.0, 0.05)
    assert not verdict.passed
    assert verdict.reasons == [
        "shadow canary: the angry share of 10 recent recordings would move from 0.000 to 0.100 (+0.100; at most "
        "±0.05)"
    ]
    assert [d["source_path"] for d in verdict.disagreements] == ["calls/r0.wav", "calls/r0.wav", "calls/r1.wav",
                                                                 "calls/r1.wav"]  # fmt: skip
    assert verdict.latency_staged_ms == pytest.approx(100.0)
    # the same answers under a looser gate pass
    assert judge_shadow(sample, answers, [], [0.1], ShadowThresholds(max_angry_share_shift=0.1), 2, []).passed


def test_missing_audio_is_skipped_and_counted_and_a_lost_segment_disagrees():
    sample = [
        sampled("gone", seg(0, "neutral", "hi")),
        sampled("here", seg(0, "neutral", "hi"), seg(1, "sad", "bye")),
    ]
    answers = {
        "here": [seg(0, "neutral", "hi")]
    }  # the candidate answers one segment where two were published
    skipped = [{"source_path": "calls/gone.wav", "reason": "no such file"}]
    verdict = judge_shadow(sample, answers, skipped, [0.2], ShadowThresholds(max_cer=0.5), 2, ["2026-11-20"])
    assert (verdict.sampled, verdict.answered, verdict.skipped_missing) == (2, 1, 1)
    assert verdict.skipped == skipped
    assert verdict.emotion_agreement == 0.5 and verdict.language_agreement == 0.5
    assert verdict.cer == round(len(" bye") / len("hi bye"), 4)
    assert verdict.passed is False and "character error rate 0.667" in verdict.reasons[0]
    nothing = judge_shadow(sample, {}, skipped * 2, [], ShadowThresholds(), 2, [])
    assert (
        nothing.passed and nothing.answered == 0 and nothing.cer is None and nothing.angry_share_shift is None
    )
