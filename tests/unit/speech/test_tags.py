import random

import pytest
from funasr.utils.postprocess_utils import rich_transcription_postprocess

from sensevoice_pipeline.speech.tags import parse, render_emoji, render_plain

LANGS = ["<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>"]
EMOS = [
    "<|HAPPY|>",
    "<|SAD|>",
    "<|ANGRY|>",
    "<|NEUTRAL|>",
    "<|FEARFUL|>",
    "<|DISGUSTED|>",
    "<|SURPRISED|>",
    "<|EMO_UNKNOWN|>",
]
EVENTS = [
    "<|Speech|>",
    "<|BGM|>",
    "<|Applause|>",
    "<|Laughter|>",
    "<|Cry|>",
    "<|Sneeze|>",
    "<|Breath|>",
    "<|Cough|>",
    "<|Event_UNK|>",
]
ITN = ["<|withitn|>", "<|woitn|>"]
TEXTS = ["I want a refund.", "你好。", "hello there", "", " The. end", "😊 ok", "<|en", "a <|FOO|> b", "123"]


def random_raw(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        parts.append(
            rng.choice(LANGS) + rng.choice(EMOS) + rng.choice(EVENTS) + rng.choice(ITN) + rng.choice(TEXTS)
        )
    return "".join(parts)


def test_parse_structured_columns():
    r = parse("<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund.")
    assert (r.language, r.emotion, r.event, r.itn, r.text) == (
        "en",
        "angry",
        "speech",
        True,
        "I want a refund.",
    )


def test_parse_keeps_unknown_and_malformed_tags():
    r = parse("<|en|><|MYSTERY|><|woitn|>half <|tag")
    assert r.other_tags == ("MYSTERY",)
    assert r.language == "en" and r.itn is False and r.emotion is None
    assert r.text == "half <|tag"


@pytest.mark.parametrize("raw", ["", "no tags at all", "<||>", "<|", "|>", "<|<|en|>|>"])
def test_parse_never_crashes(raw):
    assert isinstance(parse(raw).text, str)


def test_custom_mapping():
    r = parse("<|en|><|SAD|><|Cough|><|woitn|>x", emotions={"SAD": "negative"}, events={"Cough": "noise"})
    assert (r.emotion, r.event) == ("negative", "noise")


def test_plain_rendering_removes_every_tag():
    assert render_plain("<|zh|><|HAPPY|><|BGM|><|woitn|>你好<|en|><|SAD|><|Speech|><|woitn|>hi") == "你好 hi"


def test_emoji_rendering_equals_funasr_on_examples():
    for raw in ["<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund.", "<|nospeech|><|Event_UNK|>", "plain"]:
        assert render_emoji(raw) == rich_transcription_postprocess(raw)


def test_emoji_rendering_equals_funasr_on_2000_generated_strings():
    rng = random.Random(7)
    for _ in range(2000):
        raw = random_raw(rng)
        assert render_emoji(raw) == rich_transcription_postprocess(raw), raw
