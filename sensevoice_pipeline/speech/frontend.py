"""The SenseVoice acoustic frontend: 16 kHz waveform -> 560-dim LFR features with CMVN.

It reproduces funasr's ``WavFrontend`` (kaldi fbank, 80 mels, 25/10 ms hamming, low frame rate 7/6, global CMVN
from ``am.mvn``) with kaldi-native-fbank and numpy, so that neither Airflow workers nor Triton's Python models need
torch. Dither is always 0: inference must be deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np

from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.errors import ConfigurationError

# funasr scales [-1, 1] float audio to the int16 range before the fbank, as Kaldi does.
INT16_SCALE = float(1 << 15)


class CmvnFormatError(ConfigurationError):
    pass


@dataclass(frozen=True)
class FrontendConfig:
    """The ``frontend_conf`` block of a SenseVoice config.yaml (only what inference uses)."""

    fs: int = SAMPLE_RATE
    window: str = "hamming"
    n_mels: int = 80
    frame_length: float = 25.0
    frame_shift: float = 10.0
    lfr_m: int = 7
    lfr_n: int = 6

    @classmethod
    def from_dict(cls, conf: dict) -> FrontendConfig:
        known = {k: conf[k] for k in cls.__dataclass_fields__ if k in conf}
        return cls(**known)

    @property
    def feature_dim(self) -> int:
        return self.n_mels * self.lfr_m


def load_cmvn(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the (shift, scale) vectors of a Kaldi nnet1 ``am.mvn`` (<AddShift> then <Rescale>)."""
    shift = scale = None
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        head = line.split()[:1]
        if head == ["<AddShift>"]:
            shift = _learn_rate_vector(lines, i, path)
        elif head == ["<Rescale>"]:
            scale = _learn_rate_vector(lines, i, path)
    if shift is None or scale is None or shift.shape != scale.shape:
        raise CmvnFormatError(
            f"{path}: not a CMVN file (needs <AddShift> and <Rescale> blocks of equal size)"
        )
    return shift, scale


def _learn_rate_vector(lines: list[str], block_line: int, path) -> np.ndarray:
    # The vector sits on the line after the block header: "<LearnRateCoef> 0 [ v1 v2 ... ]".
    if block_line + 1 >= len(lines):
        raise CmvnFormatError(f"{path}: truncated CMVN block at line {block_line + 1}")
    items = lines[block_line + 1].split()
    if not items or items[0] != "<LearnRateCoef>" or "[" not in items or "]" not in items:
        raise CmvnFormatError(f"{path}: malformed CMVN vector at line {block_line + 2}")
    values = items[items.index("[") + 1 : items.index("]")]
    return np.asarray(values, dtype=np.float32)


def apply_lfr(frames: np.ndarray, lfr_m: int, lfr_n: int) -> np.ndarray:
    """Stack ``lfr_m`` frames every ``lfr_n`` frames, padding with the first frame on the left and the last frame on
    the right exactly as funasr does, so that T frames become ceil(T / lfr_n) stacked frames."""
    n_frames, dim = frames.shape
    n_out = -(-n_frames // lfr_n)
    left = (lfr_m - 1) // 2
    needed = (n_out - 1) * lfr_n + lfr_m  # rows the last window reaches, in padded coordinates
    right = max(0, needed - (n_frames + left))
    padded = np.concatenate(
        [np.repeat(frames[:1], left, axis=0), frames, np.repeat(frames[-1:], right, axis=0)]
    )
    starts = np.arange(n_out) * lfr_n
    windows = starts[:, None] + np.arange(lfr_m)[None, :]
    return padded[windows].reshape(n_out, lfr_m * dim).astype(np.float32, copy=False)


class Frontend:
    """Turns a mono 16 kHz float waveform into encoder features ``[T, 560]``."""

    def __init__(self, config: FrontendConfig, cmvn_file: str | Path):
        self.config = config
        self.cmvn_shift, self.cmvn_scale = load_cmvn(cmvn_file)
        if self.cmvn_shift.shape[0] != config.feature_dim:
            raise CmvnFormatError(
                f"{cmvn_file}: CMVN has {self.cmvn_shift.shape[0]} dims, the frontend makes {config.feature_dim}"
            )
        self._opts = self._fbank_options(config)

    @staticmethod
    def _fbank_options(config: FrontendConfig) -> knf.FbankOptions:
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = config.fs
        opts.frame_opts.dither = 0.0
        opts.frame_opts.window_type = config.window
        opts.frame_opts.frame_shift_ms = float(config.frame_shift)
        opts.frame_opts.frame_length_ms = float(config.frame_length)
        opts.frame_opts.snip_edges = True
        opts.mel_opts.num_bins = config.n_mels
        opts.energy_floor = 0.0
        return opts

    def fbank(self, waveform: np.ndarray) -> np.ndarray:
        samples = np.asarray(waveform, dtype=np.float32).reshape(-1) * INT16_SCALE
        opts = self._opts
        full_frame = self.min_samples()
        if 0 < samples.size < full_frame:
            # funasr shrinks the window to the clip for audio shorter than one frame; do the same so that
            # very short clips still produce one frame, as the reference does.
            opts = self._fbank_options(self.config)
            opts.frame_opts.frame_length_ms = samples.size / self.config.fs * 1000
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(self.config.fs, samples)
        fbank.input_finished()
        n = fbank.num_frames_ready
        if n == 0:
            return np.zeros((0, self.config.n_mels), dtype=np.float32)
        return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        frames = self.fbank(waveform)
        if frames.shape[0] == 0:
            return np.zeros((0, self.config.feature_dim), dtype=np.float32)
        stacked = apply_lfr(frames, self.config.lfr_m, self.config.lfr_n)
        return (stacked + self.cmvn_shift) * self.cmvn_scale

    def min_samples(self) -> int:
        """Samples needed for one fbank frame; shorter audio yields no features."""
        return int(self.config.fs * self.config.frame_length / 1000)
