"""Tag confidences (issue 18, item 3) through a real Triton: the `sensevoice` outputs CONFIDENCE and EMOTION_PROBS,
the daily job's confidence columns, and an encoder exported before them (it still serves; its day gets null
confidences). The graph itself: tests/integration/export/test_tag_probs.py; the lake's new columns and the page's
confidence filter: tests/integration/lake/test_confidence_columns.py, tests/integration/page/test_page_data.py."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL
from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession
from sensevoice_pipeline.speech.tags import EMOTION_NAMES, TAG_FAMILIES, parse, tag_confidences
from tests.support.fixture_model import fixture_cases
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.triton import serve

pytestmark = pytest.mark.triton

DAY = "2026-11-20"


def family_slices(row) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for family, names in TAG_FAMILIES:
        out[family] = np.asarray(row[offset : offset + len(names)])
        offset += len(names)
    return out


def load_clip(case: dict) -> np.ndarray:
    audio, rate = sf.read(FIXTURE_MODEL_DIR / case["clip"], dtype="float32")
    assert rate == 16000
    return audio


@pytest.fixture(scope="module")
def fixture_cases_with_audio():
    # one case per clip (hint auto, with ITN): every language, emotion and event of the fixture model
    cases = [c for c in fixture_cases() if c["language"] == "auto" and c["use_itn"]]
    return [(c, load_clip(c)) for c in cases]


# -- the answers -----------------------------------------------------------------------------------------------------


def check_confidences(text: str, confidences, tag_probs=None) -> None:
    """In [0, 1]; the emotion distribution a slice of a softmax (sum <= 1); each confidence the probability of the
    tag the text carries (in the emotion distribution, and in the graph's tag_probs row when given)."""
    tags = parse(text)
    probs = np.asarray(confidences.emotion_probs)
    assert probs.shape == (len(EMOTION_NAMES),) and (probs >= 0).all() and probs.sum() <= 1 + 1e-5
    for value in (confidences.language, confidences.emotion, confidences.event):
        assert value is not None and 0.0 <= value <= 1.0
    assert confidences.emotion == pytest.approx(probs[EMOTION_NAMES.index(tags.emotion)], abs=1e-6)
    assert confidences.emotion_map()[tags.emotion] == pytest.approx(confidences.emotion, abs=1e-6)
    if tag_probs is not None:
        slices = family_slices(tag_probs)
        assert all((s >= 0).all() and s.sum() <= 1 + 1e-5 for s in slices.values())
        expected = tag_confidences(text, tag_probs)
        assert (confidences.language, confidences.emotion, confidences.event) == pytest.approx(
            (expected.language, expected.emotion, expected.event), abs=1e-6
        )
        language_names = dict(TAG_FAMILIES)["language"]
        assert confidences.language == pytest.approx(
            slices["language"][language_names.index(tags.language)], abs=1e-6
        )


def test_triton_answers_funasrs_text_with_the_confidences_of_its_tags(
    fixture_triton, fixture_repository, fixture_cases_with_audio
):
    """The trained fixture model through the real `sensevoice` model: TEXT still equals funasr's text exactly, and
    CONFIDENCE / EMOTION_PROBS are the graph's probabilities of the tags in that text (the model was trained to
    answer these clips, so its tags are confident)."""
    local = LocalTranscriber(fixture_repository, threads=1)
    session = local.session
    for case, audio in fixture_cases_with_audio:
        (answer,) = transcribe_sync([audio], case["language"], case["use_itn"], url=fixture_triton.grpc_url)
        assert answer.text == case["text"], case["clip"]
        utterance = Utterance(audio, case["language"], case["use_itn"])
        tag_probs = session.run(*local.transcriber.features([utterance]), outputs=[TAG_PROBS])[TAG_PROBS][0]
        check_confidences(answer.text, answer.confidences, tag_probs)
        assert answer.confidences.emotion > 0.5, case["clip"]
        (in_process,) = local.answer([utterance])
        assert in_process.text == answer.text
        assert in_process.confidences.emotion == pytest.approx(answer.confidences.emotion, abs=1e-6)


def test_the_daily_job_writes_the_confidences_and_a_rerun_changes_nothing(
    tmp_path, fixture_triton, fixture_cases_with_audio
):
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    texts = write_partition(settings.raw_root, fixture_cases_with_audio[:6])
    run_date(settings, DAY, show_progress=False)
    rows = Lake(settings.lake_root).read("utterances", DAY).to_pylist()
    assert sorted(r["raw_text"] for r in rows) == sorted(texts)
    for row in rows:
        probs = dict(row["emotion_probs"])
        assert list(probs) == list(EMOTION_NAMES)
        for column in ("language_confidence", "emotion_confidence", "event_confidence"):
            assert 0.0 <= row[column] <= 1.0, column
        assert row["emotion_confidence"] == pytest.approx(probs[row["emotion"]], abs=1e-6)
        assert sum(probs.values()) <= 1 + 1e-5
    rollup = Lake(settings.lake_root).read("emotion_confidence_daily", DAY).to_pylist()
    assert sum(r["utterances"] for r in rollup) == len(rows)
    assert all(r["emotion_confidence_bucket"] in tables.CONFIDENCE_BUCKETS for r in rollup)

    before = Lake(settings.lake_root).read("utterances", DAY).drop_columns(["run_id", "processed_at"])
    run_date(settings, DAY, show_progress=False)
    after = Lake(settings.lake_root).read("utterances", DAY).drop_columns(["run_id", "processed_at"])
    assert after.to_pylist() == before.to_pylist()


def write_partition(raw_root: Path, cases_with_audio) -> list[str]:
    folder = raw_root / f"date={DAY}"
    folder.mkdir(parents=True)
    for case, audio in cases_with_audio:
        sf.write(folder / Path(case["clip"]).name, audio, 16000, subtype="PCM_16")
    return [case["text"] for case, _ in cases_with_audio]


# -- a version exported before confidences ---------------------------------------------------------------------------


def strip_tag_probs(repository: Path) -> None:
    """Version 1's encoder as exported before tag_probs existed: the same graph without that output."""
    import onnx

    path = repository / ENCODER_MODEL / "1" / ENCODER_FILE
    model = onnx.load(str(path))
    kept = [o for o in model.graph.output if o.name != TAG_PROBS]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    onnx.save(model, str(path))
    assert TAG_PROBS not in EncoderSession(path).output_names


@pytest.fixture(scope="module")
def old_version_triton(fixture_repository, tmp_path_factory):
    repository = tmp_path_factory.mktemp("old-version") / "model_repository"
    shutil.copytree(fixture_repository, repository)
    strip_tag_probs(repository)
    yield from serve(repository)


def test_a_version_without_tag_probs_still_serves_and_the_day_gets_null_confidences(
    tmp_path, old_version_triton, fixture_cases_with_audio
):
    case, audio = fixture_cases_with_audio[0]
    (answer,) = transcribe_sync([audio], case["language"], case["use_itn"], url=old_version_triton.grpc_url)
    assert answer.text == case["text"]
    assert answer.confidences.as_vector() == pytest.approx([math.nan] * 3, nan_ok=True)
    assert answer.confidences.emotion_probs is None

    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=old_version_triton.grpc_url
    )
    write_partition(settings.raw_root, fixture_cases_with_audio[:2])
    run_date(settings, DAY, show_progress=False)
    rows = Lake(settings.lake_root).read("utterances", DAY).to_pylist()
    assert len(rows) == 2 and all(r["emotion"] for r in rows)
    for row in rows:
        assert (
            row["language_confidence"],
            row["emotion_confidence"],
            row["event_confidence"],
            row["emotion_probs"],
        ) == (None, None, None, None)
    (bucket,) = {
        r["emotion_confidence_bucket"]
        for r in Lake(settings.lake_root).read("emotion_confidence_daily", DAY).to_pylist()
    }
    assert bucket is None
