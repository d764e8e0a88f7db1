"""One recording through the serving Triton, the way production transcribes it.

decode (streaming, resampled to 16 kHz; channels kept apart or mixed down) → the too-short rule → VAD segmentation
(the whole channel when it is at most ``max_segment_s``, else silero-vad speech segments, adjacent ones of a channel
joined up to ``merge_segment_s``) → one ``sensevoice`` request per segment with the language hint and ITN switch →
answers in segment order.

The daily job (``jobs.daily``), ``svp transcribe``, the release canary and Try a clip all go through
:class:`RecordingTranscriber`, so what the canary judges and what an analyst tries is what the daily job does.
Fetching (a contained local read or an s3:// download) is the caller's business: this module gets a readable path
or samples already in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensevoice_pipeline.constants import (
    DEFAULT_MAX_SEGMENT_S,
    DEFAULT_MERGE_SEGMENT_S,
    DEFAULT_USE_ITN,
    MIN_TRANSCRIBABLE_SAMPLES,
    SAMPLE_RATE,
)
from sensevoice_pipeline.errors import InputError
from sensevoice_pipeline.serving.client import SenseVoiceClient, Transcription
from sensevoice_pipeline.speech.audio import AudioInfo, load_16k
from sensevoice_pipeline.speech.vad import SileroVad, segment_for_asr


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of one channel sent as one request; times in seconds from the recording's start (for joined
    segments: the first speech run's start and the last one's end, and ``audio`` is everything between)."""

    channel: int
    index: int  # within its channel
    start_s: float
    end_s: float
    audio: np.ndarray


@dataclass(frozen=True)
class SegmentAnswer:
    segment: SpeechSegment
    answer: Transcription


@dataclass(frozen=True)
class RecordingTranscript:
    info: AudioInfo
    segments: list[SegmentAnswer]

    @property
    def model_versions(self) -> list[str]:
        return sorted({s.answer.model_version for s in self.segments})

    @property
    def raw_texts(self) -> list[str]:
        return [s.answer.text for s in self.segments]


def check_long_enough(samples: np.ndarray) -> None:
    """InputError unless ``samples`` (16 kHz) hold at least one fbank hop: less holds no word."""
    if samples.size < MIN_TRANSCRIBABLE_SAMPLES:
        raise InputError(
            f"too short to transcribe: {1000 * samples.size / SAMPLE_RATE:.2f} ms of audio at "
            f"16 kHz (at least {1000 * MIN_TRANSCRIBABLE_SAMPLES // SAMPLE_RATE} ms needed)"
        )


def cut_segments(
    channels: list[np.ndarray],
    vad: SileroVad | None,
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S,
    merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S,
) -> list[SpeechSegment]:
    """Each channel on its own (a segment, joined or not, never spans two channels), in channel order."""
    out = []
    for channel, audio in enumerate(channels):
        for index, seg in enumerate(segment_for_asr(audio, vad, max_segment_s, merge_segment_s)):
            out.append(SpeechSegment(channel, index, seg.start_s, seg.end_s, audio[seg.start : seg.end]))
    return out


class RecordingTranscriber:
    """Recordings → answers through one open :class:`SenseVoiceClient`. Serving faults propagate (they fail the
    caller's task, never the file); input faults are :class:`InputError` (an ``AudioDecodeError`` too)."""

    def __init__(
        self,
        client: SenseVoiceClient,
        max_segment_s: float = DEFAULT_MAX_SEGMENT_S,
        vad: SileroVad | None = None,
        merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S,
        max_recording_s: float | None = None,
    ):
        self.client = client
        self.max_segment_s = max_segment_s
        self.merge_segment_s = merge_segment_s  # 0: one request per VAD segment
        self.vad = vad  # None: the process-wide session (vad.segment_for_asr), built once, thread-safe
        self.max_recording_s = (
            max_recording_s  # a longer recording is refused while it decodes (None: no limit)
        )

    async def decode(
        self, path: str | Path, split_channels: bool = False, name: str = ""
    ) -> tuple[AudioInfo, list[np.ndarray]]:
        """Decode off the event loop; ``name`` is the file's name when ``path`` does not carry it (a descriptor)."""
        return await asyncio.to_thread(load_16k, path, split_channels, name, self.max_recording_s)

    async def transcribe_channels(
        self,
        info: AudioInfo,
        channels: list[np.ndarray],
        language: str = "auto",
        use_itn: bool = DEFAULT_USE_ITN,
    ) -> RecordingTranscript:
        check_long_enough(channels[0])
        segments = await asyncio.to_thread(
            cut_segments, channels, self.vad, self.max_segment_s, self.merge_segment_s
        )
        answers = await asyncio.gather(
            *(self.client.transcribe(s.audio, language, use_itn) for s in segments)
        )
        return RecordingTranscript(info, [SegmentAnswer(s, a) for s, a in zip(segments, answers)])

    async def transcribe_file(
        self,
        path: str | Path,
        language: str = "auto",
        use_itn: bool = DEFAULT_USE_ITN,
        split_channels: bool = False,
        name: str = "",
    ) -> RecordingTranscript:
        info, channels = await self.decode(path, split_channels, name)
        return await self.transcribe_channels(info, channels, language, use_itn)
