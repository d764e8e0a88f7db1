"""The SenseVoice Airflow page's data without a lake (ui/page_data.py, warehouse/report.py): its parameters refuse bad
values, a page with no lake and no repository still renders, and each emotion's colour means what it should. Over a
small real lake: tests/integration/page/test_page_data.py."""

from __future__ import annotations

import datetime as dt

import pytest

from sensevoice_pipeline.ui.page_data import DashboardParamError, Params, load_dashboard
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.warehouse.database import Warehouse

# -- parameters --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"date_to": "2026-01-01'; DROP TABLE x;--"},
        {"date_from": "2026-13-01"},
        {"date_from": "2026-02-30"},
        {"date_from": "20260301"},
        {"date_from": "2026-03-01\n"},
        {"date_from": "２０２６-03-01"},
        {"date_from": "2026-03-02", "date_to": "2026-03-01"},
        {"date_from": "2020-01-01", "date_to": "2026-01-01"},
        {"by": "language; DROP TABLE runs"},
        {"by": "emotion"},
    ],
)
def test_params_refuse_bad_values(kwargs):
    with pytest.raises(DashboardParamError):
        Params.parse(**kwargs)


def test_params_accept_dates_and_groupings():
    assert Params.parse("2026-03-01", "2026-03-03", "channel") == Params(
        dt.date(2026, 3, 1), dt.date(2026, 3, 3), "channel"
    )
    assert Params.parse("", None) == Params(None, None, "language")


def test_page_without_a_lake_or_a_repository(tmp_path):
    board = load_dashboard(
        Warehouse(tmp_path / "lake"), tmp_path / "nothing", Params(), today=dt.date(2026, 5, 1)
    )
    assert board.date_to == dt.date(2026, 5, 1) and board.trend == board.runs == board.models == []
    page = render_page(board)
    assert "No warehouse yet" in page and "No model repository at" in page


# -- emotion colours: one mapping for the PNG charts and the page ------------------------------------------------------

MEANT = {
    "angry": "red",
    "happy": "green",
    "neutral": "grey",
    "sad": "blue",
    "fearful": "purple",
    "disgusted": "olive",
    "surprised": "orange",
    "unknown": "light grey",
}


def _hue(hex_color: str) -> str:
    """A colour name for a hex value, coarse enough to check that each emotion's colour means what it should."""
    import colorsys

    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    h, lightness, sat = colorsys.rgb_to_hls(r, g, b)
    if sat < 0.25 or max(r, g, b) - min(r, g, b) < 0.12:
        return "light grey" if lightness > 0.78 else "grey"
    deg = h * 360
    for name, upto in (
        ("red", 15),
        ("orange", 40),
        ("olive", 65),
        ("green", 160),
        ("blue", 250),
        ("purple", 330),
    ):
        if deg < upto:
            return name
    return "red"


def test_emotion_colours_mean_something():
    from sensevoice_pipeline.warehouse.report import EMOTION_COLORS

    assert {e: _hue(c) for e, c in EMOTION_COLORS.items()} == MEANT
    assert len(set(EMOTION_COLORS.values())) == len(EMOTION_COLORS)
