"""SenseVoice rich tags: parse ``<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund.`` into columns, and render
the raw string as plain text or as emoji text.

Parsing never fails: tags it does not know are kept in ``other_tags``, text that only looks like a tag (``<|en``)
stays in the text. ``render_emoji`` gives the same string as funasr's ``rich_transcription_postprocess``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
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

# The tag families whose probabilities the encoder graph returns (export/graph.py, output `tag_probs`): the tag names
# of each family in this order, languages first, then emotions, then events. Part of the `sensevoice_encoder`
# contract: a graph's `tag_probs` row has TAG_PROBS_WIDTH values, laid out as listed here.
TAG_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("language", tuple(LANGUAGE_TAGS)),
    ("emotion", tuple(EMOTION_TAGS)),
    ("event", tuple(EVENT_TAGS)),
)
TAG_PROBS_WIDTH = sum(len(names) for _, names in TAG_FAMILIES)
# The emotion distribution's order (the `sensevoice` output EMOTION_PROBS) and its keys in the lake (column values).
EMOTION_NAMES = tuple(EMOTION_TAGS.values())


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
        for kind, table in (
            ("language", LANGUAGE_TAGS),
            ("emotion", emotions),
            ("event", events),
            ("itn", ITN_TAGS),
        ):
            if name in table:
                found.setdefault(kind, table[name])
                break
        else:
            other.append(name)
    return RichTranscription(raw=raw, text=render_plain(raw), other_tags=tuple(other), **found)


@dataclass(frozen=True)
class TagConfidences:
    """How sure the model was of the tags a transcription carries: the probability (softmax over the whole
    vocabulary, at the tag's own query frame) of the language, emotion and event tag in the text, None where the
    text has no tag of that family or the model version returned no probabilities; and the emotion distribution
    (EMOTION_NAMES order; it sums to at most 1, the rest of the frame's probability being on other tokens)."""

    language: float | None = None
    emotion: float | None = None
    event: float | None = None
    emotion_probs: tuple[float, ...] | None = None

    def as_vector(self) -> list[float]:
        """(language, emotion, event) with NaN for None: the `sensevoice` output CONFIDENCE."""
        return [math.nan if v is None else v for v in (self.language, self.emotion, self.event)]

    @classmethod
    def from_vectors(
        cls, confidence: Sequence[float] | None, emotion_probs: Sequence[float] | None
    ) -> TagConfidences:
        """The inverse of the `sensevoice` outputs (NaN, or no output at all, is None)."""
        values = [None if v is None or math.isnan(v) else float(v) for v in (confidence or [None] * 3)]
        probs = None
        if emotion_probs is not None and len(emotion_probs) and not any(math.isnan(p) for p in emotion_probs):
            probs = tuple(float(p) for p in emotion_probs)
        return cls(*values, emotion_probs=probs)

    def emotion_map(self) -> dict[str, float] | None:
        """The emotion distribution keyed by the `emotion` column's values (the lake's `emotion_probs`)."""
        return None if self.emotion_probs is None else dict(zip(EMOTION_NAMES, self.emotion_probs))


def tag_confidences(raw: str, tag_probs: Sequence[float] | None) -> TagConfidences:
    """The confidences of the tags in ``raw``, from one utterance's ``tag_probs`` row (TAG_FAMILIES layout);
    all None when ``tag_probs`` is None (a model version exported before the graph returned them)."""
    if tag_probs is None:
        return TagConfidences()
    if len(tag_probs) != TAG_PROBS_WIDTH:
        raise ValueError(
            f"tag_probs has {len(tag_probs)} values, expected {TAG_PROBS_WIDTH} (tags.TAG_FAMILIES)"
        )
    names = TAG.findall(raw or "")
    found: dict[str, float | None] = {}
    family_probs: dict[str, tuple[float, ...]] = {}
    offset = 0
    for family, family_tags in TAG_FAMILIES:
        probs = tuple(float(p) for p in tag_probs[offset : offset + len(family_tags)])
        offset += len(family_tags)
        family_probs[family] = probs
        tag = next(
            (n for n in names if n in family_tags), None
        )  # the family's first tag, as parse() takes it
        found[family] = None if tag is None else probs[family_tags.index(tag)]
    return TagConfidences(found["language"], found["emotion"], found["event"], family_probs["emotion"])


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
