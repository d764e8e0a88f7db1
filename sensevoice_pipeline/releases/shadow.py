"""The shadow canary: recently published recordings through the staged candidate, compared with the answers the lake
already holds for them.

The golden set says whether the candidate still transcribes a fixed handful of clips; it cannot say what the
candidate would do to yesterday's numbers. This part answers that: a sample of the last ``look_back_days`` published
days (stratified by language hint and channel mode, the strata taking turns, each shuffled by a hash of the
recording id, so the same lake gives the same sample) goes through the candidate the daily job's way
(:class:`~sensevoice_pipeline.serving.recordings.RecordingTranscriber`, the run's redaction policy), and is compared
with the published ``utterances`` rows:

- text: the character error rate of each recording channel's text (its segments' texts joined), summed over the
  sample (``rapidfuzz``'s Levenshtein distance over the published characters);
- emotion, event, language: the share of segments (by channel and segment index) whose tag is the same; a segment
  only one side has disagrees;
- the share of each emotion among the segments on each side (no emotion counts as ``unknown``), the shift of each,
  and the ``unknown`` rate: what the BI users would see move the morning after a promote;
- the candidate's median time per recording.

A recording whose audio is gone from the raw root (a retention job) or no longer decodes is skipped and counted,
never fatal. Serving faults end the canary (a :class:`ReleaseError`), as in the golden part.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from sensevoice_pipeline.errors import InputError, ServingError
from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from sensevoice_pipeline.records import Record
from sensevoice_pipeline.releases.control import STAGED_MODEL, canary_url
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.recordings import RecordingTranscriber
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.redact import redact_raw
from sensevoice_pipeline.speech.tags import parse

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
TAGS = ("emotion", "event", "language")


@dataclass(frozen=True)
class ShadowThresholds:
    sample_size: int = 40  # recordings (0: no shadow canary)
    look_back_days: int = 7  # the last this many published days
    max_angry_share_shift: float = 0.05  # |staged - published| share of angry segments
    max_cer: float = 0.2  # character error rate of the staged texts against the published ones


@dataclass(frozen=True)
class SampledRecording:
    date: str
    recording_id: str
    source_path: str
    language_hint: str
    channel_mode: str
    use_itn: bool
    published: tuple[dict, ...]  # its utterances rows: channel, segment_index, text, emotion, event, language


@dataclass(frozen=True)
class ShadowVerdict(Record):
    """What the candidate would change on recent real recordings, and the reasons to refuse (none: ``passed``)."""

    passed: bool
    reasons: list[str]
    staged_version: int
    dates: list[str]
    sampled: int
    answered: int
    skipped_missing: int  # audio gone from the raw root, or no longer decodable
    strata: dict  # "hint/mode" -> recordings answered
    segments_published: int
    segments_staged: int
    cer: float | None
    emotion_agreement: float | None
    event_agreement: float | None
    language_agreement: float | None
    emotion_share_published: dict
    emotion_share_staged: dict
    emotion_share_shift: dict
    angry_share_shift: float | None
    unknown_rate_published: float | None
    unknown_rate_staged: float | None
    latency_staged_ms: float | None
    thresholds: dict
    disagreements: list[dict]
    skipped: list[dict] = dataclasses.field(default_factory=list)  # the first few, with why
    seconds: float | None = None


def run_shadow_canary(
    settings: Settings, staged_version: int, thresholds: ShadowThresholds | None = None
) -> ShadowVerdict | None:
    """The shadow canary of ``staged_version`` (staged on ``settings.triton_url``) on the lake at
    ``settings.lake_root``; None when it is switched off (sample size 0) or the lake has published nothing yet."""
    thresholds = thresholds or ShadowThresholds()
    if thresholds.sample_size <= 0:
        return None
    t0 = time.perf_counter()
    dates, sample = sample_recordings(Lake(settings.lake_root, settings.catalog), thresholds)
    if not sample:
        log.info("shadow canary: the lake has no published recordings to compare with")
        return None
    answers, skipped, seconds = asyncio.run(_answer_sample(settings, staged_version, sample))
    verdict = judge_shadow(sample, answers, skipped, seconds, thresholds, staged_version, dates)
    verdict = dataclasses.replace(verdict, seconds=round(time.perf_counter() - t0, 2))
    log.info(
        "shadow canary of version %s on %d recordings of %s: %s",
        staged_version,
        verdict.answered,
        ", ".join(dates),
        "passed" if verdict.passed else "; ".join(verdict.reasons),
    )
    return verdict


# -- the sample ------------------------------------------------------------------------------------------------------

# The strata take turns (the k-th of every stratum before any (k+1)-th), each in an order fixed by a hash.
_SAMPLE_SQL = f"""
    WITH recent AS (
        SELECT date, recording_id, source_path, coalesce(language_hint, 'auto') AS language_hint,
               coalesce(channel_mode, 'mono') AS channel_mode
        FROM {ALIAS}.recordings
        WHERE status = 'ok' AND date IN (
            SELECT DISTINCT date FROM {ALIAS}.recordings ORDER BY date DESC LIMIT $days
        )
    ),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY language_hint, channel_mode
                                     ORDER BY md5(recording_id || date::VARCHAR)) AS turn
        FROM recent
    )
    SELECT date::VARCHAR AS date, recording_id, source_path, language_hint, channel_mode
    FROM ranked ORDER BY turn, language_hint, channel_mode LIMIT $size
"""
_PUBLISHED_SQL = f"""
    SELECT s.date, u.recording_id, u.channel, u.segment_index, u.text, u.emotion, u.event, u.language, u.itn
    FROM {ALIAS}.utterances u JOIN sample s ON u.date = s.date::DATE AND u.recording_id = s.recording_id
    ORDER BY s.date, u.recording_id, u.channel, u.segment_index
"""


def sample_recordings(lake: Lake, thresholds: ShadowThresholds) -> tuple[list[str], list[SampledRecording]]:
    """The sample: (its dates, newest first; the recordings with their published rows)."""
    if not lake.exists:
        return [], []
    with lake.reader() as con:
        picked = con.execute(
            _SAMPLE_SQL, {"days": thresholds.look_back_days, "size": thresholds.sample_size}
        ).to_arrow_table()
        con.register("sample", picked)
        rows = con.execute(_PUBLISHED_SQL).to_arrow_table().to_pylist()
    published: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        published.setdefault((str(row["date"]), row["recording_id"]), []).append(row)
    sample = []
    for rec in picked.to_pylist():
        segments = published.get((rec["date"], rec["recording_id"]), [])
        itn = next((s["itn"] for s in segments if s["itn"] is not None), None)
        sample.append(
            SampledRecording(
                rec["date"],
                rec["recording_id"],
                rec["source_path"],
                rec["language_hint"],
                rec["channel_mode"],
                True if itn is None else bool(itn),
                tuple(segments),
            )
        )
    return sorted({r.date for r in sample}, reverse=True), sample


# -- asking the candidate --------------------------------------------------------------------------------------------


async def _answer_sample(
    settings: Settings, staged_version: int, sample: list[SampledRecording]
) -> tuple[dict[str, list[dict]], list[dict], list[float]]:
    """The candidate's segments per recording id (channel, segment_index and tags, the text redacted as the daily
    job would), the recordings skipped (and why), and the time each answered recording took."""
    client = SenseVoiceClient(
        canary_url(settings.triton_url),
        model=STAGED_MODEL,
        version=staged_version,
        max_concurrency=4,
        retries=2,
    )
    transcriber = RecordingTranscriber(
        client, settings.max_segment_s, merge_segment_s=settings.merge_segment_s
    )
    answers, skipped, seconds = {}, [], []
    try:
        async with client:
            await client.check_ready()
            for recording in sample:
                try:
                    local = await asyncio.to_thread(
                        (settings.raw_root / recording.source_path).fetch, settings.raw_root
                    )
                    try:
                        info, channels = await transcriber.decode(
                            local.path, recording.channel_mode == "split", local.name
                        )
                    finally:
                        local.release()
                except (InputError, OSError) as exc:
                    skipped.append(
                        {"source_path": recording.source_path, "reason": " ".join(str(exc).split())}
                    )
                    continue
                t = time.perf_counter()
                transcript = await transcriber.transcribe_channels(
                    info, channels, recording.language_hint, recording.use_itn
                )
                seconds.append(time.perf_counter() - t)
                answers[recording.recording_id] = [
                    _segment_view(s.segment.channel, s.segment.index, s.answer.text, settings.redact)
                    for s in transcript.segments
                ]
    except ServingError as exc:
        raise ReleaseError(f"shadow canary: {exc}") from exc
    return answers, skipped, seconds


def _segment_view(channel: int, index: int, raw: str, redact: str) -> dict:
    tags = parse(redact_raw(raw, redact).text)
    return {
        "channel": channel,
        "segment_index": index,
        "text": tags.text,
        "emotion": tags.emotion,
        "event": tags.event,
        "language": tags.language,
    }


# -- the verdict -----------------------------------------------------------------------------------------------------


def judge_shadow(
    sample: list[SampledRecording],
    answers: dict[str, list[dict]],
    skipped: list[dict],
    seconds: list[float],
    thresholds: ShadowThresholds,
    staged_version: int,
    dates: list[str],
) -> ShadowVerdict:
    answered = [r for r in sample if r.recording_id in answers]
    published = [s for r in answered for s in r.published]
    staged = [s for r in answered for s in answers[r.recording_id]]
    share_published, share_staged = _emotion_shares(published), _emotion_shares(staged)
    shift = {
        e: round(share_staged.get(e, 0.0) - share_published.get(e, 0.0), 4)
        for e in sorted(set(share_published) | set(share_staged))
    }
    cer = _cer(answered, answers)
    agreement = {tag: _tag_agreement(answered, answers, tag) for tag in TAGS}
    angry_shift = shift.get("angry", 0.0) if answered else None
    reasons = _reasons(cer, angry_shift, share_published, share_staged, len(answered), thresholds)
    return ShadowVerdict(
        passed=not reasons,
        reasons=reasons,
        staged_version=staged_version,
        dates=dates,
        sampled=len(sample),
        answered=len(answered),
        skipped_missing=len(skipped),
        strata=dict(Counter(f"{r.language_hint}/{r.channel_mode}" for r in answered)),
        segments_published=len(published),
        segments_staged=len(staged),
        cer=cer,
        emotion_agreement=agreement["emotion"],
        event_agreement=agreement["event"],
        language_agreement=agreement["language"],
        emotion_share_published=share_published,
        emotion_share_staged=share_staged,
        emotion_share_shift=shift,
        angry_share_shift=angry_shift,
        unknown_rate_published=share_published.get(UNKNOWN, 0.0) if published else None,
        unknown_rate_staged=share_staged.get(UNKNOWN, 0.0) if staged else None,
        latency_staged_ms=round(statistics.median(seconds) * 1000, 2) if seconds else None,
        thresholds=dataclasses.asdict(thresholds),
        disagreements=_disagreements(answered, answers)[:20],
        skipped=skipped[:20],
    )


def _emotion_shares(segments: list[dict]) -> dict[str, float]:
    counts = Counter(s["emotion"] or UNKNOWN for s in segments)
    return {e: round(n / len(segments), 4) for e, n in sorted(counts.items())} if segments else {}


def _channel_texts(segments) -> dict[int, str]:
    texts: dict[int, list[str]] = {}
    for s in sorted(segments, key=lambda s: (s["channel"], s["segment_index"])):
        if s["text"]:
            texts.setdefault(s["channel"], []).append(s["text"])
    return {channel: " ".join(t) for channel, t in texts.items()}


def _cer(answered: list[SampledRecording], answers: dict[str, list[dict]]) -> float | None:
    """Edits to turn each published channel text into the staged one, over the published characters."""
    edits = characters = 0
    for recording in answered:
        published, staged = (
            _channel_texts(recording.published),
            _channel_texts(answers[recording.recording_id]),
        )
        for channel in set(published) | set(staged):
            reference = published.get(channel, "")
            edits += Levenshtein.distance(reference, staged.get(channel, ""))
            characters += len(reference)
    if not answered:
        return None
    return round(edits / characters, 4) if characters else (0.0 if edits == 0 else 1.0)


def _by_segment(segments) -> dict[tuple[int, int], dict]:
    return {(s["channel"], s["segment_index"]): s for s in segments}


def _tag_agreement(
    answered: list[SampledRecording], answers: dict[str, list[dict]], tag: str
) -> float | None:
    same = total = 0
    for recording in answered:
        published, staged = _by_segment(recording.published), _by_segment(answers[recording.recording_id])
        for key in set(published) | set(staged):
            total += 1
            same += key in published and key in staged and published[key][tag] == staged[key][tag]
    return round(same / total, 4) if total else None


def _reasons(
    cer: float | None,
    angry_shift: float | None,
    share_published: dict[str, float],
    share_staged: dict[str, float],
    answered: int,
    thresholds: ShadowThresholds,
) -> list[str]:
    reasons = []
    if angry_shift is not None and abs(angry_shift) > thresholds.max_angry_share_shift:
        reasons.append(
            f"shadow canary: the angry share of {answered} recent recordings would move from "
            f"{share_published.get('angry', 0.0):.3f} to {share_staged.get('angry', 0.0):.3f} "
            f"({angry_shift:+.3f}; at most ±{thresholds.max_angry_share_shift})"
        )
    if cer is not None and cer > thresholds.max_cer:
        reasons.append(
            f"shadow canary: character error rate {cer:.3f} against the published texts > {thresholds.max_cer}"
        )
    return reasons


def _disagreements(answered: list[SampledRecording], answers: dict[str, list[dict]]) -> list[dict]:
    out = []
    for recording in answered:
        published, staged = _by_segment(recording.published), _by_segment(answers[recording.recording_id])
        for key in sorted(set(published) | set(staged)):
            p, s = published.get(key), staged.get(key)
            if p is None or s is None or any(p[f] != s[f] for f in ("text", *TAGS)):
                out.append(
                    {
                        "date": recording.date,
                        "source_path": recording.source_path,
                        "channel": key[0],
                        "segment_index": key[1],
                        "published": _described(p),
                        "staged": _described(s),
                    }
                )
    return out


def _described(segment: dict | None) -> str | None:
    if segment is None:
        return None
    tags = "".join(f"<{segment[t] or '-'}>" for t in ("language", "emotion", "event"))
    return f"{tags} {segment['text'] or ''}".strip()
