"""BI latency: a synthetic year of `utterances` and its rollups in the lake's layout, and the canned queries of
sensevoice_pipeline.warehouse.database timed through Warehouse.query (a fresh read-only connection per query, as `svp query`
and the dashboard do).

Generating 500,000 rows a day costs several seconds (7-9 s with the confidences on a 2-core machine), so
``bi_templates`` distinct days are generated (DuckDB, seeded) and copied round-robin onto the year: every partition
is a real file of the full size, the query cost is that of distinct data, only the values repeat weekly. The rollups
of each template are made with tables.rollups, the code the daily job's publish step uses.

Every utterance carries confidences as a model version with them writes (issue 18): an emotion distribution over
tags.EMOTION_NAMES that sums to 1 with its maximum on the row's emotion, that maximum as emotion_confidence, and
language / event confidences in (0.4, 1]. They are spread over every bucket of emotion_confidence_daily, so that
rollup has its real size (six times emotion_daily's rows), not one null bucket per group.

Every day also has its recordings (tables.RECORDINGS), written to the lake and passed to tables.rollups as the
publish step passes them, so the calls rollup (one row per recording) is real: a call is ROWS_PER_CALL utterances,
~60 % of the calls split 2-channel (agent on channel 0, customer on 1, turns alternating with pauses and some
overtalk), the rest mono; a channel's segments never overlap; the duration covers them plus silence at both ends;
metadata names the agent (50) and the queue (6). The customer's mood makes ~3.5 % of the calls end angry and ~2.5 %
escalate (calm start, angry end), so the calls queries answer with rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from sensevoice_pipeline.speech.tags import EMOTION_NAMES

from .common import Sizes, log, progress

FIRST_DATE = dt.date(2025, 1, 1)
# 2: the lake is a DuckLake catalog; 3: every rollup of tables.ROLLUP_SCHEMAS; 4: real confidences, not nulls;
# 5: recordings (split / mono calls, duration, agent and queue) written and passed to tables.rollups, so the calls
# rollup is real; a channel's segments no longer overlap, the customer's mood makes calls end angry and escalate
SPEC_VERSION = 5
PHRASES = [
    "thank you for calling, how can i help",
    "i want a refund",
    "where is my order",
    "the invoice is wrong",
    "can you help me with my account",
    "my card was charged twice",
    "please hold on a moment",
    "i have been waiting for an hour",
    "this is unacceptable",
    "great, thanks a lot",
    "could you spell that",
    "the delivery never arrived",
    "i would like to cancel",
    "is there anything else",
    "have a nice day",
    "我要退款",
    "谢谢你",
    "我的订单在哪里",
    "お願いします",
    "ありがとうございました",
    "감사합니다",
    "환불해 주세요",
    "唔該晒",
    "我想取消",
]
# emotion shares in percent (cumulative bounds in the SQL below); events likewise
EMOTIONS = [
    ("neutral", 68),
    ("happy", 10),
    ("sad", 6),
    ("angry", 5),
    ("surprised", 3),
    ("fearful", 2),
    ("disgusted", 1),
    ("unknown", 5),
]
EVENTS = [
    ("speech", 85),
    ("music", 4),
    ("laughter", 3),
    ("cough", 2),
    ("applause", 1),
    ("breath", 2),
    ("unknown", 3),
]
LANGS = [("en", 40), ("zh", 25), ("yue", 10), ("ja", 12), ("ko", 8), ("nospeech", 5)]


def _case(column_hash: str, choices: list[tuple[str, int]]) -> str:
    bound, parts = 0, []
    for value, share in choices:
        bound += share
        parts.append(f"WHEN {column_hash} < {bound} THEN '{value}'")
    return "CASE " + " ".join(parts) + f" ELSE '{choices[-1][0]}' END"


def _unit(hash_sql: str, shift: int, bits: int = 16) -> str:
    """A uniform number in [0, 1) from ``bits`` bits of a hash: independent of other bit ranges of the same hash."""
    return f"((({hash_sql}) >> {shift}) % {1 << bits}) / {float(1 << bits)}"


# The emitted emotion's probability (emotion_confidence): the larger of two uniforms mapped onto
# [MIN_EMOTION_CONFIDENCE, 1), so it leans towards sure answers as a trained model's do while every bucket of
# tables.CONFIDENCE_BUCKETS is populated (~11 % below 0.5, ~64 % in 0.5-0.9, ~25 % from 0.9). The other seven
# emotions share the rest by weights in [1, 2], so none gets more than a quarter of it: with the maximum at least
# 0.25 it stays the row's own emotion (0.25 > 0.25 * (1 - 0.25)).
MIN_EMOTION_CONFIDENCE = 0.25


def _emotion_confidence_sql(seed: int) -> str:
    h = f"hash(i, {seed}, 'emotion confidence')"
    return (
        f"({MIN_EMOTION_CONFIDENCE} + {1 - MIN_EMOTION_CONFIDENCE} * greatest({_unit(h, 0)}, {_unit(h, 16)}))"
    )


def _emotion_weights_sql(seed: int) -> str:
    """Columns w1 .. w8: one weight in [1, 2) per emotion (tags.EMOTION_NAMES order), 7 bits of one hash each."""
    h = f"hash(i, {seed}, 'emotion weights')"
    return ", ".join(f"1 + {_unit(h, 7 * k, bits=7)} AS w{k + 1}" for k in range(len(EMOTION_NAMES)))


def _other_weights_sql() -> str:
    """The weights of w1 .. w8 summed, less the one at position ``own`` (the row's emotion)."""
    weights = [f"w{k}" for k in range(1, len(EMOTION_NAMES) + 1)]
    own = " ".join(f"WHEN {k} THEN {w}" for k, w in enumerate(weights, start=1))
    return f"({' + '.join(weights)} - CASE own {own} END)"


def _tag_confidence_sql(seed: int, tag: str) -> str:
    """A language or event tag's probability in (0.4, 1]: mostly sure, as a trained model's tags are."""
    u = _unit(f"hash(i, {seed}, '{tag} confidence')", 0)
    return f"(1.0 - 0.6 * {u} * {u})"


EMOTION_NAMES_SQL = "[" + ", ".join(f"'{name}'" for name in EMOTION_NAMES) + "]"
# emotion_probs, as a list in EMOTION_NAMES order: the emitted emotion (position ``own``) gets the confidence, each
# other one its weight's share of the rest (other_weights: the weights of the emotions the row does not have), so
# the values sum to 1 (to FLOAT rounding) and the maximum is the row's emotion. _keyed_by_emotion makes it the
# lake's map.
EMOTION_PROBS_SQL = (
    "["
    + ", ".join(
        f"CASE WHEN own = {k} THEN confidence ELSE (1 - confidence) * w{k} / other_weights END::FLOAT"
        for k in range(1, len(EMOTION_NAMES) + 1)
    )
    + "]"
)


# Calls (tables.CALLS): each recording is ROWS_PER_CALL utterances; SPLIT_PERCENT of the calls are split 2-channel
# recordings (agent on channel 0, customer on 1, as the project's convention has it), the rest mono.
ROWS_PER_CALL = 10
SPLIT_PERCENT = 60
# The agents and the queue each sits in (team sizes): 50 agents, 6 queues; a call goes to one agent, uniformly.
QUEUE_TEAMS = [
    ("billing", 15),
    ("orders", 12),
    ("technical", 10),
    ("refunds", 6),
    ("sales", 4),
    ("retention", 3),
]
AGENTS = sum(size for _, size in QUEUE_TEAMS)
# The customer's mood, per mille of the calls: escalating calls start calm and the customer is angry from a segment
# in the call's second half on (and on their last segment); angry calls are angry from the customer's first segment
# to their last. In every other call the customer's last segment is not angry (an angry draw there becomes neutral):
# ~3.5 % of the calls end angry, ~2.5 % are escalations; the day's angry share stays about EMOTIONS' 5 %.
ESCALATING_PER_MILLE = 25
ANGRY_PER_MILLE = 10
# The other channel breaks in on ~30 % of a split call's speaker changes at an odd segment, overlapping the segment
# before it by 0.2-2.5 s (at most 80 % of either segment: interruptions from 0.5 s, tables.INTERRUPTION_MIN_OVERLAP_S).
OVERTALK_PERCENT = 30


def _queue_sql(agent: str) -> str:
    """The queue of agent number ``agent`` (1 .. AGENTS): QUEUE_TEAMS' teams in order."""
    bound, parts = 0, []
    for queue, size in QUEUE_TEAMS:
        bound += size
        parts.append(f"WHEN {agent} <= {bound} THEN '{queue}'")
    return "CASE " + " ".join(parts) + " END"


def _template_sql(rows: int, seed: int, date: str) -> str:
    """One day: a temp table of utterances (tables.UTTERANCES' columns, sorted like the publish step sorts them) with
    the call-level columns _recordings_sql reads (rec, split, agent, queue, tail_s). Values come from independent
    hash bits of (row, seed) and (call, seed); a channel's segments never overlap each other, the two channels of a
    split call do where the other breaks in."""
    row, call, timing = f"hash(i, {seed})", f"hash(rec, {seed}, 'call')", f"hash(i, {seed}, 'timing')"
    return f"""
        WITH base AS (
            SELECT i, rec, i % {ROWS_PER_CALL} AS s, ({row} >> 1)::BIGINT AS h,
                   ({call} >> 1)::BIGINT AS c, {timing} AS t
            FROM (SELECT i, i // {ROWS_PER_CALL} AS rec FROM range({rows}) r(i))
        ), calls AS (
            SELECT *, c % 100 < {SPLIT_PERCENT} AS split, (c >> 8) % 1000 AS mood,
                   {ROWS_PER_CALL // 2} + (c >> 20) % {ROWS_PER_CALL // 2 - 1} AS onset,
                   1 + (c >> 32) % {AGENTS} AS agent_no,
                   -- the call's speech: 1-30 s a segment, shorter ones likelier; the pause before it 0.2-2.5 s, 3 %
                   -- of them a hold of 8-60 s; before the first, the greeting's lead-in of 0.5-4.5 s
                   round(1 + 29 * {_unit("t", 0)} * {_unit("t", 0)}, 3) AS d,
                   round(CASE WHEN {_unit("t", 16, 7)} < 0.03 THEN 8 + 52 * {_unit("t", 23)}
                              ELSE 0.2 + 2.3 * {_unit("t", 23)} END, 3) AS pause,
                   -- a speaker change (split calls): the first segment the agent's, the second the customer's,
                   -- then 70 % of the time the other channel speaks next
                   CASE s WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE ({_unit("t", 39, 7)} < 0.7)::INTEGER END AS switch
            FROM base
        ), chan AS (
            SELECT *, CASE WHEN split THEN (sum(switch) OVER by_call) % 2 ELSE 0 END::SMALLINT AS channel
            FROM calls WINDOW by_call AS (PARTITION BY rec ORDER BY s ROWS UNBOUNDED PRECEDING)
        ), placed AS (
            SELECT *, row_number() OVER by_channel - 1 AS segment_index, count(*) OVER per_channel AS in_channel,
                   lag(channel) OVER by_call AS before_channel, lag(d) OVER by_call AS before_d
            FROM chan
            WINDOW by_call AS (PARTITION BY rec ORDER BY s),
                   by_channel AS (PARTITION BY rec, channel ORDER BY s),
                   per_channel AS (PARTITION BY rec, channel)
        ), gapped AS (
            -- the gap from the previous segment's end: the pause, or minus the overtalk where the other channel
            -- breaks in (its length from the pause's bits, unused then). Only at odd segments, whose previous one
            -- followed a pause: with the overtalk under 80 % of either segment, the one broken into ends before
            -- the one breaking in, so before its own channel speaks again.
            SELECT *, CASE WHEN s = 0 THEN round(0.5 + 4 * {_unit("t", 46)}, 3)
                           WHEN s % 2 = 1 AND channel <> before_channel
                                AND {_unit("t", 53, 7)} < {OVERTALK_PERCENT / 100}
                           THEN -round(least(0.2 + 2.3 * {_unit("t", 23)}, 0.8 * least(d, before_d)), 3)
                           ELSE pause END AS gap
            FROM placed
        ), timed AS (
            SELECT *, sum(gap) OVER upto + coalesce(sum(d) OVER before, 0) AS start
            FROM gapped
            WINDOW upto AS (PARTITION BY rec ORDER BY s ROWS UNBOUNDED PRECEDING),
                   before AS (PARTITION BY rec ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
        ), tagged AS (
            -- the customer: channel 1 of a split call, the only channel of a mono one (queries.CUSTOMER)
            SELECT *, {_case("(h >> 16) % 100", EMOTIONS)} AS drawn,
                   (NOT split OR channel = 1) AS customer, segment_index = in_channel - 1 AS last_of_channel
            FROM timed
        ), moody AS (
            SELECT *, CASE
                WHEN NOT customer THEN drawn
                WHEN mood < {ESCALATING_PER_MILLE} THEN
                    CASE WHEN s >= onset OR last_of_channel THEN 'angry'
                         WHEN segment_index = 0 AND drawn = 'angry' THEN 'neutral' ELSE drawn END
                WHEN mood < {ESCALATING_PER_MILLE + ANGRY_PER_MILLE} THEN
                    CASE WHEN segment_index = 0 OR last_of_channel OR hash(i, {seed}, 'angry') % 100 < 60
                         THEN 'angry' ELSE drawn END
                WHEN last_of_channel AND drawn = 'angry' THEN 'neutral'
                ELSE drawn END AS emotion
            FROM tagged
        ), sure AS (
            SELECT *, {_emotion_confidence_sql(seed)} AS confidence, {_emotion_weights_sql(seed)},
                   list_position({EMOTION_NAMES_SQL}, emotion) AS own
            FROM moody
        ), spread AS (
            SELECT *, {_other_weights_sql()} AS other_weights FROM sure
        ), phr AS (SELECT ?::VARCHAR[] AS p)
        SELECT
            printf('%016x%04x', hash(rec, {seed}), {seed}) AS recording_id,
            'date={date}/' || {_queue_sql("agent_no")} || '/call-' || rec::VARCHAR || '.wav' AS source_path,
            channel,
            segment_index::INTEGER AS segment_index,
            round(start, 3) AS start_s,
            round(start + d, 3) AS end_s,
            {_case("(h >> 8) % 100", LANGS)} AS language,
            CASE WHEN rec % 3 = 0 THEN 'auto' ELSE {_case("(h >> 8) % 100", LANGS)} END AS language_hint,
            emotion,
            {_case("(h >> 24) % 100", EVENTS)} AS event,
            true AS itn,
            p[1 + (h >> 32) % len(p)] AS text,
            '<|en|><|NEUTRAL|><|Speech|><|withitn|>' || p[1 + (h >> 32) % len(p)] AS raw_text,
            'sensevoice' AS model_name,
            '1' AS model_version,
            'bench-{date}' AS run_id,
            TIMESTAMPTZ '{date} 23:00:00+00' AS processed_at,
            {_tag_confidence_sql(seed, "language")}::FLOAT AS language_confidence,
            confidence::FLOAT AS emotion_confidence,
            {_tag_confidence_sql(seed, "event")}::FLOAT AS event_confidence,
            {EMOTION_PROBS_SQL} AS emotion_probs,
            0::INTEGER AS redactions,
            rec, s, split, printf('agent-%02d', agent_no) AS agent, {_queue_sql("agent_no")} AS queue,
            round(0.5 + 6 * {_unit("c", 0)}, 3) AS tail_s
        FROM spread, phr
        ORDER BY source_path, channel, segment_index
    """


def _recordings_sql(seed: int, date: str) -> str:
    """The day's recordings (tables.RECORDINGS' columns) from the template's temp table ``gen``: one per call, all
    ok, 8 kHz 16-bit WAV; the duration covers the last segment and a trailing silence; metadata: agent and queue."""
    return f"""
        SELECT any_value(recording_id) AS recording_id, any_value(source_path) AS source_path,
               (44 + round(max(end_s) + any_value(tail_s), 3) * 8000 * 2
                     * CASE WHEN any_value(split) THEN 2 ELSE 1 END)::BIGINT AS size_bytes,
               printf('%016x%016x%016x%016x', hash(rec, {seed}, 0), hash(rec, {seed}, 1), hash(rec, {seed}, 2),
                      hash(rec, {seed}, 3)) AS sha256,
               'wav' AS format, 8000 AS sample_rate,
               CASE WHEN any_value(split) THEN 2 ELSE 1 END::SMALLINT AS channels,
               round(max(end_s) + any_value(tail_s), 3) AS duration_s,
               'ok' AS status, NULL::VARCHAR AS error, count(*)::INTEGER AS n_segments,
               arg_min(language_hint, s) AS language_hint,
               CASE WHEN any_value(split) THEN 'split' ELSE 'mono' END AS channel_mode,
               '1' AS model_version, 'bench-{date}' AS run_id, TIMESTAMPTZ '{date} 23:00:00+00' AS processed_at,
               MAP {{'agent': any_value(agent), 'queue': any_value(queue)}} AS metadata
        FROM gen GROUP BY rec ORDER BY source_path
    """


def _keyed_by_emotion(table):
    """``table`` with its emotion_probs lists (EMOTION_NAMES order) as maps keyed by emotion, as the lake stores them.
    Built in Arrow from the list's own offsets and values: DuckDB's map() cost ~10 s per 500,000 rows here."""
    import pyarrow as pa

    probs = table.column("emotion_probs").combine_chunks()
    keys = pa.array(np.tile(np.array(EMOTION_NAMES, dtype=object), len(probs)), pa.string())
    keyed = pa.MapArray.from_arrays(probs.offsets, keys, probs.values)
    return table.set_column(table.schema.get_field_index("emotion_probs"), "emotion_probs", keyed)


def template_day(con, rows: int, seed: int, date: str):
    """One generated day on DuckDB connection ``con``: its utterances and recordings as Arrow tables of
    tables.UTTERANCES and tables.RECORDINGS (every column in order: a mismatch raises)."""
    import pyarrow as pa

    from sensevoice_pipeline.lake import tables

    con.execute(f"CREATE OR REPLACE TEMP TABLE gen AS {_template_sql(rows, seed, date)}", [PHRASES])
    generated = {name for (name,) in con.execute("SELECT column_name FROM (DESCRIBE gen)").fetchall()}
    names = [name for name in tables.UTTERANCES.names if name in generated]
    table = _keyed_by_emotion(con.sql(f"SELECT {', '.join(names)} FROM gen").to_arrow_table())
    # a column added to the schema that this generator does not fill: null, as rows written before it have it
    for field in tables.UTTERANCES:
        if field.name not in generated:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    utterances = table.select(tables.UTTERANCES.names).cast(tables.UTTERANCES)
    recordings = con.sql(_recordings_sql(seed, date)).to_arrow_table().cast(tables.RECORDINGS)
    con.execute("DROP TABLE gen")
    return utterances, recordings


def _calls_summary(con, calls, recordings) -> dict:
    """What one template day's calls rollup looks like: its rows, the split share, seconds of a call, the non-talk
    and overtalk shares of call time, and how many calls the ended-angry and escalations queries find."""
    from sensevoice_pipeline.warehouse.queries import customer

    con.register("day_calls", calls)
    try:
        ended = f"{customer('last_emotion')} = 'angry'"
        row = con.execute(
            f"""SELECT count(*), avg((channels = 2)::INTEGER), avg(duration_s),
                       sum(non_talk_s) / sum(duration_s), sum(overtalk_s) / sum(duration_s),
                       count(*) FILTER (WHERE {ended}),
                       count(*) FILTER (WHERE {ended} AND {customer("first_emotion")} <> 'angry')
                FROM day_calls"""
        ).fetchone()
    finally:
        con.unregister("day_calls")
    keys = (
        "rows",
        "split_share",
        "duration_s",
        "non_talk_share",
        "overtalk_share",
        "ended_angry",
        "escalations",
    )
    assert row[0] == recordings.num_rows, "a call per recording"
    return dict(zip(keys, (float(v) for v in row)))


def generate(root: Path, sizes: Sizes) -> dict:
    """The lake under ``root`` (cached: a spec file says what it holds)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sensevoice_pipeline.lake import tables
    from sensevoice_pipeline.lake.catalog import Lake
    from sensevoice_pipeline.warehouse.database import Warehouse

    spec = {
        "version": SPEC_VERSION,
        "rows_per_day": sizes.bi_rows_per_day,
        "days": sizes.bi_days,
        "templates": sizes.bi_templates,
    }
    spec_file = root / "spec.json"
    if spec_file.is_file() and json.loads(spec_file.read_text()).get("spec") == spec:
        info = json.loads(spec_file.read_text())
        t0 = time.perf_counter()
        with Lake(root).writer():  # a lake cached by older code gets the rollups it lacks, as any lake does
            pass
        log(f"BI lake opened for writing in {time.perf_counter() - t0:.1f} s (new rollups filled there)")
        Warehouse(root).refresh()  # rebuilt when the views changed or another duckdb version wrote the file
        log(f"BI lake cached at {root} ({info['total_rows']:,} utterances over {sizes.bi_days} days)")
        return {**info, "cached": True}
    shutil.rmtree(root, ignore_errors=True)
    templates = root / "_templates"
    templates.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    n_templates = min(sizes.bi_templates, sizes.bi_days)
    summaries = []
    log(f"BI: generating {n_templates} distinct days of {sizes.bi_rows_per_day:,} utterances ...")
    for k in range(n_templates):
        date = (FIRST_DATE + dt.timedelta(days=k)).isoformat()
        table, recordings = template_day(con, sizes.bi_rows_per_day, k + 1, date)
        # as the publish step does it: the calls rollup from the utterances and the recordings
        rolled = tables.rollups(table, recordings)
        for name, data in (("utterances", table), ("recordings", recordings), *rolled.items()):
            data = data.cast(tables.SCHEMAS[name]).append_column(
                "_template", pa.array([k] * data.num_rows, pa.int32())
            )
            pq.write_table(data, templates / f"{name}-{k}.parquet", compression="zstd")
        summaries.append(_calls_summary(con, rolled["calls"], recordings))
    generate_s = time.perf_counter() - t0
    calls_info = {key: round(float(np.mean([c[key] for c in summaries])), 4) for key in summaries[0]}
    log(
        f"BI: calls: {calls_info['rows']:,.0f} rows a day ({calls_info['split_share']:.0%} split 2-channel), "
        f"{calls_info['duration_s']:.0f} s a call, non-talk {calls_info['non_talk_share']:.1%}, overtalk "
        f"{calls_info['overtalk_share']:.1%}; ended angry {calls_info['ended_angry']:,.0f} and escalations "
        f"{calls_info['escalations']:,.0f} a day"
    )
    t1 = time.perf_counter()
    # Every day is one of the templates (day % n_templates), written through the catalog in one INSERT per table.
    with Lake(root).writer() as lake:
        lake.execute("SET threads = 2")
        for name in ("utterances", "recordings", *tables.ROLLUP_SCHEMAS):
            columns = ", ".join(f'"{c}"' for c in tables.SCHEMAS[name].names)
            lake.execute(
                f"INSERT INTO lake.{name} (date, {columns}) "
                f"SELECT (DATE '{FIRST_DATE.isoformat()}' + day::INTEGER) AS date, {columns} "
                f"FROM range({sizes.bi_days}) AS days(day) "
                f"JOIN read_parquet('{(templates / name).as_posix()}-*.parquet') t ON t._template = day % {n_templates}"
            )
        # One bulk INSERT leaves ~27 small files per day and table (one per thread and row group); the daily job
        # writes each day in one commit, a file or two per table. Merged to that, and the superseded files (and
        # their metadata, which every filtered query scans in a SQLite catalog) collected.
        lake.execute("CALL ducklake_merge_adjacent_files('lake')")
    Lake(root).collect_garbage(dt.timedelta(0))
    write_s = time.perf_counter() - t1
    Warehouse(root).refresh()
    size_mb = sum(p.stat().st_size for p in (root / "data").rglob("*.parquet")) / 1e6
    info = {
        "spec": spec,
        "total_rows": sizes.bi_rows_per_day * sizes.bi_days,
        "generate_s": round(generate_s, 1),
        "write_s": round(write_s, 1),
        "per_day_generate_s": round(generate_s / n_templates, 2),
        "lake_mb": round(size_mb, 1),
        "calls_per_day": round(calls_info["rows"]),  # the calls rollup's (and recordings') rows a day
        "calls": calls_info,
        "last_date": (FIRST_DATE + dt.timedelta(days=sizes.bi_days - 1)).isoformat(),
    }
    spec_file.write_text(json.dumps(info))
    log(f"BI lake ready in {generate_s + write_s:.0f} s: {info['total_rows']:,} utterances, {size_mb:.0f} MB")
    return {**info, "cached": False}


def _timed(fn, repeats: int, size=lambda result: result.num_rows) -> tuple[list[float], int]:
    """Wall times of ``repeats`` calls of ``fn`` and the size of its last result (rows of a table by default)."""
    times, last = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = size(fn())
        times.append(time.perf_counter() - t0)
    return times, last


def _summary(times: list[float]) -> dict:
    return {
        "p50_s": round(float(np.percentile(times, 50)), 4),
        "p95_s": round(float(np.percentile(times, 95)), 4),
        "max_s": round(max(times), 4),
        "runs": len(times),
    }


# The confidence filter timed next to each unfiltered query that takes one (`svp query --min-confidence 0.8`).
FILTER_MIN_CONFIDENCE = 0.8


def _label(name: str, min_confidence: float) -> str:
    return f"{name} --min-confidence {min_confidence:g}" if min_confidence else name


def _confidence_filters(query) -> tuple[float, ...]:
    """The min confidences a query is timed at: none (0) and, when it takes the filter, FILTER_MIN_CONFIDENCE."""
    return (0.0, FILTER_MIN_CONFIDENCE) if query.filters_confidence else (0.0,)


def _measured(
    label: str, reads: str, days: int, fn, repeats: int, size=lambda result: result.num_rows
) -> dict:
    """One row of the results: a first (cold) call of ``fn``, then ``repeats`` timed ones, and the load average
    (1, 5, 15 min) as they began, since other work on a shared machine moves every number."""
    load = [round(x, 2) for x in os.getloadavg()]
    first, _ = _timed(fn, 1, size)  # first run: file cache, plan
    times, n = _timed(fn, repeats, size)
    return {
        "query": label,
        "reads": reads,
        "days": days,
        "result_rows": n,
        "first_s": round(first[0], 4),
        **_summary(times),
        "load_before": load,
    }


def run_bi(root: Path, sizes: Sizes) -> dict:
    from sensevoice_pipeline.warehouse.database import Warehouse

    lake = generate(root, sizes)
    warehouse = Warehouse(root)
    last = dt.date.fromisoformat(lake["last_date"])
    rows = _rollup_rows(warehouse, last, sizes)
    rows.extend(_raw_view_rows(warehouse, last, sizes))
    rows.extend(_page_rows(warehouse, last, sizes))
    return {"lake": lake, "queries": rows}


def _date_range(last: dt.date, days: int) -> tuple[dt.date | None, dt.date | None]:
    """The ``days`` days up to ``last``; 0: every date."""
    return (None, None) if days == 0 else (last - dt.timedelta(days=days - 1), last)


def _rollup_rows(warehouse, last: dt.date, sizes: Sizes) -> list[dict]:
    """Every canned query as `svp query` runs it (Warehouse.query: a fresh connection each time), per range, with
    and without the confidence filter."""
    from sensevoice_pipeline.warehouse.queries import QUERIES

    rows = []
    plan = [
        (name, days, min_confidence)
        for name, query in QUERIES.items()
        for days in sizes.bi_rollup_ranges
        for min_confidence in _confidence_filters(query)
    ]
    for name, days, min_confidence in progress(plan, desc="BI queries", unit="query"):

        def ask(name=name, days=days, min_confidence=min_confidence):
            return warehouse.query(name, *_date_range(last, days), min_confidence=min_confidence)

        label, reads = _label(name, min_confidence), QUERIES[name].reads
        rows.append(_measured(label, reads, days or sizes.bi_days, ask, sizes.bi_repeats))
        log(
            f"BI {label:<30} {reads:<24} {days or sizes.bi_days:>4} days: p50 {rows[-1]['p50_s']:.3f} s, "
            f"p95 {rows[-1]['p95_s']:.3f} s ({rows[-1]['result_rows']:,} rows)"
        )
    return rows


# The raw view of a rollup is timed over at most this many days (default: every range of bi_view_ranges): calls
# computed on the fly from the utterances and recordings (turns, overtalk: window functions over every segment) cost
# ~6 s a day of 500,000 utterances and ~41 s a week on 2 cores; 30 days would take ~3 minutes a run.
RAW_VIEW_MAX_DAYS = {"calls": 1, "calls_daily": 1}


def _view_ranges(reads: str, sizes: Sizes) -> list[int]:
    """The ranges (days back; 0: all) a query reading ``reads`` is timed over on the raw view."""
    most = RAW_VIEW_MAX_DAYS.get(reads)
    return [days for days in sizes.bi_view_ranges if most is None or (days or sizes.bi_days) <= most]


def _raw_view_rows(warehouse, last: dt.date, sizes: Sizes) -> list[dict]:
    """What the rollups save: the same questions asked of the utterances view (Query.raw_sql), side by side."""
    from sensevoice_pipeline.warehouse.queries import QUERIES

    rows = []
    for name, query in QUERIES.items():
        for min_confidence in _confidence_filters(query):
            for days in _view_ranges(query.reads, sizes):
                first_date, last_date = _date_range(last, days)
                params = {"from_date": first_date or dt.date.min, "to_date": last_date or dt.date.max}

                def run(sql=query.raw_sql(min_confidence=min_confidence), params=params):  # noqa: B008 (bound per loop)
                    con = warehouse.connect()
                    try:
                        return con.execute(sql, params).to_arrow_table()  # as Warehouse.query runs its SQL
                    finally:
                        con.close()

                label = f"{_label(name, min_confidence)} (raw view)"
                rows.append(_measured(label, "utterances", days or sizes.bi_days, run, sizes.bi_view_repeats))
                log(f"BI {label}, {days or sizes.bi_days} days: p50 {rows[-1]['p50_s']:.3f} s")
    return rows


def _page_rows(warehouse, last: dt.date, sizes: Sizes) -> list[dict]:
    """The plugin page's first paint: its data and its HTML, as the api-server builds them per request (the
    default range, 30 days to the latest date, and a whole year)."""
    from sensevoice_pipeline.ui.page_data import Params, load_dashboard
    from sensevoice_pipeline.ui.page_html import render_page

    rows = []
    year = Params(last - dt.timedelta(days=min(sizes.bi_days, 365) - 1), last)
    for label, params in (("page (default range)", Params()), ("page (a year)", year)):

        def paint(params=params) -> str:
            return render_page(load_dashboard(warehouse, Path("/nonexistent-model-repository"), params))

        days = (params.date_to - params.date_from).days + 1 if params.date_to else 30
        rows.append(_measured(label, "page", days, paint, sizes.bi_view_repeats, size=len))  # bytes of HTML
        log(
            f"BI {label}: first {rows[-1]['first_s']:.3f} s, p50 {rows[-1]['p50_s']:.3f} s "
            f"({rows[-1]['result_rows']:,} bytes of HTML)"
        )
    return rows
