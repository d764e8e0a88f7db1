"""The trained fixture model's clips and the answers funasr gives for them (export/fixture_model/expected.jsonl)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from tests.support.paths import FIXTURE_MODEL_DIR

CLIPS = FIXTURE_MODEL_DIR / "clips"
SPEECH_CLIPS = sorted(p.stem for p in CLIPS.glob("*.wav") if not p.stem.startswith("nospeech"))


def fixture_cases() -> list[dict]:
    """expected.jsonl of the fixture model: one case per (clip, language hint, use_itn) with funasr's exact text."""
    lines = (FIXTURE_MODEL_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def expected_text(name: str, language: str = "auto", use_itn: bool = True) -> str:
    """funasr's exact text for the clip ``clips/<name>.wav`` with this hint and ITN switch."""
    (case,) = [
        c
        for c in fixture_cases()
        if c["clip"] == f"clips/{name}.wav" and c["language"] == language and c["use_itn"] == use_itn
    ]
    return case["text"]


def clip(name: str) -> np.ndarray:
    """The clip ``clips/<name>.wav`` as 16 kHz float32 samples."""
    audio, rate = sf.read(CLIPS / f"{name}.wav", dtype="float32")
    assert rate == 16000
    return audio
