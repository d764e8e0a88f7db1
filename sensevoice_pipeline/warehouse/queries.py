"""The canned BI questions: ``svp query NAME``, the report of ``svp demo`` and the plugin page ask these.

Each reads a rollup the publish step commits with the day (lake/tables.py), so it costs a few thousand rows per day
whatever the call volume. ``Query.raw_sql`` asks the same question of the raw ``utterances`` view (the rollup's
own SQL inlined): the benchmark times both and the tests check that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensevoice_pipeline.lake.tables import rollup_sql

GROUP_BY = {"language": "language", "channel": "channel"}  # the trend's grouping column, by name


@dataclass(frozen=True)
class Chart:
    value: str
    stack: str | None = None


@dataclass(frozen=True)
class Query:
    name: str
    title: str
    reads: str  # the rollup table it reads
    sql: str  # placeholders: {group} / {group_name} (the grouping), $from_date / $to_date (inclusive)
    # The chart `--png` draws: bars of `value` per date, stacked by `stack` (None: one bar); no chart when None.
    chart: Chart | None = None

    def render(self, by: str = "language") -> str:
        return self.sql.format(group=GROUP_BY[by], group_name=by)

    def raw_sql(self, by: str = "language") -> str:
        """The same question over the ``utterances`` view: the rollup computed on the fly for the date range."""
        inline = (f"(WITH u AS (SELECT * FROM utterances WHERE date BETWEEN $from_date AND $to_date) "
                  f"{rollup_sql(self.reads, every_date=True)}) AS {self.reads}")
        return self.render(by).replace(f"FROM {self.reads}\n", f"FROM {inline}\n")


QUERIES = {q.name: q for q in (
    Query(
        "emotion-trend",
        "Utterances per day and emotion (share of the day's utterances)",
        "emotion_daily",
        """
        SELECT date, {group} AS {group_name}, emotion,
               sum(utterances)::BIGINT AS utterances,
               round(sum(speech_seconds), 1) AS speech_seconds,
               round(sum(utterances) / sum(sum(utterances)) OVER (PARTITION BY date, {group}), 3) AS share
        FROM emotion_daily
        WHERE date BETWEEN $from_date AND $to_date
        GROUP BY date, {group}, emotion
        ORDER BY date, {group_name}, utterances DESC, emotion
        """,
        Chart("utterances", stack="emotion"),
    ),
    Query(
        "events",
        "Sound events per day",
        "event_daily",
        """
        SELECT date, event, utterances, recordings
        FROM event_daily
        WHERE date BETWEEN $from_date AND $to_date
        ORDER BY date, utterances DESC, event
        """,
        Chart("utterances", stack="event"),
    ),
    Query(
        "angry-calls",
        "The angriest calls (supervisors' report): recordings with angry segments, highest angry share first",
        "angry_calls",
        """
        SELECT date, source_path, channel, angry_segments, segments, angry_share, angry_text
        FROM angry_calls
        WHERE date BETWEEN $from_date AND $to_date
        ORDER BY angry_share DESC, angry_segments DESC, date DESC, source_path, channel
        LIMIT 1000  -- tables.ANGRY_CALLS_PER_DAY: each day keeps its own 1,000 angriest, so this is exact
        """,
        Chart("angry_segments", stack="source_path"),
    ),
    Query(
        "angry-share",
        "Share of angry segments per day",
        "emotion_daily",
        """
        SELECT date, sum(utterances) FILTER (WHERE emotion = 'angry')::BIGINT AS angry,
               sum(utterances)::BIGINT AS utterances,
               round(coalesce(sum(utterances) FILTER (WHERE emotion = 'angry'), 0) / sum(utterances), 3) AS share
        FROM emotion_daily
        WHERE date BETWEEN $from_date AND $to_date
        GROUP BY date ORDER BY date
        """,
        Chart("share"),
    ),
    Query(
        "model-usage",
        "Utterances per model version (first and last day it answered)",
        "model_usage_daily",
        """
        SELECT model_version, sum(utterances)::BIGINT AS utterances, min(date) AS first_date, max(date) AS last_date
        FROM model_usage_daily
        WHERE date BETWEEN $from_date AND $to_date
        GROUP BY model_version
        ORDER BY model_version
        """,
    ),
)}
