"""Tag confidences (issue 18, item 3): the encoder graph's tag probabilities, the `sensevoice` outputs CONFIDENCE and
EMOTION_PROBS, the lake's confidence columns and the confidence filter, and an encoder exported before them."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Transcriber, Utterance
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.decoder import Tokenizer
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession
from sensevoice_pipeline.speech.tags import (
    EMOTION_NAMES,
    TAG_FAMILIES,
    TAG_PROBS_WIDTH,
    parse,
    tag_confidences,
)

from .conftest import FIXTURE_MODEL_DIR, fixture_cases, serve, synthetic_clip

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


# -- the graph -------------------------------------------------------------------------------------------------------


def test_tag_probs_are_funasrs_own_softmax_at_the_tag_frames(
    micro_checkpoint, funasr_model, exported_repository
):
    """funasr's SenseVoiceSmall.inference on a clip, its CTC projection caught with a forward hook: the softmax over
    the whole vocabulary at output frames 0, 1, 2, taken at the tokenizer's language / emotion / event tag ids, is
    what the exported graph returns as tag_probs for the same audio."""
    import torch

    from .conftest import funasr_text

    audio = synthetic_clip(2.3, seed=5)
    caught = []
    hook = funasr_model.model.ctc.ctc_lo.register_forward_hook(
        lambda _m, _i, out: caught.append(out.detach())
    )
    try:
        funasr_text(funasr_model, audio, "en", True)
    finally:
        hook.remove()
    (projection,) = caught
    funasr_probs = torch.softmax(projection[0, :3].double(), dim=-1).numpy()
    tokenizer = Tokenizer(next(micro_checkpoint.glob("*.bpe.model")))
    frame_of = {"language": 0, "emotion": 1, "event": 2}
    want = [
        funasr_probs[frame_of[family], tokenizer.piece_id(f"<|{name}|>")]
        if tokenizer.piece_id(f"<|{name}|>") >= 0
        else 0.0
        for family, names in TAG_FAMILIES
        for name in names
    ]

    transcriber = Transcriber(exported_repository / PIPELINE_MODEL / "1")
    session = EncoderSession(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    assert TAG_PROBS in session.output_names
    got = session.run(*transcriber.features([Utterance(audio, "en", True)]), outputs=[TAG_PROBS])[TAG_PROBS]
    assert got.shape == (1, TAG_PROBS_WIDTH)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-7)
    assert max(want) > 0  # the micro tokenizer has the tags: the comparison is not between zeros


def test_a_padded_batch_gives_each_utterance_its_own_tag_probs(exported_repository):
    transcriber = Transcriber(exported_repository / PIPELINE_MODEL / "1")
    session = EncoderSession(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    utterances = [
        Utterance(synthetic_clip(s, seed=i), lang, itn)
        for i, (s, lang, itn) in enumerate([(0.6, "auto", True), (3.1, "zh", False), (1.7, "ko", True)])
    ]
    batch = session.run(*transcriber.features(utterances), outputs=[TAG_PROBS])[TAG_PROBS]
    for i, utterance in enumerate(utterances):
        alone = session.run(*transcriber.features([utterance]), outputs=[TAG_PROBS])[TAG_PROBS]
        np.testing.assert_allclose(batch[i], alone[0], rtol=1e-4, atol=1e-8)


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


# -- the lake --------------------------------------------------------------------------------------------------------


def utterance(i: int, emotion: str, confidence: float | None) -> dict:
    return {
        "recording_id": f"r{i}",
        "source_path": f"date=x/{i}.wav",
        "channel": 0,
        "segment_index": 0,
        "start_s": 0.0,
        "end_s": 2.0,
        "language": "en",
        "emotion": emotion,
        "event": "speech",
        "text": "t",
        "raw_text": "t",
        "model_version": "1",
        "emotion_confidence": confidence,
        "emotion_probs": None if confidence is None else {emotion: confidence},
    }


def test_a_lake_from_before_confidences_gets_the_columns_on_first_writer_open(tmp_path):
    """A lake whose utterances table has no confidence columns and no emotion_confidence_daily (as the code before
    them left it): the first writer adds the columns (old rows null) and fills the rollup from the utterances, in
    one transaction; the canned angry-share then answers a confidence filter for old and new days alike."""
    lake = Lake(tmp_path)
    old_day = tables.to_table([utterance(0, "angry", None), utterance(1, "happy", None)], tables.UTTERANCES)
    lake.commit_day("2026-01-01", {"utterances": old_day, **tables.rollups(old_day)})
    new_columns = ["language_confidence", "emotion_confidence", "event_confidence", "emotion_probs"]
    with lake.writer() as con:  # the lake as the previous version of the code left it
        for column in new_columns:
            con.execute(f'ALTER TABLE {ALIAS}.utterances DROP COLUMN "{column}"')
        con.execute(f"DROP TABLE {ALIAS}.emotion_confidence_daily")

    with lake.writer():
        pass
    rows = lake.read("utterances", "2026-01-01").to_pylist()
    assert [r["recording_id"] for r in rows] == ["r0", "r1"]
    assert all(r[c] is None for r in rows for c in new_columns)
    assert sum(r["utterances"] for r in lake.read("emotion_confidence_daily", "2026-01-01").to_pylist()) == 2

    new_day = tables.to_table(
        [utterance(2, "angry", 0.93), utterance(3, "angry", 0.41), utterance(4, "sad", 0.8)],
        tables.UTTERANCES,
    )
    lake.commit_day("2026-01-02", {"utterances": new_day, **tables.rollups(new_day)})
    assert lake.read("utterances", "2026-01-02").column("emotion_confidence").to_pylist() == pytest.approx(
        [0.93, 0.41, 0.8]
    )

    from sensevoice_pipeline.warehouse.database import Warehouse
    from sensevoice_pipeline.warehouse.queries import QUERIES

    warehouse = Warehouse(tmp_path)
    warehouse.refresh()
    con = warehouse.connect()
    try:

        def angry(min_confidence):
            sql = QUERIES["angry-share"].render(min_confidence=min_confidence)
            table = con.sql(sql, params={"from_date": dt.date(2026, 1, 1), "to_date": dt.date(2026, 1, 2)})
            return [(str(r[0]), r[1], r[2]) for r in table.fetchall()]

        assert angry(0.0) == [("2026-01-01", 1, 2), ("2026-01-02", 2, 3)]
        assert angry(0.8) == [("2026-01-01", None, 2), ("2026-01-02", 1, 3)]
    finally:
        con.close()


# -- the page --------------------------------------------------------------------------------------------------------


def test_the_page_filters_the_trend_on_confidence_and_refuses_other_thresholds(tmp_path):
    from sensevoice_pipeline.ui.page_data import DashboardParamError, Params, load_dashboard
    from sensevoice_pipeline.ui.page_html import render_page
    from sensevoice_pipeline.warehouse.database import Warehouse

    lake = Lake(tmp_path / "lake")
    day = tables.to_table(
        [utterance(0, "angry", 0.93), utterance(1, "angry", 0.41), utterance(2, "happy", None)],
        tables.UTTERANCES,
    )
    lake.commit_day("2026-03-01", {"utterances": day, **tables.rollups(day)})
    warehouse = Warehouse(tmp_path / "lake", tmp_path / "warehouse.duckdb")
    warehouse.refresh()

    def trend(min_confidence):
        board = load_dashboard(
            warehouse, tmp_path / "repo", Params.parse("2026-03-01", "2026-03-01", "language", min_confidence)
        )
        return board, {r["emotion"]: r["utterances"] for r in board.trend}

    _, everything = trend(None)
    board, confident = trend("0.8")
    assert everything == {"angry": 2, "happy": 1} and confident == {"angry": 1}
    html = render_page(board)
    assert 'name="min_confidence"' in html and '<option value="0.8" selected>' in html
    for bad in ("0.85", "high", "2"):
        with pytest.raises(DashboardParamError, match="min_confidence"):
            Params.parse(None, None, "language", bad)
