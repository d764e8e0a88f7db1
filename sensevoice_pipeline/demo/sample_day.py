"""A sample day of calls for the demo and the end-to-end tests: ``<raw_root>/date=YYYY-MM-DD/`` with a manifest.

The calls are made from the trained fixture model's clips (its ``clips/``, shipped with the package), whose answers
are known (``expected.jsonl``), plus the kinds of file a real day brings: other formats, a stereo call to split by
channel, an 8 kHz telephone recording, a long call that needs VAD (real speech from the model card's examples), and a
corrupt upload. ``expected_answers`` says what the fixture model must answer for every file and channel whose answer is
known, so tests can compare the published tables with it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sensevoice_pipeline.lake.partition import MANIFEST, partition_dir
from sensevoice_pipeline.resources import FIXTURE_MODEL_DIR, SPEECH_EXAMPLES_DIR
from sensevoice_pipeline.speech.audio import resample

RATE = 16000


@dataclass(frozen=True)
class SampleCall:
    """One file of the sample day. ``channels`` names the fixture clip heard on each channel (None: unscripted)."""

    path: str  # relative to the partition
    channels: tuple[str | None, ...]
    language: str = ""  # manifest hint ("" = the run's default)
    channel_mode: str = ""  # manifest channel mode ("" = the run's default)
    agent: str = ""
    queue: str = ""


# Every file of the golden day is answered exactly by the fixture model (its clips, losslessly stored).
GOLDEN_CALLS = (
    SampleCall("billing/en_refund_angry.wav", ("en_refund_angry",), agent="ana", queue="billing"),
    SampleCall("billing/en_paid_sad_cough.flac", ("en_paid_sad_cough",), agent="ana", queue="billing"),
    SampleCall("billing/zh_refund_angry.wav", ("zh_refund_angry",), agent="li", queue="billing"),
    SampleCall("billing/zh_paid_neutral_bgm.flac", ("zh_paid_neutral_bgm",), agent="li", queue="billing"),
    # The same audio is Mandarin unless the manifest says the caller speaks Cantonese.
    SampleCall(
        "billing/cantonese_refund.wav",
        ("zh_yue_ambiguous_sad",),
        language="yue",
        agent="wing",
        queue="billing",
    ),
    SampleCall("support/en_order_neutral_bgm.wav", ("en_order_neutral_bgm",), agent="bo", queue="support"),
    SampleCall(
        "support/en_great_happy_laughter.wav", ("en_great_happy_laughter",), agent="bo", queue="support"
    ),
    SampleCall(
        "support/en_thanks_happy_applause.wav",
        ("en_thanks_happy_applause",),
        language="en",
        agent="bo",
        queue="support",
    ),
    SampleCall("support/yue_angry_cough.wav", ("yue_angry_cough",), agent="wing", queue="support"),
    SampleCall("support/yue_thanks_happy.flac", ("yue_thanks_happy",), agent="wing", queue="support"),
    SampleCall(
        "support/yue_surprised_applause.wav", ("yue_surprised_applause",), agent="wing", queue="support"
    ),
    SampleCall(
        "intl/ja_refund_angry_bgm.wav", ("ja_refund_angry_bgm",), language="ja", agent="yui", queue="intl"
    ),
    SampleCall("intl/ja_thanks_happy.wav", ("ja_thanks_happy",), agent="yui", queue="intl"),
    SampleCall("intl/ja_sorry_sad_cough.wav", ("ja_sorry_sad_cough",), agent="yui", queue="intl"),
    SampleCall("intl/ko_help_fearful.wav", ("ko_help_fearful",), agent="min", queue="intl"),
    SampleCall("intl/ko_thanks_neutral.wav", ("ko_thanks_neutral",), agent="min", queue="intl"),
    SampleCall("intl/ko_great_happy_laughter.flac", ("ko_great_happy_laughter",), agent="min", queue="intl"),
    SampleCall("intl/zh_thanks_happy_laughter.wav", ("zh_thanks_happy_laughter",), agent="li", queue="intl"),
    SampleCall("ivr/hold_music.wav", ("nospeech_hold_music",), queue="ivr"),
    SampleCall("ivr/silence.wav", ("nospeech_silence",), queue="ivr"),
    # A stereo call: the customer on the left channel, the agent on the right; transcribed per channel.
    SampleCall(
        "support/stereo_complaint.wav",
        ("en_refund_angry", "en_order_neutral_bgm"),
        channel_mode="split",
        agent="bo",
        queue="support",
    ),
)

# Files whose answers the fixture model does not know: they show the pipeline's handling, not the model's.
EXTRA_CALLS = (
    # Telephone quality: 8 kHz stereo, split by channel (the fixture's marker tones above 4 kHz do not survive).
    SampleCall(
        "support/phone_8khz_stereo.wav", (None, None), channel_mode="split", agent="bo", queue="support"
    ),
    # Over 30 s of real speech (the model card's examples): VAD cuts it into segments.
    SampleCall("intl/long_call.mp3", (None,), agent="yui", queue="intl"),
    # A broken upload: recorded as failed with its reason; the rest of the day is processed.
    SampleCall("billing/corrupt_upload.wav", (None,), agent="ana", queue="billing"),
)


def write_sample_day(raw_root: str | Path, date: str, extras: bool = True) -> list[SampleCall]:
    """Write the sample day's audio and manifest.csv under ``raw_root``; returns the calls written."""
    part = partition_dir(raw_root, date)
    part.mkdir(parents=True, exist_ok=True)
    calls = GOLDEN_CALLS + (EXTRA_CALLS if extras else ())
    for call in calls:
        target = part / call.path
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_call(call, target)
    _write_manifest(part / MANIFEST, calls)
    return list(calls)


def expected_answers(calls: list[SampleCall], use_itn: bool = True, default_language: str = "auto") -> dict:
    """``(path relative to the partition, channel) -> the fixture model's exact raw text`` for every known answer."""
    cases = {
        (Path(c["clip"]).stem, c["language"], c["use_itn"]): c["text"]
        for c in map(
            json.loads, (FIXTURE_MODEL_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines()
        )
    }
    answers = {}
    for call in calls:
        hint = call.language or default_language
        mono = (call.channel_mode or "mono") == "mono"
        if mono and len(call.channels) > 1:
            continue  # a mixdown of two clips: no known answer
        for channel, clip in enumerate(call.channels):
            if clip is not None:
                answers[(call.path, channel)] = cases[(clip, hint, use_itn)]
    return answers


def _write_call(call: SampleCall, target: Path) -> None:
    if call.path.endswith("corrupt_upload.wav"):
        target.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(7).bytes(2000))
    elif call.path.endswith("long_call.mp3"):
        sf.write(target, _long_speech(), RATE, format="MP3")
    elif "8khz" in call.path:
        left, right = _clip("en_thanks_happy_applause"), _clip("ko_help_fearful")
        sf.write(
            target, _stereo(resample(left, RATE, 8000), resample(right, RATE, 8000)), 8000, subtype="PCM_16"
        )
    elif len(call.channels) == 2:
        sf.write(target, _stereo(_clip(call.channels[0]), _clip(call.channels[1])), RATE, subtype="PCM_16")
    else:
        sf.write(target, _clip(call.channels[0]), RATE, subtype="PCM_16")


def _clip(name: str) -> np.ndarray:
    audio, rate = sf.read(FIXTURE_MODEL_DIR / "clips" / f"{name}.wav", dtype="float32")
    assert rate == RATE
    return audio


def _stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    n = max(left.size, right.size)
    return np.stack([np.pad(left, (0, n - left.size)), np.pad(right, (0, n - right.size))], axis=1)


def _long_speech(repeats: int = 2, gap_s: float = 1.5) -> np.ndarray:
    """The example clips one after the other with pauses between them: about 75 s."""
    gap = np.zeros(int(gap_s * RATE), dtype=np.float32)
    parts = []
    for _ in range(repeats):
        for path in sorted(SPEECH_EXAMPLES_DIR.glob("*.mp3")):
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            parts += [resample(audio.mean(axis=1), rate), gap]
    return np.concatenate(parts)


def _write_manifest(path: Path, calls: list[SampleCall]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "language", "channel_mode", "agent", "queue"])
        for call in calls:
            writer.writerow([call.path, call.language, call.channel_mode, call.agent, call.queue])
