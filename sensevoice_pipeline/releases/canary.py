"""The canary: the golden set through the staged candidate and the serving version, the way the daily job
transcribes, then the verdict.

Each golden recording goes through :class:`~sensevoice_pipeline.serving.recordings.RecordingTranscriber`, the
daily job's own path: decoded (once, outside the timing: the same work for both sides), cut by the VAD into speech
segments of at most ``max_segment_s`` (a recording no longer than that is one segment), one request per segment.
The two sides take turns (the order alternates per case) and each recording is timed on each side.

Judging a case (``judge``): its text is its segments' tag-free texts joined with a space; its emotion, language and
event are the sequences of its segments' tags, so two answers agree on emotion only when every segment does (a
different number of segments disagrees). Without a serving version the golden set's expected texts are the
baseline: ``text`` in expected.jsonl is the raw answer of a one-segment recording, or a list of raw answers, one
per segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sensevoice_pipeline.constants import DEFAULT_MAX_SEGMENT_S, DEFAULT_MERGE_SEGMENT_S
from sensevoice_pipeline.errors import InputError, ServingError
from sensevoice_pipeline.records import Record
from sensevoice_pipeline.releases.control import STAGED_MODEL, canary_url
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.golden import GoldenCase, golden_root, load_golden_set
from sensevoice_pipeline.releases.shadow import ShadowThresholds, ShadowVerdict
from sensevoice_pipeline.releases.state import read_state
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.recordings import RecordingTranscriber
from sensevoice_pipeline.speech.audio import AudioInfo
from sensevoice_pipeline.speech.tags import parse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanaryThresholds:
    min_transcript_agreement: float = 0.95  # share of golden cases whose text (tags removed) is the same
    min_emotion_agreement: float = 0.95  # share of golden cases with the same emotion tags
    max_latency_ratio: float = 1.5  # median latency staged / serving, per recording
    # the shadow canary on recent published recordings (shadow.py)
    shadow_sample_size: int = ShadowThresholds.sample_size
    shadow_look_back_days: int = ShadowThresholds.look_back_days
    max_angry_share_shift: float = ShadowThresholds.max_angry_share_shift
    max_shadow_cer: float = ShadowThresholds.max_cer

    @classmethod
    def of(cls, thresholds: CanaryThresholds | dict | None) -> CanaryThresholds:
        return CanaryThresholds(**thresholds) if isinstance(thresholds, dict) else thresholds or cls()

    def shadow(self) -> ShadowThresholds:
        return ShadowThresholds(
            int(self.shadow_sample_size),
            int(self.shadow_look_back_days),
            self.max_angry_share_shift,
            self.max_shadow_cer,
        )


@dataclass(frozen=True)
class CaseAnswer:
    """One golden recording through one side: each segment's raw answer, in order, and the recording's time."""

    raw_texts: tuple[str, ...]
    seconds: float
    model_versions: tuple[str, ...]


@dataclass(frozen=True)
class CaseView:
    """What the judge compares of one case's answer (see the module's docstring)."""

    text: str
    emotion: tuple[str | None, ...]
    language: tuple[str | None, ...]
    event: tuple[str | None, ...]


@dataclass(frozen=True)
class CanaryVerdict(Record):
    """What the canary found: agreements of the staged answers with the baseline (the serving version's answers,
    else the golden set's expected texts), median latencies, and the reasons to refuse (none: ``passed``)."""

    passed: bool
    reasons: list[str]
    staged_version: int
    serving_version: int | None
    baseline: str
    cases: int
    segments_per_case: list[int]
    transcript_agreement: float
    emotion_agreement: float
    language_agreement: float
    event_agreement: float
    expected_match_staged: float | None
    expected_match_serving: float | None
    latency_staged_ms: float
    latency_serving_ms: float | None
    latency_ratio: float | None
    answered_versions: list[str]
    thresholds: dict
    disagreements: list[dict]
    golden_dir: str | None = None
    max_segment_s: float | None = None
    merge_segment_s: float | None = None
    seconds: float | None = None
    shadow: dict | None = None  # the shadow canary's ShadowVerdict (None: not run)


def with_shadow(golden: CanaryVerdict, shadow: ShadowVerdict | None) -> CanaryVerdict:
    """The canary's verdict: the golden part's, refused also for the shadow part's reasons."""
    if shadow is None:
        return golden
    return dataclasses.replace(
        golden,
        passed=golden.passed and shadow.passed,
        reasons=[*golden.reasons, *shadow.reasons],
        shadow=shadow.to_dict(),
    )


def run_canary(
    url: str,
    staged_version: int | None = None,
    golden_dir: str | Path | None = None,
    thresholds: CanaryThresholds | dict | None = None,
    serving_version: int | None = None,
    repository: str | Path | None = None,
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S,
    merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S,
) -> CanaryVerdict:
    """Send every golden case through the serving version (pinned) and the staged one, the daily job's way (VAD
    segments of at most ``max_segment_s``, joined up to ``merge_segment_s``, one request at a time), taking turns; compare texts (tags removed),
    emotions and median latency per recording. Without a serving version the
    golden set's expected texts are the baseline. ``repository``: read the staged and serving versions not given
    from its serving.json. Returns a JSON-serialisable result with ``passed``."""
    thresholds = CanaryThresholds.of(thresholds)
    if repository is not None and (staged_version is None or serving_version is None):
        state = read_state(repository)
        staged_version = staged_version if staged_version is not None else state.staged
        serving_version = serving_version if serving_version is not None else state.serving
    if staged_version is None:
        raise ReleaseError("nothing is staged: stage a version before the canary")
    cases = load_golden_set(golden_dir)
    t0 = time.perf_counter()
    # On a fleet (comma-separated url) the candidate is staged on the first server only (operations.stage): both
    # sides are asked there, so the latency ratio compares one machine with itself.
    answers = asyncio.run(
        _answer_cases(canary_url(url), cases, staged_version, serving_version, max_segment_s, merge_segment_s)
    )
    result = judge(cases, answers, thresholds, staged_version, serving_version)
    result = dataclasses.replace(
        result,
        golden_dir=str(golden_root(golden_dir)),
        max_segment_s=max_segment_s,
        merge_segment_s=merge_segment_s,
        seconds=round(time.perf_counter() - t0, 2),
    )
    log.info(
        "canary of version %s against %s: %s",
        staged_version,
        serving_version or "expected texts",
        "passed" if result.passed else "; ".join(result.reasons),
    )
    return result


# -- asking both sides -----------------------------------------------------------------------------------------------


async def _answer_cases(
    url: str,
    cases: list[GoldenCase],
    staged_version: int,
    serving_version: int | None,
    max_segment_s: float,
    merge_segment_s: float,
) -> dict[str, list[CaseAnswer]]:
    clients = {
        "staged": SenseVoiceClient(
            url, model=STAGED_MODEL, version=staged_version, max_concurrency=1, retries=2
        )
    }
    if serving_version is not None:
        clients["serving"] = SenseVoiceClient(url, version=serving_version, max_concurrency=1, retries=2)
    transcribers = {
        side: RecordingTranscriber(client, max_segment_s, merge_segment_s=merge_segment_s)
        for side, client in clients.items()
    }
    try:
        async with contextlib.AsyncExitStack() as stack:
            for client in clients.values():
                await stack.enter_async_context(client)
                await client.check_ready()
            return await _answer_in_turns(cases, transcribers)
    except ServingError as exc:
        raise ReleaseError(f"canary: {exc}") from exc


async def _answer_in_turns(
    cases: list[GoldenCase], transcribers: dict[str, RecordingTranscriber]
) -> dict[str, list[CaseAnswer]]:
    recordings = [await _decode(transcribers["staged"], case) for case in cases]
    for side in transcribers:  # not timed: a model's first request pays for its lazy start-up
        await _answer(transcribers[side], cases[0], recordings[0])
    out: dict[str, list[CaseAnswer]] = {side: [] for side in transcribers}
    for i, (case, recording) in enumerate(zip(cases, recordings)):
        for side in _turn_order(list(transcribers), i):
            out[side].append(await _answer(transcribers[side], case, recording))
    return out


def _turn_order(sides: list[str], case_index: int) -> list[str]:
    """Who is asked first alternates per case, so neither side always meets a cache the other just warmed."""
    return sides if case_index % 2 == 0 else sides[::-1]


async def _decode(transcriber: RecordingTranscriber, case: GoldenCase) -> tuple[AudioInfo, list[np.ndarray]]:
    try:
        return await transcriber.decode(case.clip)
    except InputError as exc:
        raise ReleaseError(f"canary: golden clip {case.clip}: {exc}") from exc


async def _answer(
    transcriber: RecordingTranscriber, case: GoldenCase, recording: tuple[AudioInfo, list[np.ndarray]]
) -> CaseAnswer:
    """One recording through one side, timed: VAD segmentation and the segments' requests."""
    t = time.perf_counter()
    try:
        transcript = await transcriber.transcribe_channels(*recording, case.language, case.use_itn)
    except InputError as exc:
        raise ReleaseError(f"canary: golden clip {case.clip}: {exc}") from exc
    seconds = time.perf_counter() - t
    return CaseAnswer(tuple(transcript.raw_texts), seconds, tuple(transcript.model_versions))


# -- the verdict -----------------------------------------------------------------------------------------------------


def case_view(raw_texts: tuple[str, ...]) -> CaseView:
    parsed = [parse(raw) for raw in raw_texts]
    return CaseView(
        text=" ".join(p.text for p in parsed if p.text),
        emotion=tuple(p.emotion for p in parsed),
        language=tuple(p.language for p in parsed),
        event=tuple(p.event for p in parsed),
    )


def judge(
    cases: list[GoldenCase],
    answers: dict[str, list[CaseAnswer]],
    thresholds: CanaryThresholds,
    staged_version: int,
    serving_version: int | None,
) -> CanaryVerdict:
    """The canary's result: agreements of the staged answers with the baseline (the serving answers, else the
    expected texts), latencies, the reasons to refuse (none: ``passed``) and the first disagreements."""
    staged = answers["staged"]
    baseline_name, baseline = _baseline(cases, answers, serving_version)
    pairs = [(case_view(b), case_view(s.raw_texts)) for b, s in zip(baseline, staged)]
    agreement = {
        key: sum(getattr(b, key) == getattr(s, key) for b, s in pairs) / len(cases)
        for key in ("text", "emotion", "language", "event")
    }
    staged_ms = _median_ms(staged)
    serving_ms = _median_ms(answers["serving"]) if "serving" in answers else None
    ratio = staged_ms / serving_ms if serving_ms else None
    return CanaryVerdict(
        passed=not (reasons := _reasons(agreement, ratio, thresholds)),
        reasons=reasons,
        staged_version=staged_version,
        serving_version=serving_version,
        baseline=baseline_name,
        cases=len(cases),
        segments_per_case=[len(s.raw_texts) for s in staged],
        transcript_agreement=round(agreement["text"], 4),
        emotion_agreement=round(agreement["emotion"], 4),
        language_agreement=round(agreement["language"], 4),
        event_agreement=round(agreement["event"], 4),
        expected_match_staged=_expected_match(cases, [s.raw_texts for s in staged]),
        expected_match_serving=_expected_match(cases, baseline) if "serving" in answers else None,
        latency_staged_ms=round(staged_ms, 2),
        latency_serving_ms=_round(serving_ms, 2),
        latency_ratio=_round(ratio, 3),
        answered_versions=sorted({v for side in answers.values() for a in side for v in a.model_versions}),
        thresholds=asdict(thresholds),
        disagreements=_disagreements(cases, baseline, staged, pairs)[:20],
    )


def _baseline(
    cases: list[GoldenCase], answers: dict[str, list[CaseAnswer]], serving_version: int | None
) -> tuple[str, list[tuple[str, ...]]]:
    if "serving" in answers:
        return f"serving version {serving_version}", [a.raw_texts for a in answers["serving"]]
    if any(c.expected is None for c in cases):
        raise ReleaseError(
            "nothing serves and the golden set has no expected texts: no baseline for the canary"
        )
    return "expected texts of the golden set", [c.expected for c in cases]


def _reasons(agreement: dict[str, float], ratio: float | None, thresholds: CanaryThresholds) -> list[str]:
    reasons = []
    if agreement["text"] < thresholds.min_transcript_agreement:
        reasons.append(
            f"transcript agreement {agreement['text']:.3f} < {thresholds.min_transcript_agreement}"
        )
    if agreement["emotion"] < thresholds.min_emotion_agreement:
        reasons.append(f"emotion agreement {agreement['emotion']:.3f} < {thresholds.min_emotion_agreement}")
    if ratio is not None and ratio > thresholds.max_latency_ratio:
        reasons.append(f"latency ratio {ratio:.2f} > {thresholds.max_latency_ratio}")
    return reasons


def _expected_match(cases: list[GoldenCase], answered: list[tuple[str, ...]]) -> float | None:
    """Share of cases answered exactly (raw, segment by segment) as expected; None without expected texts."""
    if any(c.expected is None for c in cases):
        return None
    return round(sum(a == c.expected for a, c in zip(answered, cases)) / len(cases), 4)


def _disagreements(
    cases: list[GoldenCase],
    baseline: list[tuple[str, ...]],
    staged: list[CaseAnswer],
    pairs: list[tuple[CaseView, CaseView]],
) -> list[dict]:
    return [
        {
            "clip": c.clip.name,
            "language": c.language,
            "use_itn": c.use_itn,
            "segments": len(s.raw_texts),
            "baseline": " ".join(b),
            "staged": " ".join(s.raw_texts),
        }
        for c, b, s, (bv, sv) in zip(cases, baseline, staged, pairs)
        if bv.text != sv.text or bv.emotion != sv.emotion
    ]


def _median_ms(answers: list[CaseAnswer]) -> float:
    return statistics.median(a.seconds for a in answers) * 1000


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
