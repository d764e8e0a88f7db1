"""PII redaction of transcripts before anything is written (issue 31, item 4): card numbers, phone numbers, e-mail
addresses and long digit runs, in the forms SenseVoice's ITN writes them for en, zh, yue, ja and ko.

Policies (``SVP_REDACT``, Settings.redact):

- ``off``: the text as the model said it;
- ``mask`` (the default): each finding replaced by a typed mask, ``[CARD]``, ``[PHONE]``, ``[EMAIL]`` or
  ``[NUMBER]``, the rest of the text kept;
- ``drop``: a text with any finding becomes the single marker ``[REDACTED]``; a text without findings is kept.

What is found (``find``):

- e-mail addresses, ``name@example.com`` (also ``＠``), and the spoken form ``name at example dot com`` when it
  ends in a common top-level domain;
- digit runs: ASCII or full-width digits (``０``-``９``), single spaces, dashes (also ``－``, ``ー``, ``–``) or
  dots between digit groups, a leading ``+`` country code, parentheses around an area code; CJK text may touch
  them on either side. A run of 13-19 digits that passes the Luhn check (and has no ``+``) is a ``[CARD]``; one of
  7-15 digits with a ``+``, parentheses, separators between groups, a leading 0 or the shape of a mainland-China
  mobile number (1[3-9] and 9 more) is a ``[PHONE]``; any other run of at least 7 digits is a ``[NUMBER]`` (a
  Luhn-invalid 16-digit run included). Which of phone and number a run is called is a best guess; both are masked.
- Kept as they are: dates (``2026-11-23``, ``2026/11/23``, ``11/23/2026``), times (``10:30``), numbers of fewer
  than 7 digits (``3 items``, ``2026``), amounts written with thousands commas (``1,000,000``).

Rich text (``redact_raw``): the ``<|..|>`` tags stay, only the text between them is redacted, so the tag columns
parse as before. Word times (``redact_words``): the words a finding covers become one word, its mask, spanning their
times; under ``drop`` a segment with any finding keeps one ``[REDACTED]`` word over all of its words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sensevoice_pipeline.speech.alignment import WordTime
from sensevoice_pipeline.speech.tags import TAG

REDACT_POLICIES = ("off", "mask", "drop")
DEFAULT_REDACT = "mask"
MASKS = {"card": "[CARD]", "phone": "[PHONE]", "email": "[EMAIL]", "number": "[NUMBER]"}
DROPPED = "[REDACTED]"

# Full-width and other look-alike characters, one for one, so that positions in the folded text are positions in
# the original.
_FOLD = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        "＋": "+",
        "（": "(",
        "）": ")",
        "－": "-",
        "ー": "-",
        "–": "-",
        "—": "-",
        "．": ".",
        "＠": "@",
        "\u3000": " ",
    }
)
_TLDS = "com|net|org|edu|gov|io|co|uk|cn|jp|kr|hk|tw|de|fr|info|biz"
_SCAN = re.compile(
    rf"""
    (?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{{2,}})
  | (?P<spoken_email>\b[A-Za-z0-9._\-]+(?:\ dot\ [A-Za-z0-9_\-]+)*\ at\ [A-Za-z0-9\-]+(?:\ dot\ [A-Za-z0-9\-]+)*\ dot\ (?:{_TLDS})\b)
  | (?P<date>(?<![0-9])(?:(?:19|20)[0-9]{{2}}[-./][0-9]{{1,2}}[-./][0-9]{{1,2}}
                         |[0-9]{{1,2}}[-./][0-9]{{1,2}}[-./](?:19|20)[0-9]{{2}})(?![-./]?[0-9]))
  | (?P<time>(?<![0-9])[0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?(?![0-9]))
  | (?P<digits>(?<![0-9])(?:\+\ ?)?\(?[0-9](?:\)?[\ \-.]?\(?[0-9])*)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MOBILE_CN = re.compile(r"1[3-9][0-9]{9}")


@dataclass(frozen=True)
class Redaction:
    text: str
    count: int  # findings (masked, or the reason for dropping); 0 under ``off``
    kinds: tuple[str, ...] = ()  # the findings' kinds in text order (card, phone, email, number)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digit_kind(run: str) -> str | None:
    digits = re.sub(r"[^0-9]", "", run)
    n = len(digits)
    plus = run.startswith("+")
    if not plus and 13 <= n <= 19 and luhn_ok(digits):
        return "card"
    if n < 7:
        return "phone" if plus and n >= 5 else None
    if n <= 15 and (
        plus
        or "(" in run
        or re.search(r"[0-9][ \-.)]+[0-9]", run)
        or digits.startswith("0")
        or _MOBILE_CN.fullmatch(digits)
    ):
        return "phone"
    return "number"


def find(text: str) -> list[tuple[int, int, str]]:
    """The findings in ``text``: (start, end, kind), in order, not overlapping."""
    out = []
    for m in _SCAN.finditer((text or "").translate(_FOLD)):
        kind = m.lastgroup
        if kind in ("date", "time"):
            continue
        if kind == "spoken_email":
            kind = "email"
        elif kind == "digits":
            kind = _digit_kind(m.group())
            if kind is None:
                continue
        out.append((m.start(), m.end(), kind))
    return out


def check_policy(policy: str) -> str:
    value = str(policy).strip().lower()
    if value not in REDACT_POLICIES:
        raise ValueError(f"unknown redaction policy {policy!r}: expected one of {', '.join(REDACT_POLICIES)}")
    return value


def redact(text: str, policy: str = DEFAULT_REDACT) -> Redaction:
    """``text`` under ``policy`` (REDACT_POLICIES) and the number of findings."""
    policy = check_policy(policy)
    text = text or ""
    if policy == "off":
        return Redaction(text, 0)
    found = find(text)
    if not found:
        return Redaction(text, 0)
    kinds = tuple(kind for _, _, kind in found)
    if policy == "drop":
        return Redaction(DROPPED, len(found), kinds)
    parts, last = [], 0
    for start, end, kind in found:
        parts += [text[last:start], MASKS[kind]]
        last = end
    parts.append(text[last:])
    return Redaction("".join(parts), len(found), kinds)


def redact_raw(raw: str, policy: str = DEFAULT_REDACT) -> Redaction:
    """A rich transcription (``<|en|><|ANGRY|>...text``) under ``policy``: the tags kept, the text between them
    redacted; under ``drop`` a raw text with any finding keeps its tags followed by the one marker."""
    policy = check_policy(policy)
    raw = raw or ""
    if policy == "off":
        return Redaction(raw, 0)
    pieces = re.split(f"({TAG.pattern})", raw)  # text, tag, tag name, text, ...
    texts = pieces[0::3]
    tags = pieces[1::3]
    done = [redact(t, "mask") for t in texts]
    count = sum(r.count for r in done)
    kinds = tuple(k for r in done for k in r.kinds)
    if count == 0:
        return Redaction(raw, 0)
    if policy == "drop":
        return Redaction("".join(tags) + DROPPED, count, kinds)
    out = [done[0].text]
    for tag, r in zip(tags, done[1:]):
        out += [tag, r.text]
    return Redaction("".join(out), count, kinds)


def redact_words(text: str, words: Sequence[WordTime], policy: str = DEFAULT_REDACT) -> list[WordTime]:
    """The word times of the plain ``text`` (tags removed, not yet redacted) under ``policy``: each run of words a
    finding touches becomes one word, the finding's mask, from the first one's start to the last one's end. Words
    that cannot be placed in ``text`` (the tokenizer normalised them) are all dropped behind one marker when the text
    has a finding: nothing a finding covers may survive as a word."""
    policy = check_policy(policy)
    found = find(text) if policy != "off" else []
    if not found or not words:
        return list(words)
    everything = [WordTime(DROPPED, words[0].start_s, words[-1].end_s)]
    spans = _word_spans(text, words)
    if policy == "drop" or spans is None:
        return everything
    out: list[WordTime] = []
    covering = [_finding_at(found, span) for span in spans]
    for i, word in enumerate(words):
        finding = covering[i]
        if finding is None:
            out.append(word)
        elif i > 0 and covering[i - 1] == finding:
            out[-1] = WordTime(out[-1].word, out[-1].start_s, word.end_s)
        else:
            out.append(WordTime(MASKS[found[finding][2]], word.start_s, word.end_s))
    return out


def _word_spans(text: str, words: Sequence[WordTime]) -> list[tuple[int, int]] | None:
    """Each word's (start, end) in ``text``, found left to right; None when one is not there."""
    spans, cursor = [], 0
    for word in words:
        at = text.find(word.word, cursor)
        if at < 0 or not word.word:
            return None
        spans.append((at, at + len(word.word)))
        cursor = at + len(word.word)
    return spans


def _finding_at(found: list[tuple[int, int, str]], span: tuple[int, int]) -> int | None:
    """The index of the finding that overlaps the word at ``span``, if any."""
    return next((k for k, (start, end, _) in enumerate(found) if start < span[1] and span[0] < end), None)
