"""The plugin page's data: its request parameters, checked, and everything it shows for them (``load_dashboard``).

Data comes from the lake's DuckDB warehouse, on one connection: the canned emotion-trend and model-usage queries
(``warehouse.queries``, reading rollups), the recent runs, the angriest calls and the failed recordings (these two
link to a call's timeline, ``timeline``), all with bound parameters; and from the model repository
(``page_models``). The HTML is ``page_html``'s. No Airflow import here: ``plugins/sensevoice_plugin.py``
mounts the page in the api-server and adds the login.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sensevoice_pipeline.errors import InputError
from sensevoice_pipeline.ui.page_models import ModelRow, model_rows, version_label
from sensevoice_pipeline.warehouse.database import Warehouse, WarehouseError
from sensevoice_pipeline.warehouse.queries import GROUP_BY, MIN_CONFIDENCES, QUERIES, check_min_confidence
from sensevoice_pipeline.warehouse.versions import DAY_VERSIONS_SQL

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
GROUPINGS = tuple(GROUP_BY)  # language, channel
DEFAULT_DAYS = 30
MAX_DAYS = 731  # the widest range one page shows (the chart has one bar slot per day)
ROW_LIMIT = 50

RECENT_RUNS_SQL = """
SELECT date, run_id, started_at, finished_at, files, files_ok, files_failed, utterances, speech_seconds,
       model_versions
FROM runs
WHERE date BETWEEN $from_date AND $to_date
ORDER BY finished_at DESC NULLS LAST, date DESC, run_id
LIMIT $limit
"""

# recording_id: each row links to its timeline (ui/timeline.py) by the recording's id, not its path
FAILED_RECORDINGS_SQL = """
SELECT date, recording_id, source_path, format, size_bytes, error, run_id, processed_at,
       count(*) OVER () AS total
FROM recordings
WHERE status = 'failed' AND date BETWEEN $from_date AND $to_date
ORDER BY date DESC, source_path
LIMIT $limit
"""

# The canned angry-calls question's order (warehouse/queries.py), with the recording's id for the timeline link
ANGRY_CALLS_SQL = """
SELECT date, recording_id, source_path, channel, angry_segments, segments, angry_share, angry_text,
       count(*) OVER () AS total
FROM angry_calls
WHERE date BETWEEN $from_date AND $to_date
ORDER BY angry_share DESC, angry_segments DESC, date DESC, source_path, channel
LIMIT $limit
"""

LATEST_DATE_SQL = "SELECT max(date) FROM {table}"  # table names come from a fixed tuple, never from a request


class DashboardParamError(InputError, ValueError):
    """A request parameter the page refuses: an input fault of the request (HTTP 422, ``errors.http_status``)."""


@dataclass(frozen=True)
class Params:
    date_from: dt.date | None = None  # None: DEFAULT_DAYS before date_to
    date_to: dt.date | None = None  # None: the latest date in the lake (today when it is empty)
    by: str = "language"
    min_confidence: float = 0.0  # the trend counts utterances whose emotion confidence is at least this

    @classmethod
    def parse(
        cls,
        date_from: str | None = None,
        date_to: str | None = None,
        by: str = "language",
        min_confidence: str | None = None,
    ) -> Params:
        if by not in GROUPINGS:
            raise DashboardParamError(f"by: expected one of {', '.join(GROUPINGS)}")
        params = cls(
            parse_date(date_from, "from"), parse_date(date_to, "to"), by, parse_min_confidence(min_confidence)
        )
        if params.date_from and params.date_to:
            check_range(params.date_from, params.date_to)
        return params


def parse_date(value: str | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(DATE_PATTERN, value):
        raise DashboardParamError(f"{name}: expected a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise DashboardParamError(f"{name}: not a calendar date ({exc})") from None


def parse_min_confidence(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        return check_min_confidence(float(value))
    except ValueError:
        raise DashboardParamError(
            f"min_confidence: expected one of {', '.join(f'{c:g}' for c in MIN_CONFIDENCES)}"
        ) from None


def check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_from > date_to:
        raise DashboardParamError("from: must not be after to")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise DashboardParamError(f"the range is longer than {MAX_DAYS} days")


@dataclass
class Dashboard:
    date_from: dt.date
    date_to: dt.date
    by: str
    lake_root: Path
    model_repository: Path
    trend: list[dict] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    failed_total: int = 0
    # the angriest calls x channels (the angry_calls rollup), each linking to its timeline
    angry: list[dict] = field(default_factory=list)
    angry_total: int = 0
    models: list[ModelRow] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)  # that transcribed utterances dated in the range
    day_versions: dict = field(default_factory=dict)  # date -> the version(s) that scored it, comma-separated
    serving: dict | None = None
    notes: list[str] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    min_confidence: float = 0.0


def load_dashboard(
    warehouse: Warehouse,
    model_repository: str | Path,
    params: Params,
    limit: int = ROW_LIMIT,
    today: dt.date | None = None,
) -> Dashboard:
    """Everything the page shows. A missing warehouse or table gives a note and an empty section, not an error."""
    notes: list[str] = []
    con = None
    try:
        con = warehouse.connect()
    except (WarehouseError, duckdb.Error) as exc:
        notes.append(f"No warehouse yet: {exc}")
    try:
        date_from, date_to = _date_range(con, params, today)
        board = Dashboard(
            date_from,
            date_to,
            params.by,
            warehouse.lake_root,
            Path(model_repository),
            notes=notes,
            min_confidence=params.min_confidence,
        )
        usage = _load_tables(board, con, limit) if con is not None else []
    finally:
        if con is not None:
            con.close()
    board.models, board.serving = model_rows(Path(model_repository), usage, notes)
    return board


def _date_range(
    con: duckdb.DuckDBPyConnection | None, params: Params, today: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The range the page shows: the one asked for, its open ends filled in."""
    date_from, date_to = params.date_from, params.date_to
    if date_to is None:  # the latest published day (today on an empty lake), never before `from`
        date_to = (_latest_date(con) if con else None) or today or dt.date.today()
        if date_from is not None:
            date_to = min(max(date_to, date_from), date_from + dt.timedelta(days=MAX_DAYS - 1))
    if date_from is None:
        date_from = date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    check_range(date_from, date_to)
    return date_from, date_to


def _load_tables(board: Dashboard, con: duckdb.DuckDBPyConnection, limit: int) -> list[dict]:
    """Fills the board's trend, runs and failed recordings; returns the range's utterances per model version."""
    bounds = {"from_date": board.date_from, "to_date": board.date_to}
    notes = board.notes
    # the canned queries, on the page's one connection: they read the rollups, so a year costs what a day does
    trend_sql = QUERIES["emotion-trend"].render(board.by, board.min_confidence)
    board.trend = _rows(con, trend_sql, bounds, "emotion rollups", notes)
    board.runs = _rows(con, RECENT_RUNS_SQL, {**bounds, "limit": limit}, "runs", notes)
    board.failed = _rows(con, FAILED_RECORDINGS_SQL, {**bounds, "limit": limit}, "recordings", notes)
    board.failed_total = int(board.failed[0]["total"]) if board.failed else 0
    board.angry = _rows(con, ANGRY_CALLS_SQL, {**bounds, "limit": limit}, "angry calls", notes)
    board.angry_total = int(board.angry[0]["total"]) if board.angry else 0
    usage = _rows(con, QUERIES["model-usage"].render(), bounds, "model usage rollups", notes)
    board.model_versions = [version_label(u["model_version"]) for u in usage]
    day_versions = _rows(con, DAY_VERSIONS_SQL, bounds, "model usage", [])
    board.day_versions = {r["date"]: r["model_version"] for r in day_versions}
    return usage


def _latest_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    for table in ("runs", "emotion_daily"):
        try:
            latest = con.sql(LATEST_DATE_SQL.format(table=table)).fetchall()[0][0]
        except duckdb.CatalogException:
            continue
        if latest is not None:
            return latest
    return None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict, table: str, notes: list[str]) -> list[dict]:
    try:
        return (
            con.execute(sql, params).to_arrow_table().to_pylist()
        )  # as Warehouse.query: no materialized relation
    except duckdb.CatalogException:
        notes.append(f"No {table} published yet.")
        return []
