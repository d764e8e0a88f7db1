"""Model versions side by side: the lake as each version scored it.

A re-score (`svp rescore`, jobs/rescore.py) keeps the snapshot it is about to supersede (Lake.keep_snapshot), so
the old version's rows stay readable after the garbage-collection grace. ``resolve_snapshot`` turns `svp query
--as-of SNAPSHOT|NAME` and `--model-version N` into a snapshot id; ``model_compare`` reads the emotion rollup in the
current lake and in every kept snapshot, and gives each emotion's share per model version over the dates every
version scored.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from sensevoice_pipeline.warehouse.database import Warehouse, WarehouseError, as_date

# Which model version scored each date of the range; a date scored by several (a partial re-run) has them joined
# with commas. The page's trend marker reads it too.
DAY_VERSIONS_SQL = """
    SELECT date, string_agg(DISTINCT model_version, ',' ORDER BY model_version) AS model_version
    FROM model_usage_daily WHERE date BETWEEN $from_date AND $to_date GROUP BY date ORDER BY date
"""
# One source's (the current lake's, or a kept snapshot's) utterances per date, model version and emotion.
_PER_DATE_SQL = f"""
    WITH days AS ({DAY_VERSIONS_SQL})
    SELECT e.date, d.model_version, e.emotion, sum(e.utterances)::BIGINT AS utterances
    FROM emotion_daily e JOIN days d USING (date)
    WHERE e.date BETWEEN $from_date AND $to_date
    GROUP BY ALL
"""
# Each (date, version) from the newest source that has it; then only the dates every version scored.
_COMPARE_SQL = """
    WITH picked AS (
        SELECT * FROM per_date
        QUALIFY source = min(source) OVER (PARTITION BY date, model_version)
    ),
    common AS (
        SELECT date FROM picked GROUP BY date
        HAVING count(DISTINCT model_version) = (SELECT count(DISTINCT model_version) FROM picked)
    )
    SELECT model_version, emotion, sum(utterances)::BIGINT AS utterances,
           round(sum(utterances) / sum(sum(utterances)) OVER (PARTITION BY model_version), 3) AS share,
           count(DISTINCT date)::BIGINT AS days, min(date) AS first_date, max(date) AS last_date
    FROM picked SEMI JOIN common USING (date)
    GROUP BY model_version, emotion
    ORDER BY model_version, utterances DESC, emotion
"""


def kept_snapshots(warehouse: Warehouse, now: dt.datetime | None = None) -> list[dict]:
    """The lake's kept snapshots still kept, newest first."""
    now = now or dt.datetime.now(dt.UTC)
    return [s for s in warehouse.lake.kept_snapshots() if s["kept_until"] > now]


def resolve_snapshot(
    warehouse: Warehouse, as_of: str | None = None, model_version: str | None = None
) -> int | None:
    """The snapshot `--as-of` (an id, or a kept snapshot's name) or `--model-version` (the newest kept snapshot
    that version scored, else the current lake when it holds that version's rows) names; None: the current lake."""
    if as_of and model_version:
        raise WarehouseError("give --as-of or --model-version, not both")
    kept = kept_snapshots(warehouse)
    if as_of:
        if str(as_of).isdigit():
            return int(as_of)
        named = [s["snapshot_id"] for s in kept if s["name"] == as_of]
        if not named:
            raise WarehouseError(f"no kept snapshot named {as_of!r}; kept: {_listed(kept)}")
        return named[0]
    if model_version:
        version = str(model_version)
        for snapshot in kept:
            if version in snapshot["model_versions"].split(","):
                return snapshot["snapshot_id"]
        current = _current_versions(warehouse)
        if version in current:
            return None
        raise WarehouseError(
            f"no rows of model version {version}: the lake holds {', '.join(current) or 'none'}"
            f"; kept snapshots: {_listed(kept)}"
        )
    return None


def model_compare(
    warehouse: Warehouse, date_from: dt.date | str | None = None, date_to: dt.date | str | None = None
) -> pa.Table:
    """Each emotion's utterances and share per model version, over the dates of the range every version scored
    (the current lake first, then each kept snapshot, newest first; a date and version read from the first that
    has it)."""
    params = {"from_date": as_date(date_from, dt.date.min), "to_date": as_date(date_to, dt.date.max)}
    sources = [None, *(s["snapshot_id"] for s in kept_snapshots(warehouse))]
    tables = []
    for rank, snapshot in enumerate(sources):
        con = warehouse.connect(snapshot)
        try:
            rows = con.execute(_PER_DATE_SQL, params).to_arrow_table()
        except duckdb.CatalogException as exc:
            raise WarehouseError(f"model-compare: the tables it reads have no data yet ({exc})") from exc
        finally:
            con.close()
        tables.append(rows.append_column("source", pa.array([rank] * rows.num_rows, pa.int32())))
    con = duckdb.connect()
    try:
        con.register("per_date", pa.concat_tables(tables))
        return con.execute(_COMPARE_SQL).to_arrow_table()
    finally:
        con.close()


def _current_versions(warehouse: Warehouse) -> list[str]:
    con = warehouse.connect()
    try:
        return [
            r[0]
            for r in con.execute("SELECT DISTINCT model_version FROM model_usage_daily ORDER BY 1").fetchall()
        ]
    finally:
        con.close()


def _listed(kept: list[dict]) -> str:
    return (
        ", ".join(f"{s['name']} ({s['snapshot_id']}: version {s['model_versions']})" for s in kept) or "none"
    )
