"""lake/tables.py's ``calls`` rollup (docs/call-analytics.md) on calls built by hand, whose every metric is known by
construction: speech at chosen times (binary fractions, so the sums are exact), known emotions and texts."""

from __future__ import annotations

import datetime as dt

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import ALIAS, Lake

DATE = "2026-03-14"
AT = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)


def seg(rec: str, channel: int, index: int, start: float, end: float, emotion: str | None, text: str) -> dict:
    return {
        "recording_id": rec,
        "source_path": f"calls/{rec}.wav",
        "channel": channel,
        "segment_index": index,
        "start_s": start,
        "end_s": end,
        "language": "en",
        "emotion": emotion,
        "event": "speech",
        "text": text,
        "model_version": "1",
        "processed_at": AT,
    }


def recording(rec: str, duration: float, mode: str = "split", status: str = "ok", **metadata) -> dict:
    return {
        "recording_id": rec,
        "source_path": f"calls/{rec}.wav",
        "channels": 2,
        "duration_s": duration,
        "status": status,
        "channel_mode": mode if status == "ok" else None,
        "processed_at": AT,
        "metadata": list(metadata.items()),
    }


# The split call, 20 s. Agent (channel 0): turns 0-4 (a 2-3 segment inside it), 5-5.75, 10-12, 16.75-18.
# Customer (channel 1): 3-6, 11.5-13, 16-17, 17.75-19.
# Overlaps: 3-4 (1.0: the customer interrupts), 5-5.75 (0.75: the agent interrupts), 11.5-12 (0.5, exactly the
# minimum: the customer interrupts), 16.75-17 (0.25: the agent starts inside 16-17, too short), 17.75-18 (0.25: the
# customer starts inside 16.75-18, too short); the customer's 16-17 starts while the agent is silent.
SPLIT = [
    seg("split", 0, 0, 0.0, 4.0, "neutral", "good morning how can I help"),  # 6 words
    seg("split", 0, 1, 2.0, 3.0, "neutral", "um"),  # 1
    seg("split", 0, 2, 5.0, 5.75, "neutral", "wait"),  # 1
    seg("split", 0, 3, 10.0, 12.0, "happy", "sure, 1234 is the code ."),  # 5: "." is no word
    seg("split", 0, 4, 16.75, 18.0, "sad", "bye"),  # 1
    seg("split", 1, 0, 3.0, 6.0, "neutral", "我要退款"),  # 4 Han characters
    seg("split", 1, 1, 11.5, 13.0, "angry", "これはひどい"),  # 6 Hiragana characters
    seg("split", 1, 2, 16.0, 17.0, "angry", "refund now"),  # 2
    seg("split", 1, 3, 17.75, 19.0, "angry", "ダメ 안녕하세요 친구"),  # 2 Katakana + 2 Korean words
]
# The mono call, 10 s: two overlapping segments (one turn 1-4), the first angry.
MONO = [
    seg("mono", 0, 0, 2.0, 4.0, "neutral", "fine then"),
    seg("mono", 0, 1, 1.0, 3.0, "angry", "no"),
]
RECORDINGS = [
    recording("split", 20.0, agent="bo", queue="billing"),
    recording("mono", 10.0, mode="mono", agent="wing"),
    recording("silent", 5.0, agent="bo"),  # transcribed, nothing said
    recording("broken", 30.0, status="failed"),  # no call
]


def calls(utterances=SPLIT + MONO, recordings=RECORDINGS) -> dict[str, dict]:
    rolled = tables.rollups(
        tables.to_table(utterances, tables.UTTERANCES),
        None if recordings is None else tables.to_table(recordings, tables.RECORDINGS),
    )["calls"]
    assert rolled.schema == tables.CALLS
    return {row["recording_id"]: row for row in rolled.to_pylist()}


def test_a_split_call_has_every_metric_its_construction_gives():
    call = calls()["split"]
    assert call == {
        "recording_id": "split",
        "source_path": "calls/split.wav",
        "channels": 2,
        "duration_s": 20.0,
        "talk_s": 12.0,  # 8 + 6.75 - 2.75
        "non_talk_s": 8.0,
        "overtalk_s": 2.75,  # 1 + 0.75 + 0.5 + 0.25 + 0.25
        "ch0_talk_s": 8.0,  # 4 + 0.75 + 2 + 1.25: the 2-3 segment lies inside 0-4
        "ch0_segments": 5,
        "ch0_tokens": 14,
        "ch0_tokens_per_min": 14 * 60 / 8.0,
        "ch0_interruptions": 1,  # at 5 (0.75 s); not at 16.75 (0.25 s)
        "ch0_first_emotion": "neutral",
        "ch0_last_emotion": "sad",
        "ch0_first_angry_s": None,
        "ch0_angry_s": 0.0,
        "ch0_angry_share": 0.0,
        "ch1_talk_s": 6.75,  # 3 + 1.5 + 1 + 1.25
        "ch1_segments": 4,
        "ch1_tokens": 16,
        "ch1_tokens_per_min": 16 * 60 / 6.75,
        "ch1_interruptions": 2,  # at 3 (1.0 s) and 11.5 (0.5 s, the minimum); not at 16 nor 17.75 (0.25 s)
        "ch1_first_emotion": "neutral",
        "ch1_last_emotion": "angry",
        "ch1_first_angry_s": 11.5,
        "ch1_angry_s": 3.75,
        "ch1_angry_share": 3.75 / 6.75,
        "metadata": [("agent", "bo"), ("queue", "billing")],
    }


def test_the_interruption_minimum_is_inclusive_and_configurable(monkeypatch):
    assert tables.INTERRUPTION_MIN_OVERLAP_S == 0.5
    monkeypatch.setattr(tables, "INTERRUPTION_MIN_OVERLAP_S", 0.25)  # now the 0.25 s overlaps count too
    call = calls()["split"]
    assert (call["ch0_interruptions"], call["ch1_interruptions"]) == (2, 3)
    monkeypatch.setattr(tables, "INTERRUPTION_MIN_OVERLAP_S", 0.75)  # only 1.0 and 0.75 are left
    call = calls()["split"]
    assert (call["ch0_interruptions"], call["ch1_interruptions"]) == (1, 1)
    monkeypatch.setattr(tables, "INTERRUPTION_MIN_OVERLAP_S", 1.5)
    call = calls()["split"]
    assert (call["ch0_interruptions"], call["ch1_interruptions"]) == (0, 0)
    assert call["overtalk_s"] == 2.75  # overtalk counts every overlap, however short


def test_a_mono_call_has_one_channel_no_overtalk_and_merged_turns():
    call = calls()["mono"]
    assert call["channels"] == 1 and call["metadata"] == [("agent", "wing")]
    assert (call["talk_s"], call["non_talk_s"], call["overtalk_s"]) == (3.0, 7.0, 0.0)
    assert call["ch0_talk_s"] == 3.0 and call["ch0_interruptions"] == 0 and call["ch0_tokens"] == 3
    assert call["ch0_tokens_per_min"] == 60.0
    # by start: the angry 1-3 segment (index 1) comes first
    assert (call["ch0_first_emotion"], call["ch0_last_emotion"], call["ch0_first_angry_s"]) == (
        "angry",
        "neutral",
        1.0,
    )
    assert call["ch0_angry_s"] == 2.0 and call["ch0_angry_share"] == 2.0 / 3.0
    assert all(v is None for k, v in call.items() if k.startswith("ch1_"))


def test_a_silent_call_is_all_non_talk_and_a_failed_file_is_no_call():
    rows = calls()
    assert set(rows) == {"split", "mono", "silent"}
    silent = rows["silent"]
    assert (silent["channels"], silent["talk_s"], silent["non_talk_s"], silent["overtalk_s"]) == (
        2,
        0.0,
        5.0,
        0.0,
    )
    for channel in (0, 1):
        assert silent[f"ch{channel}_talk_s"] == 0.0 and silent[f"ch{channel}_segments"] == 0
        assert silent[f"ch{channel}_tokens_per_min"] is None and silent[f"ch{channel}_angry_share"] is None
        assert silent[f"ch{channel}_first_emotion"] is None and silent[f"ch{channel}_last_emotion"] is None


def test_without_recordings_a_call_still_has_its_talk_but_no_duration():
    call = calls(recordings=None)["split"]
    assert call["channels"] == 2 and call["duration_s"] is None and call["non_talk_s"] is None
    assert (call["talk_s"], call["overtalk_s"], call["ch1_interruptions"]) == (12.0, 2.75, 2)
    assert call["metadata"] is None
    assert calls(recordings=None)["mono"]["channels"] == 1


def test_a_day_commits_its_calls_and_a_lake_without_the_tables_gets_them_filled(tmp_path):
    utterances = tables.to_table(SPLIT + MONO, tables.UTTERANCES)
    recordings = tables.to_table(RECORDINGS, tables.RECORDINGS)
    lake = Lake(tmp_path)
    lake.commit_day(
        DATE,
        {"utterances": utterances, "recordings": recordings, **tables.rollups(utterances, recordings)},
    )
    committed = lake.read("calls", DATE).to_pylist()
    assert [r["recording_id"] for r in committed] == ["mono", "silent", "split"]
    assert committed[2] == calls()["split"]
    summed = lake.read("calls_daily", DATE).to_pylist()
    assert len(summed) == 3
    with lake.writer() as con:  # the lake as a version of the code before calls_daily left it
        con.execute(f'DROP TABLE {ALIAS}."calls_daily"')
    with lake.writer():  # (summed from the lake's calls)
        pass
    assert lake.read("calls_daily", DATE).to_pylist() == summed
    with lake.writer() as con:  # ... and before the calls table
        con.execute(f'DROP TABLE {ALIAS}."calls"')
        con.execute(f'DROP TABLE {ALIAS}."calls_daily"')
    with lake.writer():
        pass
    assert lake.read("calls", DATE).to_pylist() == committed
    assert lake.read("calls_daily", DATE).to_pylist() == summed


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        (None, 0),
        ("Hello, world !", 2),
        ("我要退款。", 4),
        ("カタカナとひらがな", 9),
        ("안녕하세요 친구", 2),
        ("order 42 我要 ok", 5),
    ],
)
def test_tokens_are_cjk_characters_and_other_words(text, tokens):
    rows = [seg("t", 0, 0, 0.0, 60.0, "neutral", text)]
    assert calls(rows, [recording("t", 60.0, mode="mono")])["t"]["ch0_tokens"] == tokens


def test_the_canned_call_queries_answer_from_the_calls_rollup(tmp_path):
    from sensevoice_pipeline.warehouse.database import Warehouse

    # a third call: the customer angry from start to end (ended angry, no escalation), agent bo
    hot = [seg("hot", 0, 0, 0.0, 2.0, "neutral", "hello"), seg("hot", 1, 0, 2.0, 6.0, "angry", "no no")]
    utterances = tables.to_table(SPLIT + MONO + hot, tables.UTTERANCES)
    recordings = tables.to_table([*RECORDINGS, recording("hot", 10.0, agent="bo")], tables.RECORDINGS)
    Lake(tmp_path).commit_day(
        DATE, {"utterances": utterances, "recordings": recordings, **tables.rollups(utterances, recordings)}
    )
    warehouse = Warehouse(tmp_path)
    warehouse.refresh()
    ended = warehouse.query("ended-angry").to_pylist()
    assert [(r["source_path"], r["agent"], r["customer_first_angry_s"]) for r in ended] == [
        ("calls/hot.wav", "bo", 2.0),
        ("calls/split.wav", "bo", 11.5),
    ]
    escalations = warehouse.query("escalations").to_pylist()
    assert [(r["source_path"], r["customer_first_emotion"], r["onset_s"]) for r in escalations] == [
        ("calls/split.wav", "neutral", 11.5)
    ]
    by_agent = {r["agent"]: r for r in warehouse.query("talk-by-agent").to_pylist()}
    assert set(by_agent) == {"bo", "wing"}
    bo = by_agent["bo"]  # split (20 s), silent (5 s), hot (10 s): 35 s
    assert (bo["calls"], bo["split_calls"], bo["ended_angry"]) == (3, 3, 2)
    assert bo["talk_share"] == round((12.0 + 0 + 6.0) / 35, 3)
    assert bo["silence_share"] == round((8.0 + 5.0 + 4.0) / 35, 3)
    assert bo["overtalk_share"] == round(2.75 / 35, 3)
    assert (bo["agent_interruptions"], bo["customer_interruptions"]) == (1, 2)
    assert bo["agent_tokens_per_min"] == round((14 + 1) * 60 / (8.0 + 2.0), 1)
    wing = by_agent["wing"]
    assert (wing["calls"], wing["split_calls"], wing["ended_angry"], wing["silence_share"]) == (1, 0, 0, 0.7)
    by_queue = {r["queue"]: r for r in warehouse.query("talk-by-queue").to_pylist()}
    assert set(by_queue) == {"billing", None}  # only split names a queue
    assert (by_queue["billing"]["calls"], by_queue["billing"]["ended_angry"]) == (1, 1)
    assert by_queue["billing"]["silence_share"] == round(8.0 / 20, 3)
    assert by_queue[None]["calls"] == 3
    trend = warehouse.query("silence-trend").to_pylist()
    assert [(str(r["date"]), r["calls"], r["non_talk_share"]) for r in trend] == [
        (DATE, 4, round((8.0 + 7.0 + 5.0 + 4.0) / 45, 3))
    ]


def test_calls_daily_sums_the_days_calls_per_agent_queue_and_channel_count():
    rolled = tables.rollups(
        tables.to_table(SPLIT + MONO, tables.UTTERANCES), tables.to_table(RECORDINGS, tables.RECORDINGS)
    )
    assert rolled["calls_daily"].schema == tables.CALLS_DAILY
    rows = {(r["agent"], r["queue"], r["channels"]): r for r in rolled["calls_daily"].to_pylist()}
    assert list(rows) == [("bo", "billing", 2), ("bo", None, 2), ("wing", None, 1)]
    columns = ("calls", "duration_s", "talk_s", "non_talk_s", "overtalk_s", "ch0_talk_s", "ch0_tokens")
    counts = ("ch0_interruptions", "ch1_interruptions", "ended_angry")
    assert [rows["bo", "billing", 2][c] for c in columns + counts] == [
        1,
        20.0,
        12.0,
        8.0,
        2.75,
        8.0,
        14,
        1,
        2,
        1,
    ]
    assert [rows["bo", None, 2][c] for c in columns + counts] == [1, 5.0, 0.0, 5.0, 0.0, 0.0, 0, 0, 0, 0]
    # mono: one turn 1-4; its customer (channel 0) ends neutral (the angry segment starts first)
    assert [rows["wing", None, 1][c] for c in columns + counts] == [1, 10.0, 3.0, 7.0, 0.0, 3.0, 3, 0, 0, 0]


def test_the_call_lists_stop_at_the_most_recent_limit_and_the_counts_do_not(tmp_path):
    from sensevoice_pipeline.warehouse.database import Warehouse
    from sensevoice_pipeline.warehouse.queries import CALL_LIST_LIMIT

    angry = [seg(f"c{i:04d}", 0, 0, 0.0, 1.0, "angry", "no") for i in range(CALL_LIST_LIMIT + 1)]
    utterances = tables.to_table(angry, tables.UTTERANCES)
    recordings = tables.to_table(
        [recording(f"c{i:04d}", 2.0, mode="mono", agent="bo") for i in range(CALL_LIST_LIMIT + 1)],
        tables.RECORDINGS,
    )
    Lake(tmp_path).commit_day(
        DATE, {"utterances": utterances, "recordings": recordings, **tables.rollups(utterances, recordings)}
    )
    warehouse = Warehouse(tmp_path)
    warehouse.refresh()
    ended = warehouse.query("ended-angry").column("source_path").to_pylist()
    assert ended == [f"calls/c{i:04d}.wav" for i in range(CALL_LIST_LIMIT)]
    (bo,) = warehouse.query("talk-by-agent").to_pylist()
    assert bo["ended_angry"] == bo["calls"] == CALL_LIST_LIMIT + 1
