"""The shadow canary (releases/shadow.py) against a real Triton, with a candidate built to disagree on emotion: the
angry candidate (tests/support/fault_models: add_angry_version), a copy of the serving version whose encoder makes
every utterance sent with the hint "yue" angry, staged as a release stages a candidate. Its answers for "yue" carry
ANGRY (with ANGRY's confidence); for any other hint they equal the serving version's. A golden set without Cantonese
cases therefore passes it; a day of published calls with a Cantonese queue refuses it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.tags import EMOTION_NAMES, parse
from tests.support.fault_models import ANGRY_LANGUAGE, EN_CALLS, write_cantonese_and_english_day
from tests.support.fixture_model import SPEECH_CLIPS, clip, expected_text
from tests.support.paths import FIXTURE_MODEL_DIR

pytestmark = pytest.mark.triton

CLIP = "yue_thanks_happy"  # HAPPY with the hint yue: the candidate's ANGRY is its own doing


def transcribe(url: str, model: str, version: int | None, language: str):
    async def ask():
        async with SenseVoiceClient(url, model=model, version=version, retries=0) as client:
            return await client.transcribe(clip(CLIP), language, True)

    return asyncio.run(ask())


def test_the_staged_candidate_is_angry_for_its_hint_only(angry_repo, angry_triton):
    url = angry_triton.grpc_url
    staged = releases.stage(angry_repo, 2, url)
    assert (staged.staged, staged.serving, staged.model) == (2, 1, releases.STAGED_MODEL)
    assert CLIP in SPEECH_CLIPS

    old_yue = transcribe(url, PIPELINE_MODEL, 1, ANGRY_LANGUAGE)
    new_yue = transcribe(url, releases.STAGED_MODEL, None, ANGRY_LANGUAGE)
    assert old_yue.text == expected_text(CLIP, ANGRY_LANGUAGE) and parse(old_yue.text).emotion == "happy"
    assert (new_yue.model_name, new_yue.model_version) == (releases.STAGED_MODEL, "2")
    angry = parse(new_yue.text)
    assert angry.emotion == "angry" and angry.text == parse(old_yue.text).text
    assert new_yue.text == old_yue.text.replace("<|HAPPY|>", "<|ANGRY|>")
    probs = dict(zip(EMOTION_NAMES, new_yue.confidences.emotion_probs))
    assert max(probs, key=probs.get) == "angry" and new_yue.confidences.emotion > 0.99
    assert new_yue.confidences.language == pytest.approx(old_yue.confidences.language)
    assert new_yue.confidences.event == pytest.approx(old_yue.confidences.event)

    old_en = transcribe(url, PIPELINE_MODEL, 1, "en")
    new_en = transcribe(url, releases.STAGED_MODEL, None, "en")
    assert new_en.text == old_en.text and new_en.confidences == old_en.confidences
    assert new_en.words == old_en.words

    releases.unstage(angry_repo, url)


# -- the shadow canary refuses it, the golden set alone would not -----------------------------------------------------

DAY = "2026-11-20"


def golden_without_cantonese(tmp_path: Path) -> Path:
    """The fixture golden set without its cases hinted yue: a team whose golden set does not cover the Cantonese
    queue. The candidate answers every remaining case as the serving version does."""
    golden = tmp_path / "golden"
    shutil.copytree(FIXTURE_MODEL_DIR / "clips", golden / "clips")
    lines = (FIXTURE_MODEL_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if json.loads(line)["language"] != ANGRY_LANGUAGE]
    assert 0 < len(kept) < len(lines)
    (golden / "expected.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return golden


def published_day(tmp_path: Path, url: str, repository: Path) -> Settings:
    settings = Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        triton_url=url,
        model_repository=repository,
        golden_dir=golden_without_cantonese(tmp_path),
    )
    write_cantonese_and_english_day(settings.raw_root, DAY)
    result = daily.run_date(settings, DAY, show_progress=False)  # scored by the serving version, 1
    assert (result.files_ok, result.model_versions) == (6, "1")
    return settings


def test_the_shadow_canary_refuses_a_candidate_the_golden_set_passes(tmp_path, angry_repo, angry_triton):
    url = angry_triton.grpc_url
    settings = published_day(tmp_path, url, angry_repo)
    published = Lake(settings.lake_root).read("utterances", DAY).to_pylist()
    assert "angry" not in {u["emotion"] for u in published}
    (settings.raw_root / f"date={DAY}" / f"{EN_CALLS[0]}.wav").unlink()  # a retention job took one file

    run = releases.ReleaseRun.start(settings, "release-shadow")
    run.staged = releases.stage(angry_repo, 2, url)
    thresholds = releases.CanaryThresholds(shadow_sample_size=10, max_angry_share_shift=0.1)
    verdict = run.run_canary(thresholds)

    golden = releases.run_canary(url, 2, settings.golden_dir, thresholds, serving_version=1)
    assert golden.passed and golden.emotion_agreement == 1.0  # the golden set alone would promote it
    shadow = verdict.shadow
    assert (shadow["sampled"], shadow["answered"], shadow["skipped_missing"]) == (6, 5, 1)
    assert shadow["skipped"][0]["source_path"] == f"date={DAY}/{EN_CALLS[0]}.wav"
    assert shadow["strata"] == {"yue/mono": 3, "en/mono": 2}
    # every yue call is one segment, now angry: 3 of the 5 answered calls' segments
    assert shadow["segments_published"] == shadow["segments_staged"] == 5
    assert shadow["emotion_share_published"].get("angry", 0.0) == 0.0
    assert shadow["emotion_share_staged"]["angry"] == 0.6 and shadow["angry_share_shift"] == 0.6
    assert shadow["cer"] == 0.0 and shadow["emotion_agreement"] == 0.4 and shadow["language_agreement"] == 1.0
    assert not verdict.passed
    assert verdict.reasons == [
        "shadow canary: the angry share of 5 recent recordings would move from 0.000 to 0.600 (+0.600; at most "
        "±0.1)"
    ]

    decision = run.conclude()
    assert decision.outcome == "refused" and decision.reasons == verdict.reasons
    report = run.report(decision)
    row = report.row
    assert (row["shadow_recordings"], row["shadow_skipped"], row["shadow_angry_share_shift"]) == (5, 1, 0.6)
    assert row["max_angry_share_shift"] == 0.1 and "angry share of 5 recent recordings" in row["reasons"]
    assert json.loads(Path(report.report).read_text())["canary"]["shadow"]["angry_share_shift"] == 0.6
