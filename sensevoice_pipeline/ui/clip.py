"""Try a clip: one uploaded clip through the serving Triton, answered as the daily job would transcribe it.

The plugin page's "Try a clip" form posts a clip, a language hint and the ITN switch; this module does the rest:

- **limits first**: at most ``MAX_UPLOAD_BYTES`` (20 MB, counted while the request body arrives: ``limit_body``),
  one of the formats ``audio.py`` decodes (judged by the file name's extension, as the daily job does; the decoder
  then checks the content), at most ``MAX_CLIP_SECONDS`` of audio (judged from the header, before decoding);
- **nothing stored**: the bytes go into an anonymous in-memory file (``memfd_create``; it has no name on any file
  system and is gone when closed) that ``audio.load_16k`` decodes through its ``/proc/self/fd`` path, and is closed
  as soon as the 16 kHz samples are in memory;
- **the daily job's path**: channels mixed down to mono, resampled to 16 kHz, the same too-short rule
  and the same segmentation, through the same service (``serving.recordings``: the whole clip when it is at most 30 s,
  otherwise silero-vad speech segments of at most 30 s each), then one Triton request per segment with the hint and
  ITN switch. A long clip is segmented rather than refused because the page is there to show what the daily job
  makes of a real call, and real calls are longer than 30 s; ``MAX_CLIP_SECONDS`` bounds the cost;
- **faults**: :class:`ClipRefused` (an input fault, with the HTTP status the page answers: 413 too large, 415 not a
  supported format, 422 anything else about the clip or the form, the decoder's reason included) and the client's
  :class:`~.errors.ServingError` classes (``errors.http_status``: 503 unreachable / model not loaded, 504 deadline,
  502 any other serving fault).

No Airflow import here: ``plugins/sensevoice_plugin.py`` adds the login and the Triton address (the
``sensevoice_triton`` Connection through ``SenseVoiceTritonHook``, falling back to $SVP_TRITON_URL).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from sensevoice_pipeline.constants import (
    DEFAULT_MAX_SEGMENT_S,
    DEFAULT_MERGE_SEGMENT_S,
    DEFAULT_USE_ITN,
    SAMPLE_RATE,
)
from sensevoice_pipeline.errors import InputError, ServingError, ServingUnavailableError
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.recordings import RecordingTranscriber, SegmentAnswer, check_long_enough
from sensevoice_pipeline.speech.audio import (
    SUPPORTED_EXTENSIONS,
    UNSUPPORTED_HINT,
    AudioDecodeError,
    load_16k,
)
from sensevoice_pipeline.speech.languages import LANGUAGES
from sensevoice_pipeline.speech.redact import DEFAULT_REDACT, redact_raw
from sensevoice_pipeline.speech.tags import parse, render_emoji, render_plain

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the clip itself
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries, part headers and the two small fields
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
MAX_CLIP_SECONDS = 600.0  # ten minutes: a 20 MB 16 kHz 16-bit mono WAV is about 10.9 min
MAX_SEGMENT_S = DEFAULT_MAX_SEGMENT_S  # the daily job's default (Settings.max_segment_s)
REQUEST_TIMEOUT_S = 60.0  # one segment's Triton request: someone is waiting at the page
MAX_NAME = 120
ACCEPT = ",".join(SUPPORTED_EXTENSIONS)  # the form's file picker hint
ITN_VALUES = {
    "on": True,
    "true": True,
    "1": True,
    "yes": True,
    "off": False,
    "false": False,
    "0": False,
    "no": False,
}


class ClipRefused(InputError):
    """The clip or the form cannot be checked; ``status`` is the HTTP status the page answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class UploadTooLarge(ClipRefused):
    def __init__(self, limit: int = MAX_UPLOAD_BYTES):
        super().__init__(f"the upload is larger than the limit of {limit // (1024 * 1024)} MB", 413)


@dataclass(frozen=True)
class ClipSegment:
    index: int
    start_s: float
    end_s: float
    raw: str
    plain: str
    emoji: str


@dataclass
class ClipResult:
    name: str
    format: str
    sample_rate: int
    channels: int
    duration_s: float
    language: str
    use_itn: bool
    model_name: str = ""
    model_version: str = ""
    raw: str = ""  # the segments' raw texts, joined (one segment: its text as Triton answered it)
    plain: str = ""
    emoji: str = ""
    segments: list[ClipSegment] = field(default_factory=list)
    segmented: bool = False  # longer than max_segment_s: cut into VAD speech segments
    seconds: float = 0.0  # how long the check took
    # the texts are shown as the daily job would store them: under this redaction policy (SVP_REDACT), with this
    # many findings masked (or, under drop, texts replaced by the marker)
    redact: str = DEFAULT_REDACT
    redactions: int = 0
    redacted_kinds: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the form ------------------------------------------------------------------------------------------------------


def parse_language(value: Any) -> str:
    language = (str(value) if value is not None else "auto").strip().lower() or "auto"
    if language not in LANGUAGES:
        raise ClipRefused(f"language: expected one of {', '.join(LANGUAGES)}")
    return language


def parse_itn(value: Any) -> bool:
    """``on`` / ``off`` (the form's select; true/false, 1/0, yes/no too); absent: on, the daily job's default."""
    if value is None or str(value).strip() == "":
        return DEFAULT_USE_ITN
    try:
        return ITN_VALUES[str(value).strip().lower()]
    except KeyError:
        raise ClipRefused("itn: expected on or off") from None


def clip_name(filename: Any) -> str:
    """The upload's file name without any folder a client put in it, shortened; checked to be a supported format."""
    name = Path(str(filename or "").replace("\\", "/")).name.strip()
    if not name:
        raise ClipRefused("no clip: choose an audio file to upload")
    name = "".join(ch if ch.isprintable() else "?" for ch in name)
    if len(name) > MAX_NAME:
        suffix = Path(name).suffix[:16]
        name = name[: MAX_NAME - len(suffix) - 1] + "…" + suffix
    if Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise ClipRefused(
            f"unsupported format {Path(name).suffix or '(no extension)'!r} ({name}); {UNSUPPORTED_HINT}", 415
        )
    return name


def limit_body(receive: Callable[[], Awaitable[dict]], limit: int = MAX_BODY_BYTES):
    """An ASGI ``receive`` that raises :class:`UploadTooLarge` once the request body passes ``limit`` bytes, so an
    oversized upload is never parsed or spooled past the limit."""
    seen = 0

    async def limited() -> dict:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge()
        return message

    return limited


async def drain(receive: Callable[[], Awaitable[dict]], limit: int = 4 * MAX_BODY_BYTES) -> None:
    """Read and drop the rest of a refused request body (up to ``limit`` bytes), so that the client, still sending,
    gets the answer instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message.get("type") != "http.request" or not message.get("more_body", False):
            return
        seen += len(message.get("body", b""))


# -- the check -----------------------------------------------------------------------------------------------------


class TritonAddressError(ServingUnavailableError):
    """The Triton address cannot be found (a ``sensevoice_triton`` Connection without a host, ...)."""


async def check_clip(
    data: bytes,
    filename: str,
    language: Any = "auto",
    use_itn: Any = DEFAULT_USE_ITN,
    *,
    url: str | Callable[[], str],
    max_segment_s: float = MAX_SEGMENT_S,
    merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S,
    timeout_s: float = REQUEST_TIMEOUT_S,
    redact: str = DEFAULT_REDACT,
) -> ClipResult:
    """Decode ``data`` (the uploaded file's bytes) in memory, segment it like the daily job and transcribe every
    segment through the Triton at ``url`` (or at what ``url()`` answers, looked up in a thread once the clip is
    decoded). The texts are redacted under ``redact`` as the daily job stores them (``fill_texts``). Raises
    :class:`ClipRefused` or a :class:`~.errors.ServingError`."""
    started = time.perf_counter()
    language = parse_language(language)
    use_itn = parse_itn(use_itn) if not isinstance(use_itn, bool) else use_itn
    name = clip_name(filename)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadTooLarge()
    if not data:
        raise ClipRefused(f"{name} is an empty file (0 bytes)")
    info, audio = await asyncio.to_thread(decode_in_memory, data, name)
    check_long_enough(
        audio
    )  # the daily job's rule, before any Triton lookup: an InputError, answered with 422
    result = ClipResult(
        name,
        info.format,
        info.sample_rate,
        info.channels,
        round(audio.size / SAMPLE_RATE, 3),
        language,
        use_itn,
        segmented=audio.size > int(max_segment_s * SAMPLE_RATE),
    )
    if callable(url):
        try:
            url = await asyncio.to_thread(url)
        except ValueError as exc:
            raise TritonAddressError(f"no Triton address: {exc}") from exc
    async with SenseVoiceClient(
        url, max_concurrency=4, timeout_s=timeout_s, retries=1, backoff_s=0.5, deadline_retries=0
    ) as client:
        await client.check_ready()
        transcript = await RecordingTranscriber(
            client, max_segment_s, merge_segment_s=merge_segment_s
        ).transcribe_channels(info, [audio], language, use_itn)
    fill_texts(result, transcript.segments, redact)
    if transcript.segments:
        result.model_name = transcript.segments[0].answer.model_name
        result.model_version = ",".join(transcript.model_versions)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def fill_texts(result: ClipResult, answers: list[SegmentAnswer], redact: str = DEFAULT_REDACT) -> ClipResult:
    """``result``'s texts, whole and per segment, from the segments' answers, each redacted under ``redact`` as the
    daily job redacts a row (jobs.daily._utterance_row), with the count of findings."""
    kinds: list[str] = []
    for i, s in enumerate(answers):
        redaction = redact_raw(s.answer.text, redact)
        text = redaction.text
        kinds += redaction.kinds
        result.redactions += redaction.count
        result.segments.append(
            ClipSegment(
                i,
                round(s.segment.start_s, 3),
                round(s.segment.end_s, 3),
                text,
                parse(text).text,
                render_emoji(text),
            )
        )
    result.redact = redact
    result.redacted_kinds = tuple(kinds)
    result.raw = "".join(s.raw for s in result.segments)
    result.plain = render_plain(result.raw)
    result.emoji = render_emoji(result.raw) if result.raw else ""
    return result


def decode_in_memory(data: bytes, name: str):
    """``audio.load_16k`` (mixed down to mono) over an anonymous in-memory file holding ``data``; the file is closed
    (and so gone) before this returns. Refuses a clip longer than ``MAX_CLIP_SECONDS`` before decoding it."""
    fd = _anonymous_file()
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
        path = f"/proc/self/fd/{fd}"
        _check_duration(path, name)
        try:
            info, channels = load_16k(path, False, name)
        except AudioDecodeError as exc:
            raise ClipRefused(str(exc)) from exc
    finally:
        os.close(fd)
    return info, channels[0]


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("svp-clip", getattr(os, "MFD_CLOEXEC", 0))
    with (
        tempfile.TemporaryFile() as f
    ):  # no memfd: O_TMPFILE, a file with no name, removed when the last fd closes
        return os.dup(f.fileno())


def _check_duration(path: str, name: str) -> None:
    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001 -- not readable: load_16k says why, in its words
        return
    if info.samplerate and info.frames / info.samplerate > MAX_CLIP_SECONDS:
        raise ClipRefused(
            f"{name} is {info.frames / info.samplerate / 60:.1f} min long; clips of at most "
            f"{MAX_CLIP_SECONDS / 60:.0f} min are checked here"
        )


def message(exc: BaseException) -> str:
    """What the page says about a failed check."""
    if isinstance(exc, ServingError):
        return f"the transcription service failed, not the clip: {exc}"
    return str(exc)
