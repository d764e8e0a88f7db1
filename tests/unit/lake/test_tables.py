"""lake/tables.py: the schemas, ``to_table`` and the daily rollups, on a handful of utterances whose rollups are
counted by hand."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from sensevoice_pipeline.lake import tables

AT = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)


def utterance(source: str, channel: int, index: int, seconds: float, **tags) -> dict:
    return {
        "recording_id": f"rec-{source}",
        "source_path": f"calls/{source}.wav",
        "channel": channel,
        "segment_index": index,
        "start_s": 10.0 * index,
        "end_s": 10.0 * index + seconds,
        "language": "en",
        "emotion": "neutral",
        "event": "speech",
        "text": f"{source}-{channel}-{index}",
        "model_version": "1",
        "processed_at": AT,
        **tags,
    }


# Call a: channel 0 angry twice of three; channel 1 calm. Call b: one angry of two, on channel 0; no tags on one row.
DAY = [
    utterance("a", 0, 2, 1.5, emotion="angry", emotion_confidence=0.95),
    utterance("a", 0, 0, 2.0, emotion="angry", emotion_confidence=0.8),
    utterance("a", 0, 1, 1.0, emotion_confidence=0.49),
    utterance("a", 1, 0, 4.0, emotion_confidence=1.0, event="laughter", model_version="2"),
    utterance("b", 0, 0, 3.0, emotion="angry", emotion_confidence=0.5),
    utterance("b", 0, 1, 0.5, language=None, emotion=None, event=None),
]


def test_to_table_gives_every_column_its_schema_type_and_nulls_what_a_row_lacks():
    table = tables.to_table(DAY[:1], tables.UTTERANCES)
    assert table.schema == tables.UTTERANCES
    row = table.to_pylist()[0]
    assert row["channel"] == 0 and row["processed_at"] == AT
    assert row["emotion_confidence"] == pytest.approx(0.95) and row["emotion_probs"] is None
    assert row["raw_text"] is None and row["itn"] is None
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError)):
        tables.to_table([{**DAY[0], "channel": "left"}], tables.UTTERANCES)


def test_every_schema_leaves_the_date_to_the_partition_and_sorts_by_its_own_columns():
    assert tables.DAILY_TABLES == (
        "utterances",
        "recordings",
        "emotion_daily",
        "event_daily",
        "model_usage_daily",
        "angry_calls",
        "emotion_confidence_daily",
        "calls",
        "calls_daily",
        "runs",
    )
    assert set(tables.SORT_KEYS) == set(tables.ALL_SCHEMAS)
    for name, schema in tables.ALL_SCHEMAS.items():
        assert "date" not in schema.names, name
        assert set(tables.SORT_KEYS[name]) <= set(schema.names), name


def test_the_rollups_of_a_day_count_what_the_utterances_hold():
    rolled = tables.rollups(tables.to_table(DAY, tables.UTTERANCES))
    assert set(rolled) == set(tables.ROLLUP_SCHEMAS)
    for name, table in rolled.items():
        assert table.schema == tables.ROLLUP_SCHEMAS[name], name
    assert rolled["emotion_daily"].to_pylist() == [
        # (language, emotion, channel) in order; a missing tag counts as 'unknown'
        {
            "language": "en",
            "emotion": "angry",
            "channel": 0,
            "utterances": 3,
            "speech_seconds": 6.5,
            "recordings": 2,
        },
        {
            "language": "en",
            "emotion": "neutral",
            "channel": 0,
            "utterances": 1,
            "speech_seconds": 1.0,
            "recordings": 1,
        },
        {
            "language": "en",
            "emotion": "neutral",
            "channel": 1,
            "utterances": 1,
            "speech_seconds": 4.0,
            "recordings": 1,
        },
        {
            "language": "unknown",
            "emotion": "unknown",
            "channel": 0,
            "utterances": 1,
            "speech_seconds": 0.5,
            "recordings": 1,
        },
    ]
    assert rolled["event_daily"].to_pylist() == [
        {"event": "laughter", "utterances": 1, "recordings": 1},
        {"event": "speech", "utterances": 4, "recordings": 2},
        {"event": "unknown", "utterances": 1, "recordings": 1},
    ]
    assert rolled["model_usage_daily"].to_pylist() == [
        {"model_version": "1", "utterances": 5, "recordings": 2},
        {"model_version": "2", "utterances": 1, "recordings": 1},
    ]


def test_angry_calls_keep_calls_with_an_angry_segment_with_their_angry_texts_in_segment_order():
    rolled = tables.rollups(tables.to_table(DAY, tables.UTTERANCES))["angry_calls"]
    assert rolled.to_pylist() == [
        {
            "recording_id": "rec-a",
            "source_path": "calls/a.wav",
            "channel": 0,
            "angry_segments": 2,
            "segments": 3,
            "angry_share": 0.667,
            "angry_text": "a-0-0 / a-0-2",
        },
        {
            "recording_id": "rec-b",
            "source_path": "calls/b.wav",
            "channel": 0,
            "angry_segments": 1,
            "segments": 2,
            "angry_share": 0.5,
            "angry_text": "b-0-0",
        },
    ]  # channel 1 of call a had no angry segment: not a row


def test_emotion_confidence_buckets_floor_to_tenths_with_one_bucket_below_a_half():
    rows = tables.rollups(tables.to_table(DAY, tables.UTTERANCES))["emotion_confidence_daily"].to_pylist()
    buckets = {(r["emotion"], r["channel"], r["emotion_confidence_bucket"]): r["utterances"] for r in rows}
    assert buckets == {
        ("angry", 0, 0.5): 1,  # 0.5: the second bucket's lower bound
        ("angry", 0, 0.8): 1,  # FLOAT 0.8 (0.800000011...) lands in 0.8, not 0.7
        ("angry", 0, 0.9): 1,  # 0.95
        ("neutral", 0, 0.0): 1,  # 0.49: below a half is one bucket
        ("neutral", 1, 0.9): 1,  # 1.0 falls in the last bucket
        ("unknown", 0, None): 1,  # no confidence: a null bucket
    }
    assert {b for *_, b in buckets} - {None} <= set(tables.CONFIDENCE_BUCKETS)


def test_an_empty_day_has_empty_rollups_of_the_right_schemas():
    rolled = tables.rollups(tables.UTTERANCES.empty_table())
    assert {name: (t.num_rows, t.schema) for name, t in rolled.items()} == {
        name: (0, schema) for name, schema in tables.ROLLUP_SCHEMAS.items()
    }


def test_the_every_date_form_ranks_angry_calls_within_each_date(monkeypatch):
    """``rollup_sql(every_date=True)`` fills a new rollup table for a whole lake: the daily cap applies per date."""
    monkeypatch.setattr(tables, "ANGRY_CALLS_PER_DAY", 1)
    day = tables.to_table(DAY, tables.UTTERANCES)
    two_days = pa.concat_tables(
        [
            day.add_column(0, "date", pa.array(["2026-03-14"] * day.num_rows)),
            day.add_column(0, "date", pa.array(["2026-03-15"] * day.num_rows)),
        ]
    )
    con = duckdb.connect()
    try:
        con.register("u", two_days)
        angry = con.sql(tables.rollup_sql("angry_calls", every_date=True)).fetchall()
        emotions = con.sql(tables.rollup_sql("emotion_daily", every_date=True)).fetchall()
    finally:
        con.close()
    assert [(date, source) for date, _, source, *_ in angry] == [
        ("2026-03-14", "calls/a.wav"),  # each date's angriest call: a's 0.667 before b's 0.5
        ("2026-03-15", "calls/a.wav"),
    ]
    assert [row[0] for row in emotions] == ["2026-03-14"] * 4 + ["2026-03-15"] * 4
