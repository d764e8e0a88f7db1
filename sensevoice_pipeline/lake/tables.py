"""The lake's tables: their schemas (without the ``date`` partition column, which every table has first) and the
daily rollups. Where and how they are stored and committed: catalog.py.

The rollups are computed from a day's utterances by the publish step and committed in the same transaction as the
day's raw tables, so a BI question over a year reads a few thousand rows a day instead of half a million, and a
rollup never disagrees with the utterances it was made from. The raw views stay for ad-hoc SQL.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

WORDS_TYPE = pa.list_(pa.struct([("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())]))

UTTERANCES = pa.schema(
    [
        ("recording_id", pa.string()),
        ("source_path", pa.string()),
        ("channel", pa.int16()),
        ("segment_index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("language", pa.string()),
        ("language_hint", pa.string()),
        ("emotion", pa.string()),
        ("event", pa.string()),
        ("itn", pa.bool_()),
        ("text", pa.string()),
        ("raw_text", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
        # How sure the model was of the language / emotion / event tag in the text: its probability at the tag's
        # query frame (the `sensevoice` output CONFIDENCE); null when the text has no such tag or the model version
        # returned no probabilities (exported before them). Last, so that a lake created before them gets them
        # appended (catalog.py: ALTER TABLE ... ADD COLUMN) in the same order as a new one.
        ("language_confidence", pa.float32()),
        ("emotion_confidence", pa.float32()),
        ("event_confidence", pa.float32()),
        # the emotion distribution (EMOTION_PROBS), keyed like the emotion column (happy, sad, angry, ...); null
        # like the confidences
        ("emotion_probs", pa.map_(pa.string(), pa.float32())),
        # How many PII findings (cards, phone numbers, e-mail addresses, long digit runs) were redacted from the
        # segment's text before it was written (speech/redact.py, SVP_REDACT); 0 under `off`; null for rows
        # written before redaction existed. Last, like the confidences, so an older lake gets it appended.
        ("redactions", pa.int32()),
        # Word times (speech/alignment.py: funasr's output_timestamp), in seconds from the start of the recording,
        # redacted like the text (a masked finding is one word, its mask); null where the model version's server
        # offered no WORDS or the row was written before them. Last, like the columns above.
        ("words", WORDS_TYPE),
    ]
)

RECORDINGS = pa.schema(
    [
        ("recording_id", pa.string()),
        ("source_path", pa.string()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("format", pa.string()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int16()),
        ("duration_s", pa.float64()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("n_segments", pa.int32()),
        ("language_hint", pa.string()),
        ("channel_mode", pa.string()),
        ("model_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
        ("metadata", pa.map_(pa.string(), pa.string())),  # free manifest columns (agent, queue, ...)
    ]
)

EMOTION_DAILY = pa.schema(
    [
        ("language", pa.string()),
        ("emotion", pa.string()),
        ("channel", pa.int16()),
        ("utterances", pa.int64()),
        ("speech_seconds", pa.float64()),
        ("recordings", pa.int64()),
    ]
)

# emotion_daily split by how sure the model was of the emotion: the lower bound of the emotion confidence's bucket
# (CONFIDENCE_BUCKETS; null: no confidence, a model version without them). The canned queries read it, so a
# confidence filter ("angry with confidence >= 0.8") costs what the unfiltered question does.
EMOTION_CONFIDENCE_DAILY = pa.schema(
    [
        ("language", pa.string()),
        ("emotion", pa.string()),
        ("channel", pa.int16()),
        ("emotion_confidence_bucket", pa.float64()),
        ("utterances", pa.int64()),
        ("speech_seconds", pa.float64()),
    ]
)
# The buckets' lower bounds, i.e. the confidence thresholds a canned query answers exactly: below 0.5 is one bucket
# (a filter that low says little), then tenths. 1.0 falls in the 0.9 bucket.
CONFIDENCE_BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)

# Per sound event: how many utterances carry it and in how many recordings (exact distinct counts for the day).
EVENT_DAILY = pa.schema(
    [
        ("event", pa.string()),
        ("utterances", pa.int64()),
        ("recordings", pa.int64()),
    ]
)

# Which model versions answered the day's utterances (the page's "models" table).
MODEL_USAGE_DAILY = pa.schema(
    [
        ("model_version", pa.string()),
        ("utterances", pa.int64()),
        ("recordings", pa.int64()),
    ]
)

# The supervisors' report: a day's ANGRY_CALLS_PER_DAY angriest recordings x channels (angry share, then angry
# segments; at least one angry segment). Keeping only those is exact for the canned query, the range's 1,000
# angriest under the same order: each of them is among its own day's 1,000 angriest.
ANGRY_CALLS_PER_DAY = 1000
ANGRY_CALLS = pa.schema(
    [
        ("recording_id", pa.string()),
        ("source_path", pa.string()),
        ("channel", pa.int16()),
        ("angry_segments", pa.int64()),
        ("segments", pa.int64()),
        ("angry_share", pa.float64()),
        ("angry_text", pa.string()),  # the angry segments' texts, in segment order, joined with " / "
    ]
)

# One row per recording of the day (docs/call-analytics.md defines every column): who spoke when, computed from
# the day's utterances and recordings. Channel 0 and channel 1 each have a column set (ch0_*, ch1_*): by the
# project's convention a split call has the agent on channel 0 and the customer on channel 1; a mono call has only
# channel 0 (its ch1_* columns are null). Channels beyond 1 are not counted.
CALL_CHANNEL_COLUMNS = [
    ("talk_s", pa.float64()),
    ("segments", pa.int64()),
    ("tokens", pa.int64()),
    ("tokens_per_min", pa.float64()),
    ("interruptions", pa.int64()),
    ("first_emotion", pa.string()),
    ("last_emotion", pa.string()),
    ("first_angry_s", pa.float64()),
    ("angry_s", pa.float64()),
    ("angry_share", pa.float64()),
]
CALLS = pa.schema(
    [
        ("recording_id", pa.string()),
        ("source_path", pa.string()),
        ("channels", pa.int16()),
        ("duration_s", pa.float64()),
        ("talk_s", pa.float64()),
        ("non_talk_s", pa.float64()),
        ("overtalk_s", pa.float64()),
        *[(f"ch{channel}_{name}", kind) for channel in (0, 1) for name, kind in CALL_CHANNEL_COLUMNS],
        ("metadata", pa.map_(pa.string(), pa.string())),
    ]
)
# calls summed per day, agent, queue (the manifest's columns) and channel count: what the talk metrics and the
# silence trend read, so that a year is ~365 x agents x queues rows instead of every call (docs/call-analytics.md).
# Sums of calls' columns; ended_angry counts the calls whose customer's last segment was angry.
CALLS_DAILY = pa.schema(
    [
        ("agent", pa.string()),
        ("queue", pa.string()),
        ("channels", pa.int16()),
        ("calls", pa.int64()),
        ("duration_s", pa.float64()),
        ("talk_s", pa.float64()),
        ("non_talk_s", pa.float64()),
        ("overtalk_s", pa.float64()),
        ("ch0_talk_s", pa.float64()),
        ("ch0_tokens", pa.int64()),
        ("ch0_interruptions", pa.int64()),
        ("ch1_interruptions", pa.int64()),
        ("ended_angry", pa.int64()),
    ]
)
# The customer's channel (docs/call-analytics.md): channel 1 of a split call, the only one of a mono call.
CUSTOMER_COLUMN = "CASE WHEN channels = 2 THEN ch1_{0} ELSE ch0_{0} END"

# An interruption: a channel's turn starting inside the other channel's turn and overlapping it this long at least.
INTERRUPTION_MIN_OVERLAP_S = 0.5

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("files", pa.int64()),
        ("files_ok", pa.int64()),
        ("files_failed", pa.int64()),
        ("utterances", pa.int64()),
        ("speech_seconds", pa.float64()),
        ("model_versions", pa.string()),
    ]
)

# One row per model release (sensevoice_model_release DAG, releases.release): partition = the UTC day it finished.
MODEL_RELEASES = pa.schema(
    [
        ("release_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("outcome", pa.string()),  # promoted | refused | failed
        ("candidate_version", pa.string()),
        ("serving_before", pa.string()),
        ("serving_after", pa.string()),
        ("precision", pa.string()),
        ("exporter", pa.string()),
        ("source_model", pa.string()),
        ("source_sha256", pa.string()),
        ("parity_max_abs", pa.float64()),
        ("parity_min_cosine", pa.float64()),
        ("parity_argmax_agreement", pa.float64()),
        ("golden_cases", pa.int64()),
        ("transcript_agreement", pa.float64()),
        ("emotion_agreement", pa.float64()),
        ("latency_serving_ms", pa.float64()),
        ("latency_staged_ms", pa.float64()),
        ("latency_ratio", pa.float64()),
        ("min_transcript_agreement", pa.float64()),
        ("min_emotion_agreement", pa.float64()),
        ("max_latency_ratio", pa.float64()),
        ("switch_seconds", pa.float64()),
        ("reasons", pa.string()),
        ("report_path", pa.string()),
        # the shadow canary (releases/shadow.py): recent published recordings through the candidate
        ("shadow_recordings", pa.int64()),
        ("shadow_skipped", pa.int64()),
        ("shadow_cer", pa.float64()),
        ("shadow_emotion_agreement", pa.float64()),
        ("shadow_angry_share_shift", pa.float64()),
        ("shadow_unknown_rate_shift", pa.float64()),
        ("max_angry_share_shift", pa.float64()),
    ]
)

ROLLUP_SCHEMAS = {
    "emotion_daily": EMOTION_DAILY,
    "event_daily": EVENT_DAILY,
    "model_usage_daily": MODEL_USAGE_DAILY,
    "angry_calls": ANGRY_CALLS,
    "emotion_confidence_daily": EMOTION_CONFIDENCE_DAILY,
    "calls": CALLS,
    "calls_daily": CALLS_DAILY,
}
SCHEMAS = {"utterances": UTTERANCES, "recordings": RECORDINGS, **ROLLUP_SCHEMAS, "runs": RUNS}
DAILY_TABLES = tuple(SCHEMAS)  # what one daily run publishes for its date, in one commit
# Tables written by other jobs than the daily one, in the same catalog.
# Snapshots kept past the garbage-collection grace (Lake.keep_snapshot): the lake as it was before `svp rescore`
# replaced a range of days with another model version's answers, so `svp query --as-of` / `--model-version` and
# model-compare read the old version's rows. Partition = the UTC day it was named.
KEPT_SNAPSHOTS = pa.schema(
    [
        ("name", pa.string()),
        ("snapshot_id", pa.int64()),
        ("model_versions", pa.string()),  # the versions that scored the range's days in that snapshot
        ("from_date", pa.date32()),
        ("to_date", pa.date32()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("kept_until", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
    ]
)
OTHER_SCHEMAS = {"model_releases": MODEL_RELEASES, "kept_snapshots": KEPT_SNAPSHOTS}
ALL_SCHEMAS = {**SCHEMAS, **OTHER_SCHEMAS}
# A stable row order within a date, for readers that compare tables.
SORT_KEYS = {
    "utterances": ("source_path", "channel", "segment_index"),
    "recordings": ("source_path",),
    "emotion_daily": ("language", "emotion", "channel"),
    "emotion_confidence_daily": ("language", "emotion", "channel", "emotion_confidence_bucket"),
    "event_daily": ("event",),
    "model_usage_daily": ("model_version",),
    "angry_calls": ("source_path", "channel"),
    "calls": ("source_path",),
    "calls_daily": ("agent", "queue", "channels"),
    "runs": ("run_id",),
    "model_releases": ("finished_at", "release_id"),
    "kept_snapshots": ("created_at", "name"),
}


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


# Each rollup as SQL over utterances registered as ``u``: for one day's rows ({date} empty), or for every date of
# the lake at once ({date} = "date, ", to fill a rollup table added to an existing lake). Missing tags count as
# 'unknown', as the canned queries always showed them.
ROLLUP_SQL = {
    "emotion_daily": """
        SELECT {date}coalesce(language, 'unknown') AS language, coalesce(emotion, 'unknown') AS emotion, channel,
               count(*)::BIGINT AS utterances, sum(end_s - start_s)::DOUBLE AS speech_seconds,
               count(DISTINCT recording_id)::BIGINT AS recordings
        FROM u GROUP BY ALL ORDER BY {date}language, emotion, channel
    """,
    "emotion_confidence_daily": """
        SELECT {date}coalesce(language, 'unknown') AS language, coalesce(emotion, 'unknown') AS emotion, channel,
               CONFIDENCE_BUCKET AS emotion_confidence_bucket,
               count(*)::BIGINT AS utterances, sum(end_s - start_s)::DOUBLE AS speech_seconds
        FROM u GROUP BY ALL ORDER BY {date}language, emotion, channel, emotion_confidence_bucket
    """,
    "event_daily": """
        SELECT {date}coalesce(event, 'unknown') AS event, count(*)::BIGINT AS utterances,
               count(DISTINCT recording_id)::BIGINT AS recordings
        FROM u GROUP BY ALL ORDER BY {date}event
    """,
    "model_usage_daily": """
        SELECT {date}model_version, count(*)::BIGINT AS utterances, count(DISTINCT recording_id)::BIGINT AS recordings
        FROM u GROUP BY ALL ORDER BY {date}model_version
    """,
    "angry_calls": """
        SELECT {date}any_value(recording_id) AS recording_id, source_path, channel,
               count(*) FILTER (WHERE emotion = 'angry')::BIGINT AS angry_segments,
               count(*)::BIGINT AS segments,
               round(count(*) FILTER (WHERE emotion = 'angry') / count(*), 3)::DOUBLE AS angry_share,
               string_agg(text, ' / ' ORDER BY segment_index) FILTER (WHERE emotion = 'angry') AS angry_text
        FROM u GROUP BY {date}source_path, channel HAVING angry_segments > 0
        QUALIFY row_number() OVER ({by_date}ORDER BY angry_share DESC, angry_segments DESC, source_path, channel)
                <= ANGRY_CALLS_PER_DAY
        ORDER BY {date}source_path, channel
    """,
    # docs/call-analytics.md: each channel's segments merged into turns (gaps and islands: a segment starting after
    # every earlier one of its channel ended opens a new turn), the same for its angry segments; overtalk and
    # interruptions from the pairs of overlapping channel-0 and channel-1 turns (a channel's turns never overlap, so
    # the pairs' overlaps add up exactly; sums rounded to the microsecond, so that their order, which a parallel
    # sum does not fix, never changes a row). Recordings: the day's ok ones, and any recording the utterances name that
    # the recordings lack (no duration, no metadata then).
    "calls": """
        WITH s AS (
            SELECT {date}recording_id, channel, segment_index, start_s, end_s,
                   coalesce(emotion, 'unknown') AS emotion, TOKENS AS tokens
            FROM u WHERE channel IN (0, 1)
        ),
        spans AS (
            SELECT {date}recording_id, channel, 'talk' AS kind, start_s, end_s FROM s WHERE end_s > start_s
            UNION ALL
            SELECT {date}recording_id, channel, 'angry' AS kind, start_s, end_s
            FROM s WHERE end_s > start_s AND emotion = 'angry'
        ),
        reach AS (
            SELECT *, max(end_s) OVER (PARTITION BY {date}recording_id, channel, kind ORDER BY start_s, end_s
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reached
            FROM spans
        ),
        islands AS (
            SELECT *, sum(CASE WHEN reached IS NULL OR start_s > reached THEN 1 ELSE 0 END)
                      OVER (PARTITION BY {date}recording_id, channel, kind ORDER BY start_s, end_s
                            ROWS UNBOUNDED PRECEDING) AS island
            FROM reach
        ),
        merged AS (
            SELECT {date}recording_id, channel, kind, min(start_s) AS start_s, max(end_s) AS end_s
            FROM islands GROUP BY {date}recording_id, channel, kind, island
        ),
        turns AS (SELECT * FROM merged WHERE kind = 'talk'),
        pairs AS (
            SELECT {date}recording_id, a.start_s AS a_start, b.start_s AS b_start,
                   least(a.end_s, b.end_s) - greatest(a.start_s, b.start_s) AS overlap
            FROM turns a JOIN turns b USING ({date}recording_id)
            WHERE a.channel = 0 AND b.channel = 1 AND a.start_s < b.end_s AND b.start_s < a.end_s
        ),
        cross_talk AS (
            SELECT {date}recording_id, round(sum(overlap), 6) AS overtalk_s,
                   count(*) FILTER (WHERE b_start < a_start AND overlap >= MIN_OVERLAP) AS ch0_interruptions,
                   count(*) FILTER (WHERE a_start < b_start AND overlap >= MIN_OVERLAP) AS ch1_interruptions
            FROM pairs GROUP BY {date}recording_id
        ),
        spoken AS (
            SELECT {date}recording_id, channel, round(sum(end_s - start_s) FILTER (WHERE kind = 'talk'), 6) AS talk_s,
                   coalesce(round(sum(end_s - start_s) FILTER (WHERE kind = 'angry'), 6), 0) AS angry_s
            FROM merged GROUP BY {date}recording_id, channel
        ),
        per_channel AS (
            SELECT {date}recording_id, channel, count(*) AS segments, sum(tokens) AS tokens,
                   first(emotion ORDER BY start_s, segment_index) AS first_emotion,
                   last(emotion ORDER BY start_s, segment_index) AS last_emotion,
                   min(start_s) FILTER (WHERE emotion = 'angry') AS first_angry_s
            FROM s GROUP BY {date}recording_id, channel
        ),
        ch AS (
            SELECT {date}recording_id, channel, segments, tokens, first_emotion, last_emotion, first_angry_s,
                   coalesce(talk_s, 0) AS talk_s, coalesce(angry_s, 0) AS angry_s
            FROM per_channel LEFT JOIN spoken USING ({date}recording_id, channel)
        ),
        calls AS (
            SELECT {date}recording_id, source_path,
                   CASE WHEN channel_mode = 'split' AND channels >= 2 THEN 2 ELSE 1 END AS channels,
                   duration_s, metadata
            FROM r WHERE status = 'ok'
            UNION ALL
            SELECT {date}recording_id, any_value(source_path) AS source_path,
                   CASE WHEN max(channel) >= 1 THEN 2 ELSE 1 END AS channels,
                   NULL::DOUBLE AS duration_s, NULL::MAP(VARCHAR, VARCHAR) AS metadata
            FROM u ANTI JOIN (SELECT {date}recording_id FROM r WHERE status = 'ok') USING ({date}recording_id)
            GROUP BY {date}recording_id
        ),
        spread AS (
            SELECT c.*, coalesce(c0.talk_s, 0) AS t0, coalesce(c1.talk_s, 0) AS t1,
                   CASE WHEN c.channels = 2 THEN coalesce(x.overtalk_s, 0) ELSE 0 END AS overtalk,
                   CHANNEL_PICKS,
                   x.ch0_interruptions AS x0, x.ch1_interruptions AS x1
            FROM calls c
            LEFT JOIN (SELECT * FROM ch WHERE channel = 0) c0 USING ({date}recording_id)
            LEFT JOIN (SELECT * FROM ch WHERE channel = 1) c1 USING ({date}recording_id)
            LEFT JOIN cross_talk x USING ({date}recording_id)
        )
        SELECT {date}recording_id, source_path, channels::SMALLINT AS channels, duration_s,
               t0 + CASE WHEN channels = 2 THEN t1 - overtalk ELSE 0 END AS talk_s,
               greatest(duration_s - (t0 + CASE WHEN channels = 2 THEN t1 - overtalk ELSE 0 END), 0)
                   + duration_s * 0 AS non_talk_s,  -- greatest() skips a null: no duration, no non-talk
               overtalk AS overtalk_s,
               CHANNEL_COLUMNS,
               metadata
        FROM spread ORDER BY {date}source_path
    """,
    # calls summed (CALLS_OF_THE_DAY: the calls table, or its SQL above inlined); sums rounded as there
    "calls_daily": """
        SELECT {date}metadata['agent'] AS agent, metadata['queue'] AS queue, channels, count(*)::BIGINT AS calls,
               round(sum(duration_s), 6) AS duration_s, round(sum(talk_s), 6) AS talk_s,
               round(sum(non_talk_s), 6) AS non_talk_s, round(sum(overtalk_s), 6) AS overtalk_s,
               round(sum(ch0_talk_s), 6) AS ch0_talk_s, sum(ch0_tokens)::BIGINT AS ch0_tokens,
               sum(ch0_interruptions)::BIGINT AS ch0_interruptions,
               coalesce(sum(ch1_interruptions), 0)::BIGINT AS ch1_interruptions,
               count(*) FILTER (WHERE CUSTOMER_LAST_EMOTION = 'angry')::BIGINT AS ended_angry
        FROM (CALLS_OF_THE_DAY) GROUP BY ALL ORDER BY {date}agent NULLS LAST, queue NULLS LAST, channels
    """,
}


# floor to tenths in DOUBLE (8.0 / 10 is exactly the literal 0.8, so `bucket >= 0.8` compares exactly), below the
# second bucket the first, 1.0 in the last
CONFIDENCE_BUCKET_SQL = (
    f"CASE WHEN emotion_confidence IS NULL THEN NULL "
    f"WHEN emotion_confidence < {CONFIDENCE_BUCKETS[1]} THEN 0.0 "
    f"ELSE least(floor(emotion_confidence::DOUBLE * 10) / 10, {CONFIDENCE_BUCKETS[-1]}) END"
)


# A text's tokens (docs/call-analytics.md): each Han, Hiragana or Katakana character is one, and so is each
# whitespace-separated word (with a letter or digit) of what remains; Korean is written with spaces: words.
CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
TOKENS_SQL = (
    f"(length(regexp_replace(coalesce(text, ''), '[^{CJK}]', '', 'g')) "
    f"+ len(regexp_extract_all(regexp_replace(coalesce(text, ''), '[{CJK}]', ' ', 'g'), "
    r"'[^\s]*[\p{L}\p{N}][^\s]*')))"
)
_PICKED = ("talk_s", "segments", "tokens", "first_emotion", "last_emotion", "first_angry_s", "angry_s")


def _channel_columns(n: int) -> str:
    """calls' ch{n}_* columns from the spread row (null for a channel the call does not have)."""
    talk = f"coalesce(c{n}_talk_s, 0)"
    expressions = {
        "talk_s": talk,
        "segments": f"coalesce(c{n}_segments, 0)",
        "tokens": f"coalesce(c{n}_tokens, 0)",
        "tokens_per_min": f"CASE WHEN {talk} > 0 THEN coalesce(c{n}_tokens, 0) * 60 / {talk} END",
        "interruptions": f"CASE WHEN channels = 2 THEN coalesce(x{n}, 0) ELSE 0 END",
        "first_emotion": f"c{n}_first_emotion",
        "last_emotion": f"c{n}_last_emotion",
        "first_angry_s": f"c{n}_first_angry_s",
        "angry_s": f"coalesce(c{n}_angry_s, 0)",
        "angry_share": f"CASE WHEN {talk} > 0 THEN coalesce(c{n}_angry_s, 0) / {talk} END",
    }
    assert list(expressions) == [name for name, _ in CALL_CHANNEL_COLUMNS]
    return ", ".join(
        f"{e if n == 0 else f'CASE WHEN channels > {n} THEN {e} END'} AS ch{n}_{name}"
        for name, e in expressions.items()
    )


def rollup_sql(name: str, every_date: bool = False, calls: str | None = None) -> str:
    """Rollup ``name``'s SQL over ``u`` and ``r`` (``every_date``: with a date column, for every date they hold).
    ``calls`` names a relation that already holds the calls rows for ``calls_daily`` to sum (the publish step's
    own, the lake's table when the rollup is filled); without it the calls SQL is inlined (the raw view)."""
    return (
        ROLLUP_SQL[name]
        .replace("CALLS_OF_THE_DAY", f"SELECT * FROM {calls}" if calls else ROLLUP_SQL["calls"])
        .replace("CUSTOMER_LAST_EMOTION", CUSTOMER_COLUMN.format("last_emotion"))
        .format(date="date, " if every_date else "", by_date="PARTITION BY date " if every_date else "")
        .replace("ANGRY_CALLS_PER_DAY", str(ANGRY_CALLS_PER_DAY))
        .replace("CONFIDENCE_BUCKET", CONFIDENCE_BUCKET_SQL)
        .replace("TOKENS", TOKENS_SQL)
        .replace("MIN_OVERLAP", repr(float(INTERRUPTION_MIN_OVERLAP_S)))
        .replace("CHANNEL_PICKS", ", ".join(f"c{n}.{c} AS c{n}_{c}" for n in (0, 1) for c in _PICKED))
        .replace("CHANNEL_COLUMNS", ", ".join(_channel_columns(n) for n in (0, 1)))
    )


def rollups(utterances: pa.Table, recordings: pa.Table | None = None) -> dict[str, pa.Table]:
    """Every rollup of one day's utterances (and its recordings: ``calls`` takes their duration, channel mode and
    metadata; without them a call has no duration), by table name."""
    con = duckdb.connect()
    try:
        con.register("u", utterances)
        con.register("r", RECORDINGS.empty_table() if recordings is None else recordings)
        out = {}
        for name, schema in ROLLUP_SCHEMAS.items():  # (calls comes before calls_daily, which sums it)
            if "calls" in out:
                con.register("day_calls", out["calls"])
            result = con.sql(rollup_sql(name, calls="day_calls" if "calls" in out else None)).to_arrow_table()
            out[name] = result.cast(schema) if result.num_rows else schema.empty_table()
        return out
    finally:
        con.close()
