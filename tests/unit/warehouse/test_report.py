"""The PNG charts of `svp query --png` (warehouse/report.py), read back from the matplotlib figure they are drawn from
(``figure_for``) and from the PNG file: a grouped trend has one panel per group, the title states every filter,
angry-calls ranks the top calls as labelled bars in a colour no emotion has, an empty answer draws no axes, and a
day without data keeps its place on the x axis. The answers are built by hand with the columns the queries return
(warehouse/queries.py)."""

from __future__ import annotations

import datetime as dt

import matplotlib.colors as mcolors
import pyarrow as pa
import pytest
from matplotlib.text import Text

from sensevoice_pipeline.warehouse.report import (
    CALL_COLOR,
    EMOTION_COLORS,
    EXTRA_COLORS,
    TOP_CALLS,
    chart_title,
    figure_for,
    write_chart,
)

D1, D2, D3, D4 = (dt.date(2026, 3, d) for d in (1, 2, 3, 4))


def trend(rows: list[tuple]) -> pa.Table:
    """emotion-trend's answer by channel: (date, channel, emotion, utterances) rows."""
    return pa.table(
        {
            "date": pa.array([r[0] for r in rows], pa.date32()),
            "channel": pa.array([r[1] for r in rows], pa.int16()),
            "emotion": [r[2] for r in rows],
            "utterances": pa.array([r[3] for r in rows], pa.int64()),
            "speech_seconds": [2.5 * r[3] for r in rows],
            "share": [0.5 for _ in rows],
        }
    )


# Channel 0 has more utterances than channel 1; no row on D2 (the gap day), none at all on D4.
TREND = trend(
    [
        (D1, 0, "neutral", 4),
        (D1, 0, "angry", 2),
        (D1, 1, "happy", 1),
        (D3, 0, "neutral", 3),
        (D3, 1, "angry", 2),
        (D3, 1, "neutral", 1),
    ]
)


def angry_calls(n: int) -> pa.Table:
    """angry-calls' answer for ``n`` calls, in no particular order; call i has i+1 angry of 2n segments."""
    order = [(i * 7) % n for i in range(n)]  # a permutation: the chart must rank them itself
    return pa.table(
        {
            "date": pa.array([D1 + dt.timedelta(days=i % 3) for i in order], pa.date32()),
            "source_path": [f"queues/billing/call-{i:03d}.wav" for i in order],
            "channel": pa.array([0 for _ in order], pa.int16()),
            "angry_segments": pa.array([i + 1 for i in order], pa.int64()),
            "segments": pa.array([2 * n for _ in order], pa.int64()),
            "angry_share": [round((i + 1) / (2 * n), 3) for i in order],
            "angry_text": ["why is my bill wrong" for _ in order],
        }
    )


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def stack_colors(ax) -> dict[str, str]:
    return {c.get_label(): mcolors.to_hex(c.patches[0].get_facecolor()) for c in ax.containers}


# -- emotion-trend: one panel per group, every day of the range --------------------------------------------------------


def test_the_trend_by_channel_draws_one_panel_per_channel_largest_first():
    fig = figure_for("emotion-trend", TREND, by="channel")
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "channel 0 — 9 utterances",
        "channel 1 — 4 utterances",
    ]
    for ax in fig.axes:  # each panel stacks the emotions in their own colours, neutral at the bottom
        assert stack_colors(ax) == {e: EMOTION_COLORS[e] for e in ("neutral", "happy", "angry")}
    first, second = fig.axes
    assert [p.get_height() for p in first.containers[0].patches] == [4, 0, 3]  # channel 0's neutral per day
    assert [p.get_height() for p in second.containers[0].patches] == [0, 0, 1]  # channel 1's neutral per day
    legend = fig.legends[0]  # one legend for every panel, in stacking order
    assert [t.get_text() for t in legend.get_texts()] == ["neutral", "happy", "angry"]


def test_the_trend_by_language_is_another_chart_than_by_channel():
    by_language = TREND.rename_columns(
        ["date", "language", "emotion", "utterances", "speech_seconds", "share"]
    )
    by_language = by_language.set_column(1, "language", pa.array(["en", "en", "zh", "en", "zh", "zh"]))
    fig = figure_for("emotion-trend", by_language, by="language")
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "language en — 9 utterances",
        "language zh — 4 utterances",
    ]
    assert fig.get_suptitle().startswith("emotion-trend by language ·")


def test_a_day_without_data_keeps_its_slot_and_the_range_asked_for_is_drawn_whole():
    fig = figure_for("emotion-trend", TREND, by="channel")  # no range given: the data's first to last day
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
    ]
    fig = figure_for("emotion-trend", TREND, by="channel", date_from=D1, date_to=D4)
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
    ]
    assert all(len(c.patches) == 4 for ax in fig.axes for c in ax.containers)  # a slot per day, empty or not
    left, right = fig.axes[0].get_xlim()
    assert left < 0 and right > 3  # the first and the last day are inside the axis


def test_a_long_range_labels_about_fourteen_days_and_keeps_every_slot():
    rows = [(D1, 0, "neutral", 1), (D1 + dt.timedelta(days=89), 0, "neutral", 1)]
    fig = figure_for("emotion-trend", trend(rows), by="channel")
    (ax,) = fig.axes
    assert len(ax.containers[0].patches) == 90
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 10 <= len(labels) <= 15 and labels[0] == "2026-03-01"


def test_more_groups_than_panels_are_named_under_the_chart():
    rows = [(D1, ch, "neutral", 20 - ch) for ch in range(10)]
    fig = figure_for("emotion-trend", trend(rows), by="channel")
    assert len(fig.axes) == 8
    assert "Not drawn (2 smaller channel groups): 8, 9" in texts(fig)


# -- titles: every filter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "title"),
    [
        ({"name": "emotion-trend"}, "emotion-trend by language · all dates"),
        (
            {"name": "emotion-trend", "by": "channel", "date_from": D1, "date_to": D3, "min_confidence": 0.8},
            "emotion-trend by channel · 2026-03-01 – 2026-03-03 · emotion confidence ≥ 0.8",
        ),
        ({"name": "emotion-trend", "date_from": "2026-03-01"}, "emotion-trend by language · from 2026-03-01"),
        (
            {"name": "angry-share", "date_to": D2, "min_confidence": 0.6},
            "angry-share · up to 2026-03-02 · emotion confidence ≥ 0.6",
        ),
        (
            {"name": "angry-calls", "by": "channel", "date_from": D2, "date_to": D2},
            "angry-calls · 2026-03-02",
        ),
        ({"name": "events", "date_from": D1, "date_to": D3}, "events · 2026-03-01 – 2026-03-03"),
    ],
)
def test_the_title_states_every_filter(kwargs, title):
    assert chart_title(**kwargs) == title


def test_the_drawn_title_carries_the_filters():
    fig = figure_for("emotion-trend", TREND, by="channel", date_from=D1, date_to=D4, min_confidence=0.7)
    assert (
        fig.get_suptitle() == "emotion-trend by channel · 2026-03-01 – 2026-03-04 · emotion confidence ≥ 0.7"
    )


# -- angry-calls: the top calls, ranked, labelled, in no emotion's colour --------------------------------------------------


def test_angry_calls_draws_the_top_calls_as_labelled_horizontal_bars():
    fig = figure_for("angry-calls", angry_calls(40))
    (ax,) = fig.axes
    (bars,) = ax.containers
    assert bars.orientation == "horizontal" and len(bars.patches) == TOP_CALLS == 20
    widths = [p.get_width() for p in bars.patches]
    assert widths == sorted(widths, reverse=True) and widths[0] == 0.5  # call 39: 40 of 80 segments
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "2026-03-01  queues/billing/call-039.wav" and len(labels) == 20
    assert ax.yaxis_inverted()  # the angriest on top
    assert "50%  (40 of 80 segments)" in texts(fig)
    assert "20 more calls not drawn: --csv FILE lists every one" in texts(fig)
    colors = {mcolors.to_hex(p.get_facecolor()) for p in bars.patches}
    assert colors == {CALL_COLOR}
    assert CALL_COLOR not in {*EMOTION_COLORS.values(), *EXTRA_COLORS}


def test_a_few_calls_are_all_drawn_with_their_channel_when_calls_have_several():
    calls = angry_calls(3)
    calls = calls.set_column(2, "channel", pa.array([0, 1, 0], pa.int16()))
    fig = figure_for("angry-calls", calls)
    (ax,) = fig.axes
    assert len(ax.containers[0].patches) == 3
    assert all(t.get_text().endswith(("ch 0", "ch 1")) for t in ax.get_yticklabels())
    assert not any("not drawn" in t for t in texts(fig))


# -- an empty answer: no axes, a sentence with the filters -------------------------------------------------------------


@pytest.mark.parametrize("name", ["emotion-trend", "angry-calls", "events", "angry-share"])
def test_an_empty_answer_draws_no_axes_and_says_no_data_for_the_filters(name, tmp_path):
    empty = TREND.slice(0, 0) if name == "emotion-trend" else angry_calls(1).slice(0, 0)
    fig = figure_for(name, empty, by="channel", date_from="2025-01-01", date_to="2025-01-31")
    assert fig.axes == []
    assert texts(fig) == [f"No data for {chart_title(name, 'channel', '2025-01-01', '2025-01-31')}"]
    png = tmp_path / "empty.png"
    write_chart(name, empty, png, by="channel", date_from="2025-01-01", date_to="2025-01-31")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_query_without_a_chart_is_refused():
    with pytest.raises(ValueError, match="model-usage has no chart"):
        figure_for("model-usage", pa.table({"model_version": ["1"]}))


# -- the file ------------------------------------------------------------------------------------------------------


def test_the_png_has_the_emotion_colours_and_the_call_colour(tmp_path):
    import matplotlib.image as mimage
    import numpy as np

    def pixels(png) -> set[str]:
        rgb = np.unique((mimage.imread(png)[..., :3] * 255).round().astype(int).reshape(-1, 3), axis=0)
        return {"#{:02x}{:02x}{:02x}".format(*p) for p in rgb}

    write_chart("emotion-trend", TREND, tmp_path / "trend.png", by="channel")
    assert {EMOTION_COLORS[e] for e in ("neutral", "happy", "angry")} <= pixels(tmp_path / "trend.png")
    write_chart("angry-calls", angry_calls(5), tmp_path / "calls.png")
    calls = pixels(tmp_path / "calls.png")
    assert CALL_COLOR in calls and not set(EMOTION_COLORS.values()) & calls
