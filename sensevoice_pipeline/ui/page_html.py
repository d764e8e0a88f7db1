"""The plugin page's HTML: one self-contained page for a ``page_data.Dashboard``.

An inline SVG chart (``chart``), tables, a GET form for the dates, and the "Try a clip" form (``clip_html``); no
script, no external resource; every value from data goes through ``esc``. It says what it shows (the dates, the
model versions that transcribed them, the failed files with a link to their reasons) and never a filesystem path of
the server (``redact``). The angriest calls and the failed files link to each call's timeline (``timeline_html``).
Sent with ``html_parts.SECURITY_HEADERS``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from sensevoice_pipeline.serving.repository import SERVING_FILE
from sensevoice_pipeline.ui.chart import group_label, scored_by_text, trend_caption, trend_svg
from sensevoice_pipeline.ui.clip_html import clip_section
from sensevoice_pipeline.ui.html_parts import Column, html_document, render_table
from sensevoice_pipeline.ui.page_data import GROUPINGS, MIN_CONFIDENCES, Dashboard
from sensevoice_pipeline.ui.page_text import esc, redact
from sensevoice_pipeline.ui.timeline import row_href


def _duration(row: dict) -> str:
    """How long the run took: from its own start to its finish. Blank when unknown, and for a start exactly at a
    UTC midnight, to the microsecond: that is a logical date, not a clock reading. `airflow dags test` gives its
    DagRun the logical date as its start_date (the demo's: the row's own date, 00:00; without a `date` Param: the
    data interval's end), and rows written before the DAG recorded the run's own start (daily.airflow_run_start)
    hold it: the demo's one-minute run showed as "took 1760.3 min"."""
    start, end = row.get("started_at"), row.get("finished_at")
    if not (isinstance(start, dt.datetime) and isinstance(end, dt.datetime)):
        return ""
    if start.tzinfo and start.astimezone(dt.UTC).time() == dt.time():
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


RUN_COLUMNS = [
    Column("date", "date"),
    Column("run_id", "run"),
    Column("finished_at", "finished (UTC)"),
    Column("duration", "took", get=_duration),
    Column("files", "files", True),
    Column("files_ok", "ok", True),
    Column("files_failed", "failed", True),
    Column("utterances", "utterances", True),
    Column("speech_seconds", "speech s", True),
    Column("model_versions", "model versions", wrap=True),
]


def _share(row: dict) -> str | None:
    return None if row.get("angry_share") is None else f"{float(row['angry_share']):.0%}"


def _excerpt(row: dict, limit: int = 160) -> str | None:
    """The start of a call's angry texts: a long call's would make its row a page tall; the timeline has them all."""
    text = row.get("angry_text")
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


ANGRY_COLUMNS = [  # the file links to the call's timeline, where its angry moments are seen in context
    Column("date", "date"),
    Column("source_path", "call", wrap=True, link=row_href),
    Column("channel", "channel", True),
    Column("angry_segments", "angry", True),
    Column("segments", "segments", True),
    Column("angry_share", "angry share", True, get=_share),
    Column("angry_text", "angry text", get=_excerpt, wrap=True),
]
FAILED_COLUMNS = [
    Column("date", "date"),
    Column("source_path", "file", wrap=True, link=row_href),  # the timeline page says why, in full
    Column("format", "format"),
    Column("size_bytes", "bytes", True),
    Column("error", "reason", wrap=True),
    Column("run_id", "run"),
]
MODEL_COLUMNS = [  # what the range used first: a narrow window scrolls the table to the export details
    Column("version", "version"),
    Column("role", "role"),
    Column("status", "status", wrap=True),
    Column("utterances", "utterances in range", True),
    Column("dates", "used on"),
    Column("precision", "precision"),
    Column("target_device", "device"),
    Column("parameters", "parameters"),
    Column("exporter", "exporter", wrap=True),
    Column("source", "checkpoint"),
    Column("exported_at", "exported (UTC)"),
    Column("parity", "parity check", wrap=True),
]


def trend_table(rows: list[dict], by: str) -> str:
    columns = [
        Column("date", "date"),
        Column(by, by, get=lambda r: group_label(r[by])),
        Column("emotion", "emotion"),
        Column("utterances", "utterances", True),
        Column("speech_seconds", "speech s", True),
        Column(
            "share", "share", True, get=lambda r: None if r["share"] is None else f"{float(r['share']):.1%}"
        ),
    ]
    return render_table(columns, rows, "No rows.", "compact")


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
            value = c.value(row)
            return redact(value, roots) if isinstance(value, str) else value

        return get

    return [dataclasses.replace(c, get=cell(c)) for c in columns]


def render_page(board: Dashboard) -> str:
    """The whole page. The form reloads the page itself (GET), so the page works inside Airflow's iframe too."""
    roots = {"lake": board.lake_root, "model repository": board.model_repository}
    clean = lambda value: esc(redact(value, roots))  # noqa: E731  free text from data and errors: no server paths
    notes = "".join(f"<li>{clean(n)}</li>" for n in board.notes)
    serving = ""
    if board.serving is not None:
        items = "".join(f"<dt>{clean(k)}</dt><dd>{clean(_summary(v))}</dd>" for k, v in board.serving.items())
        serving = f"<h3>{esc(SERVING_FILE)}</h3><dl>{items}</dl>"
    return html_document(
        _period(board),
        _summary_line(board, clean),
        f'<p class="meta">Generated {esc(board.generated_at)} UTC</p>',
        _range_form(board),
        f'<ul class="notes">{notes}</ul>' if notes else "",
        f'<section id="trend"><h2>Daily emotion trend {esc(_trend_caption(board))}</h2>',
        trend_svg(
            board.trend,
            board.by,
            board.date_from,
            board.date_to,
            board.min_confidence,
            day_versions=board.day_versions,
        ),
        f"<details><summary>Data ({esc(len(board.trend))} rows)</summary>{trend_table(board.trend, board.by)}</details>"
        if board.trend
        else "",
        "</section>",
        f'<section id="angry"><h2>Angriest calls ({esc(board.angry_total)})</h2>',
        render_table(_redacted(ANGRY_COLUMNS, roots), board.angry, "No angry calls in this range."),
        _showing(len(board.angry), board.angry_total),
        "</section>",
        '<section id="runs"><h2>Recent runs</h2>',
        render_table(RUN_COLUMNS, board.runs, "No runs for dates in this range."),
        "</section>",
        f'<section id="failed"><h2>Failed recordings ({esc(board.failed_total)})</h2>',
        render_table(_redacted(FAILED_COLUMNS, roots), board.failed, "No failed recordings in this range."),
        _showing(len(board.failed), board.failed_total),
        "</section>",
        '<section id="models"><h2>Model versions</h2>',
        render_table(_redacted(MODEL_COLUMNS, roots), board.models, "No model versions found.", "compact"),
        serving,
        "</section>",
        clip_section(),
    )


def _showing(shown: int, total: int) -> str:
    return f'<p class="note">Showing {esc(shown)} of {esc(total)}.</p>' if total > shown else ""


def _period(board: Dashboard) -> str:
    return f"{board.date_from.isoformat()} – {board.date_to.isoformat()}"


def _summary_line(board: Dashboard, clean: Callable[[Any], str]) -> str:
    """What the page covers, first: the dates, the model versions that transcribed them, a link to the failures."""
    days = (board.date_to - board.date_from).days + 1
    versions = ", ".join(board.model_versions) or "none"
    failed = f"{board.failed_total:,} failed file{'' if board.failed_total == 1 else 's'}"
    failed_link = f'<a href="#failed">{esc(failed)}</a>' if board.failed_total else esc(failed)
    scored = scored_by_text(board.day_versions)
    return (
        f'<p class="summary">Dates <b>{esc(_period(board))}</b> ({esc(days)} day{"" if days == 1 else "s"}) · '
        f"model version{'' if len(board.model_versions) == 1 else 's'} <b>{clean(versions)}</b>"
        f"{f' ({clean(scored)})' if len(board.model_versions) > 1 else ''} · {failed_link}</p>"
    )


def _trend_caption(board: Dashboard) -> str:
    return trend_caption(board.by, board.date_from, board.date_to, board.min_confidence)


def _confidence_options(board: Dashboard) -> str:
    """Any (0), then the thresholds the rollup answers exactly (queries.MIN_CONFIDENCES)."""

    def label(c: float) -> str:
        return "any" if c == 0 else f"≥ {c:g}"

    return "".join(
        f'<option value="{esc(f"{c:g}")}"{" selected" if c == board.min_confidence else ""}>'
        f"{esc(label(c))}</option>"
        for c in MIN_CONFIDENCES
    )


def _range_form(board: Dashboard) -> str:
    by_options = "".join(
        f'<option value="{esc(g)}"{" selected" if g == board.by else ""}>{esc(g)}</option>' for g in GROUPINGS
    )
    return "".join(
        [
            '<form method="get" action="">',
            f'<label>from<input type="date" name="from" value="{esc(board.date_from.isoformat())}"></label>',
            f'<label>to<input type="date" name="to" value="{esc(board.date_to.isoformat())}"></label>',
            f'<label>by<select name="by">{by_options}</select></label>',
            f'<label>emotion confidence<select name="min_confidence">{_confidence_options(board)}</select></label>',
            '<button type="submit">Show</button></form>',
        ]
    )
