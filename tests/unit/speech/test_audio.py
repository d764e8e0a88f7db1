"""speech/audio.py: resampling to the model's 16 kHz is band-limited, not decimation; a recording longer than the
job takes is refused while it decodes, whatever its header says (issue 28)."""

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.speech.audio import TooLongError, load_16k, resample
from tests.support.audio import silent_flac


def test_resampling_is_band_limited_not_decimation():
    rate = 44100
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, rate)
    assert out.size == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins: the tone stays at 1 kHz
    assert np.sqrt(np.mean(out[100:-100] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.01)
    # an 11 kHz tone cannot exist at 16 kHz: a real resampler removes it instead of aliasing it to 5 kHz
    alias = resample(np.sin(2 * np.pi * 11000 * t).astype(np.float32), rate)
    assert np.sqrt(np.mean(alias[100:-100] ** 2)) < 0.01


def test_a_long_recording_is_refused_while_it_decodes_whatever_its_header_says(tmp_path):
    stated = silent_flac(tmp_path / "stated.flac", 1.0)
    hidden = silent_flac(tmp_path / "hidden.flac", 1.0, length_in_header=False)
    assert (
        stated.stat().st_size < 200_000 and sf.info(str(hidden)).frames > 2**62
    )  # tiny, and "unknown" length
    with pytest.raises(
        TooLongError,
        match="stated.flac is longer than the longest recording the job takes, 10 min "
        r"\(SVP_MAX_RECORDING_S; its header says 1 h\)",
    ):
        load_16k(stated, False, max_seconds=600)
    with pytest.raises(
        TooLongError, match=r"hidden.flac .* 10 min \(SVP_MAX_RECORDING_S; found while decoding\)"
    ):
        load_16k(hidden, False, max_seconds=600)
    info, (samples,) = load_16k(stated, False, max_seconds=4000)  # under the limit: decoded whole
    assert samples.size == 3600 * 16000 and info.channels == 1
