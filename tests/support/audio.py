"""Audio for the tests: generated speech-like signals, and days of fixture clips written as raw partitions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.support.fixture_model import CLIPS, SPEECH_CLIPS


def synthetic_clip(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """A deterministic speech-like signal: a few gliding harmonics under an amplitude envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 80 * rng.random() + 30 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * (2 + 3 * rng.random()) * t))
    signal = 0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def turn_taking_call(sentences: list[np.ndarray], rounds: int = 2, gap_s: float = 0.6) -> np.ndarray:
    """A two-channel call [2, n]: the speakers take turns, one clip each, the other channel silent meanwhile (low
    noise), so each channel's speech runs sit between the other channel's runs in time."""
    from sensevoice_pipeline.constants import SAMPLE_RATE

    rng = np.random.default_rng(3)
    gap = int(gap_s * SAMPLE_RATE)
    turns = [s for _ in range(rounds) for s in sentences]
    n = sum(t.size + gap for t in turns) + gap
    call = (0.002 * rng.standard_normal((2, n))).astype(np.float32)
    pos = gap
    for i, turn in enumerate(turns):
        call[i % 2, pos : pos + turn.size] += turn
        pos += turn.size + gap
    return call


def write_clips(raw: Path, date: str, count: int) -> list[str]:
    """The first ``count`` speech clips of the fixture model as the day's partition; their source paths."""
    return write_named_clips(raw, date, SPEECH_CLIPS[:count])


def write_named_clips(raw: Path, date: str, names: list[str]) -> list[str]:
    """The fixture clips ``names`` as the day's partition; their source paths."""
    part = raw / f"date={date}"
    part.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(CLIPS / f"{name}.wav", part / f"{name}.wav")
    return [f"date={date}/{n}.wav" for n in names]


def silent_flac(path: Path, hours: float, length_in_header: bool = True) -> Path:
    """``hours`` of 8 kHz silence as FLAC (a few KB a minute). Without ``length_in_header`` the STREAMINFO's total
    sample count is 0, "unknown", as a streaming encoder writes it: the length is only found by decoding."""
    block = np.zeros(8000 * 600, dtype=np.int16)
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(hours * 6)):
            f.write(block)
    if not length_in_header:
        data = bytearray(path.read_bytes())
        assert data[:4] == b"fLaC"
        fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # total samples: the last 36 bits
        data[18:26] = fields.to_bytes(8, "big")
        path.write_bytes(data)
    return path
