"""The plugin page's trend and runs without a lake (ui/chart.py, ui/page_html.py): the trend's caption states every
filter, a day without data keeps its slot, an empty range says there is no data for those filters instead of drawing
axes, and a run's duration is its own (not counted from its data interval). The run's start the daily DAG records:
``daily.airflow_run_start``. Over a small real lake: tests/integration/page/test_page_data.py."""

from __future__ import annotations

import datetime as dt
import re

from sensevoice_pipeline.ui.page_data import Dashboard
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.ui.page_text import esc

D1, D2, D3 = (dt.date(2026, 3, d) for d in (1, 2, 3))
UTC = dt.UTC


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


# -- run durations -----------------------------------------------------------------------------------------------------


def run_row(started_at, finished_at, date=D1):
    return {
        "date": date,
        "run_id": "manual__x",
        "started_at": started_at,
        "finished_at": finished_at,
        "files": 3,
    }


def took(page: str) -> list[str]:
    """The "took" cells of the Recent runs table."""
    section = page.split('<section id="runs">', 1)[1].split("</section>", 1)[0]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    column = header.index("took")
    return [
        re.findall(r"<td[^>]*>([^<]*)</td>", row)[column]
        for row in re.findall(r"<tr>(.*?)</tr>", section)[1:]
    ]


def test_a_run_takes_its_own_time_not_the_time_since_its_data_interval(tmp_path):
    """The demo's run of 2026-03-01 ran on 2026-03-02 at 05:20 for 65 s. `airflow dags test` gave its DagRun the
    logical date as start_date (seen in Airflow 3.3.2: start_date 2026-11-22 00:00 for a test run asked for on
    2026-12-07 at 13:34); the row it wrote then said the run took 1760.3 min."""
    from sensevoice_pipeline.jobs.daily import airflow_run_start

    logical_date = dt.datetime(2026, 3, 1, tzinfo=UTC)
    asked = dt.datetime(2026, 3, 2, 5, 20, tzinfo=UTC)
    finished = asked + dt.timedelta(seconds=65)
    started = airflow_run_start(start_date=logical_date, run_after=asked)  # what `dags test`'s DagRun says
    assert started == asked
    runs = [
        run_row(started, finished),
        run_row(
            logical_date, finished
        ),  # written before the DAG recorded its own start: the demo's date, 00:00
        run_row(logical_date + dt.timedelta(days=1), finished),  # no `date` Param: the data interval's end
    ]
    assert took(render_page(board(tmp_path, runs=runs))) == ["65 s", "", ""]


def test_a_scheduled_run_starts_when_the_scheduler_started_it():
    from sensevoice_pipeline.jobs.daily import airflow_run_start

    run_after = dt.datetime(2026, 3, 2, tzinfo=UTC)  # its data interval's end
    started = run_after + dt.timedelta(seconds=7)
    assert airflow_run_start(started, run_after) == started
    assert airflow_run_start(None, run_after) == run_after and airflow_run_start(None, None) is None


def test_long_runs_are_shown_in_minutes(tmp_path):
    start = dt.datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC)
    runs = [run_row(start, start + dt.timedelta(minutes=42, seconds=30)), run_row(start, None)]
    assert took(render_page(board(tmp_path, runs=runs))) == ["42.5 min", ""]


def test_the_trend_marks_where_the_scoring_version_changes_and_the_summary_says_which_scored_which_days(
    tmp_path,
):
    # D1 scored by version 1, D2 (no trend data) and D3 by version 2: one marker, before D2, the first day of 2
    versions = {D1: "1", D2: "2", D3: "2"}
    page = render_page(board(tmp_path, TREND, day_versions=versions, model_versions=["1", "2"]))
    markers = re.findall(r'<line x1="([\d.]+)"[^>]*class="promote"><title>([^<]*)</title>', page)
    assert [title for _, title in markers] == [
        "from 2026-03-02: model version 2"
    ] * 2  # one per panel (channels)
    assert 'class="promote">version 2</text>' in page
    assert "scored by model version 1" in page and "scored by model version 2" in page  # the bars' tooltips
    assert f"({esc('version 1 2026-03-01, version 2 2026-03-02 – 2026-03-03')})" in page
    one = render_page(board(tmp_path, TREND, day_versions={D1: "1", D3: "1"}, model_versions=["1"]))
    assert 'class="promote"' not in one and "version 1 2026-03-01" not in one
