"""The plugin page's trend without a lake (ui/chart.py, ui/page_html.py): its caption states every filter, a day
without data keeps its slot, and an empty range says there is no data for those filters instead of drawing axes.
Over a small real lake: tests/integration/page/test_page_data.py."""

from __future__ import annotations

import datetime as dt
import re

from sensevoice_pipeline.ui.page_data import Dashboard
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.ui.page_text import esc

D1, D2, D3 = (dt.date(2026, 3, d) for d in (1, 2, 3))


def board(tmp_path, trend=(), runs=(), **kwargs) -> Dashboard:
    kwargs = {"date_from": D1, "date_to": D3, "by": "channel", **kwargs}
    return Dashboard(
        lake_root=tmp_path / "lake",
        model_repository=tmp_path / "repo",
        trend=list(trend),
        runs=list(runs),
        **kwargs,
    )


def trend_row(date, channel, emotion, utterances):
    return {"date": date, "channel": channel, "emotion": emotion, "utterances": utterances, "share": 0.5}


TREND = [trend_row(D1, 0, "neutral", 3), trend_row(D1, 1, "angry", 1), trend_row(D3, 0, "angry", 2)]  # no D2


def test_the_trend_caption_states_every_filter(tmp_path):
    page = render_page(board(tmp_path, TREND, min_confidence=0.8))
    caption = "by channel, 2026-03-01 – 2026-03-03, emotion confidence ≥ 0.8"
    assert f"<h2>Daily emotion trend {esc(caption)}</h2>" in page
    assert f'aria-label="{esc("Utterances per day and emotion " + caption)}"' in page
    assert page.count('class="panel"') == 2  # one panel per channel
    plain = render_page(board(tmp_path, date_from=D2, date_to=D2))
    assert "<h2>Daily emotion trend by channel, 2026-03-02</h2>" in plain  # one day; no confidence filter


def test_a_day_without_data_keeps_its_slot_on_the_page(tmp_path):
    page = render_page(board(tmp_path, TREND))
    labels = re.findall(r'class="xlab">([0-9-]+)</text>', page)
    assert labels == ["2026-03-01", "2026-03-02", "2026-03-03"] * 2  # under each of the two panels


def test_an_empty_range_says_no_data_for_its_filters_and_draws_no_axes(tmp_path):
    page = render_page(
        board(
            tmp_path,
            date_from=dt.date(2025, 1, 1),
            date_to=dt.date(2025, 1, 31),
            by="language",
            min_confidence=0.6,
        )
    )
    assert "<svg" not in page
    sentence = "No data for the emotion trend by language, 2025-01-01 – 2025-01-31, emotion confidence ≥ 0.6."
    assert f'<p class="empty">{esc(sentence)}</p>' in page
