"""Numbers every part of the pipeline must agree on, defined once.

The language table is ``speech.languages`` (it is the model's own id table, not a setting).
"""

SAMPLE_RATE = (
    16000  # Hz: SenseVoiceSmall's training rate; every waveform is resampled to it before anything else
)

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
# (speech.vad.merge_adjacent; Settings.merge_segment_s / SVP_MERGE_SEGMENT_S, 0 = off). Off: joining leaves one
# emotion and event per joined segment instead of per sentence, and turning it on by default would change what an
# utterance row is (a day's counts would drop 2-4x from the day of the upgrade). Its speed is the CPU's and the
# export's (benchmarks/merging.py, full-size int8, 2 cores, a 5-minute call of short sentences, 92 segments): joining
# to 5/10/15 s cost 1.21/1.38/1.62x the wall time on an AMD EPYC at load 4-7 (17.5 s unjoined), and saved time on an
# idle Intel Xeon with AVX-512 VNNI and AMX (3.3 s unjoined), 0.90/0.79/0.83x, with and without the local
# `sensevoice` batcher alike. A user who wants calls faster more than per-sentence emotions can set 10.
DEFAULT_MERGE_SEGMENT_S = 0.0

# How a recording's channels are transcribed: mono mixes them down; split gives one transcript per channel (agent and
# customer on their own channels).
CHANNEL_MODES = ("mono", "split")
