"""The rollups the publish step commits with each day answer the canned queries exactly as the raw view would, over a
month of generated days; readers never fail a commit while the date is republished. In-process DuckDB/DuckLake, no
server: not in tests/unit only because the month's commits and the readers' race take most of a minute."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from sensevoice_pipeline.warehouse.database import Warehouse, WarehouseError
from sensevoice_pipeline.warehouse.queries import GROUP_BY, QUERIES

FIRST = dt.date(2026, 1, 1)
DAYS = 30
EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", None]
EVENTS = ["speech", "music", "laughter", "cough", "applause", None]
LANGS = ["en", "zh", "yue", "ja", "ko", None]


DAYS_WITHOUT_CONFIDENCES = 3
MIN_CONFIDENCES = (0.0, 0.8, 0.5, 0.9)  # the default and some thresholds, a FLOAT 0.8 / 0.5 / 0.9 included


def confidence(day: int, salt: int) -> str:
    """SQL for a FLOAT confidence of row i: 0.00-1.00 in hundredths (so FLOAT 0.7, 0.8 ... hit the bucket bounds),
    null on the first days and for one row in 7."""
    return (
        f"CASE WHEN {day} < {DAYS_WITHOUT_CONFIDENCES} OR hash(i, {day}, {salt + 10}) % 7 = 0 THEN NULL "
        f"ELSE ((hash(i, {day}, {salt + 20}) % 101) / 100.0)::FLOAT END"
    )


def synthetic_day(day: int, rows: int = 600) -> pa.Table:
    """A day of utterances with every tag (and missing ones), two channels, two model versions, ~8 per call."""
    con = duckdb.connect()
    table = con.sql(
        f"""
        SELECT printf('rec-%d-%d', {day}, i // 8) AS recording_id,
               printf('date=x/queue-%d/call-%d.wav', (i // 8) % 3, i // 8) AS source_path,
               (hash(i, {day}) % 2)::SMALLINT AS channel, (i % 8)::INTEGER AS segment_index,
               (i % 8) * 5.0 AS start_s, (i % 8) * 5.0 + 1 + (hash(i, {day}, 1) % 400) / 100.0 AS end_s,
               $langs[1 + (hash(i, {day}, 2) % 6)::BIGINT] AS language, 'auto' AS language_hint,
               $emotions[1 + (hash(i, {day}, 3) % 8)::BIGINT] AS emotion, $events[1 + (hash(i, {day}, 4) % 6)::BIGINT] AS event,
               true AS itn, printf('text %d', i) AS text, 'raw' AS raw_text, 'sensevoice' AS model_name,
               CASE WHEN {day} < 20 THEN '1' ELSE (1 + i % 2)::VARCHAR END AS model_version,
               'run' AS run_id, TIMESTAMPTZ '2026-02-01 00:00:00+00' AS processed_at,
               -- confidences: none in the first days (a model version exported before them), then spread over
               -- [0, 1] with values on the bucket bounds (0.5 ... 0.9 as FLOAT) and 1.0 among them
               {confidence(day, 1)} AS language_confidence, {confidence(day, 2)} AS emotion_confidence,
               {confidence(day, 3)} AS event_confidence,
               CASE WHEN {day} >= {DAYS_WITHOUT_CONFIDENCES}
                    THEN MAP {{'angry': 0.25::FLOAT, 'happy': 0.5::FLOAT}} END AS emotion_probs,
               0::INTEGER AS redactions,
               NULL::STRUCT(word VARCHAR, start_s DOUBLE, end_s DOUBLE)[] AS words
        FROM range({rows}) t(i)
    """,
        params={"langs": LANGS, "emotions": EMOTIONS, "events": EVENTS},
    ).to_arrow_table()
    con.close()
    return table.cast(tables.UTTERANCES)


def synthetic_recordings(day: int, rows: int = 600) -> pa.Table:
    """synthetic_day's recordings: 45 s each, split and mono, three agents (one call in 7 without one)."""
    con = duckdb.connect()
    table = con.sql(
        f"""
        SELECT printf('rec-%d-%d', {day}, k) AS recording_id,
               printf('date=x/queue-%d/call-%d.wav', k % 3, k) AS source_path, 2::SMALLINT AS channels,
               45.0::DOUBLE AS duration_s, 'ok' AS status, CASE WHEN k % 4 = 0 THEN 'mono' ELSE 'split' END AS channel_mode,
               CASE WHEN k % 7 = 0 THEN MAP {{'queue': 'q'}}
                    ELSE MAP {{'agent': printf('agent-%d', k % 3), 'queue': 'q'}} END AS metadata
        FROM range({rows // 8}) t(k)
    """
    ).to_arrow_table()
    con.close()
    return pa.Table.from_pylist(table.to_pylist(), schema=tables.RECORDINGS)


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> Warehouse:
    root = tmp_path_factory.mktemp("rollup-lake")
    lake = Lake(root)
    for day in range(DAYS):
        utterances, recordings = synthetic_day(day), synthetic_recordings(day)
        lake.commit_day(
            (FIRST + dt.timedelta(days=day)).isoformat(),
            {"utterances": utterances, "recordings": recordings, **tables.rollups(utterances, recordings)},
        )
    warehouse = Warehouse(root)
    warehouse.refresh()
    return warehouse


def raw_answer(warehouse: Warehouse, name: str, by: str, date_from: dt.date, date_to: dt.date) -> pa.Table:
    con = warehouse.connect()
    try:
        return con.sql(
            QUERIES[name].raw_sql(by), params={"from_date": date_from, "to_date": date_to}
        ).to_arrow_table()
    finally:
        con.close()


RANGES = [
    (FIRST, FIRST + dt.timedelta(days=DAYS - 1)),
    (FIRST + dt.timedelta(days=5), FIRST + dt.timedelta(days=5)),
    (FIRST + dt.timedelta(days=18), FIRST + dt.timedelta(days=24)),
]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_canned_query_equals_its_raw_view_answer(month, name):
    for by in GROUP_BY:
        for date_from, date_to in RANGES:
            rolled = month.query(name, date_from, date_to, by)
            assert rolled.num_rows > 0, (name, by, date_from)
            assert rolled.to_pylist() == raw_answer(month, name, by, date_from, date_to).to_pylist(), (
                name,
                by,
            )


@pytest.mark.parametrize("name", sorted(n for n, q in QUERIES.items() if q.filters_confidence))
def test_confidence_filtered_queries_equal_the_raw_view_filtered_on_the_confidence_itself(month, name):
    """The rollup answers a confidence filter from buckets; the raw view's twin inlines the same bucketing, and a
    direct count over utterances (emotion_confidence >= t, no buckets) must agree too, so the buckets are exact."""
    con = month.connect()
    try:
        for min_confidence in MIN_CONFIDENCES:
            for by in GROUP_BY:
                for date_from, date_to in RANGES:
                    params = {"from_date": date_from, "to_date": date_to}
                    rolled = con.sql(QUERIES[name].render(by, min_confidence), params=params).to_arrow_table()
                    raw = con.sql(QUERIES[name].raw_sql(by, min_confidence), params=params).to_arrow_table()
                    assert rolled.num_rows > 0 and rolled.to_pylist() == raw.to_pylist(), (
                        name,
                        by,
                        min_confidence,
                    )
            confident = con.sql(
                "SELECT count(*) FROM utterances WHERE emotion = 'angry' AND emotion_confidence >= $t "
                "AND date BETWEEN $from_date AND $to_date",
                params={"t": min_confidence, "from_date": RANGES[0][0], "to_date": RANGES[0][1]},
            ).fetchone()[0]
            if name == "angry-share":
                rolled = con.sql(
                    QUERIES[name].render("language", min_confidence),
                    params={"from_date": RANGES[0][0], "to_date": RANGES[0][1]},
                ).to_arrow_table()
                counted = sum(a or 0 for a in rolled.column("angry").to_pylist())
                # at 0 every angry row counts, those without a confidence too
                assert counted == confident if min_confidence else counted >= confident, min_confidence
    finally:
        con.close()


@pytest.mark.parametrize("by", sorted(GROUP_BY))
def test_the_emotion_trend_counts_and_shares_what_a_direct_count_over_utterances_does(month, by):
    """The trend's SQL is shaped for speed (two stages); the rollup and the raw view share that shape, so this
    checks the shape itself against the question asked in the plainest SQL: per date, group and emotion, the
    utterances at least that sure, and their share of all the date's utterances of the group."""
    group = f"coalesce({GROUP_BY[by]}, 'unknown')" if by == "language" else GROUP_BY[by]
    direct_sql = f"""
        SELECT date, {group} AS grp, coalesce(emotion, 'unknown') AS emotion,
               count(*) FILTER (WHERE $t = 0 OR emotion_confidence >= $t) AS confident,
               round(confident / sum(count(*)) OVER (PARTITION BY date, grp), 3) AS share
        FROM utterances WHERE date BETWEEN $from_date AND $to_date GROUP BY date, grp, emotion
    """
    first, last = RANGES[0]
    con = month.connect()
    try:
        for min_confidence in MIN_CONFIDENCES:
            direct = {
                (r[0], r[1], r[2]): (r[3], r[4])
                for r in con.execute(
                    direct_sql, {"t": min_confidence, "from_date": first, "to_date": last}
                ).fetchall()
                if r[3]
            }
            trend = month.query("emotion-trend", first, last, by, min_confidence).to_pylist()
            assert {
                (r["date"], r[by], r["emotion"]): (r["utterances"], r["share"]) for r in trend
            } == direct, (by, min_confidence)
            assert len(trend) == len(direct)
    finally:
        con.close()


def test_a_confidence_filter_keeps_fewer_utterances_and_refuses_thresholds_it_cannot_answer_exactly(month):
    everything = month.query("angry-share")
    confident = month.query("angry-share", min_confidence=0.8)  # what `svp query --min-confidence 0.8` runs
    assert sum(confident.column("angry").to_pylist()[DAYS_WITHOUT_CONFIDENCES:]) < sum(
        everything.column("angry").to_pylist()[DAYS_WITHOUT_CONFIDENCES:]
    )
    assert confident.column("utterances").to_pylist() == everything.column("utterances").to_pylist()
    with pytest.raises(ValueError, match="min confidence"):
        QUERIES["angry-share"].render(min_confidence=0.85)
    with pytest.raises(WarehouseError, match="min confidence must be one of"):
        month.query("angry-share", min_confidence=0.85)
    with pytest.raises(WarehouseError, match="angry-calls cannot filter on confidence"):
        month.query("angry-calls", min_confidence=0.8)


def test_the_raw_sql_really_reads_the_utterances_view(month):
    """The comparison above proves something only if raw_sql does not read the rollup itself."""
    for query in QUERIES.values():
        raw = query.raw_sql()
        assert f"FROM {query.reads}\n" not in raw and "FROM utterances" in raw, query.name


def test_a_rollup_added_to_an_existing_lake_is_filled_from_its_utterances(month, tmp_path):
    """A lake published before a rollup existed gets the table filled for every date when a writer first opens it:
    the canned queries then answer as before the rollup was dropped, for every day."""
    lake = Lake(tmp_path)
    utterances = {d: synthetic_day(d, 200) for d in range(3)}
    for d, rows in utterances.items():
        lake.commit_day(
            (FIRST + dt.timedelta(days=d)).isoformat(), {"utterances": rows, **tables.rollups(rows)}
        )
    before = {name: lake.read(name) for name in tables.ROLLUP_SCHEMAS}
    with lake.writer() as con:  # the lake as an older version of the code left it
        for name in tables.ROLLUP_SCHEMAS:
            con.execute(f'DROP TABLE {ALIAS}."{name}"')
    with lake.reader() as con:
        left = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [ALIAS]
            ).fetchall()
        }
    assert not left & set(tables.ROLLUP_SCHEMAS)
    with lake.writer():
        pass
    for name, want in before.items():
        assert lake.read(name).to_pylist() == want.to_pylist(), name


def test_angry_calls_lists_only_calls_with_an_angry_segment(month):
    table = month.query("angry-calls")
    assert min(table.column("angry_segments").to_pylist()) >= 1
    assert all(text for text in table.column("angry_text").to_pylist())


def test_readers_never_fail_a_commit_and_a_commit_never_fails_them(tmp_path):
    """BI tools poll the lake while the daily job publishes. Two reader threads read the date without pause while it
    is republished ten times with different data: no commit and no read may fail, and every read sees one whole
    version of the day (in SQLite's default journal mode every one of these commits failed with "database is
    locked", and so did the readers)."""
    import threading

    lake, day = Lake(tmp_path), FIRST.isoformat()
    versions = [synthetic_day(d, 300) for d in range(10)]
    lake.commit_day(day, {"utterances": versions[0], **tables.rollups(versions[0])})
    whole = {rows_of(v) for v in versions}  # each version's recordings differ (their ids carry the day)
    errors, seen, done = [], [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                seen.append(rows_of(Lake(tmp_path).read("utterances", day)))
            except Exception as exc:  # noqa: BLE001 -- any failure is what the test is about
                errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for rows in versions[1:]:
            lake.commit_day(day, {"utterances": rows, **tables.rollups(rows)})
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    assert seen and all(texts in whole for texts in seen)  # one version or another, never a mix
    assert rows_of(lake.read("utterances", day)) == rows_of(versions[-1])
    assert len(set(seen)) > 1  # the readers did see the day change under them


def rows_of(utterances: pa.Table) -> tuple:
    return tuple(
        sorted(zip(*(utterances.column(c).to_pylist() for c in ("recording_id", "segment_index", "text"))))
    )


def test_svp_query_offers_exactly_the_canned_queries_and_charts_only_per_date_ones():
    from sensevoice_pipeline.ui.cli_query import QUERY_NAMES

    assert QUERY_NAMES == list(QUERIES)
    for query in QUERIES.values():
        assert (query.chart is not None) == ("SELECT date," in " ".join(query.sql.split())), query.name


def test_keeping_each_days_angriest_calls_answers_the_ranges_angriest_exactly(tmp_path, monkeypatch):
    """angry_calls keeps only each day's ANGRY_CALLS_PER_DAY angriest calls. With the cap at 5 (binding: every
    generated day has dozens of angry calls), the range's 5 angriest read from the rollup are the raw view's 5."""
    monkeypatch.setattr(tables, "ANGRY_CALLS_PER_DAY", 5)
    lake = Lake(tmp_path)
    for day in range(5):
        rows = synthetic_day(day, 400)
        lake.commit_day(
            (FIRST + dt.timedelta(days=day)).isoformat(), {"utterances": rows, **tables.rollups(rows)}
        )
        assert tables.rollups(rows)["angry_calls"].num_rows == 5
    warehouse = Warehouse(tmp_path)
    warehouse.refresh()
    top5 = {"from_date": FIRST, "to_date": FIRST + dt.timedelta(days=4)}
    query = QUERIES["angry-calls"]
    con = warehouse.connect()
    try:
        rolled = con.sql(query.render().replace("LIMIT 1000", "LIMIT 5"), params=top5).fetchall()
        raw = con.sql(
            query.raw_sql().replace("LIMIT 1000", "LIMIT 5").replace("<= 5", "<= 1000000"), params=top5
        ).fetchall()  # the raw view: every angry call of the range, no daily cap
    finally:
        con.close()
    assert len(rolled) == 5 and rolled == raw
