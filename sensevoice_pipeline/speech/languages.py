"""Ids of the language and text-normalisation queries that SenseVoiceSmall was trained with.

They index the model's query embedding (funasr ``SenseVoiceSmall.lid_dict`` / ``textnorm_dict``) and are part of
the `sensevoice_encoder` contract, so they are fixed here rather than read from a tokenizer.
"""

from __future__ import annotations

from sensevoice_pipeline.errors import ConfigurationError

LANGUAGE_IDS: dict[str, int] = {
    "auto": 0,
    "zh": 3,
    "en": 4,
    "yue": 7,
    "ja": 11,
    "ko": 12,
    "nospeech": 13,
}
TEXTNORM_IDS: dict[str, int] = {"withitn": 14, "woitn": 15}

# The decoder queries for event and emotion are always these two embedding rows.
EVENT_EMOTION_QUERY_IDS = (1, 2)
# Four query frames are prepended to every utterance: language, event, emotion, text normalisation.
N_QUERY_FRAMES = 4

LANGUAGES = tuple(LANGUAGE_IDS)


class UnknownLanguageError(ConfigurationError):
    """A language hint the model does not know (a ValueError too)."""


def language_id(language: str) -> int:
    """The query id for a language hint; raises with the list of valid hints."""
    key = (language or "auto").strip().lower()
    if key not in LANGUAGE_IDS:
        raise UnknownLanguageError(f"unknown language {language!r}: expected one of {', '.join(LANGUAGES)}")
    return LANGUAGE_IDS[key]


def textnorm_id(use_itn: bool) -> int:
    return TEXTNORM_IDS["withitn" if use_itn else "woitn"]
