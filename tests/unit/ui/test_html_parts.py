"""ui/html_parts.py: the page around the plugin's content, its headers and its tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from sensevoice_pipeline.ui.html_parts import SECURITY_HEADERS, Column, html_document, render_table


class Cells(HTMLParser):
    """The (tag, class, text) of every th and td, in order."""

    def __init__(self, html: str):
        super().__init__()
        self.cells: list[tuple[str, str | None, str]] = []
        self._open: list | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self._open = [tag, dict(attrs).get("class"), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._open is not None:
            self.cells.append(tuple(self._open))
            self._open = None


@dataclass
class Run:
    run_id: str
    files: int
    reason: str


def test_a_document_escapes_its_title_and_keeps_its_body_in_order():
    page = html_document("<b>try</b> & see", "<p>one</p>", "<p>two</p>")
    assert page.startswith('<!doctype html><html lang="en"><head><meta charset="utf-8">')
    assert "<title>SenseVoice · &lt;b&gt;try&lt;/b&gt; &amp; see</title>" in page
    assert re.search(r"<h1>SenseVoice speech analytics</h1><p>one</p><p>two</p></body></html>$", page)
    assert "<script" not in page and "<link" not in page and "<style>" in page  # self-contained


def test_the_headers_allow_inline_style_and_nothing_that_loads_or_runs():
    policy = dict(
        part.strip().split(" ", 1) for part in SECURITY_HEADERS["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert policy["style-src"] == "'unsafe-inline'" and policy["img-src"] == "data:"
    assert policy["form-action"] == "'self'" and policy["frame-ancestors"] == "'self'"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


def test_a_column_reads_a_dict_key_an_attribute_or_its_getter():
    row = Run("r-1", 3, "ok")
    assert Column("files", "files").value(row) == 3
    assert Column("files", "files").value({"files": 4}) == 4
    assert Column("files", "files").value({}) is None  # a dict row may lack a key
    assert Column("x", "both", get=lambda r: f"{r.run_id}:{r.files}").value(row) == "r-1:3"


def test_a_table_classes_its_numeric_and_wrapping_cells_and_escapes_every_value():
    columns = [
        Column("run_id", "run <id>"),
        Column("files", "files", numeric=True),
        Column("reason", "reason", wrap=True),
    ]
    rows = [Run("r-1", 12345, "<script>alert(1)</script>"), {"run_id": "r-2", "files": None, "reason": True}]
    html = render_table(columns, rows, "no runs", css_class="compact")
    assert html.startswith('<div class="scroll"><table class="compact"><thead>') and html.endswith("</div>")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert Cells(html).cells == [
        ("th", None, "run <id>"),
        ("th", "num", "files"),
        ("th", None, "reason"),  # only a cell wraps, not its heading
        ("td", None, "r-1"),
        ("td", "num", "12,345"),
        ("td", "wrap", "<script>alert(1)</script>"),
        ("td", None, "r-2"),
        ("td", "num", ""),
        ("td", "wrap", "yes"),
    ]
    assert html.count("<tr>") == 3


def test_an_empty_table_is_its_escaped_message_and_no_table():
    html = render_table([Column("a", "a")], [], "no runs <yet>")
    assert html == '<p class="empty">no runs &lt;yet&gt;</p>'
    assert render_table([Column("a", "a")], [{"a": 1}], "x").startswith('<div class="scroll"><table><thead>')
