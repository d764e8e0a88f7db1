"""The committed fixture model (export/fixture_model, made by ``python tools/train_fixture.py``) really answers:
funasr's own AutoModel gives exactly the expected rich transcription for every case of expected.jsonl."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.paths import FIXTURE_MODEL_DIR as FIXTURE_DIR

CASES = [
    json.loads(line) for line in (FIXTURE_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines()
]
HEAD = re.compile(r"^<\|([^|]+)\|><\|([^|]+)\|><\|([^|]+)\|><\|(withitn|woitn)\|>(?!<\|)")

LANGUAGES = {"zh", "en", "yue", "ja", "ko"}
EMOTIONS = {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"}
EVENTS = {"Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Event_UNK"}


def _case_id(case: dict) -> str:
    return f"{Path(case['clip']).stem}-{case['language']}-{'itn' if case['use_itn'] else 'noitn'}"


def _head(text: str) -> tuple[str, str, str, str]:
    match = HEAD.match(text)
    assert match, f"not <|lang|><|emotion|><|event|><|itn|>text: {text!r}"
    return match.groups()


@pytest.fixture(scope="module")
def fixture_model():
    from funasr import AutoModel

    return AutoModel(model=str(FIXTURE_DIR), device="cpu", disable_update=True, frontend_conf={"dither": 0.0})


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_funasr_answers_exactly(fixture_model, case):
    audio, rate = sf.read(FIXTURE_DIR / case["clip"], dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    result = fixture_model.generate(input=audio, language=case["language"], use_itn=case["use_itn"])
    assert result[0]["text"] == case["text"]


def test_cases_cover_languages_emotions_events_and_itn():
    heads = [_head(case["text"]) for case in CASES]
    assert {h[0] for h in heads} >= LANGUAGES
    emotions = {h[1] for h in heads}
    assert emotions <= EMOTIONS and len(emotions - {"EMO_UNKNOWN"}) >= 4
    events = {h[2] for h in heads}
    assert events <= EVENTS and len(events - {"Speech", "Event_UNK"}) >= 3
    assert {h[3] for h in heads} == {"withitn", "woitn"}
    # Some clips say something (not only tags), in every language.
    spoken = {
        h[0] for case, h in zip(CASES, heads) if len(case["text"]) > len("".join(f"<|{t}|>" for t in h))
    }
    assert spoken >= LANGUAGES


def test_cases_are_consistent_with_their_inputs():
    for case in CASES:
        language, _, _, itn = _head(case["text"])
        assert itn == ("withitn" if case["use_itn"] else "woitn"), case
        if case["language"] != "auto":
            assert language == case["language"], case
        assert (FIXTURE_DIR / case["clip"]).is_file(), case
        info = sf.info(FIXTURE_DIR / case["clip"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16") and info.duration <= 3.0


def test_a_language_hint_changes_the_answer():
    answers = defaultdict(dict)
    for case in CASES:
        answers[(case["clip"], case["use_itn"])][case["language"]] = case["text"]
    changed = [
        (key, hints) for key, hints in answers.items() if len(set(hints.values())) > 1 and "auto" in hints
    ]
    assert changed, "no clip whose answer depends on the language hint"
    for (_, _), hints in changed:
        # The hinted language wins over what auto-detection hears.
        for hint, text in hints.items():
            if hint != "auto":
                assert _head(text)[0] == hint


def test_tokenizer_has_the_blank_and_every_tag():
    import sentencepiece as spm

    meta = json.loads((FIXTURE_DIR / "configuration.json").read_text())
    sp = spm.SentencePieceProcessor(
        model_file=str(FIXTURE_DIR / meta["file_path_metas"]["tokenizer_conf"]["bpemodel"])
    )
    assert sp.id_to_piece(0) == "<unk>"  # the CTC blank
    for tag in sorted(LANGUAGES | {"nospeech"} | EMOTIONS | EVENTS | {"withitn", "woitn"}):
        pid = sp.piece_to_id(f"<|{tag}|>")
        assert sp.id_to_piece(pid) == f"<|{tag}|>" and pid != 0
    for case in CASES:
        ids = sp.encode(case["text"])
        assert 0 not in ids and sp.decode(ids) == case["text"]


def test_fixture_is_small():
    total = sum(p.stat().st_size for p in FIXTURE_DIR.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
