"""Numbers every part of the pipeline must agree on, defined once.

The language table is ``speech.languages`` (it is the model's own id table, not a setting).
"""

SAMPLE_RATE = 16000  # Hz: SenseVoiceSmall's training rate; every waveform is resampled to it before anything else

# A recording (or channel) shorter than one fbank hop (10 ms) holds no word: the daily job and Try a clip fail it
# with a readable reason instead of sending it.
MIN_TRANSCRIBABLE_SAMPLES = SAMPLE_RATE // 100

# What the Triton model itself refuses, per request: kaldi-native-fbank aborts the whole python-backend stub on a
# one-sample window, so anything shorter than this is an INVALID_ARGUMENT answer, not a crash.
MIN_REQUEST_SAMPLES = 2

# Inverse text normalisation (punctuation, digits) is on unless a caller says otherwise: the CLI, the daily job,
# the canary's golden cases, Try a clip and the Triton model's own Python API all default to it.
DEFAULT_USE_ITN = True

# SenseVoice's attention cost grows faster than linearly with length: longer recordings are cut into VAD speech
# segments of at most this many seconds (Settings.max_segment_s overrides it for the daily job).
DEFAULT_MAX_SEGMENT_S = 30.0

# How a recording's channels are transcribed: mono mixes them down; split gives one transcript per channel (agent and
# customer on their own channels).
CHANNEL_MODES = ("mono", "split")
