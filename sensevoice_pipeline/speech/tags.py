"""SenseVoice rich tags: parse ``<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund.`` into columns, and render
the raw string as plain text or as emoji text.

Parsing never fails: tags it does not know are kept in ``other_tags``, text that only looks like a tag (``<|en``)
stays in the text. ``render_emoji`` gives the same string as funasr's ``rich_transcription_postprocess``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TAG = re.compile(r"<\|([^<>|]*)\|>")

LANGUAGE_TAGS = {"zh": "zh", "en": "en", "yue": "yue", "ja": "ja", "ko": "ko", "nospeech": "nospeech"}
EMOTION_TAGS = {
    "HAPPY": "happy",
    "SAD": "sad",
    "ANGRY": "angry",
    "NEUTRAL": "neutral",
    "FEARFUL": "fearful",
    "DISGUSTED": "disgusted",
    "SURPRISED": "surprised",
    "EMO_UNKNOWN": "unknown",
}
EVENT_TAGS = {
    "Speech": "speech",
    "BGM": "music",
    "Applause": "applause",
    "Laughter": "laughter",
    "Cry": "crying",
    "Sneeze": "sneeze",
    "Breath": "breath",
    "Cough": "cough",
    "Sing": "singing",
    "Speech_Noise": "speech_noise",
    "Event_UNK": "unknown",
    "GBG": "garbage",
}
ITN_TAGS = {"withitn": True, "woitn": False}


@dataclass(frozen=True)
class RichTranscription:
    raw: str
    text: str
    language: str | None = None
    emotion: str | None = None
    event: str | None = None
    itn: bool | None = None
    other_tags: tuple[str, ...] = field(default_factory=tuple)


def parse(
    raw: str,
    emotions: dict[str, str] | None = None,
    events: dict[str, str] | None = None,
) -> RichTranscription:
    """Split a raw transcription into its first language / emotion / event / itn tags and the text.

    ``emotions`` / ``events`` map tag names to column values (default: ``EMOTION_TAGS`` / ``EVENT_TAGS``), so a
    deployment can rename or merge classes.
    """
    raw = raw or ""
    emotions = EMOTION_TAGS if emotions is None else emotions
    events = EVENT_TAGS if events is None else events
    found: dict[str, object] = {}
    other: list[str] = []
    for name in TAG.findall(raw):
        for kind, table in (("language", LANGUAGE_TAGS), ("emotion", emotions), ("event", events), ("itn", ITN_TAGS)):
            if name in table:
                found.setdefault(kind, table[name])
                break
        else:
            other.append(name)
    return RichTranscription(raw=raw, text=render_plain(raw), other_tags=tuple(other), **found)


def render_plain(raw: str) -> str:
    """The text with every tag removed."""
    return " ".join(TAG.sub(" ", raw or "").split()) if "<|" in (raw or "") else (raw or "").strip()


# --- emoji rendering, equal to funasr.utils.postprocess_utils.rich_transcription_postprocess ------------------------

EMOTION_EMOJI = {
    "<|HAPPY|>": "😊", "<|SAD|>": "😔", "<|ANGRY|>": "😡", "<|NEUTRAL|>": "",
    "<|FEARFUL|>": "😰", "<|DISGUSTED|>": "🤢", "<|SURPRISED|>": "😮",
}  # fmt: skip
EVENT_EMOJI = {
    "<|BGM|>": "🎼", "<|Speech|>": "", "<|Applause|>": "👏", "<|Laughter|>": "😀",
    "<|Cry|>": "😭", "<|Sneeze|>": "🤧", "<|Breath|>": "", "<|Cough|>": "🤧",
}  # fmt: skip
# Every token removed from a segment before rendering, in the order funasr removes them (order matters for
# overlapping keys such as "<|nospeech|><|Event_UNK|>").
REMOVED_TOKENS = (
    "<|nospeech|><|Event_UNK|>", "<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
    "<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|BGM|>", "<|Speech|>", "<|Applause|>", "<|Laughter|>",
    "<|FEARFUL|>", "<|DISGUSTED|>", "<|SURPRISED|>", "<|Cry|>", "<|EMO_UNKNOWN|>", "<|Sneeze|>", "<|Breath|>",
    "<|Cough|>", "<|Sing|>", "<|Speech_Noise|>", "<|withitn|>", "<|woitn|>", "<|GBG|>", "<|Event_UNK|>",
)  # fmt: skip
EMOTION_MARKS = frozenset({"😊", "😔", "😡", "😰", "🤢", "😮"})
EVENT_MARKS = frozenset({"🎼", "👏", "😀", "😭", "🤧", "😷"})
LANGUAGE_SPLIT = ("<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>")


def _render_segment(segment: str) -> str:
    counts = {}
    for token in REMOVED_TOKENS:
        counts[token] = segment.count(token)
        segment = segment.replace(token, "")
    emotion = "<|NEUTRAL|>"
    for tag in EMOTION_EMOJI:  # the most frequent emotion wins; ties keep the earlier one
        if counts[tag] > counts[emotion]:
            emotion = tag
    for tag, mark in EVENT_EMOJI.items():
        if counts[tag] > 0:
            segment = mark + segment
    segment += EMOTION_EMOJI[emotion]
    for mark in EMOTION_MARKS | EVENT_MARKS:
        segment = segment.replace(" " + mark, mark).replace(mark + " ", mark)
    return segment.strip()


def render_emoji(raw: str) -> str:
    """Events as leading emoji, the emotion as a trailing emoji, segments joined without repeating marks."""
    s = raw.replace("<|nospeech|><|Event_UNK|>", "❓")
    for tag in LANGUAGE_SPLIT:
        s = s.replace(tag, "<|lang|>")
    segments = [_render_segment(part).strip(" ") for part in s.split("<|lang|>")]
    out = " " + segments[0]
    last_event = _leading_event(out)
    for segment in segments[1:]:
        if not segment:
            continue
        if _leading_event(segment) is not None and _leading_event(segment) == last_event:
            segment = segment[1:]
        if not segment:
            continue
        last_event = _leading_event(segment)
        if _trailing_emotion(segment) is not None and _trailing_emotion(segment) == _trailing_emotion(out):
            out = out[:-1]
        out += segment.strip()
    return out.replace("The.", " ").strip()


def _leading_event(s: str) -> str | None:
    return s[0] if s[0] in EVENT_MARKS else None


def _trailing_emotion(s: str) -> str | None:
    return s[-1] if s[-1] in EMOTION_MARKS else None
