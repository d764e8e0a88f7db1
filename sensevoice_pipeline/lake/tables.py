"""The lake's tables: their schemas (without the ``date`` partition column, which every table has first) and the
daily rollup. Where and how they are stored and committed: catalog.py."""

from __future__ import annotations

import pyarrow as pa

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
    ]
)

SCHEMAS = {"utterances": UTTERANCES, "recordings": RECORDINGS, "emotion_daily": EMOTION_DAILY, "runs": RUNS}
DAILY_TABLES = tuple(SCHEMAS)  # what one daily run publishes for its date, in one commit
# Tables written by other jobs than the daily one, in the same catalog.
OTHER_SCHEMAS = {"model_releases": MODEL_RELEASES}
ALL_SCHEMAS = {**SCHEMAS, **OTHER_SCHEMAS}
# A stable row order within a date, for readers that compare tables.
SORT_KEYS = {
    "utterances": ("source_path", "channel", "segment_index"),
    "recordings": ("source_path",),
    "emotion_daily": ("language", "emotion", "channel"),
    "runs": ("run_id",),
    "model_releases": ("finished_at", "release_id"),
}


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def emotion_rollup(utterances: pa.Table) -> pa.Table:
    """Per language x emotion x channel: utterances, speech seconds, distinct recordings."""
    import duckdb

    con = duckdb.connect()
    con.register("u", utterances)
    result = con.sql(
        """
        SELECT coalesce(language, 'unknown') AS language,
               coalesce(emotion, 'unknown') AS emotion,
               channel,
               count(*)::BIGINT AS utterances,
               sum(end_s - start_s)::DOUBLE AS speech_seconds,
               count(DISTINCT recording_id)::BIGINT AS recordings
        FROM u
        GROUP BY ALL
        ORDER BY language, emotion, channel
        """
    ).to_arrow_table()
    con.close()
    return result.cast(EMOTION_DAILY) if result.num_rows else EMOTION_DAILY.empty_table()
