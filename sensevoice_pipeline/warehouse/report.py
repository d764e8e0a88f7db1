"""Query results for people: aligned text tables in the terminal and PNG charts.

``EMOTION_COLORS`` is the one emotion -> colour mapping of the product: the PNG charts here and the plugin page's SVG
chart (``ui/chart.py``) both use it, so angry is red and neutral grey everywhere.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from sensevoice_pipeline.warehouse.queries import QUERIES

# Colours that mean something; the order is the stacking order (bottom first) and the legend's order.
EMOTION_COLORS = {
    "neutral": "#9aa5b1",  # grey
    "happy": "#2e9e44",  # green
    "sad": "#3b78c2",  # blue
    "angry": "#d64541",  # red
    "fearful": "#8e44ad",  # purple
    "disgusted": "#8a7a2c",  # olive / brown
    "surprised": "#ff8c1a",  # orange
    "unknown": "#d5dbe1",  # light grey
}
# For values outside EMOTION_COLORS (an emotion label a later model adds): none of them red, green or grey.
EXTRA_COLORS = ("#17becf", "#e377c2", "#1f77b4", "#7b4173", "#c49c94", "#393b79")


def emotion_order(emotions) -> list:
    """Known emotions in EMOTION_COLORS' order, then the others sorted by their text."""
    known = list(EMOTION_COLORS)
    return sorted(set(emotions), key=lambda e: (known.index(e), "") if e in known else (len(known), str(e)))


def emotion_colors(emotions) -> dict:
    """A colour for each emotion: its fixed one, or (for one this product does not know) one of EXTRA_COLORS."""
    emotions = list(emotions)
    extra = [e for e in emotion_order(emotions) if e not in EMOTION_COLORS]
    colors = {e: EMOTION_COLORS[e] for e in emotions if e in EMOTION_COLORS}
    colors.update({e: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, e in enumerate(extra)})
    return colors


def format_table(table: pa.Table, max_rows: int = 60, max_width: int = 48) -> str:
    if table.num_rows == 0:
        return "(no rows)"
    names = table.column_names
    rows = [[_cell(v, max_width) for v in row.values()] for row in table.slice(0, max_rows).to_pylist()]
    widths = [max(len(n), *(len(r[i]) for r in rows)) for i, n in enumerate(names)]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric))

    out = [line(names), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows")
    return "\n".join(line.rstrip() for line in out)


def print_table(table: pa.Table) -> None:
    print(format_table(table), flush=True)


def _cell(value, max_width: int) -> str:
    text = (
        ""
        if value is None
        else (f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value))
    )
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


# -- PNG charts (`svp query --png`) -------------------------------------------------------------------------------
# The rules, shared with the page's SVG chart (ui/chart.py): the title states every filter of the answer; a grouped
# query draws one panel per group; every calendar day of the range has its slot (a day without data is a gap, not a
# missing tick); an empty answer draws no axes, only "No data for <the filters>"; an emotion's colour is fixed and a
# call's bar is CALL_COLOR, no emotion's.

MAX_PANELS = 8  # panels of a grouped chart (the largest groups); the others are named in a note under it
TOP_CALLS = 20  # angry-calls: the calls drawn, highest angry share first; the others are counted in a note
CALL_COLOR = "#4c566a"  # a dark slate: no emotion's colour, so a call's bar never reads as "angry" or "sad"
X_LABELS = 14  # about this many dates under a chart, whatever the range's length
PANEL_IN, CALL_IN = 2.1, 0.3  # figure height per panel and per call bar, in inches


def chart_title(
    name: str,
    by: str = "language",
    date_from: dt.date | str | None = None,
    date_to: dt.date | str | None = None,
    min_confidence: float = 0.0,
) -> str:
    """The query and every filter of its answer: the grouping (a grouped query), the dates as asked ("all dates"
    when neither end was given), the emotion confidence threshold when one is set and the query applies it."""
    query = QUERIES[name]
    parts = [f"{name} by {by}" if query.groups else name, date_range_text(date_from, date_to)]
    if min_confidence and query.filters_confidence:
        parts.append(f"emotion confidence ≥ {min_confidence:g}")
    return " · ".join(parts)


def date_range_text(date_from: dt.date | str | None, date_to: dt.date | str | None) -> str:
    first, last = _as_date(date_from), _as_date(date_to)
    if first and last:
        return first.isoformat() if first == last else f"{first} – {last}"
    if first or last:
        return f"from {first}" if first else f"up to {last}"
    return "all dates"


def figure_for(
    name: str,
    table: pa.Table,
    by: str = "language",
    date_from: dt.date | str | None = None,
    date_to: dt.date | str | None = None,
    min_confidence: float = 0.0,
    top: int = TOP_CALLS,
):
    """The chart of ``table`` (the answer of query ``name`` for these filters) as a matplotlib Figure, not saved:
    bars per date (one panel per group for a grouped query), ranked bars for angry-calls, or, for an empty answer,
    a figure whose only content says there is no data for these filters."""
    from matplotlib.figure import Figure  # matplotlib: only when a chart is drawn (`svp --help` stays quick)

    chart = QUERIES[name].chart
    if chart is None:
        raise ValueError(f"{name} has no chart (its rows are not per date); use --csv")
    title = chart_title(name, by, date_from, date_to, min_confidence)
    if table.num_rows == 0:
        fig = Figure(figsize=(8, 2))
        fig.text(0.5, 0.5, f"No data for {title}", ha="center", va="center", fontsize="large", wrap=True)
        return fig
    if chart.ranked:
        return _calls_figure(table.to_pylist(), title, top)
    group = by if QUERIES[name].groups and by in table.column_names else None
    return _per_date_figure(chart, table.to_pylist(), title, group, _as_date(date_from), _as_date(date_to))


def write_chart(
    name: str,
    table: pa.Table,
    path: Path,
    by: str = "language",
    date_from: dt.date | str | None = None,
    date_to: dt.date | str | None = None,
    min_confidence: float = 0.0,
) -> None:
    """``figure_for(...)`` written to ``path`` as a PNG. An empty answer writes a PNG that says so (no axes): the
    same as the table printing "(no rows)", and a report job's image never goes stale."""
    figure_for(name, table, by, date_from, date_to, min_confidence).savefig(path, dpi=110)


def _per_date_figure(chart, rows: list[dict], title: str, group: str | None, first, last):
    """Bars of ``chart.value`` per calendar day from the range's first to its last day (those asked for, else the
    data's), stacked by ``chart.stack``; one panel per ``group`` value, the largest groups first."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    dates = [_as_date(r["date"]) for r in rows]
    first, last = min([first or min(dates), *dates]), max([last or max(dates), *dates])
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    # group -> stack key -> a value per day
    cells: dict[str, dict[str, list[float]]] = {}
    for r, day in zip(rows, dates):
        label = group_label(r[group]) if group else ""
        key = str(r[chart.stack]) if chart.stack else chart.value
        cells.setdefault(label, {}).setdefault(key, [0.0] * len(days))[index[day]] += float(
            r[chart.value] or 0
        )
    totals = {g: sum(sum(v) for v in series.values()) for g, series in cells.items()}
    groups = sorted(totals, key=lambda g: (-totals[g], g))
    shown, left_out = groups[:MAX_PANELS], groups[MAX_PANELS:]
    keys = {k for series in cells.values() for k in series}
    emotions = chart.stack == "emotion"
    order = emotion_order(keys) if emotions else sorted(keys)
    colors = emotion_colors(keys) if emotions else {}
    if chart.value == "share":  # angry-share: the one emotion the chart is about, in its colour
        colors = {chart.value: EMOTION_COLORS["angry"]}

    width = min(16.0, max(8.0, 3.0 + 0.32 * len(days)))
    fig = Figure(figsize=(width, 1.2 + PANEL_IN * len(shown)), layout="constrained")
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    slots = list(range(len(days)))
    for ax, g in zip(axes, shown):
        bottom = [0.0] * len(days)
        for key in order:
            values = cells[g].get(key, [0.0] * len(days))
            ax.bar(slots, values, 0.8, bottom=bottom, label=key, color=colors.get(key))
            bottom = [b + v for b, v in zip(bottom, values)]
        if group:
            ax.set_title(f"{group} {g} — {_number(totals[g])} {chart.value.replace('_', ' ')}", loc="left")
        ax.set_ylabel(chart.value.replace("_", " "))
        if chart.value == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="#e4e7eb")
        ax.set_axisbelow(True)
        ax.set_xlim(-0.6, len(days) - 0.4)  # every day's slot, the first and last included
    every = max(1, -(-len(days) // X_LABELS))
    ticks = slots[::every]
    axes[-1].set_xticks(ticks, [days[i].isoformat() for i in ticks], rotation=45, ha="right")
    fig.suptitle(title)
    if chart.stack:  # one row under the title, in stacking order (bottom first), like the page's legend
        handles = [Patch(color=colors[k], label=k) if k in colors else None for k in order]
        if None in handles:  # no fixed colours (events): the bars' own
            handles = list(axes[0].containers)
        fig.legend(handles, order, loc="outside lower center", ncols=min(len(order), 8), fontsize="small")
    if left_out:
        axes[-1].set_xlabel(f"Not drawn ({len(left_out)} smaller {group} groups): {', '.join(left_out)}")
    return fig


def _calls_figure(rows: list[dict], title: str, top: int):
    """angry-calls' chart: one horizontal bar per call (recording x channel), highest angry share at the top,
    labelled with its date and file; the first ``top``, the others counted in a note."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    rows = sorted(
        rows,
        key=lambda r: (-float(r["angry_share"] or 0), -int(r["angry_segments"] or 0), str(r["source_path"])),
    )
    drawn, rest = rows[:top], len(rows) - min(top, len(rows))
    # the channel only tells calls apart when there are several
    channels = len({r.get("channel") for r in rows}) > 1
    labels = [
        f"{_as_date(r['date'])}  {_shorten(str(r['source_path']), 52)}"
        + (f"  ch {r['channel']}" if channels and r.get("channel") is not None else "")
        for r in drawn
    ]
    shares = [float(r["angry_share"] or 0) for r in drawn]
    fig = Figure(figsize=(11, 1.6 + CALL_IN * len(drawn)), layout="constrained")
    ax = fig.subplots()
    positions = list(range(len(drawn)))
    ax.barh(positions, shares, 0.7, color=CALL_COLOR)
    ax.set_yticks(positions, labels, fontsize="small")
    ax.invert_yaxis()  # the angriest call on top
    for y, r, share in zip(positions, drawn, shares):
        ax.text(
            share + 0.01,
            y,
            f"{share:.0%}  ({r['angry_segments']} of {r['segments']} segments)",
            va="center",
            fontsize="x-small",
        )
    ax.set_xlim(0, 1.3)  # room for the figures after a 100% bar
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("angry share: angry segments of the call's segments")
    ax.grid(axis="x", color="#e4e7eb")
    ax.set_axisbelow(True)
    ax.set_title(
        f"The {len(drawn)} calls with the highest angry share, of {len(rows)}"
        if rest
        else f"{len(rows)} call{'' if len(rows) == 1 else 's'} with angry segments, highest angry share first",
        loc="left",
    )
    fig.suptitle(title)
    if rest:
        fig.supxlabel(
            f"{rest} more call{'' if rest == 1 else 's'} not drawn: --csv FILE lists every one",
            fontsize="small",
        )
    return fig


def group_label(value) -> str:
    return "(none)" if value is None else str(value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _shorten(text: str, width: int) -> str:
    """The end of a long path (the file name and its folder tell calls apart), with an ellipsis in front."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _as_date(value) -> dt.date | None:
    """A date from a date, a datetime or its ISO text (a table's cell, a flag); None and "" stay None."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
