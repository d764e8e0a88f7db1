"""The canned BI questions: ``svp query NAME``, the report of ``svp demo`` and the plugin page ask these.

Each reads a rollup the publish step commits with the day (lake/tables.py), so it costs a few thousand rows per day
whatever the call volume. ``Query.raw_sql`` asks the same question of the raw ``utterances`` view (the rollup's
own SQL inlined): the benchmark times both and the tests check that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensevoice_pipeline.lake.tables import CONFIDENCE_BUCKETS, CUSTOMER_COLUMN, rollup_sql

GROUP_BY = {"language": "language", "channel": "channel"}  # the trend's grouping column, by name


# The call lists (ended-angry, escalations) stop at the most recent this many: a year holds hundreds of thousands,
# and reading them all costs seconds; how many there were per agent or queue is talk-by-*'s ended_angry.
CALL_LIST_LIMIT = 1000


def customer(column: str) -> str:
    """The calls table's column of the customer's channel (channel 1 of a split call, the only one of a mono)."""
    return CUSTOMER_COLUMN.format(column)


# The emotion confidence thresholds a query can filter on: the rollup's bucket bounds, so the answer is exact.
MIN_CONFIDENCES = CONFIDENCE_BUCKETS


def check_min_confidence(value: float) -> float:
    """``value`` as one of MIN_CONFIDENCES; ValueError otherwise (a finer threshold would need the raw view)."""
    for allowed in MIN_CONFIDENCES:
        if abs(float(value) - allowed) < 1e-9:
            return allowed
    raise ValueError(
        f"min confidence must be one of {', '.join(f'{c:g}' for c in MIN_CONFIDENCES)}, not {value!r}"
    )


@dataclass(frozen=True)
class Chart:
    """What `--png` draws (warehouse/report.py): bars of ``value`` per date, stacked by ``stack`` (None: one bar per
    date), one panel per group when the query groups; with ``ranked``, one horizontal bar of ``value`` per row
    instead, the highest first, the top ones drawn and the others counted."""

    value: str
    stack: str | None = None
    ranked: bool = False


@dataclass(frozen=True)
class Query:
    name: str
    title: str
    reads: str  # the rollup table it reads
    # placeholders: {group} / {group_name} (the grouping), {confident} (the emotion confidence filter: a SQL condition
    # on the rollup row), $from_date / $to_date (inclusive)
    sql: str
    chart: Chart | None = None  # what `--png` draws; None: no chart (the rows are not per date)

    @property
    def groups(self) -> bool:
        """Whether the answer is per group (``by``: language or channel)."""
        return "{group}" in self.sql

    @property
    def filters_confidence(self) -> bool:
        """Whether ``min_confidence`` changes this query's answer."""
        return "{confident}" in self.sql

    def render(self, by: str = "language", min_confidence: float = 0.0) -> str:
        """The SQL; ``min_confidence`` (one of MIN_CONFIDENCES, inlined as a literal after that check) counts only
        utterances whose emotion confidence is at least that (0: all, those without a confidence included)."""
        threshold = check_min_confidence(min_confidence)
        confident = f"coalesce(emotion_confidence_bucket, 0.0) >= {threshold:.1f}"
        return self.sql.format(group=GROUP_BY[by], group_name=by, confident=confident)

    def raw_sql(self, by: str = "language", min_confidence: float = 0.0) -> str:
        """The same question over the ``utterances`` view: the rollup computed on the fly for the date range."""
        inline = (
            f"(WITH u AS (SELECT * FROM utterances WHERE date BETWEEN $from_date AND $to_date), "
            f"r AS (SELECT * FROM recordings WHERE date BETWEEN $from_date AND $to_date) "
            f"SELECT * FROM ({rollup_sql(self.reads, every_date=True)})) AS {self.reads}"
        )
        return self.render(by, min_confidence).replace(f"FROM {self.reads}\n", f"FROM {inline}\n")


def _talk_by(key: str) -> Query:
    """Talk metrics grouped by the manifest column ``key`` (agent, queue): talk, silence and overtalk shares,
    interruptions and speed. Agent: channel 0 of split calls; customer: channel 1 of split calls, the only channel of
    mono ones (docs/call-analytics.md)."""
    return Query(
        f"talk-by-{key}",
        f"Talk metrics per {key} (manifest column {key}): talk, silence and overtalk shares, interruptions, speed",
        "calls_daily",
        f"""
        SELECT {key}, sum(calls)::BIGINT AS calls,
               coalesce(sum(calls) FILTER (WHERE channels = 2), 0)::BIGINT AS split_calls,
               round(sum(duration_s) / 60, 1) AS minutes,
               round(sum(talk_s) / sum(duration_s), 3) AS talk_share,
               round(sum(non_talk_s) / sum(duration_s), 3) AS silence_share,
               round(sum(overtalk_s) / sum(duration_s), 3) AS overtalk_share,
               round(sum(ch0_talk_s) FILTER (WHERE channels = 2)
                     / sum(talk_s + overtalk_s) FILTER (WHERE channels = 2), 3) AS agent_talk_share,
               sum(ch0_interruptions) FILTER (WHERE channels = 2)::BIGINT AS agent_interruptions,
               sum(ch1_interruptions) FILTER (WHERE channels = 2)::BIGINT AS customer_interruptions,
               round(sum(ch0_tokens) FILTER (WHERE channels = 2) * 60
                     / sum(ch0_talk_s) FILTER (WHERE channels = 2), 1) AS agent_tokens_per_min,
               sum(ended_angry)::BIGINT AS ended_angry
        FROM calls_daily
        WHERE date BETWEEN $from_date AND $to_date
        GROUP BY {key}
        ORDER BY {key} NULLS LAST
        """,
    )


QUERIES = {
    q.name: q
    for q in (
        Query(
            "emotion-trend",
            "Utterances per day and emotion (share of the day's utterances)",
            "emotion_confidence_daily",
            # With a confidence filter an emotion's row counts its confident utterances only, and the share stays of
            # all the day's utterances of the group: the shares then add up to the confident part of the day.
            # Two stages, the first MATERIALIZED: summed to one row per date, group and emotion first, the share's
            # window then runs on those. In one stage DuckDB turns the window over the aggregate into a self-join that
            # reads the rollup twice: 365 files at a year, p50 0.47 s against 0.42 s (benchmarks/README, "BI at a year
            # with real confidences").
            """
        WITH per_emotion AS MATERIALIZED (
            SELECT date, {group} AS {group_name}, emotion,
                   sum(utterances) FILTER (WHERE {confident}) AS confident_utterances,
                   sum(speech_seconds) FILTER (WHERE {confident}) AS confident_seconds,
                   sum(utterances) AS all_utterances
            FROM emotion_confidence_daily
            WHERE date BETWEEN $from_date AND $to_date
            GROUP BY date, {group}, emotion
        )
        SELECT date, {group_name}, emotion, confident_utterances::BIGINT AS utterances,
               round(confident_seconds, 1) AS speech_seconds,
               round(confident_utterances / sum(all_utterances) OVER (PARTITION BY date, {group_name}), 3) AS share
        FROM per_emotion
        QUALIFY confident_utterances > 0
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
            Chart("angry_share", ranked=True),
        ),
        Query(
            "angry-share",
            "Share of angry segments per day",
            "emotion_confidence_daily",
            # angry: angry segments at least as confident as the filter; the share is of all the day's segments
            """
        SELECT date, sum(utterances) FILTER (WHERE emotion = 'angry' AND {confident})::BIGINT AS angry,
               sum(utterances)::BIGINT AS utterances,
               round(coalesce(sum(utterances) FILTER (WHERE emotion = 'angry' AND {confident}), 0)
                     / sum(utterances), 3) AS share
        FROM emotion_confidence_daily
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
        Query(
            "ended-angry",
            "Calls whose customer ended angry (last customer segment angry), the 1,000 most recent",
            "calls",
            f"""
        SELECT source_path, date, metadata['agent'] AS agent, metadata['queue'] AS queue,
               {customer("first_emotion")} AS customer_first_emotion,
               {customer("first_angry_s")} AS customer_first_angry_s,
               round({customer("angry_share")}, 3) AS customer_angry_share, round(duration_s, 1) AS duration_s
        FROM calls
        WHERE date BETWEEN $from_date AND $to_date AND {customer("last_emotion")} = 'angry'
        ORDER BY date DESC, source_path
        LIMIT {CALL_LIST_LIMIT}
        """,
        ),
        Query(
            "escalations",
            "Escalations: calls whose customer started calm (not angry) and ended angry, with the onset, the 1,000 "
            "most recent",
            "calls",
            f"""
        SELECT source_path, date, metadata['agent'] AS agent, metadata['queue'] AS queue,
               {customer("first_emotion")} AS customer_first_emotion, {customer("first_angry_s")} AS onset_s,
               round({customer("angry_share")}, 3) AS customer_angry_share, round(duration_s, 1) AS duration_s
        FROM calls
        WHERE date BETWEEN $from_date AND $to_date AND {customer("last_emotion")} = 'angry'
              AND {customer("first_emotion")} <> 'angry'
        ORDER BY date DESC, source_path
        LIMIT {CALL_LIST_LIMIT}
        """,
        ),
        *(_talk_by(key) for key in ("agent", "queue")),
        Query(
            "silence-trend",
            "Share of call time without speech (non-talk) per day",
            "calls_daily",
            """
        SELECT date, sum(calls)::BIGINT AS calls, round(sum(duration_s) / 60, 1) AS minutes,
               round(sum(non_talk_s) / sum(duration_s), 3) AS non_talk_share,
               round(sum(overtalk_s) / sum(duration_s), 3) AS overtalk_share
        FROM calls_daily
        WHERE date BETWEEN $from_date AND $to_date
        GROUP BY date ORDER BY date
        """,
            Chart("non_talk_share"),
        ),
    )
}
