"""What the HTML pages of the plugin (the dashboard, "Try a clip", a call's timeline) are made of: the document
around them, its CSS, the headers they are sent with, and tables.

A page is self-contained: no script, no external resource, the CSS inline; every value from data goes through
``page_text.esc``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensevoice_pipeline.ui.page_text import esc

# Strict enough for a page that has no script: nothing loads from anywhere, forms post back to the page only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

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
.chart line.promote{stroke:#1f2933;stroke-width:1.5;stroke-dasharray:5 3}.chart text.promote{font-size:11px;fill:#1f2933}
.chart .lane{fill:#f5f7fa}.chart .lane-label{font-size:12px;font-weight:600;fill:#1f2933;text-anchor:end}
.notes{background:#fffbea;border:1px solid #f7d070;padding:6px 10px;border-radius:6px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0}
.error{background:#fdecea;border:1px solid #e0a4a0;padding:6px 10px;border-radius:6px;color:#8a1c14}
.texts dd{white-space:pre-wrap;overflow-wrap:anywhere;font-size:15px}code{font:13px/1.4 ui-monospace,monospace}
"""


def html_document(title: str, *body: str) -> str:
    """A whole page: ``SenseVoice · title`` in the tab, the CSS, the heading, then ``body``."""
    return "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>SenseVoice · {esc(title)}</title><style>{STYLE}</style></head><body>",
            "<h1>SenseVoice speech analytics</h1>",
            *body,
            "</body></html>",
        ]
    )


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    numeric: bool = False
    get: Callable[[Any], Any] | None = None
    wrap: bool = False  # long free text (a reason, a status) wraps; every other cell stays on one line
    # the row's URL (relative to the page; None for no link): the cell links there
    link: Callable[[Any], str | None] | None = None

    def value(self, row: Any) -> Any:
        """This column's value in ``row`` (a dict or an object): ``get(row)``, else the field named ``key``."""
        if self.get:
            return self.get(row)
        return row.get(self.key) if isinstance(row, dict) else getattr(row, self.key)


def _cell(column: Column, row: Any) -> str:
    """A cell's HTML: its value escaped, inside a link when the column has one for the row (the URL escaped too)."""
    text = esc(column.value(row))
    href = column.link(row) if column.link else None
    return f'<a href="{esc(href)}">{text}</a>' if href else text


def render_table(columns: list[Column], rows: list, empty: str, css_class: str = "") -> str:
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th{' class=num' if c.numeric else ''}>{esc(c.title)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            cls = " class=num" if c.numeric else " class=wrap" if c.wrap else ""
            cells.append(f"<td{cls}>{_cell(c, row)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return (
        f'<div class="scroll">{table}</div>'  # a table wider than the window scrolls by itself, not the page
    )
