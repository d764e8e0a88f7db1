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

# Adjacent VAD segments of one channel can be joined into one request up to this many seconds
# (speech.vad.merge_adjacent; Settings.merge_segment_s / SVP_MERGE_SEGMENT_S, 0 = off). Off by measurement
# (benchmarks/merging.py, 2026-12-02, full-size int8 on 2 CPU cores, a 5-minute call of short sentences): joining
# to 5/10/15/25 s cut requests from 92 to 73/35/22/13 but cost 1.21/1.38/1.62/1.52x the wall time (the encoder's
# attention grows faster than linearly with length, and the pauses inside a joined segment are sent too), and on
# the fixture model no joined segment kept its clips' texts. It also leaves one emotion and event per joined
# segment instead of per sentence.
DEFAULT_MERGE_SEGMENT_S = 0.0

# How a recording's channels are transcribed: mono mixes them down; split gives one transcript per channel (agent and
# customer on their own channels).
CHANNEL_MODES = ("mono", "split")
