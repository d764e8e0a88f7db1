"""The SenseVoice page of the Airflow UI: its data and its HTML.

Data comes from the lake's DuckDB warehouse (the canned emotion-trend query of ``warehouse.py``, plus the recent
runs, the failed recordings and the model versions used, all with bound parameters) and from the model repository
(``$SVP_MODEL_REPOSITORY``, default ``model_repository``). The HTML is one self-contained page: an inline SVG chart,
tables, a GET form for the dates, and the "Try a clip" form (a plain multipart POST to ``clip``, answered by
``render_clip_page`` with what ``clip_check`` found); no script, no external resource; every value from data goes
through ``html.escape``. It says what
it shows (the dates, the model versions that transcribed them, the failed files with a link to their reasons) and
never a filesystem path of the server (``redact``). The chart's emotion colours are ``report.EMOTION_COLORS``, the
PNG charts' own.

No Airflow import here: ``plugins/sensevoice_plugin.py`` mounts this page in the api-server and adds the login.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb

from sensevoice_pipeline.ui.clip import ACCEPT, MAX_CLIP_SECONDS, MAX_SEGMENT_S, MAX_UPLOAD_BYTES, ClipResult
from sensevoice_pipeline.speech.languages import LANGUAGES
from sensevoice_pipeline.warehouse.report import emotion_colors, emotion_order
from sensevoice_pipeline.serving.repository import ModelRepository
from sensevoice_pipeline.warehouse.database import GROUP_BY, Warehouse, WarehouseError

MODEL_REPOSITORY_ENV = "SVP_MODEL_REPOSITORY"
DEFAULT_MODEL_REPOSITORY = "model_repository"
SERVING_FILE = "serving.json"  # optional: written by the serving side when it pins versions; shown when present

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
GROUPINGS = tuple(GROUP_BY)  # language, channel
DEFAULT_DAYS = 30
MAX_DAYS = 731  # the widest range one page shows (the chart has one bar slot per day)
ROW_LIMIT = 50
MAX_PANELS = 8  # chart panels (one per language / channel); the rest are listed as left out

# Strict enough for a page that has no script: nothing loads from anywhere, forms post back to the page only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


RECENT_RUNS_SQL = """
SELECT date, run_id, started_at, finished_at, files, files_ok, files_failed, utterances, speech_seconds,
       model_versions
FROM runs
WHERE date BETWEEN $from_date AND $to_date
ORDER BY finished_at DESC NULLS LAST, date DESC, run_id
LIMIT $limit
"""

FAILED_RECORDINGS_SQL = """
SELECT date, source_path, format, size_bytes, error, run_id, processed_at, count(*) OVER () AS total
FROM recordings
WHERE status = 'failed' AND date BETWEEN $from_date AND $to_date
ORDER BY date DESC, source_path
LIMIT $limit
"""

MODEL_USAGE_SQL = """
SELECT model_version, count(*)::BIGINT AS utterances, min(date) AS first_date, max(date) AS last_date
FROM utterances
WHERE date BETWEEN $from_date AND $to_date
GROUP BY model_version
ORDER BY model_version
"""

LATEST_DATE_SQL = "SELECT max(date) FROM {table}"  # table names come from a fixed tuple, never from a request


class DashboardParamError(ValueError):
    """A request parameter the page refuses (shown as HTTP 422 by the plugin)."""


@dataclass(frozen=True)
class Params:
    date_from: dt.date | None = None  # None: DEFAULT_DAYS before date_to
    date_to: dt.date | None = None  # None: the latest date in the lake (today when it is empty)
    by: str = "language"

    @classmethod
    def parse(cls, date_from: str | None = None, date_to: str | None = None, by: str = "language") -> "Params":
        if by not in GROUPINGS:
            raise DashboardParamError(f"by: expected one of {', '.join(GROUPINGS)}")
        params = cls(parse_date(date_from, "from"), parse_date(date_to, "to"), by)
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


def check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_from > date_to:
        raise DashboardParamError("from: must not be after to")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise DashboardParamError(f"the range is longer than {MAX_DAYS} days")


@dataclass
class ModelRow:
    version: str
    status: str
    role: str = ""  # from serving.json when there is one: serving, previous, staged, retired
    precision: str = ""
    target_device: str = ""
    exporter: str = ""
    parameters: str = ""
    source: str = ""
    exported_at: str = ""
    parity: str = ""
    utterances: int | None = None  # transcribed with this version in the date range
    dates: str = ""


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
    models: list[ModelRow] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)  # that transcribed utterances dated in the range
    serving: dict | None = None
    notes: list[str] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


# -- data --------------------------------------------------------------------------------------------------------------


def model_repository_path() -> Path:
    return Path(os.environ.get(MODEL_REPOSITORY_ENV) or DEFAULT_MODEL_REPOSITORY)


def load_dashboard(warehouse: Warehouse, model_repository: str | Path, params: Params,
                   limit: int = ROW_LIMIT, today: dt.date | None = None) -> Dashboard:
    """Everything the page shows. A missing warehouse or table gives a note and an empty section, not an error."""
    notes: list[str] = []
    con = None
    try:
        con = warehouse.connect()
    except (WarehouseError, duckdb.Error) as exc:
        notes.append(f"No warehouse yet: {exc}")
    try:
        date_from, date_to = params.date_from, params.date_to
        if date_to is None:  # the latest published day (today on an empty lake), never before `from`
            date_to = (_latest_date(con) if con else None) or today or dt.date.today()
            if date_from is not None:
                date_to = min(max(date_to, date_from), date_from + dt.timedelta(days=MAX_DAYS - 1))
        if date_from is None:
            date_from = date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
        check_range(date_from, date_to)
        board = Dashboard(date_from, date_to, params.by, warehouse.lake_root, Path(model_repository), notes=notes)
        bounds = {"from_date": date_from, "to_date": date_to}
        usage: list[dict] = []
        if con is not None:
            board.trend = _trend(warehouse, bounds, params.by, notes)
            board.runs = _rows(con, RECENT_RUNS_SQL, {**bounds, "limit": limit}, "runs", notes)
            board.failed = _rows(con, FAILED_RECORDINGS_SQL, {**bounds, "limit": limit}, "recordings", notes)
            board.failed_total = int(board.failed[0]["total"]) if board.failed else 0
            usage = _rows(con, MODEL_USAGE_SQL, bounds, "utterances", notes)
            board.model_versions = [_version_label(u["model_version"]) for u in usage]
    finally:
        if con is not None:
            con.close()
    board.models, board.serving = _models(Path(model_repository), usage, notes)
    return board


def _latest_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    for table in ("runs", "emotion_daily"):
        try:
            latest = con.sql(LATEST_DATE_SQL.format(table=table)).fetchall()[0][0]
        except duckdb.CatalogException:
            continue
        if latest is not None:
            return latest
    return None


def _trend(warehouse: Warehouse, bounds: dict, by: str, notes: list[str]) -> list[dict]:
    try:
        return warehouse.query("emotion-trend", bounds["from_date"], bounds["to_date"], by=by).to_pylist()
    except WarehouseError:
        notes.append("No emotion rollups published yet (emotion_daily).")
        return []


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict, table: str, notes: list[str]) -> list[dict]:
    try:
        return con.sql(sql, params=params).to_arrow_table().to_pylist()
    except duckdb.CatalogException:
        notes.append(f"No {table} published yet.")
        return []


def _models(path: Path, usage: list[dict], notes: list[str]) -> tuple[list[ModelRow], dict | None]:
    repo = ModelRepository(path)
    used = {_version_label(u["model_version"], ""): u for u in usage}
    rows = []
    if not path.is_dir():
        notes.append(f"No model repository at the configured path (set {MODEL_REPOSITORY_ENV}).")  # path not shown
    for version in repo.versions():
        info = repo.version_info(version)
        meta = info.meta if isinstance(info.meta, dict) else {}
        parity = meta.get("parity") or {}
        source = meta.get("source") or {}
        params = (meta.get("architecture") or {}).get("parameters")
        row = ModelRow(
            version=str(version),
            status="complete" if info.complete else "incomplete: " + "; ".join(info.problems),
            precision=str(meta.get("precision", "")),
            target_device=str(meta.get("target_device", "")),
            exporter=" ".join(str(x) for x in (meta.get("exporter", ""), _opset(meta)) if x),
            parameters=f"{params / 1e6:.1f} M" if isinstance(params, (int, float)) else "",
            source=str(source.get("model", "")) if isinstance(source, dict) else "",
            exported_at=_when(meta.get("exported_at")),
            parity=_parity(parity) if isinstance(parity, dict) else "",
        )
        _add_usage(row, used.pop(str(version), None))
        rows.append(row)
    for version, u in sorted(used.items()):  # transcribed by a version this repository does not hold
        row = ModelRow(version=version or "(none)", status="not in this repository")
        _add_usage(row, u)
        rows.append(row)
    serving = _serving(path / SERVING_FILE)
    roles = _roles(serving or {})
    for row in rows:
        row.role = roles.get(row.version, "")
    return rows, serving


def _version_label(value: Any, none: str = "(none)") -> str:
    return none if value is None else str(value)


def _when(value: Any) -> str:
    """An ISO timestamp as UTC ``YYYY-MM-DD HH:MM:SS``; anything else as its text."""
    try:
        return _text(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return _text(value)


def _roles(serving: dict) -> dict[str, str]:
    """Version -> role, for the keys a serving record of the release tooling has (others are ignored)."""
    roles: dict[str, str] = {}
    for key in ("retired", "staged", "previous", "serving"):  # the later wins for a version named twice
        value = serving.get(key)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, str)) and not isinstance(v, bool) and str(v):
                roles[str(v)] = key
    return roles


def _opset(meta: dict) -> str:
    return f"opset {meta['opset']}" if meta.get("opset") is not None else ""


def _parity(p: dict) -> str:
    parts = []
    if isinstance(p.get("max_abs"), (int, float)):
        parts.append(f"max abs {p['max_abs']:.1e}")
    if isinstance(p.get("min_cosine"), (int, float)):
        parts.append(f"cosine {p['min_cosine']:.6f}")
    if isinstance(p.get("argmax_agreement"), (int, float)):
        parts.append(f"argmax {p['argmax_agreement']:.2%}")
    if "passed" in p:
        parts.append("passed" if p["passed"] else "FAILED")
    return ", ".join(parts)


def _add_usage(row: ModelRow, usage: dict | None) -> None:
    if usage:
        row.utterances = int(usage["utterances"])
        first, last = usage["first_date"], usage["last_date"]
        row.dates = str(first) if first == last else f"{first} – {last}"


def _serving(path: Path) -> dict | None:
    """``serving.json`` when another part of the product writes one; its top-level entries, shown as text."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else {"value": data}


# -- HTML -------------------------------------------------------------------------------------------------------------


# An absolute POSIX path inside a text (an error message, a note): one or more folders and a last part. Not a URL's
# path (``s3://b/k``, ``http://h/p``) nor a relative one (``calls/a.wav``): the character before the slash decides.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~\]-])/(?:[^\s/'\"<>;,()\[\]{}]+/)+([^\s/'\"<>;,()\[\]{}]*)")


def redact(text: Any, roots: dict[str, Any] | None = None) -> str:
    """``text`` without server paths: a known root (the lake, the model repository) becomes its name in brackets,
    any other absolute path its last part (``…/call.wav``). The page shows no filesystem path of the server."""
    out = _text(text)
    for name, root in (roots or {}).items():
        if not isinstance(root, (str, os.PathLike)):  # an s3:// lake (storage.ObjectPath): not a server path
            continue
        forms = {str(p).rstrip("/") for p in (Path(root), Path(root).resolve()) if p.is_absolute()}
        for form in sorted(forms - {""}, key=len, reverse=True):
            out = out.replace(form, f"[{name}]")
    return ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(1) if m.group(1) else "…/", out)


def esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    numeric: bool = False
    get: Callable[[Any], Any] | None = None
    wrap: bool = False  # long free text (a reason, a status) wraps; every other cell stays on one line


def render_table(columns: list[Column], rows: list, empty: str, css_class: str = "") -> str:
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f'<th{" class=num" if c.numeric else ""}>{esc(c.title)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = c.get(row) if c.get else (row.get(c.key) if isinstance(row, dict) else getattr(row, c.key))
            cls = " class=num" if c.numeric else " class=wrap" if c.wrap else ""
            cells.append(f"<td{cls}>{esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'  # a table wider than the window scrolls by itself, not the page


def _duration(row: dict) -> str:
    start, end = row.get("started_at"), row.get("finished_at")
    if not (isinstance(start, dt.datetime) and isinstance(end, dt.datetime)):
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


RUN_COLUMNS = [
    Column("date", "date"), Column("run_id", "run"), Column("finished_at", "finished (UTC)"),
    Column("duration", "took", get=_duration), Column("files", "files", True), Column("files_ok", "ok", True),
    Column("files_failed", "failed", True), Column("utterances", "utterances", True),
    Column("speech_seconds", "speech s", True), Column("model_versions", "model versions", wrap=True),
]
FAILED_COLUMNS = [
    Column("date", "date"), Column("source_path", "file", wrap=True), Column("format", "format"),
    Column("size_bytes", "bytes", True), Column("error", "reason", wrap=True), Column("run_id", "run"),
]
MODEL_COLUMNS = [  # what the range used first: a narrow window scrolls the table to the export details
    Column("version", "version"), Column("role", "role"), Column("status", "status", wrap=True),
    Column("utterances", "utterances in range", True), Column("dates", "used on"), Column("precision", "precision"),
    Column("target_device", "device"), Column("parameters", "parameters"), Column("exporter", "exporter", wrap=True),
    Column("source", "checkpoint"), Column("exported_at", "exported (UTC)"),
    Column("parity", "parity check", wrap=True),
]


def _group_label(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _nice_step(peak: int) -> int:
    """The y axis' step for a panel whose tallest bar is ``peak``: a whole number, at least half of ``peak``, round
    (1, 2, 5, 12, 15, 25, 40, 600, ...) so that the labels 0, step, 2 * step are exact and easy to read."""
    half = max(1, -(-int(peak) // 2))
    if half <= 10:
        return half
    mag = 10 ** (len(str(half)) - 1)
    return next(int(m * mag) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= half)


def trend_svg(rows: list[dict], by: str, date_from: dt.date, date_to: dt.date, width: int = 1160) -> str:
    """Stacked bars of utterances per day and emotion, one panel per language (or channel), every day of the range
    on the x axis (days without data stay empty). Each bar segment has a tooltip with its count and share."""
    if not rows:
        return '<p class="empty">No utterances in this date range.</p>'
    days = [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    emotions = emotion_order(r["emotion"] for r in rows)
    colors = emotion_colors(emotions)  # the PNG charts' colours (report.EMOTION_COLORS)
    totals: dict[str, int] = {}
    cells: dict[tuple[str, int], dict[str, dict]] = {}
    for r in rows:
        group = _group_label(r[by])
        totals[group] = totals.get(group, 0) + int(r["utterances"])
        cells.setdefault((group, index[r["date"]]), {})[r["emotion"]] = r
    groups = sorted(totals, key=lambda g: (-totals[g], g))
    shown, left_out = groups[:MAX_PANELS], groups[MAX_PANELS:]

    left, right, legend_h, title_h, plot_h, axis_h, gap = 64, 36, 30, 22, 120, 22, 14
    plot_w = width - left - right
    slot = plot_w / len(days)
    bar_w = max(slot * 0.78, 0.8)
    panel_h = title_h + plot_h + axis_h + gap
    height = legend_h + panel_h * len(shown)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
           f'style="width:100%;max-width:{width}px;height:auto" role="img" '
           f'aria-label="{esc(f"Utterances per day and emotion by {by}")}">']
    x = left
    for e in emotions:  # legend
        out.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colors[e]}"/>'
                   f'<text x="{x + 16}" y="18" class="legend">{esc(e)}</text>')
        x += 24 + 8 * len(str(e))
    label_every = max(1, -(-len(days) // 12))
    for p, group in enumerate(shown):
        top = legend_h + p * panel_h
        y0 = top + title_h + plot_h  # the baseline
        day_totals = {i: sum(int(r["utterances"]) for r in em.values()) for (g, i), em in cells.items() if g == group}
        peak = 2 * _nice_step(max(day_totals.values(), default=0))  # the top line; the middle one is a whole count
        out.append(f'<text x="{left}" y="{top + 15}" class="panel">{esc(by)} {esc(group)} — '
                   f'{esc(totals[group])} utterances</text>')
        for frac in (0.0, 0.5, 1.0):  # grid and y labels
            y = y0 - plot_h * frac
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>'
                       f'<text x="{left - 6}" y="{y + 4:.1f}" class="ylab">{esc(int(peak * frac))}</text>')
        for i in sorted(day_totals):
            y = y0
            for e in emotions:
                r = cells[(group, i)].get(e)
                if not r:
                    continue
                h = plot_h * int(r["utterances"]) / peak
                y -= h
                tip = f"{days[i]} {by} {group} {e}: {int(r['utterances'])} utterances"
                if r.get("share") is not None:
                    tip += f" ({float(r['share']):.1%})"
                out.append(f'<rect x="{left + i * slot + (slot - bar_w) / 2:.2f}" y="{y:.2f}" width="{bar_w:.2f}" '
                           f'height="{h:.2f}" fill="{colors[e]}"><title>{esc(tip)}</title></rect>')
        for i, day in enumerate(days):  # x labels: every k-th day, and the last one when there is room
            last_fits = i == len(days) - 1 and i % label_every >= label_every / 2
            if i % label_every == 0 or last_fits:
                out.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{y0 + 15}" class="xlab">'
                           f'{esc(day.isoformat())}</text>')
    out.append("</svg>")
    if left_out:
        out.append(f'<p class="note">Not drawn ({esc(len(left_out))} smaller groups): {esc(", ".join(left_out))}.</p>')
    return "".join(out)


def trend_table(rows: list[dict], by: str) -> str:
    columns = [Column("date", "date"), Column(by, by, get=lambda r: _group_label(r[by])), Column("emotion", "emotion"),
               Column("utterances", "utterances", True), Column("speech_seconds", "speech s", True),
               Column("share", "share", True, get=lambda r: None if r["share"] is None else f"{float(r['share']):.1%}")]
    return render_table(columns, rows, "No rows.", "compact")


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
.meta,.note,.empty{color:#616e7c}.summary{margin:2px 0;font-size:15px}.summary a{color:#c0392b}.empty{font-style:italic}
form{display:flex;gap:12px;align-items:end;flex-wrap:wrap;margin:12px 0;padding:10px;background:#f5f7fa;
     border-radius:6px}
label{display:flex;flex-direction:column;font-size:12px;color:#52606d}
input,select,button{font:inherit;padding:3px 6px}
table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 8px;text-align:left;vertical-align:top}
td{white-space:nowrap}td.wrap{white-space:normal;min-width:9em;max-width:36em;overflow-wrap:break-word}
.scroll{overflow-x:auto;max-width:100%}
th{background:#f5f7fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.compact td,table.compact th{padding:2px 6px}
.chart text{font-size:11px;fill:#52606d}.chart .panel{font-size:13px;font-weight:600;fill:#1f2933}
.chart .legend{font-size:12px;fill:#1f2933}.chart .ylab{text-anchor:end}.chart .xlab{text-anchor:middle}
.chart .grid{stroke:#e4e7eb;stroke-width:1}
.notes{background:#fffbea;border:1px solid #f7d070;padding:6px 10px;border-radius:6px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0}
.error{background:#fdecea;border:1px solid #e0a4a0;padding:6px 10px;border-radius:6px;color:#8a1c14}
.texts dd{white-space:pre-wrap;overflow-wrap:anywhere;font-size:15px}code{font:13px/1.4 ui-monospace,monospace}
"""


def _summary(value: Any) -> str:
    """A serving.json entry in one short line: scalars as they are, lists of scalars joined, the rest counted."""
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, (list, dict)):
        return f"({len(value)} entries)"
    return "none" if value is None else str(value)


def _redacted(columns: list[Column], roots: dict[str, Any]) -> list[Column]:
    """The same columns, each text value passed through ``redact`` (numbers and times as they are)."""
    def cell(c: Column) -> Callable[[Any], Any]:
        def get(row: Any) -> Any:
            value = c.get(row) if c.get else (row.get(c.key) if isinstance(row, dict) else getattr(row, c.key))
            return redact(value, roots) if isinstance(value, str) else value
        return get
    return [Column(c.key, c.title, c.numeric, cell(c), c.wrap) for c in columns]


def render_page(board: Dashboard) -> str:
    """The whole page. The form reloads the page itself (GET), so the page works inside Airflow's iframe too."""
    by_options = "".join(
        f'<option value="{esc(g)}"{" selected" if g == board.by else ""}>{esc(g)}</option>' for g in GROUPINGS)
    roots = {"lake": board.lake_root, "model repository": board.model_repository}
    clean = lambda value: esc(redact(value, roots))  # noqa: E731  free text from data and errors: no server paths
    notes = "".join(f"<li>{clean(n)}</li>" for n in board.notes)
    failed_note = (f'<p class="note">Showing {esc(len(board.failed))} of {esc(board.failed_total)}.</p>'
                   if board.failed_total > len(board.failed) else "")
    serving = ""
    if board.serving is not None:
        items = "".join(f"<dt>{clean(k)}</dt><dd>{clean(_summary(v))}</dd>" for k, v in board.serving.items())
        serving = f"<h3>{esc(SERVING_FILE)}</h3><dl>{items}</dl>"
    period = f"{board.date_from.isoformat()} – {board.date_to.isoformat()}"
    days = (board.date_to - board.date_from).days + 1
    versions = ", ".join(board.model_versions) or "none"
    failed = f"{board.failed_total:,} failed file{'' if board.failed_total == 1 else 's'}"
    failed_link = f'<a href="#failed">{esc(failed)}</a>' if board.failed_total else esc(failed)
    return "".join([
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>SenseVoice · {esc(period)}</title><style>{STYLE}</style></head><body>",
        "<h1>SenseVoice speech analytics</h1>",
        f'<p class="summary">Dates <b>{esc(period)}</b> ({esc(days)} day{"" if days == 1 else "s"}) · '
        f'model version{"" if len(board.model_versions) == 1 else "s"} <b>{clean(versions)}</b> · '
        f'{failed_link}</p>',
        f'<p class="meta">Generated {esc(board.generated_at)} UTC</p>',
        '<form method="get" action="">',
        f'<label>from<input type="date" name="from" value="{esc(board.date_from.isoformat())}"></label>',
        f'<label>to<input type="date" name="to" value="{esc(board.date_to.isoformat())}"></label>',
        f'<label>by<select name="by">{by_options}</select></label><button type="submit">Show</button></form>',
        f'<ul class="notes">{notes}</ul>' if notes else "",
        f'<section id="trend"><h2>Daily emotion trend by {esc(board.by)}</h2>',
        trend_svg(board.trend, board.by, board.date_from, board.date_to),
        f"<details><summary>Data ({esc(len(board.trend))} rows)</summary>{trend_table(board.trend, board.by)}</details>"
        if board.trend else "",
        "</section>",
        '<section id="runs"><h2>Recent runs</h2>',
        render_table(RUN_COLUMNS, board.runs, "No runs for dates in this range."),
        "</section>",
        f'<section id="failed"><h2>Failed recordings ({esc(board.failed_total)})</h2>',
        render_table(_redacted(FAILED_COLUMNS, roots), board.failed, "No failed recordings in this range."),
        failed_note,
        "</section>",
        '<section id="models"><h2>Model versions</h2>',
        render_table(_redacted(MODEL_COLUMNS, roots), board.models, "No model versions found.", "compact"),
        serving,
        "</section>",
        clip_section(),
        "</body></html>",
    ])


# -- try a clip --------------------------------------------------------------------------------------------------------


def clip_form(language: str = "auto", itn: bool = True) -> str:
    """The upload form: a plain multipart POST to ``clip`` (beside the page, so inside Airflow's frame too)."""
    languages = "".join(f'<option value="{esc(x)}"{" selected" if x == language else ""}>{esc(x)}</option>'
                        for x in LANGUAGES)
    itns = "".join(f'<option value="{v}"{" selected" if (v == "on") == itn else ""}>{v}</option>'
                   for v in ("on", "off"))
    return "".join([
        '<form method="post" action="clip" enctype="multipart/form-data" class="clip">',
        f'<label>clip<input type="file" name="clip" accept="{esc(ACCEPT)}" required></label>',
        f'<label>language<select name="language">{languages}</select></label>',
        f'<label>ITN<select name="itn">{itns}</select></label>',
        '<button type="submit">Transcribe</button></form>',
    ])


def _clip_help() -> str:
    formats = ", ".join(e.lstrip(".") for e in ACCEPT.split(","))
    return (f'<p class="meta">Upload a clip ({esc(formats)}; up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB and '
            f'{MAX_CLIP_SECONDS / 60:.0f} min) to see what the serving model answers: the raw rich transcription, '
            f'its plain and emoji renderings. Channels are mixed down; a clip longer than {MAX_SEGMENT_S:.0f} s is cut '
            'into speech segments as the daily job does. Nothing is stored.</p>')


def clip_section(language: str = "auto", itn: bool = True) -> str:
    return f'<section id="clip"><h2>Try a clip</h2>{_clip_help()}{clip_form(language, itn)}</section>'


SEGMENT_COLUMNS = [
    Column("index", "#", True), Column("start_s", "start s", True, get=lambda s: f"{s.start_s:.2f}"),
    Column("end_s", "end s", True, get=lambda s: f"{s.end_s:.2f}"), Column("raw", "raw", wrap=True),
    Column("plain", "plain", wrap=True), Column("emoji", "emoji", wrap=True),
]


def render_clip_page(result: ClipResult | None = None, error: str | None = None, status: int = 200,
                     language: str = "auto", itn: bool = True) -> str:
    """The answer to the clip form: what Triton said (or why not), then the form again with the same choices."""
    body = []
    if error:
        body.append(f'<p class="error" role="alert" id="clip-error">{esc(status)}: {esc(redact(error))}</p>')
    if result is not None:
        n = len(result.segments)
        cut = (f"{n} speech segment{'' if n == 1 else 's'} (VAD, at most {MAX_SEGMENT_S:.0f} s each)"
               if result.segmented else "the whole clip in one request")
        channels = f"{result.channels} channel{'' if result.channels == 1 else 's'}"
        facts = [("clip", result.name),
                 ("audio", f"{result.format}, {result.sample_rate} Hz, {channels}, {result.duration_s:.2f} s"),
                 ("language hint", result.language), ("ITN", "on" if result.use_itn else "off"),
                 ("model", f"{result.model_name} version {result.model_version}" if result.model_name else "none"),
                 ("transcribed", cut), ("took", f"{result.seconds:.2f} s")]
        body.append('<div id="clip-result"><dl>' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
                    + "</dl>")
        if result.segments:
            body.append('<h3>Transcription</h3><dl class="texts">'
                        f'<dt>raw</dt><dd><code id="clip-raw">{esc(result.raw)}</code></dd>'
                        f'<dt>plain</dt><dd id="clip-plain">{esc(result.plain)}</dd>'
                        f'<dt>emoji</dt><dd id="clip-emoji">{esc(result.emoji)}</dd></dl>')
        else:
            body.append('<p class="empty" id="clip-raw">No speech found in this clip.</p>')
        if result.segmented and result.segments:
            body.append("<h3>Segments</h3>" + render_table(SEGMENT_COLUMNS, result.segments, "", "compact"))
        body.append("</div>")
    return "".join([
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>SenseVoice · try a clip</title><style>{STYLE}</style></head><body>",
        "<h1>SenseVoice speech analytics</h1>",
        '<p class="meta"><a href="./">Back to the dashboard</a></p>',
        '<section id="clip"><h2>Try a clip</h2>', *body, _clip_help(), clip_form(language, itn), "</section>",
        "</body></html>",
    ])
