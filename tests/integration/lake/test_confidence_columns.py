"""A lake written before tag confidences existed (issue 18, item 3): the first writer adds the confidence columns
and fills the confidence rollup from the utterances, and the canned angry-share answers a confidence filter for old
and new days alike. In-process DuckDB/DuckLake, no server: not in tests/unit only because the upgrade's commits,
reopenings and warehouse refresh take seconds."""

from __future__ import annotations

import datetime as dt

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from tests.support.lake import confident_utterance as utterance


def test_a_lake_from_before_confidences_gets_the_columns_on_first_writer_open(tmp_path):
    """A lake whose utterances table has no confidence columns and no emotion_confidence_daily (as the code before
    them left it): the first writer adds the columns (old rows null) and fills the rollup from the utterances, in
    one transaction; the canned angry-share then answers a confidence filter for old and new days alike."""
    lake = Lake(tmp_path)
    old_day = tables.to_table([utterance(0, "angry", None), utterance(1, "happy", None)], tables.UTTERANCES)
    lake.commit_day("2026-01-01", {"utterances": old_day, **tables.rollups(old_day)})
    # the lake from before confidences had no redactions count nor word times either (issue 31), which come after
    new_columns = [
        "language_confidence",
        "emotion_confidence",
        "event_confidence",
        "emotion_probs",
        "redactions",
        "words",
    ]
    with lake.writer() as con:  # the lake as the previous version of the code left it
        for column in new_columns:
            con.execute(f'ALTER TABLE {ALIAS}.utterances DROP COLUMN "{column}"')
        con.execute(f"DROP TABLE {ALIAS}.emotion_confidence_daily")

    with lake.writer():
        pass
    rows = lake.read("utterances", "2026-01-01").to_pylist()
    assert [r["recording_id"] for r in rows] == ["r0", "r1"]
    assert all(r[c] is None for r in rows for c in new_columns)
    assert sum(r["utterances"] for r in lake.read("emotion_confidence_daily", "2026-01-01").to_pylist()) == 2

    new_day = tables.to_table(
        [utterance(2, "angry", 0.93), utterance(3, "angry", 0.41), utterance(4, "sad", 0.8)],
        tables.UTTERANCES,
    )
    lake.commit_day("2026-01-02", {"utterances": new_day, **tables.rollups(new_day)})
    assert lake.read("utterances", "2026-01-02").column("emotion_confidence").to_pylist() == pytest.approx(
        [0.93, 0.41, 0.8]
    )

    from sensevoice_pipeline.warehouse.database import Warehouse
    from sensevoice_pipeline.warehouse.queries import QUERIES

    warehouse = Warehouse(tmp_path)
    warehouse.refresh()
    con = warehouse.connect()
    try:

        def angry(min_confidence):
            sql = QUERIES["angry-share"].render(min_confidence=min_confidence)
            table = con.sql(sql, params={"from_date": dt.date(2026, 1, 1), "to_date": dt.date(2026, 1, 2)})
            return [(str(r[0]), r[1], r[2]) for r in table.fetchall()]

        assert angry(0.0) == [("2026-01-01", 1, 2), ("2026-01-02", 2, 3)]
        assert angry(0.8) == [("2026-01-01", None, 2), ("2026-01-02", 1, 3)]
    finally:
        con.close()
