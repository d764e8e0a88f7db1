"""Query results for people: aligned text tables in the terminal and PNG charts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


def format_table(table: pa.Table, max_rows: int = 60, max_width: int = 48) -> str:
    if table.num_rows == 0:
        return "(no rows)"
    names = table.column_names
    rows = [[_cell(v, max_width) for v in row.values()] for row in table.slice(0, max_rows).to_pylist()]
    widths = [max(len(n), *(len(r[i]) for r in rows)) for i, n in enumerate(names)]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    line = lambda cells: "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric))  # noqa: E731
    out = [line(names), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows")
    return "\n".join(l.rstrip() for l in out)


def print_table(table: pa.Table) -> None:
    print(format_table(table), flush=True)


def _cell(value, max_width: int) -> str:
    text = "" if value is None else (f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value))
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def write_chart(name: str, table: pa.Table, path: Path, by: str = "language") -> None:
    """A stacked bar chart of the query's counts per date (emotion for the trend, event for events)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table.to_pylist()
    stack_key, value_key = {"emotion-trend": ("emotion", "utterances"), "events": ("event", "utterances"),
                            "angry-calls": ("source_path", "angry_segments"),
                            "angry-share": (None, "share")}[name]
    dates = sorted({str(r["date"]) for r in rows})
    series: dict[str, list[float]] = {}
    for r in rows:
        key = str(r[stack_key]) if stack_key else value_key
        series.setdefault(key, [0.0] * len(dates))[dates.index(str(r["date"]))] += float(r[value_key] or 0)
    fig, ax = plt.subplots(figsize=(max(6, len(dates) * 0.6 + 3), 4))
    bottom = [0.0] * len(dates)
    for key, values in sorted(series.items()):
        ax.bar(dates, values, bottom=bottom, label=key)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title(f"{name} ({'all ' + by + 's' if name == 'emotion-trend' else ''})".replace(" ()", ""))
    ax.set_ylabel(value_key.replace("_", " "))
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
