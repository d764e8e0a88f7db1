"""PII never reaches the lake (issue 31, item 4): utterance rows built from hand-made Triton answers (the fixture
model does not speak digits) by the daily job's own row builder, staged and committed to a real lake, then read
back from the Parquet files, the angry_calls rollup and a CSV export of `svp query angry-calls`. The Try a clip
answer shows the redacted texts and says how many items were masked."""

from __future__ import annotations

import csv
import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.partition import WorkItem
from sensevoice_pipeline.serving.client import Transcription
from sensevoice_pipeline.serving.recordings import SegmentAnswer, SpeechSegment
from sensevoice_pipeline.speech.alignment import WordTime
from sensevoice_pipeline.speech.tags import parse
from sensevoice_pipeline.ui import cli
from sensevoice_pipeline.ui.clip import ClipResult, fill_texts
from sensevoice_pipeline.ui.clip_html import render_clip_page

DAY = "2026-11-23"
# What the model might answer with ITN on, each holding PII (and angry, so that angry_calls carries its text),
# plus one clean segment.
ANSWERS = [
    "<|en|><|ANGRY|><|Speech|><|withitn|>My card is 4111 1111 1111 1111, charge it again and I walk.",
    "<|zh|><|ANGRY|><|Speech|><|withitn|>我的电话是13812345678，邮箱是wang@example.com。",
    "<|yue|><|ANGRY|><|Speech|><|withitn|>我嘅電話係9123 4567，張卡係5500-0000-0000-0004。",
    "<|ja|><|ANGRY|><|Speech|><|withitn|>電話番号は０９０ー１２３４ー５６７８です。",
    "<|ko|><|ANGRY|><|Speech|><|withitn|>제 번호는 010-1234-5678이고 계좌는 98765432101입니다.",
    "<|en|><|NEUTRAL|><|Speech|><|withitn|>I bought 3 items on 2026-11-23.",
]
# Every piece of PII in ANSWERS, as digits only or as written: none of them may be found anywhere written.
SECRETS = [
    "4111111111111111",
    "13812345678",
    "wang@example.com",
    "91234567",
    "5500000000000004",
    "09012345678",
    "01012345678",
    "98765432101",
]


def _words(text: str) -> tuple[WordTime, ...]:
    """Word times shaped like the model's (speech/alignment.py): ASCII words, digit groups and every other character
    each a word; word k at 0.1 k s from the start of the segment."""
    words = re.findall(r"[A-Za-z@.]+|[0-9\uff10-\uff19]+|[^\sA-Za-z0-9\uff10-\uff19]", parse(text).text)
    return tuple(WordTime(w, round(0.1 * k, 3), round(0.1 * k + 0.08, 3)) for k, w in enumerate(words))


def _answers() -> list[SegmentAnswer]:
    return [
        SegmentAnswer(
            SpeechSegment(0, i, 3.0 * i, 3.0 * i + 2.5, np.zeros(16, np.float32)),
            Transcription(text, "sensevoice", "1", words=_words(text)),
        )
        for i, text in enumerate(ANSWERS)
    ]


def _said(words: list[dict]) -> str:
    return " ".join(w["word"] for w in words)


def _rows(policy: str) -> list[dict]:
    item = WorkItem(f"date={DAY}/queue-a/call-1.wav", "auto", "mono")
    started = dt.datetime(2026, 11, 24, 1, tzinfo=dt.UTC)
    return [daily._utterance_row(item, s, "run-1", started, policy) for s in _answers()]


def _folded(text: str) -> str:
    """Digits only where there are digits (full-width folded), so a secret cannot hide behind separators."""
    text = text.translate({0xFF10 + i: str(i) for i in range(10)})
    return re.sub(r"(?<=[0-9])[^0-9A-Za-z@.]+(?=[0-9])", "", text)


def _leaks(texts) -> list[str]:
    return [s for t in texts if t for s in SECRETS if s in _folded(str(t))]


def _strings(table: pa.Table) -> list[str]:
    return [
        v for name in table.column_names if pa.types.is_string(table.schema.field(name).type)
        for v in table.column(name).to_pylist() if v
    ]  # fmt: skip


def _write(tmp_path, policy: str) -> tuple[Lake, list[dict]]:
    rows = _rows(policy)
    staged = tmp_path / "staging" / "batch-00000.utterances.parquet"  # as process_batch stages a batch
    staged.parent.mkdir(parents=True)
    pq.write_table(tables.to_table(rows, tables.UTTERANCES), staged)
    utterances = pq.read_table(staged).cast(tables.UTTERANCES)
    lake = Lake(tmp_path / "lake")
    lake.commit_day(DAY, {"utterances": utterances, **tables.rollups(utterances)})
    return lake, rows


def test_under_mask_no_pii_reaches_staging_parquet_the_rollup_or_a_csv_export(tmp_path):
    assert _leaks(ANSWERS) and len(_leaks(ANSWERS)) == len(SECRETS)  # the check finds each secret unredacted
    lake, rows = _write(tmp_path, "mask")
    assert [r["redactions"] for r in rows] == [1, 2, 2, 1, 2, 0]
    assert rows[0]["raw_text"] == (
        "<|en|><|ANGRY|><|Speech|><|withitn|>My card is [CARD], charge it again and I walk."
    )
    assert rows[1]["text"] == "我的电话是[PHONE]，邮箱是[EMAIL]。"
    assert (
        rows[3]["text"] == "電話番号は[PHONE]です。"
        and rows[4]["text"] == "제 번호는 [PHONE]이고 계좌는 [NUMBER]입니다."
    )
    assert rows[5]["text"] == "I bought 3 items on 2026-11-23." and rows[5]["redactions"] == 0
    assert [r["language"] for r in rows] == ["en", "zh", "yue", "ja", "ko", "en"]  # the tags still parse
    assert [r["emotion"] for r in rows] == ["angry"] * 5 + ["neutral"]

    # the word times: each finding one masked word over the words it covered, times from the recording's start
    assert (
        _leaks([_said(_words_of(text)) for text in ANSWERS])
        and _leaks([_said(r["words"]) for r in rows]) == []
    )
    card = [w for w in rows[0]["words"] if w["word"] == "[CARD]"]
    assert card == [{"word": "[CARD]", "start_s": 0.3, "end_s": 0.68}]  # "4111 1111 1111 1111": words 3 to 6
    assert _said(rows[1]["words"]).count("[PHONE]") == 1 and "[EMAIL]" in _said(rows[1]["words"])
    assert rows[5]["words"] == _words_of(ANSWERS[5], offset_s=15.0)
    for row in rows:
        assert all(row["start_s"] <= w["start_s"] <= w["end_s"] <= row["end_s"] for w in row["words"])

    staged = pq.read_table(tmp_path / "staging" / "batch-00000.utterances.parquet")
    assert staged.column("redactions").type == pa.int32()
    assert _leaks(_strings(staged)) == []
    assert _leaks([_said(words) for words in staged.column("words").to_pylist()]) == []
    files = sorted((tmp_path / "lake").rglob("*.parquet"))
    assert any("utterances" in str(f) for f in files) and any("angry_calls" in str(f) for f in files)
    for f in files:
        assert _leaks(_strings(pq.read_table(f))) == [], f

    stored = lake.read("utterances", DAY)
    assert stored.column("redactions").to_pylist() == [1, 2, 2, 1, 2, 0]
    assert stored.column("words").to_pylist() == [r["words"] for r in rows]
    angry = lake.read("angry_calls", DAY).to_pylist()
    assert len(angry) == 1 and angry[0]["angry_segments"] == 5
    assert "[CARD]" in angry[0]["angry_text"] and "[PHONE]" in angry[0]["angry_text"]
    assert _leaks([angry[0]["angry_text"]]) == []

    out = tmp_path / "angry.csv"
    assert cli.main(["query", "angry-calls", "--lake", str(tmp_path / "lake"), "--csv", str(out)]) == 0
    cells = [cell for row in csv.reader(out.open(encoding="utf-8")) for cell in row]
    assert any("[EMAIL]" in c for c in cells)
    assert _leaks(cells) == []


def _words_of(text: str, offset_s: float = 0.0) -> list[dict]:
    return [
        {"word": w.word, "start_s": s.start_s, "end_s": s.end_s}
        for w in _words(text)
        for s in [w.shifted(offset_s)]
    ]


def test_off_keeps_the_text_as_the_model_said_it(tmp_path):
    lake, rows = _write(tmp_path, "off")
    assert [r["raw_text"] for r in rows] == ANSWERS
    assert [r["words"] for r in rows] == [_words_of(t, 3.0 * i) for i, t in enumerate(ANSWERS)]
    assert [r["redactions"] for r in rows] == [0] * 6
    angry = lake.read("angry_calls", DAY).to_pylist()[0]["angry_text"]
    assert "4111 1111 1111 1111" in angry and "wang@example.com" in angry


def test_drop_keeps_only_the_marker(tmp_path):
    lake, rows = _write(tmp_path, "drop")
    assert [r["text"] for r in rows] == ["[REDACTED]"] * 5 + ["I bought 3 items on 2026-11-23."]
    assert rows[2]["raw_text"] == "<|yue|><|ANGRY|><|Speech|><|withitn|>[REDACTED]"
    assert [len(r["words"]) for r in rows[:5]] == [1] * 5 and rows[0]["words"][0]["word"] == "[REDACTED]"
    assert rows[0]["words"][0]["start_s"] == 0.0 and rows[5]["words"] == _words_of(ANSWERS[5], 15.0)
    assert [r["redactions"] for r in rows] == [1, 2, 2, 1, 2, 0]
    angry = lake.read("angry_calls", DAY).to_pylist()[0]["angry_text"]
    assert angry == " / ".join(["[REDACTED]"] * 5)
    for f in sorted((tmp_path / "lake").rglob("*.parquet")):
        assert _leaks(_strings(pq.read_table(f))) == [], f


@pytest.mark.parametrize("policy", ["mask", "drop"])
def test_the_clip_answer_shows_the_redacted_text_and_how_many_items(policy):
    result = fill_texts(ClipResult("call.wav", "WAV", 16000, 1, 18.0, "auto", True), _answers(), policy)
    assert result.redactions == 8
    html = render_clip_page(result)
    assert _leaks([html, result.raw, result.plain, result.emoji, *(s.raw for s in result.segments)]) == []
    done = "masked" if policy == "mask" else "dropped"
    assert f"8 items {done}: 2 cards, 4 phones, 1 email, 1 number" in html
    assert ("[CARD]" if policy == "mask" else "[REDACTED]") in html


def test_the_clip_answer_under_off_says_so():
    result = fill_texts(ClipResult("call.wav", "WAV", 16000, 1, 18.0, "auto", True), _answers(), "off")
    html = render_clip_page(result)
    assert result.redactions == 0 and "4111 1111 1111 1111" in html and "SVP_REDACT=off" in html
