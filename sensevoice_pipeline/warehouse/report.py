"""Query results for people: aligned text tables in the terminal and PNG charts.

``EMOTION_COLORS`` is the one emotion -> colour mapping of the product: the PNG charts here and the plugin page's SVG
chart (``dashboard.py``) both use it, so angry is red and neutral grey everywhere.
"""

from __future__ import annotations

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


def write_chart(name: str, table: pa.Table, path: Path, by: str = "language") -> None:
    """A stacked bar chart of the query's counts per date (emotion for the trend, event for events)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart = QUERIES[name].chart
    if chart is None:
        raise ValueError(f"{name} has no chart (its rows are not per date); use --csv")
    stack_key, value_key = chart.stack, chart.value
    rows = table.to_pylist()
    dates = sorted({str(r["date"]) for r in rows})
    series: dict[str, list[float]] = {}
    for r in rows:
        key = str(r[stack_key]) if stack_key else value_key
        series.setdefault(key, [0.0] * len(dates))[dates.index(str(r["date"]))] += float(r[value_key] or 0)
    fig, ax = plt.subplots(figsize=(max(6, len(dates) * 0.6 + 3), 4))
    bottom = [0.0] * len(dates)
    colors = emotion_colors(series) if stack_key == "emotion" else {}
    keys = emotion_order(series) if stack_key == "emotion" else sorted(series)
    for key in keys:
        values = series[key]
        ax.bar(dates, values, bottom=bottom, label=key, **({"color": colors[key]} if key in colors else {}))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title(f"{name} ({'all ' + by + 's' if name == 'emotion-trend' else ''})".replace(" ()", ""))
    ax.set_ylabel(value_key.replace("_", " "))
    handles, labels = ax.get_legend_handles_labels()  # listed top to bottom, like the stack reads
    ax.legend(handles[::-1], labels[::-1], fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
