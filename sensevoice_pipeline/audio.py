"""Audio files -> float32 samples at 16 kHz: decoding (libsndfile via soundfile), resampling (soxr), channels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_RATE = 16000
# What libsndfile (bundled with soundfile) decodes. Anything else is refused with the list below.
SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
UNSUPPORTED_HINT = "supported formats: " + ", ".join(e.lstrip(".") for e in SUPPORTED_EXTENSIONS)


class AudioDecodeError(ValueError):
    """The file cannot be turned into audio; the message says why in one line."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # [frames, channels] float32 in [-1, 1] at ``sample_rate``
    sample_rate: int
    format: str

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def is_supported(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def decode(path: str | Path) -> DecodedAudio:
    path = Path(path)
    if not is_supported(path):
        raise AudioDecodeError(f"unsupported format {path.suffix or '(no extension)'!r}; {UNSUPPORTED_HINT}")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        info_format = sf.info(str(path)).format
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioDecodeError(f"cannot decode {path.name}: {_one_line(exc)}") from exc
    if samples.shape[0] == 0:
        raise AudioDecodeError(f"{path.name} holds no samples")
    if not np.isfinite(samples).all():
        raise AudioDecodeError(f"{path.name} contains NaN or Inf samples")
    return DecodedAudio(samples, int(rate), info_format)


def resample(samples: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    """Band-limited resampling (soxr HQ) of a 1-D signal; a copy-free pass-through at the target rate."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == target:
        return samples
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32, copy=False)


def mono_16k(audio: DecodedAudio) -> np.ndarray:
    """Average the channels, then resample to 16 kHz."""
    return resample(audio.samples.mean(axis=1), audio.sample_rate)


def channels_16k(audio: DecodedAudio) -> list[np.ndarray]:
    """Each channel on its own at 16 kHz (stereo calls: agent on one channel, customer on the other)."""
    return [resample(audio.samples[:, c], audio.sample_rate) for c in range(audio.channels)]


def load_mono_16k(path: str | Path) -> np.ndarray:
    return mono_16k(decode(path))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
