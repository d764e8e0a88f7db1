"""Word times (issue 31, item 3) through a real Triton: the `sensevoice` output WORDS against funasr's own
``generate(..., output_timestamp=True)`` on the same checkpoint and audio. The trained fixture model emits the
canonical tokens of its text (the server takes the argmax path); a micro checkpoint with random weights and the
fixture tokenizer emits token sequences its text re-tokenises differently (the server runs the forced alignment on
the local encoder's logits). The alignment itself against funasr's code: tests/unit/speech/test_alignment.py."""

from __future__ import annotations

import numpy as np
import pytest

from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.serving.server import LocalTriton
from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance
from sensevoice_pipeline.speech.audio import load_mono_16k
from tests.support.fixture_model import clip, fixture_cases
from tests.support.paths import EXAMPLE_AUDIO, FIXTURE_MODEL_DIR
from tests.support.triton import export_fresh_repository

pytestmark = pytest.mark.triton

FRAME_S = 0.06  # the tolerance: one encoder frame


def funasr_words(auto, audio: np.ndarray, language: str, use_itn: bool) -> list[tuple[str, float, float]]:
    from sensevoice_export.checkpoint import quiet_funasr

    with quiet_funasr():
        (result,) = auto.generate(
            input=audio, language=language, use_itn=use_itn, disable_pbar=True, output_timestamp=True
        )
    pairs = zip(result.get("words", []), result.get("timestamp", []))
    return [(word.removeprefix("\u2581"), start / 1000, end / 1000) for word, (start, end) in pairs]


def assert_same_words(ours, theirs, what: str) -> None:
    assert [w.word for w in ours] == [w for w, _, _ in theirs], what
    for w, (_, start, end) in zip(ours, theirs):
        assert abs(w.start_s - start) <= FRAME_S and abs(w.end_s - end) <= FRAME_S, (what, w, start, end)


def load_funasr(model_dir):
    from sensevoice_export.checkpoint import find_checkpoint_files, load_funasr_model

    auto, _ = load_funasr_model(find_checkpoint_files(model_dir))
    return auto


def test_the_fixture_models_word_times_are_funasrs(fixture_triton):
    auto = load_funasr(FIXTURE_MODEL_DIR)
    cases = fixture_cases()
    compared = 0
    for language in {c["language"] for c in cases}:
        for use_itn in (True, False):
            batch = [c for c in cases if c["language"] == language and c["use_itn"] == use_itn]
            audios = [clip(c["clip"].removeprefix("clips/").removesuffix(".wav")) for c in batch]
            answers = transcribe_sync(audios, language, use_itn, url=fixture_triton.grpc_url)
            for case, audio, answer in zip(batch, audios, answers):
                assert answer.text == case["text"]
                assert answer.words is not None
                assert_same_words(answer.words, funasr_words(auto, audio, language, use_itn), str(case))
                compared += len(answer.words)
    assert compared > 100  # words, not empty lists, were compared


@pytest.fixture(scope="module")
def retokenising_checkpoint(tmp_path_factory):
    """Random weights and the fixture tokenizer: its texts re-tokenise into other tokens than it emitted."""
    from sensevoice_export.micro import build_checkpoint

    tokenizer = FIXTURE_MODEL_DIR / "fixture_spectok.bpe.model"
    return build_checkpoint(tmp_path_factory.mktemp("retok") / "checkpoint", seed=3, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def retokenising_repository(tmp_path_factory, retokenising_checkpoint):
    return export_fresh_repository(retokenising_checkpoint, tmp_path_factory.mktemp("retok-repo") / "repo")


def test_a_text_that_retokenises_gets_funasrs_forced_alignment(
    retokenising_checkpoint, retokenising_repository
):
    audios = [clip("en_refund_angry"), clip("ja_thanks_happy")]
    audios += [load_mono_16k(path)[: 16000 * 8] for path in EXAMPLE_AUDIO]
    # the argmax path alone (no logits) would not be the alignment for some of them: the forced alignment runs
    local = LocalTranscriber(retokenising_repository)
    without_logits = local.transcriber.answer([Utterance(a, "auto", True) for a in audios], local._encode)
    assert any(not answer.words_aligned for answer in without_logits)

    auto = load_funasr(retokenising_checkpoint)
    with LocalTriton(retokenising_repository) as server:
        answers = transcribe_sync(audios, "auto", True, url=server.grpc_url)
        assert sum(len(a.words) for a in answers) > 100
        for i, (audio, answer) in enumerate(zip(audios, answers)):
            assert_same_words(answer.words, funasr_words(auto, audio, "auto", True), f"audio {i}")
