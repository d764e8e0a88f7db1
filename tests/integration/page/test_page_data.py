"""The SenseVoice Airflow page's data and HTML over a small real lake (Parquet + DuckDB/DuckLake through the catalog,
tests/support/page.py): every section, the chart and its colours, the confidence filter, and no server path
anywhere. In-process, no server; not a unit test only for time: every lake and warehouse it builds costs a second
or two. Its parameters and colours alone: tests/unit/ui/test_page_data.py; the page in a real api-server:
tests/integration/airflow/test_plugin.py; in a browser: test_page_browser.py."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.ui import page_text
from sensevoice_pipeline.ui.chart import nice_step
from sensevoice_pipeline.ui.page_data import DashboardParamError, Params, load_dashboard
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.support.lake import confident_utterance as utterance
from tests.support.page import (
    DATES,
    EVIL_ERROR,
    assert_no_server_paths,
    build_model_repository,
    esc,
    load,
    recording_row,
    utterance_row,
)

# -- data and HTML over a real lake ----------------------------------------------------------------------------------


def test_default_range_ends_on_the_latest_published_day(lake, model_repo):
    board = load(lake, model_repo)
    assert (board.date_from, board.date_to) == (dt.date(2026, 2, 2), dt.date(2026, 3, 3))
    assert board.notes == []
    only_from = load(lake, model_repo, date_from="2026-04-01")  # after the lake's last day: an empty range
    assert (only_from.date_from, only_from.date_to) == (dt.date(2026, 4, 1), dt.date(2026, 4, 1))


def test_a_one_day_lake_answers_the_page_and_every_canned_query(tmp_path, model_repo):
    """DuckDB 1.5.5 raised an internal error for max() of a hive partition column when the scan held one file (the
    demo's one-day lake answered 500). The catalog's tables carry the date as a real column: no such scan."""
    from sensevoice_pipeline.warehouse.database import QUERIES

    lake = tmp_path / "lake"
    utt = tables.to_table([utterance_row(DATES[0], "r", 0, 0, "en", "angry", "one")], tables.UTTERANCES)
    Lake(lake).commit_day(
        DATES[0],
        {
            "utterances": utt,
            **tables.rollups(utt),
            "recordings": tables.to_table([recording_row(DATES[0], "r", "one", n=1)], tables.RECORDINGS),
            "runs": tables.to_table([{"run_id": "one", "files": 1}], tables.RUNS),
        },
    )
    Warehouse(lake).refresh()
    board = load(lake, model_repo)
    assert board.date_to == dt.date.fromisoformat(DATES[0]) and board.notes == []
    # One call, angry from its first segment: it ended angry but did not escalate (it never started calm).
    expected_rows = {name: 0 if name == "escalations" else 1 for name in QUERIES}
    assert {name: Warehouse(lake).query(name).num_rows for name in QUERIES} == expected_rows


def test_dashboard_data(lake, model_repo):
    board = load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03")
    trend = {(str(r["date"]), r["language"], r["emotion"]): r["utterances"] for r in board.trend}
    assert trend[("2026-03-01", "en", "neutral")] == 3 and trend[("2026-03-02", "en", "angry")] == 2
    assert sum(trend.values()) == 17
    assert [r["date"] for r in board.runs] == [dt.date(2026, 3, 3), dt.date(2026, 3, 2), dt.date(2026, 3, 1)]
    assert [r["files_failed"] for r in board.runs] == [1, 1, 0]
    assert board.failed_total == 2 and {r["error"] for r in board.failed} == {EVIL_ERROR}
    models = {m.version: m for m in board.models}
    assert (
        models["1"].status == "complete" and models["1"].utterances == 14 and models["1"].precision == "int8"
    )
    assert models["2"].status.startswith("incomplete") and models["2"].utterances is None
    assert models["2"].status.endswith("more: svp models show 2)")  # one problem shown, not a dozen
    assert models["7"].status == "not in this repository" and models["7"].utterances == 3
    by_channel = load(lake, model_repo, date_from="2026-03-02", date_to="2026-03-02", by="channel")
    assert {(r["channel"], r["emotion"]): r["utterances"] for r in by_channel.trend} == {
        (0, "angry"): 2,
        (0, "neutral"): 1,
        (1, "happy"): 2,
        (1, "neutral"): 1,
        (1, "sad"): 1,
    }


def test_render_page_escapes_and_shows_every_section(lake, model_repo):
    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    assert page.count("<svg") == 1 and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "calls/&lt;b&gt;bad&lt;/b&gt;&amp;co.mp3" in page
    for text in (
        "Daily emotion trend by language",
        "language en — 9 utterances",
        "language zh — 8 utterances",
        "2026-03-02 language en angry: 2 utterances (66.7%)",
        "scheduled__2026-03-03T00:00:00+00:00",
        "2026-03-04 01:00:42",
        "42 s",
        "iic/SenseVoiceSmall",
        "2026-02-27 10:00:00",
        "234.0 M",
        "max abs 1.0e-02",
        "argmax 98.50%",
        "not in this repository",
        "incomplete: sensevoice/2/model.py is missing",
    ):
        assert esc(text) in page, text
    assert re.search(r'<input type="date" name="from" value="2026-03-01">', page)
    assert '<option value="language" selected>' in page


def test_render_page_by_channel_and_empty_range(lake, model_repo):
    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-01", by="channel"))
    assert "channel 0 — 5 utterances" in page and "channel 1 — 2 utterances" in page
    empty = render_page(load(lake, model_repo, date_from="2025-01-01", date_to="2025-01-31"))
    assert "<svg" not in empty
    assert esc("No data for the emotion trend by language, 2025-01-01 – 2025-01-31.") in empty
    assert "No runs for dates in this range." in empty and "No failed recordings in this range." in empty


def test_serving_file_is_shown_when_present(lake, tmp_path):
    repo = build_model_repository(tmp_path / "repo")
    (repo / "serving.json").write_text(
        json.dumps(
            {
                "serving": 1,
                "previous": None,
                "staged": 2,
                "retired": [],
                "mirror": "<i>pinned</i>",  # shown escaped
                "history": [{"at": "x"}, {"at": "y"}],
            }
        )
    )
    board = load(lake, repo, date_from="2026-03-01", date_to="2026-03-03")
    assert {m.version: m.role for m in board.models} == {"1": "serving", "2": "staged", "7": ""}
    page = render_page(board)
    for text in (
        "<dt>serving</dt><dd>1</dd>",
        "<dt>previous</dt><dd>none</dd>",
        "<dt>history</dt><dd>(2 entries)</dd>",
        "&lt;i&gt;pinned&lt;/i&gt;",
    ):
        assert text in page, text
    (repo / "serving.json").write_text("{not json")  # unreadable: the page goes on without it
    assert load(lake, repo).serving is None


# -- emotion colours: one mapping for the PNG charts and the page ------------------------------------------------------


def test_png_chart_and_page_use_the_same_emotion_colours(lake, model_repo, tmp_path):
    import matplotlib.colors as mcolors
    import matplotlib.image as mimage
    import pyarrow as pa

    from sensevoice_pipeline.warehouse.report import EMOTION_COLORS, figure_for, write_chart

    table = Warehouse(lake).query("emotion-trend", dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    columns = ["date", "language", "emotion", "utterances"]
    extra = pa.table(
        {
            "date": [dt.date(2026, 3, 3)] * 3,
            "language": ["en"] * 3,
            "emotion": ["fearful", "disgusted", "unknown"],
            "utterances": [1, 1, 1],
        }
    )  # the emotions the small lake lacks
    table = pa.concat_tables([table.select(columns), extra.cast(table.select(columns).schema)])
    fig = figure_for("emotion-trend", table)  # the figure write_chart saves, to read its bars
    bars = {c.get_label(): mcolors.to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers}
    assert bars == EMOTION_COLORS  # every emotion, each in its colour (angry red, neutral grey, ...)
    assert list(bars)[:2] == ["neutral", "happy"]  # stacked in the mapping's order: neutral at the bottom
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(bars)  # the page's legend order
    # The rendered pixels carry those colours too (each bar's inside is drawn in its exact colour).
    png = tmp_path / "trend.png"
    write_chart("emotion-trend", table, png)
    pixels = {mcolors.to_hex(tuple(p[:3])) for p in mimage.imread(png).reshape(-1, 4)}
    assert set(EMOTION_COLORS.values()) <= pixels
    assert "#1f77b4" not in pixels  # matplotlib's first default colour (which made angry blue) is not used

    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    legend = dict(
        (e, c)
        for c, e in re.findall(
            r'<rect x="\d+" y="8" width="12" height="12" fill="(#[0-9a-f]{6})"/>'
            r'<text [^>]*class="legend">([^<]+)</text>',
            page,
        )
    )
    assert legend == {e: EMOTION_COLORS[e] for e in ("neutral", "happy", "sad", "angry", "surprised")}
    for emotion, color in legend.items():  # every bar segment of an emotion has its colour
        fills = set(re.findall(rf'fill="(#[0-9a-f]{{6}})"><title>[^<]* {emotion}: ', page))
        assert fills == {color}, emotion


# -- what the page says it shows; no server paths ----------------------------------------------------------------------


def test_page_says_what_it_shows(lake, model_repo):
    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    summary = re.search(r'<p class="summary">(.*?)</p>', page).group(1)
    assert "Dates <b>2026-03-01 – 2026-03-03</b> (3 days)" in summary
    assert "model versions <b>1, 7</b>" in summary
    assert '<a href="#failed">2 failed files</a>' in summary
    assert '<section id="failed"><h2>Failed recordings (2)</h2>' in page
    one_day = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-01"))
    summary = re.search(r'<p class="summary">(.*?)</p>', one_day).group(1)
    assert "(1 day)" in summary and "model version <b>1</b>" in summary and "0 failed files" in summary
    assert "href" not in summary  # nothing to jump to


def test_chart_y_axis_labels_are_exact_counts(lake, model_repo):
    """The middle grid line is labelled with the count it stands at (a panel of 5 at most once read 0, 2, 5 with the
    2 on the line of 2.5): the top is twice a whole step."""
    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    labels = [int(x) for x in re.findall(r'class="ylab">(\d+)</text>', page)]
    assert labels == [0, 3, 6, 0, 2, 4]  # en: days of 5, 3, 1 utterances; zh: 2, 4, 2
    assert [nice_step(p) for p in (0, 1, 5, 21, 617)] == [1, 1, 3, 12, 400]


def test_page_shows_no_server_paths(lake, model_repo, tmp_path):
    page = render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    assert_no_server_paths(page, lake, model_repo, lake.parent)
    missing = render_page(
        load_dashboard(
            Warehouse(tmp_path / "lake"), tmp_path / "nothing", Params(), today=dt.date(2026, 5, 1)
        )
    )
    assert "No model repository at" in missing
    assert_no_server_paths(missing, tmp_path)


def test_failure_reasons_lose_their_server_paths(lake, model_repo):
    board = load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03")
    board.failed[0]["error"] = f"decode failed: {lake}/staging/2026-03-02/calls/x.wav: Format not recognised"
    board.failed[1]["error"] = "fetch failed: /srv/raw/date=2026-03-03/q/call 1.wav (s3://bucket/raw/k.wav)"
    board.notes.append(f"No warehouse yet: {model_repo}/sensevoice is odd")
    page = render_page(board)
    assert_no_server_paths(page, lake, model_repo)
    for text in (
        "decode failed: [lake]/staging/2026-03-02/calls/x.wav: Format not recognised",
        "fetch failed: …/call 1.wav (s3://bucket/raw/k.wav)",
        "[model repository]/sensevoice is odd",
    ):
        assert esc(text) in page, text
    assert page_text.redact("ratio 1/2, calls/a.wav, http://h/p/q") == "ratio 1/2, calls/a.wav, http://h/p/q"
    from sensevoice_pipeline.lake.storage import ObjectPath

    s3_lake = {"lake": ObjectPath.parse("s3://bucket/lake"), "model repository": model_repo}  # a lake on S3
    assert (
        page_text.redact(f"{model_repo}/x and s3://bucket/lake/y", s3_lake)
        == "[model repository]/x and s3://bucket/lake/y"
    )


# -- the confidence filter (issue 18) -----------------------------------------------------------------------------


def test_the_page_filters_the_trend_on_confidence_and_refuses_other_thresholds(tmp_path):
    from sensevoice_pipeline.ui.page_data import Params, load_dashboard
    from sensevoice_pipeline.ui.page_html import render_page
    from sensevoice_pipeline.warehouse.database import Warehouse

    lake = Lake(tmp_path / "lake")
    day = tables.to_table(
        [utterance(0, "angry", 0.93), utterance(1, "angry", 0.41), utterance(2, "happy", None)],
        tables.UTTERANCES,
    )
    lake.commit_day("2026-03-01", {"utterances": day, **tables.rollups(day)})
    warehouse = Warehouse(tmp_path / "lake", tmp_path / "warehouse.duckdb")
    warehouse.refresh()

    def trend(min_confidence):
        board = load_dashboard(
            warehouse, tmp_path / "repo", Params.parse("2026-03-01", "2026-03-01", "language", min_confidence)
        )
        return board, {r["emotion"]: r["utterances"] for r in board.trend}

    _, everything = trend(None)
    board, confident = trend("0.8")
    assert everything == {"angry": 2, "happy": 1} and confident == {"angry": 1}
    html = render_page(board)
    assert 'name="min_confidence"' in html and '<option value="0.8" selected>' in html
    for bad in ("0.85", "high", "2"):
        with pytest.raises(DashboardParamError, match="min_confidence"):
            Params.parse(None, None, "language", bad)


# -- a call's timeline (issue 31, item 2) ----------------------------------------------------------------------------


def test_the_angriest_calls_and_the_failed_files_link_to_their_timelines(lake, model_repo):
    board = load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03")
    assert [(str(r["date"]), r["recording_id"], r["channel"]) for r in board.angry] == [
        ("2026-03-02", "2026-03-02-en", 0),  # 2 of 3 angry
        ("2026-03-01", "2026-03-01-en", 1),  # 1 of 2
    ]
    page = render_page(board)
    assert '<section id="angry"><h2>Angriest calls (2)</h2>' in page
    assert '<a href="call?date=2026-03-01&amp;recording=2026-03-01-en">calls/2026-03-01-en.wav</a>' in page
    failed = '<a href="call?date=2026-03-02&amp;recording=2026-03-02-bad">calls/&lt;b&gt;bad&lt;/b&gt;&amp;co.mp3</a>'
    assert failed in page


def test_a_timeline_over_the_lake(lake):
    from sensevoice_pipeline.ui.timeline import TimelineNotFound, TimelineParams, load_timeline
    from sensevoice_pipeline.ui.timeline_html import render_timeline

    timeline = load_timeline(Warehouse(lake), TimelineParams.parse("2026-03-01", "calls/2026-03-01-en.wav"))
    assert timeline.recording_id == "2026-03-01-en" and timeline.split and timeline.notes == []
    assert [
        (lane.label, [(s.start_s, s.end_s, s.emotion) for s in lane.segments]) for lane in timeline.lanes
    ] == [
        ("agent", [(0.0, 2.5, "neutral"), (3.0, 5.5, "neutral"), (6.0, 8.5, "happy")]),
        ("customer", [(9.0, 11.5, "angry"), (12.0, 14.5, "neutral")]),
    ]
    assert timeline.call["ch1_first_angry_s"] == 9.0 and timeline.call["talk_s"] == 12.5
    page = render_timeline(timeline)
    assert page.count('<rect class="seg"') == 5 and "customer 0:09.0–0:11.5 angry: segment 3" in page
    assert_no_server_paths(page, lake, lake.parent)
    failed = render_timeline(
        load_timeline(Warehouse(lake), TimelineParams.parse("2026-03-03", "2026-03-03-bad"))
    )
    assert f"This file failed: {esc(EVIL_ERROR)}" in failed and "<svg" not in failed
    with pytest.raises(TimelineNotFound, match="No recording 'calls/2026-03-01-en.wav' on 2026-03-02"):
        load_timeline(Warehouse(lake), TimelineParams.parse("2026-03-02", "calls/2026-03-01-en.wav"))
