"""Audio files -> float32 samples at 16 kHz: decoding (libsndfile via soundfile), resampling (soxr), channels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.errors import InputError

# What libsndfile (bundled with soundfile) decodes. Anything else is refused with the list below.
SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
UNSUPPORTED_HINT = "supported formats: " + ", ".join(e.lstrip(".") for e in SUPPORTED_EXTENSIONS)


class AudioDecodeError(InputError, ValueError):
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


def unsupported_reason(path: str | Path) -> str | None:
    """Why ``path`` will not be decoded, judging by its extension; None when it will be tried."""
    if is_supported(path):
        return None
    return f"unsupported format {Path(path).suffix or '(no extension)'!r}; {UNSUPPORTED_HINT}"


def decode(path: str | Path) -> DecodedAudio:
    path = Path(path)
    if reason := unsupported_reason(path):
        raise AudioDecodeError(reason)
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


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
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


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    duration_s: float


BLOCK_SECONDS = 20.0
UNKNOWN_LENGTH = 2**62  # frame counts from here up are libsndfile's "unknown" (SF_COUNT_MAX)


class TooLongError(AudioDecodeError):
    """The recording is longer than the longest the job takes (``max_seconds``)."""


def load_16k(
    path: str | Path, split_channels: bool, name: str = "", max_seconds: float | None = None
) -> tuple[AudioInfo, list[np.ndarray]]:
    """Decode and resample in blocks, so a two-hour 48 kHz stereo call never sits in memory at its original rate:
    only the 16 kHz result does (one array, or one per channel when ``split_channels``). ``name``: the file's name
    for messages and the format check, when ``path`` does not carry it (an open descriptor's /proc/self/fd path).
    ``max_seconds``: refuse a longer recording (TooLongError) as soon as its header says so or, since a compressed
    file's header may lie (or a few MB of FLAC hold hours of silence), as soon as that much has been decoded: memory
    never grows past the limit."""
    path = Path(path)
    name = name or path.name
    if reason := unsupported_reason(name):
        raise AudioDecodeError(reason)
    try:
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{name} is an empty file (0 bytes)")
        with sf.SoundFile(str(path)) as f:
            info = AudioInfo(
                f.format, int(f.samplerate), int(f.channels), f.frames / f.samplerate if f.samplerate else 0
            )
            # libsndfile stops at the length a header states, so a stated length bounds the decode; an unknown one
            # (a FLAC stream written without it: libsndfile says 2**63 - 1 frames) is judged while decoding.
            if max_seconds is not None and info.duration_s > max_seconds and f.frames < UNKNOWN_LENGTH:
                raise TooLongError(
                    _too_long(name, max_seconds, f"its header says {_duration(info.duration_s)}")
                )
            outputs = _resample_blocks(f, info, split_channels, name, max_seconds)
    except AudioDecodeError:
        raise  # already one readable line (it is a ValueError too: do not wrap it twice)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioDecodeError(f"cannot decode {name}: {_decode_reason(exc, path, name)}") from exc
    if info.sample_rate <= 0 or not outputs or outputs[0].size == 0:
        raise AudioDecodeError(f"{name} holds no samples")
    return info, outputs


def _resample_blocks(
    f: sf.SoundFile, info: AudioInfo, split_channels: bool, name: str, max_seconds: float | None
) -> list[np.ndarray]:
    n_out = info.channels if split_channels else 1
    streams = (
        [
            soxr.ResampleStream(info.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            for _ in range(n_out)
        ]
        if info.sample_rate != SAMPLE_RATE
        else None
    )
    # One preallocated 16 kHz buffer per output, sized from the header: concatenating blocks at the end would hold
    # the whole result twice (0.9 GB instead of 0.46 GB for two hours).
    expected = int(max(f.frames, 0) * SAMPLE_RATE / info.sample_rate) + 64 if info.sample_rate > 0 else 0
    ceiling = MAX_PREALLOCATED_SAMPLES if max_seconds is None else int(max_seconds * SAMPLE_RATE) + 64
    chunks = [_Sink(min(expected, ceiling)) for _ in range(n_out)]
    block = max(1, int(BLOCK_SECONDS * info.sample_rate))
    limit_frames = None if max_seconds is None else max_seconds * info.sample_rate
    read = 0
    while True:
        data = f.read(block, dtype="float32", always_2d=True)
        read += data.shape[0]
        if limit_frames is not None and read > limit_frames:
            raise TooLongError(_too_long(name, max_seconds, "found while decoding"))
        last = data.shape[0] < block
        if data.size and not np.isfinite(data).all():
            raise AudioDecodeError(f"{Path(f.name).name} contains NaN or Inf samples")
        columns = [data[:, c] for c in range(info.channels)] if split_channels else [data.mean(axis=1)]
        for c, column in enumerate(columns):
            column = np.ascontiguousarray(column, dtype=np.float32)
            chunks[c].append(streams[c].resample_chunk(column, last=last) if streams else column)
        if last:
            break
    return [c.result() for c in chunks]


# A header may claim any length (a corrupt FLAC can say 2**36 frames): preallocate at most four hours at 16 kHz and
# grow beyond that only as real samples arrive.
MAX_PREALLOCATED_SAMPLES = 4 * 3600 * SAMPLE_RATE


class _Sink:
    """A growable float32 buffer: appends in place, doubles only when the header under-stated the length."""

    def __init__(self, capacity: int):
        self._buf = np.empty(max(capacity, 0), dtype=np.float32)
        self._n = 0

    def append(self, samples: np.ndarray) -> None:
        end = self._n + samples.size
        if end > self._buf.size:
            grown = np.empty(max(end, 2 * self._buf.size), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : end] = samples
        self._n = end

    def result(self) -> np.ndarray:
        out = self._buf[: self._n]
        # A header that over-stated the length leaves untouched (never resident) pages: do not keep them reserved.
        return out.copy() if self._buf.size - self._n > 1024 + self._n // 8 else out


def _too_long(name: str, max_seconds: float, how: str) -> str:
    return (
        f"{name} is longer than the longest recording the job takes, {_duration(max_seconds)} "
        f"(SVP_MAX_RECORDING_S; {how}): not transcribed"
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds / 60:.3g} min"


def _decode_reason(exc: Exception, path: Path, name: str) -> str:
    """libsndfile's message without the file's absolute path (the row already names the file), and without its
    misleading "does not exist" for files it merely cannot parse."""
    text = _one_line(exc).replace(f"Error opening {str(path)!r}: ", "").replace(str(path), name)
    if "File does not exist or is not a regular file" in text and path.is_file():
        text = "not a valid audio file (the decoder found no audio stream in it)"
    return text


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
