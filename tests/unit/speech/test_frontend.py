"""The numpy/kaldi-native-fbank frontend against funasr's own WavFrontend."""

import numpy as np
import pytest
import torch
from funasr.frontends.wav_frontend import WavFrontend
from funasr.frontends.wav_frontend import apply_lfr as funasr_apply_lfr

from sensevoice_pipeline.speech.frontend import (
    CmvnFormatError,
    Frontend,
    FrontendConfig,
    apply_lfr,
    load_cmvn,
)
from tests.support.audio import synthetic_clip

CMVN = "export/reference_model/am.mvn"


@pytest.fixture(scope="module")
def frontends():
    ours = Frontend(FrontendConfig(), CMVN)
    theirs = WavFrontend(
        cmvn_file=CMVN,
        fs=16000,
        window="hamming",
        n_mels=80,
        frame_length=25,
        frame_shift=10,
        lfr_m=7,
        lfr_n=6,
        dither=0.0,
    )
    return ours, theirs


@pytest.mark.parametrize("n_samples", [160, 400, 401, 1000, 16000, 16160, 48123])
def test_features_match_funasr(frontends, n_samples):
    ours, theirs = frontends
    audio = synthetic_clip(n_samples / 16000, seed=n_samples)[:n_samples]
    want, want_len = theirs(torch.from_numpy(audio)[None, :], torch.tensor([n_samples]))
    got = ours(audio)
    assert got.shape == (int(want_len[0]), 560)
    np.testing.assert_allclose(got, want[0].numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("frames", list(range(1, 40)))
def test_lfr_matches_funasr_for_every_remainder(frames):
    x = np.random.default_rng(frames).standard_normal((frames, 80)).astype(np.float32)
    want = funasr_apply_lfr(torch.from_numpy(x), 7, 6).numpy()
    np.testing.assert_array_equal(apply_lfr(x, 7, 6), want)


def test_cmvn_reads_real_file():
    shift, scale = load_cmvn(CMVN)
    assert shift.shape == scale.shape == (560,)
    assert shift[0] == pytest.approx(-8.311879)


def test_cmvn_rejects_garbage(tmp_path):
    bad = tmp_path / "am.mvn"
    bad.write_text("<Nnet>\n<AddShift> 560 560\n")
    with pytest.raises(CmvnFormatError, match="truncated|not a CMVN"):
        load_cmvn(bad)


def test_frontend_is_deterministic(frontends):
    ours, _ = frontends
    audio = synthetic_clip(1.0, seed=3)
    np.testing.assert_array_equal(ours(audio), ours(audio))
