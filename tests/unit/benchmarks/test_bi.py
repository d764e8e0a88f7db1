"""benchmarks/bi.py's generated day: its recordings agree with its utterances the way the calls rollup needs (a call
per recording, split calls on both channels, a channel's segments apart and inside the duration), and the calls
queries find calls that ended angry and escalations. The whole BI run: tests/integration/benchmarks/test_bench_smoke.py."""

import datetime as dt

import duckdb
import pytest

ROWS = 4000  # 400 calls


@pytest.fixture(scope="module")
def generated():
    """A day of ROWS utterances and its recordings, as Arrow tables."""
    from benchmarks.bi import template_day

    con = duckdb.connect()
    try:
        return template_day(con, ROWS, 3, "2025-01-03")
    finally:
        con.close()


@pytest.fixture(scope="module")
def day(generated):
    """A connection with the day's utterances ``u``, recordings ``r`` and their rollups ``calls``, ``calls_daily``."""
    from sensevoice_pipeline.lake import tables

    utterances, recordings = generated
    con = duckdb.connect()
    con.register("u", utterances)
    con.register("r", recordings)
    rolled = tables.rollups(utterances, recordings)
    for name in ("calls", "calls_daily"):  # as the lake has them
        con.register(f"day_{name}", rolled[name])
        con.execute(f"CREATE VIEW {name} AS SELECT DATE '2025-01-03' AS date, * FROM day_{name}")
    yield con
    con.close()


def _one(con, sql):
    return con.execute(sql).fetchone()[0]


def test_a_recording_per_call_in_the_lakes_schemas(generated, day):
    from benchmarks.bi import ROWS_PER_CALL
    from sensevoice_pipeline.lake import tables

    utterances, recordings = generated
    assert utterances.schema == tables.UTTERANCES and recordings.schema == tables.RECORDINGS
    assert _one(day, "SELECT count(*) FROM r") == _one(day, "SELECT count(DISTINCT recording_id) FROM u")
    assert _one(day, "SELECT count(*) FROM r") == ROWS // ROWS_PER_CALL
    assert _one(day, "SELECT count(*) FROM u ANTI JOIN r USING (recording_id, source_path)") == 0
    assert _one(day, "SELECT count(*) FROM r WHERE status <> 'ok' OR n_segments <> 10") == 0
    assert _one(day, "SELECT count(*) FROM calls WHERE duration_s IS NULL OR metadata IS NULL") == 0
    split = _one(day, "SELECT avg((channel_mode = 'split')::INTEGER) FROM r")
    assert 0.5 < split < 0.7  # ~60 %
    assert _one(day, "SELECT count(*) FROM r WHERE (channel_mode = 'split') <> (channels = 2)") == 0
    assert _one(day, "SELECT count(DISTINCT metadata['agent']) FROM r") == 50
    assert _one(day, "SELECT count(DISTINCT metadata['queue']) FROM r") == 6


def test_split_calls_speak_on_both_channels_mono_ones_on_channel_0(day):
    per_call = """
        SELECT r.channels, count(DISTINCT u.channel) AS used, max(u.channel) AS top
        FROM u JOIN r USING (recording_id) GROUP BY recording_id, r.channels
    """
    assert _one(day, f"SELECT count(*) FROM ({per_call}) WHERE used <> channels OR top <> channels - 1") == 0


def test_a_channels_segments_are_apart_in_order_and_inside_the_call(day):
    ordered = """
        SELECT start_s, end_s, segment_index,
               lag(end_s) OVER (PARTITION BY recording_id, channel ORDER BY start_s) AS before_end,
               row_number() OVER (PARTITION BY recording_id, channel ORDER BY start_s) - 1 AS position
        FROM u
    """
    assert _one(day, f"SELECT count(*) FROM ({ordered}) WHERE start_s < before_end") == 0
    assert _one(day, f"SELECT count(*) FROM ({ordered}) WHERE segment_index <> position") == 0
    assert (
        _one(
            day, "SELECT count(*) FROM u JOIN r USING (recording_id) WHERE start_s < 0 OR end_s > duration_s"
        )
        == 0
    )
    assert _one(day, "SELECT min(end_s - start_s) FROM u") >= 1.0
    # silence between the segments and at the ends, some overtalk and interruptions in split calls only
    assert 0.1 < _one(day, "SELECT sum(non_talk_s) / sum(duration_s) FROM calls") < 0.35
    assert _one(day, "SELECT sum(overtalk_s) FROM calls WHERE channels = 2") > 0
    assert _one(day, "SELECT sum(ch0_interruptions + ch1_interruptions) FROM calls WHERE channels = 2") > 0
    assert _one(day, "SELECT sum(overtalk_s) + sum(ch0_interruptions) FROM calls WHERE channels = 1") == 0


def test_the_calls_queries_find_calls_that_ended_angry_and_escalations(day):
    from sensevoice_pipeline.warehouse.queries import QUERIES

    answers = {}
    for name in ("ended-angry", "escalations", "talk-by-agent", "silence-trend"):
        dates = {"from_date": dt.date(2025, 1, 3), "to_date": dt.date(2025, 1, 3)}
        answers[name] = day.execute(QUERIES[name].render(), dates).fetchall()
    calls = _one(day, "SELECT count(*) FROM calls")
    assert 0 < len(answers["escalations"]) < len(answers["ended-angry"]) < 0.1 * calls
    assert len(answers["talk-by-agent"]) == 50 and len(answers["silence-trend"]) == 1
    # the day's angry share stays about the 5 % of bi.EMOTIONS
    assert 0.03 < _one(day, "SELECT avg((emotion = 'angry')::INTEGER) FROM u") < 0.08
