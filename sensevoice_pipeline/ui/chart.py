"""The plugin page's emotion-trend chart: an inline SVG (the page loads nothing, so no image file and no script).

Stacked bars of utterances per day and emotion, one panel per language (or channel), in the PNG charts' emotion
colours (``report.EMOTION_COLORS``), so angry is the same red on the page and in ``svp query --png``. The PNG charts'
rules hold here too: the caption states every filter (``trend_caption``), every day of the range has its slot, at
most ``report.MAX_PANELS`` panels, and an empty range says there is no data for those filters instead of drawing
empty axes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sensevoice_pipeline.ui.page_text import esc
from sensevoice_pipeline.warehouse.report import (
    MAX_PANELS,  # chart panels (one per language / channel); the rest are listed as left out
    date_range_text,
    emotion_colors,
    emotion_order,
    group_label,
)

LEFT, RIGHT = 64, 36  # room for the y labels on the left, for the last x label on the right
LEGEND_H, TITLE_H, PLOT_H, AXIS_H, GAP = 30, 22, 120, 22, 14
PANEL_H = TITLE_H + PLOT_H + AXIS_H + GAP
X_LABELS = 12  # about this many dates under each panel, whatever the range's length

DayCells = dict[int, dict[str, dict]]  # day index -> emotion -> the trend row


@dataclass(frozen=True)
class _Axes:
    """What every panel shares: one bar slot per day of the range, the emotions in stacking order, their colours."""

    days: list[dt.date]
    width: int
    by: str
    emotions: list[str]
    colors: dict[str, str]
    versions: dict[int, str]  # day index -> the model version(s) that scored it

    @property
    def plot_w(self) -> int:
        return self.width - LEFT - RIGHT

    @property
    def slot(self) -> float:
        return self.plot_w / len(self.days)

    @property
    def bar_w(self) -> float:
        return max(self.slot * 0.78, 0.8)


def trend_caption(by: str, date_from: dt.date, date_to: dt.date, min_confidence: float = 0.0) -> str:
    """Every filter of the trend: "by language, 2026-03-01 – 2026-03-07, emotion confidence ≥ 0.8"."""
    confidence = f", emotion confidence ≥ {min_confidence:g}" if min_confidence else ""
    return f"by {by}, {date_range_text(date_from, date_to)}{confidence}"


def nice_step(peak: int) -> int:
    """The y axis' step for a panel whose tallest bar is ``peak``: a whole number, at least half of ``peak``, round
    (1, 2, 5, 12, 15, 25, 40, 600, ...) so that the labels 0, step, 2 * step are exact and easy to read."""
    half = max(1, -(-int(peak) // 2))
    if half <= 10:
        return half
    mag = 10 ** (len(str(half)) - 1)
    return next(int(m * mag) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= half)


def trend_svg(
    rows: list[dict],
    by: str,
    date_from: dt.date,
    date_to: dt.date,
    min_confidence: float = 0.0,
    width: int = 1160,
    day_versions: dict[dt.date, str] | None = None,
) -> str:
    """Stacked bars of utterances per day and emotion, one panel per language (or channel), every day of the range
    on the x axis (days without data stay empty). Each bar segment has a tooltip with its count and share, and the
    model version that scored its day (``day_versions``); where that version changes (a promote, a re-scored range)
    a dashed line marks the first day of the new one. No rows: a sentence naming the filters, no axes."""
    caption = trend_caption(by, date_from, date_to, min_confidence)
    if not rows:
        return f'<p class="empty">No data for the emotion trend {esc(caption)}.</p>'
    days = [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    emotions = emotion_order(r["emotion"] for r in rows)
    index = {d: i for i, d in enumerate(days)}
    versions = {index[d]: v for d, v in (day_versions or {}).items() if d in index}
    axes = _Axes(days, width, by, emotions, emotion_colors(emotions), versions)
    totals, cells = _by_group(rows, by, days)
    groups = sorted(totals, key=lambda g: (-totals[g], g))
    shown, left_out = groups[:MAX_PANELS], groups[MAX_PANELS:]
    height = LEGEND_H + PANEL_H * len(shown)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto" role="img" '
        f'aria-label="{esc(f"Utterances per day and emotion {caption}")}">',
        _legend(axes),
    ]
    for p, group in enumerate(shown):
        out.append(_panel(axes, group, totals[group], cells.get(group, {}), LEGEND_H + p * PANEL_H))
    out.append("</svg>")
    if left_out:
        out.append(
            f'<p class="note">Not drawn ({esc(len(left_out))} smaller groups): {esc(", ".join(left_out))}.</p>'
        )
    return "".join(out)


def _by_group(rows: list[dict], by: str, days: list[dt.date]) -> tuple[dict[str, int], dict[str, DayCells]]:
    """Each group's utterances in the range, and its rows by day index and emotion."""
    index = {d: i for i, d in enumerate(days)}
    totals: dict[str, int] = {}
    cells: dict[str, DayCells] = {}
    for r in rows:
        group = group_label(r[by])
        totals[group] = totals.get(group, 0) + int(r["utterances"])
        cells.setdefault(group, {}).setdefault(index[r["date"]], {})[r["emotion"]] = r
    return totals, cells


def _legend(axes: _Axes) -> str:
    return legend_svg(axes.emotions, axes.colors)


def legend_svg(emotions: list[str], colors: dict[str, str], x: int = LEFT) -> str:
    """A row of coloured squares with the emotions' names, at the top of an SVG (the trend's and a call timeline's,
    so the two read alike)."""
    out = []
    for e in emotions:
        out.append(
            f'<rect x="{x}" y="8" width="12" height="12" fill="{colors[e]}"/>'
            f'<text x="{x + 16}" y="18" class="legend">{esc(e)}</text>'
        )
        x += 24 + 8 * len(str(e))
    return "".join(out)


def _panel(axes: _Axes, group: str, total: int, day_cells: DayCells, top: int) -> str:
    """One group's panel: its title, the grid with y labels, the stacked bars, the dates under them."""
    y0 = top + TITLE_H + PLOT_H  # the baseline
    peak_day = max((sum(int(r["utterances"]) for r in em.values()) for em in day_cells.values()), default=0)
    peak = 2 * nice_step(peak_day)  # the top line; the middle one is a whole count
    title = (
        f'<text x="{LEFT}" y="{top + 15}" class="panel">{esc(axes.by)} {esc(group)} — '
        f"{esc(total)} utterances</text>"
    )
    return (
        title
        + _grid(axes, y0, peak)
        + _bars(axes, group, day_cells, y0, peak)
        + _version_changes(axes, top + TITLE_H, y0)
        + _x_labels(axes, y0)
    )


def _grid(axes: _Axes, y0: int, peak: int) -> str:
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = y0 - PLOT_H * frac
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + axes.plot_w}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="ylab">{esc(int(peak * frac))}</text>'
        )
    return "".join(out)


def _bars(axes: _Axes, group: str, day_cells: DayCells, y0: int, peak: int) -> str:
    """One stacked bar per day with data, each emotion a segment with its count (and share) as a tooltip."""
    out = []
    slot, bar_w = axes.slot, axes.bar_w
    for i in sorted(day_cells):
        y = y0
        for e in axes.emotions:
            r = day_cells[i].get(e)
            if not r:
                continue
            h = PLOT_H * int(r["utterances"]) / peak
            y -= h
            tip = f"{axes.days[i]} {axes.by} {group} {e}: {int(r['utterances'])} utterances"
            if r.get("share") is not None:
                tip += f" ({float(r['share']):.1%})"
            if i in axes.versions:
                tip += f", scored by model version {axes.versions[i]}"
            out.append(
                f'<rect x="{LEFT + i * slot + (slot - bar_w) / 2:.2f}" y="{y:.2f}" width="{bar_w:.2f}" '
                f'height="{h:.2f}" fill="{axes.colors[e]}"><title>{esc(tip)}</title></rect>'
            )
    return "".join(out)


def version_changes(versions: dict[int, str]) -> list[int]:
    """The day indexes whose model version differs from the previous scored day's."""
    days = sorted(versions)
    return [i for before, i in zip(days, days[1:]) if versions[i] != versions[before]]


def _version_changes(axes: _Axes, top: float, y0: int) -> str:
    """A dashed line before each day whose model version is not the previous scored day's, labelled with it."""
    out = []
    for i in version_changes(axes.versions):
        x = LEFT + i * axes.slot
        out.append(
            f'<line x1="{x:.2f}" y1="{top:.1f}" x2="{x:.2f}" y2="{y0}" class="promote">'
            f"<title>{esc(f'from {axes.days[i]}: model version {axes.versions[i]}')}</title></line>"
            f'<text x="{x + 3:.2f}" y="{top + 10:.1f}" class="promote">version {esc(axes.versions[i])}</text>'
        )
    return "".join(out)


def scored_by_text(day_versions: dict[dt.date, str]) -> str:
    """Which version scored which days: "version 1 2026-11-01 – 2026-11-19, version 2 2026-11-20 – 2026-11-21"."""
    runs: list[list] = []  # [version, first day, last day]
    for day in sorted(day_versions):
        if runs and runs[-1][0] == day_versions[day]:
            runs[-1][2] = day
        else:
            runs.append([day_versions[day], day, day])
    return ", ".join(f"version {v} {date_range_text(a, b)}" for v, a, b in runs)


def _x_labels(axes: _Axes, y0: int) -> str:
    """Every k-th day, and the last one when there is room."""
    days, out = axes.days, []
    label_every = max(1, -(-len(days) // X_LABELS))
    for i, day in enumerate(days):
        last_fits = i == len(days) - 1 and i % label_every >= label_every / 2
        if i % label_every == 0 or last_fits:
            out.append(
                f'<text x="{LEFT + (i + 0.5) * axes.slot:.1f}" y="{y0 + 15}" class="xlab">'
                f"{esc(day.isoformat())}</text>"
            )
    return "".join(out)
