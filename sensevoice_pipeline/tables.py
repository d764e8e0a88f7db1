"""The lake's tables: schemas, and publishing one date's partition atomically.

Each table is hive-partitioned by date, one file per partition: ``<lake>/<table>/date=YYYY-MM-DD/data.parquet``.
A partition is replaced atomically (storage.write_parquet: a temp file renamed over the old one, or in an s3://
lake one upload over the old object), so a reader sees the old day or the new day, never half of one.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .storage import as_root, read_parquet, write_parquet

PARTITION_FILE = "data.parquet"

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
        ("outcome", pa.string()),  # promoted | refused
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
# Tables written by other jobs than the daily one, with the same layout and atomic publish.
OTHER_SCHEMAS = {"model_releases": MODEL_RELEASES}


def partition_path(lake_root: str | Path, table: str, date: str) -> Path:
    return as_root(lake_root) / table / f"date={date}" / PARTITION_FILE


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def schema_of(table: str) -> pa.Schema:
    return SCHEMAS.get(table) or OTHER_SCHEMAS[table]


def publish_partition(lake_root: str | Path, table: str, date: str, data: pa.Table) -> Path:
    """Replace ``table``'s partition for ``date`` with ``data`` atomically (storage.write_parquet)."""
    return write_parquet(data.cast(schema_of(table)), partition_path(lake_root, table, date), compression="zstd")


def read_partition(lake_root: str | Path, table: str, date: str) -> pa.Table:
    return read_parquet(partition_path(lake_root, table, date))


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
