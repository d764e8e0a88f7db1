"""PII redaction (issue 31, item 4): each kind of finding in the digit forms ITN writes for en, zh, yue, ja and ko,
what must survive (dates, times, short numbers, amounts), the policies, and rich text whose tags stay."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.speech import redact as r
from sensevoice_pipeline.speech.tags import parse

MASKED = [
    # (language, transcript, what mask gives)
    ("en", "my card is 4111 1111 1111 1111", "my card is [CARD]"),
    ("en", "card number 5500-0000-0000-0004, expiry next year", "card number [CARD], expiry next year"),
    ("en", "the amex is 378282246310005.", "the amex is [CARD]."),  # 15 digits, Luhn-valid
    ("en", "call me on +1 (555) 123-4567.", "call me on [PHONE]."),
    ("en", "it's 555.123.4567 at home", "it's [PHONE] at home"),
    ("en", "mail john.doe@example.com please", "mail [EMAIL] please"),
    ("en", "write to john dot doe at example dot com today", "write to [EMAIL] today"),
    ("en", "my account is 12345678", "my account is [NUMBER]"),
    ("zh", "我的电话是13812345678", "我的电话是[PHONE]"),
    ("zh", "卡号是6222 0212 3456 7890 128，谢谢", "卡号是[CARD]，谢谢"),  # 19 digits, Luhn-valid
    ("zh", "卡号4111111111111111谢谢", "卡号[CARD]谢谢"),
    ("zh", "我的邮箱是abc@example.com谢谢", "我的邮箱是[EMAIL]谢谢"),
    ("zh", "请打＋８６ １３８ １２３４ ５６７８", "请打[PHONE]"),
    ("yue", "我嘅電話係9123 4567，唔該", "我嘅電話係[PHONE]，唔該"),
    ("yue", "張卡係4111-1111-1111-1111", "張卡係[CARD]"),
    ("ja", "電話番号は０９０ー１２３４ー５６７８です", "電話番号は[PHONE]です"),
    ("ja", "カード番号は４１１１１１１１１１１１１１１１です", "カード番号は[CARD]です"),
    ("ja", "メールはtaro＠example.co.jpです", "メールは[EMAIL]です"),
    ("ko", "제 번호는 010-1234-5678입니다", "제 번호는 [PHONE]입니다"),
    ("ko", "카드 번호는 4111 1111 1111 1111 이에요", "카드 번호는 [CARD] 이에요"),
    ("ko", "이메일은 kim@example.kr입니다", "이메일은 [EMAIL]입니다"),
]


@pytest.mark.parametrize(
    ("language", "text", "masked"), MASKED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MASKED)]
)
def test_each_kind_is_masked_in_every_language(language, text, masked):
    out = r.redact(text, "mask")
    assert out.text == masked
    assert out.count == masked.count("[") == 1


def test_a_luhn_invalid_sixteen_digit_run_is_no_card_but_a_long_number():
    assert r.luhn_ok("4111111111111111") and not r.luhn_ok("4111111111111112")
    out = r.redact("reference 4111 1111 1111 1112 please", "mask")
    assert (out.text, out.kinds) == ("reference [NUMBER] please", ("number",))


@pytest.mark.parametrize(
    "text",
    [
        "I bought 3 items on 2026-11-23 at 10:30",
        "order 12345 shipped 11/23/2026, 2026/11/23 too",
        "it cost 1,000,000 won, or 25.50 dollars",
        "2026年11月23日に3個買いました",
        "我买了3件，总共199元",
        "meet me at the office at 9",
    ],
)
def test_dates_times_short_numbers_and_amounts_survive(text):
    assert r.redact(text, "mask") == r.Redaction(text, 0)


def test_several_findings_are_each_masked_and_counted():
    out = r.redact("card 4111 1111 1111 1111, phone 13812345678, mail a@b.com, id 98765432", "mask")
    assert out.text == "card [CARD], phone [PHONE], mail [EMAIL], id [NUMBER]"
    assert out.count == 4 and out.kinds == ("card", "phone", "email", "number")


def test_off_keeps_the_text_and_drop_keeps_only_the_marker():
    text = "my card is 4111 1111 1111 1111"
    assert r.redact(text, "off") == r.Redaction(text, 0)
    assert r.redact(text, "drop") == r.Redaction("[REDACTED]", 1, ("card",))
    assert r.redact("nothing here", "drop") == r.Redaction(
        "nothing here", 0
    )  # drop touches only texts with PII
    with pytest.raises(ValueError, match="unknown redaction policy"):
        r.redact(text, "hide")


def test_rich_text_keeps_its_tags_and_only_the_text_is_redacted():
    raw = "<|zh|><|ANGRY|><|Speech|><|withitn|>我的电话是13812345678，卡号4111 1111 1111 1111。"
    masked = r.redact_raw(raw, "mask")
    assert masked.text == "<|zh|><|ANGRY|><|Speech|><|withitn|>我的电话是[PHONE]，卡号[CARD]。"
    assert masked.count == 2
    tags = parse(masked.text)
    assert (tags.language, tags.emotion, tags.event, tags.itn) == ("zh", "angry", "speech", True)
    assert tags.text == "我的电话是[PHONE]，卡号[CARD]。"
    dropped = r.redact_raw(raw, "drop")
    assert dropped.text == "<|zh|><|ANGRY|><|Speech|><|withitn|>[REDACTED]" and dropped.count == 2
    assert r.redact_raw(raw, "off") == r.Redaction(raw, 0)
    clean = "<|en|><|NEUTRAL|><|Speech|><|withitn|>I bought 3 items."
    assert r.redact_raw(clean, "drop") == r.Redaction(clean, 0)


def test_a_tag_never_joins_two_digit_runs():
    """Digits on either side of a tag are two texts, each judged alone; the tag itself is never touched."""
    raw = "<|en|>call 123<|NEUTRAL|>4567 later"
    assert r.redact_raw(raw, "mask") == r.Redaction(raw, 0)
