"""BI latency: a synthetic year of `utterances` and `emotion_daily` in the lake's layout, and the canned queries of
sensevoice_pipeline.warehouse.database timed through Warehouse.query (a fresh read-only connection per query, as `svp query`
and the dashboard do).

Generating 500,000 rows a day costs about a second per day here, so ``bi_templates`` distinct days are generated
(DuckDB, seeded) and copied round-robin onto the year: every partition is a real file of the full size, the query
cost is that of distinct data, only the values repeat weekly. The rollups of each template are made with
tables.rollups, the code the daily job's publish step uses.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import numpy as np

from .common import Sizes, log, progress

FIRST_DATE = dt.date(2025, 1, 1)
SPEC_VERSION = 3  # 2: the lake is a DuckLake catalog; 3: every rollup of tables.ROLLUP_SCHEMAS
PHRASES = [
    "thank you for calling, how can i help", "i want a refund", "where is my order", "the invoice is wrong",
    "can you help me with my account", "my card was charged twice", "please hold on a moment",
    "i have been waiting for an hour", "this is unacceptable", "great, thanks a lot", "could you spell that",
    "the delivery never arrived", "i would like to cancel", "is there anything else", "have a nice day",
    "我要退款", "谢谢你", "我的订单在哪里", "お願いします", "ありがとうございました", "감사합니다", "환불해 주세요",
    "唔該晒", "我想取消",
]
# emotion shares in percent (cumulative bounds in the SQL below); events likewise
EMOTIONS = [("neutral", 68), ("happy", 10), ("sad", 6), ("angry", 5), ("surprised", 3), ("fearful", 2),
            ("disgusted", 1), ("unknown", 5)]
EVENTS = [("speech", 85), ("music", 4), ("laughter", 3), ("cough", 2), ("applause", 1), ("breath", 2),
          ("unknown", 3)]
LANGS = [("en", 40), ("zh", 25), ("yue", 10), ("ja", 12), ("ko", 8), ("nospeech", 5)]


def _case(column_hash: str, choices: list[tuple[str, int]]) -> str:
    bound, parts = 0, []
    for value, share in choices:
        bound += share
        parts.append(f"WHEN {column_hash} < {bound} THEN '{value}'")
    return "CASE " + " ".join(parts) + f" ELSE '{choices[-1][0]}' END"


def _template_sql(rows: int, seed: int, date: str) -> str:
    # ~10 segments per recording, two channels; values from independent hash bits of (row, seed).
    return f"""
        WITH base AS (
            SELECT i, i // 10 AS rec, i % 10 AS seg, (hash(i, {seed}) >> 1)::BIGINT AS h
            FROM range({rows}) t(i)
        ), phr AS (SELECT ?::VARCHAR[] AS p)
        SELECT
            printf('%016x%04x', hash(rec, {seed}), {seed}) AS recording_id,
            'date={date}/queue-' || (rec % 7)::VARCHAR || '/call-' || rec::VARCHAR || '.wav' AS source_path,
            (h % 2)::SMALLINT AS channel,
            seg::INTEGER AS segment_index,
            seg * 9.0 AS start_s,
            seg * 9.0 + 1.0 + (h % 2900) / 100.0 AS end_s,
            {_case('(h >> 8) % 100', LANGS)} AS language,
            CASE WHEN rec % 3 = 0 THEN 'auto' ELSE {_case('(h >> 8) % 100', LANGS)} END AS language_hint,
            {_case('(h >> 16) % 100', EMOTIONS)} AS emotion,
            {_case('(h >> 24) % 100', EVENTS)} AS event,
            true AS itn,
            p[1 + (h >> 32) % len(p)] AS text,
            '<|en|><|NEUTRAL|><|Speech|><|withitn|>' || p[1 + (h >> 32) % len(p)] AS raw_text,
            'sensevoice' AS model_name,
            '1' AS model_version,
            'bench-{date}' AS run_id,
            TIMESTAMPTZ '{date} 23:00:00+00' AS processed_at
        FROM base, phr
    """


def _with_missing_columns(table, schema):
    """Columns of ``schema`` the generator does not make (e.g. the confidences of issue 18) as nulls, in the
    schema's order: what a model version without them writes."""
    import pyarrow as pa

    columns = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def generate(root: Path, sizes: Sizes) -> dict:
    """The lake under ``root`` (cached: a spec file says what it holds)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sensevoice_pipeline.lake import tables
    from sensevoice_pipeline.lake.catalog import Lake
    from sensevoice_pipeline.warehouse.database import Warehouse

    spec = {"version": SPEC_VERSION, "rows_per_day": sizes.bi_rows_per_day, "days": sizes.bi_days,
            "templates": sizes.bi_templates}
    spec_file = root / "spec.json"
    if spec_file.is_file() and json.loads(spec_file.read_text()).get("spec") == spec:
        info = json.loads(spec_file.read_text())
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
    log(f"BI: generating {n_templates} distinct days of {sizes.bi_rows_per_day:,} utterances ...")
    for k in range(n_templates):
        date = (FIRST_DATE + dt.timedelta(days=k)).isoformat()
        table = con.sql(_template_sql(sizes.bi_rows_per_day, k + 1, date), params=[PHRASES]).to_arrow_table()
        table = _with_missing_columns(table, tables.UTTERANCES).cast(tables.UTTERANCES)
        for name, data in (("utterances", table), *tables.rollups(table).items()):
            data = data.cast(tables.SCHEMAS[name]).append_column("_template", pa.array([k] * data.num_rows, pa.int32()))
            pq.write_table(data, templates / f"{name}-{k}.parquet", compression="zstd")
    generate_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    # Every day is one of the templates (day % n_templates), written through the catalog in one INSERT per table.
    with Lake(root).writer() as lake:
        lake.execute("SET threads = 2")
        for name in ("utterances", *tables.ROLLUP_SCHEMAS):
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
    return {"p50_s": round(float(np.percentile(times, 50)), 4), "p95_s": round(float(np.percentile(times, 95)), 4),
            "max_s": round(max(times), 4), "runs": len(times)}


def run_bi(root: Path, sizes: Sizes) -> dict:
    from sensevoice_pipeline.warehouse.database import Warehouse
    from sensevoice_pipeline.warehouse.queries import QUERIES

    lake = generate(root, sizes)
    warehouse = Warehouse(root)
    last = dt.date.fromisoformat(lake["last_date"])
    rows = []

    def date_range(days: int):
        return (None, None) if days == 0 else (last - dt.timedelta(days=days - 1), last)

    plan = [(name, days) for name in QUERIES for days in sizes.bi_rollup_ranges]
    for name, days in progress(plan, desc="BI queries", unit="query"):
        first, _ = _timed(lambda: warehouse.query(name, *date_range(days)), 1)  # first run: file cache, plan
        times, n = _timed(lambda: warehouse.query(name, *date_range(days)), sizes.bi_repeats)
        rows.append({"query": name, "reads": QUERIES[name].reads, "days": days or sizes.bi_days, "result_rows": n,
                     "first_s": round(first[0], 4), **_summary(times)})
        log(f"BI {name:<14} {QUERIES[name].reads:<17} {days or sizes.bi_days:>4} days: p50 {rows[-1]['p50_s']:.3f} s, "
            f"p95 {rows[-1]['p95_s']:.3f} s ({n:,} rows)")

    # what the rollups save: the same questions asked of the utterances view (Query.raw_sql), side by side
    for name, query in QUERIES.items():
        for days in sizes.bi_view_ranges:
            first_date, last_date = date_range(days)
            params = {"from_date": first_date or dt.date.min, "to_date": last_date or dt.date.max}

            def run(sql=query.raw_sql(), params=params):
                con = warehouse.connect()
                try:
                    return con.sql(sql, params=params).to_arrow_table()
                finally:
                    con.close()

            first, _ = _timed(run, 1)
            times, n = _timed(run, sizes.bi_view_repeats)
            rows.append({"query": f"{name} (raw view)", "reads": "utterances", "days": days or sizes.bi_days,
                         "result_rows": n, "first_s": round(first[0], 4), **_summary(times)})
            log(f"BI {name} from the utterances view, {days or sizes.bi_days} days: p50 {rows[-1]['p50_s']:.3f} s")
    rows.extend(_page_rows(warehouse, last, sizes))
    return {"lake": lake, "queries": rows}


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

        first, _ = _timed(paint, 1, size=len)
        times, size = _timed(paint, sizes.bi_view_repeats, size=len)  # bytes of HTML
        rows.append({"query": label, "reads": "page", "days": (params.date_to - params.date_from).days + 1
                     if params.date_to else 30, "result_rows": size, "first_s": round(first[0], 4),
                     **_summary(times)})
        log(f"BI {label}: first {rows[-1]['first_s']:.3f} s, p50 {rows[-1]['p50_s']:.3f} s ({size:,} bytes of HTML)")
    return rows
