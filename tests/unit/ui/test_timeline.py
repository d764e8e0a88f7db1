"""A call's timeline (ui/timeline.py, ui/timeline_html.py) on constructed rows and on a plain in-memory DuckDB with the
warehouse's three tables (no lake, no process): the bars' places come from the segments' times and their colours
from their emotions, lanes are agent / customer or "call", hostile text is escaped, an unknown recording is a clear
404 and a failed one shows its reason. The page in a real browser: tests/integration/page/test_page_browser.py."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sensevoice_pipeline.errors import http_status
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.ui import timeline_html as th
from sensevoice_pipeline.ui.page_data import Dashboard, DashboardParamError
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.ui.timeline import (
    TimelineNotFound,
    TimelineParams,
    _read,
    build_timeline,
    load_timeline,
    row_href,
    timeline_href,
)
from sensevoice_pipeline.warehouse.database import Warehouse
from sensevoice_pipeline.warehouse.report import EMOTION_COLORS

DAY = dt.date(2026, 3, 2)
PLOT_W = th.WIDTH - th.LEFT - th.RIGHT
SPLIT = {"recording_id": "r1", "source_path": "calls/r1.wav", "status": "ok", "duration_s": 60.0}
SPLIT |= {"channels": 2, "channel_mode": "split", "metadata": [("agent", "ann")]}
# agent 0-10 neutral, customer 8-20 angry (cuts in 2 s before the agent stops), agent 30-45 happy
SEGMENTS = [
    (0, 0, 0.0, 10.0, "neutral", "hello"),
    (1, 1, 8.0, 20.0, "angry", "no!"),
    (0, 2, 30.0, 45.0, "happy", "ok"),
]


def utterance(channel, index, start, end, emotion, text, rec="r1", path="calls/r1.wav"):
    return {
        "recording_id": rec,
        "source_path": path,
        "channel": channel,
        "segment_index": index,
        "start_s": start,
        "end_s": end,
        "language": "en",
        "emotion": emotion,
        "event": "Speech",
        "text": text,
    }


def rows(segments=SEGMENTS, **kw):
    return [utterance(*s, **kw) for s in segments]


def bars(page: str) -> list[dict]:
    """Each segment's bar: its place, size, fill, emotion and tooltip, in document order."""
    pattern = (
        r'<rect class="seg" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="\d+" fill="(#[0-9a-f]{6})" '
        r'data-emotion="([^"]*)"><title>([^<]*)</title></rect>'
    )
    keys = ("x", "y", "width", "fill", "emotion", "title")
    out = [dict(zip(keys, m, strict=True)) for m in re.findall(pattern, page)]
    for b in out:
        b.update(x=float(b["x"]), y=float(b["y"]), width=float(b["width"]))
    return out


# -- rendering constructed rows ----------------------------------------------------------------------------------------


def test_bars_are_placed_by_their_times_and_coloured_by_their_emotions():
    page = th.render_timeline(build_timeline(DAY, SPLIT, rows(), None))
    drawn = {b["title"].split(": ", 1)[1]: b for b in bars(page)}  # by text
    assert len(drawn) == 3
    axis_end = 60.0  # the 60 s call: 5 s ticks, the axis ends on the call's end
    for _, _, start, end, emotion, text in SEGMENTS:
        bar = drawn[text]
        assert bar["x"] == pytest.approx(th.LEFT + PLOT_W * start / axis_end, abs=0.01), text
        assert bar["width"] == pytest.approx(PLOT_W * (end - start) / axis_end, abs=0.01), text
        assert bar["fill"] == EMOTION_COLORS[emotion] and bar["emotion"] == emotion
    # the customer's bar lies in the second lane, below the agent's
    assert drawn["no!"]["y"] == drawn["hello"]["y"] + th.LANE_H == drawn["ok"]["y"] + th.LANE_H
    assert drawn["no!"]["title"] == "customer 0:08.0–0:20.0 angry: no!"
    labels = re.findall(r'class="lane-label">([^<]+)</text>', page)
    assert labels == ["agent", "customer"]
    assert re.findall(r'class="xlab">([^<]+)</text>', page)[::6] == ["0:00", "0:30", "1:00"]
    legend = re.findall(
        r'y="8" width="12" height="12" fill="(#[0-9a-f]{6})"/><text [^>]*>([^<]+)</text>', page
    )
    assert legend == [
        (EMOTION_COLORS[e], e) for e in ("neutral", "happy", "angry")
    ]  # those present, in order
    assert not re.search(r'(src|href|action)="(https?:)?//', page)  # nothing loaded from anywhere


def test_a_mono_call_has_one_lane_and_a_silent_customer_still_has_theirs():
    mono = {**SPLIT, "channels": 1, "channel_mode": "mix"}
    page = th.render_timeline(build_timeline(DAY, mono, rows([SEGMENTS[0]]), None))
    assert re.findall(r'class="lane-label">([^<]+)</text>', page) == ["call"]
    assert bars(page)[0]["title"].startswith("call 0:00.0–0:10.0 neutral")
    silent = th.render_timeline(build_timeline(DAY, SPLIT, rows([SEGMENTS[0]]), None))
    assert re.findall(r'class="lane-label">([^<]+)</text>', silent) == ["agent", "customer"]
    nothing = th.render_timeline(build_timeline(DAY, SPLIT, [], None))
    assert bars(nothing) == [] and "No speech segments in this recording" in nothing


def test_lanes_without_a_recordings_row_follow_the_calls_row_then_the_channels():
    only_ids = {"recording_id": "r1", "source_path": "calls/r1.wav"}
    assert build_timeline(DAY, only_ids, rows(), {"channels": 1}).split is False
    assert build_timeline(DAY, only_ids, rows(), None).split is True  # channel 1 spoke
    assert build_timeline(DAY, only_ids, rows([SEGMENTS[0]]), None).split is False
    odd = build_timeline(DAY, SPLIT, [*rows(), utterance(3, 9, 50.0, 55.0, None, "x")], None)
    assert [(lane.channel, lane.label) for lane in odd.lanes] == [
        (0, "agent"),
        (1, "customer"),
        (3, "channel 3"),
    ]
    assert odd.lanes[2].segments[0].emotion == "unknown"  # a missing tag, as the rollups count it


def test_hostile_text_is_escaped_everywhere():
    evil = "<script>alert('x')</script>"
    recording = {**SPLIT, "source_path": f"calls/{evil}.wav", "metadata": [(evil, f"<b>{evil}</b>")]}
    hostile = [utterance(0, 0, 0.0, 5.0, '"><img src=x>', f"{evil} & more")]
    page = th.render_timeline(build_timeline(DAY, recording, hostile, None))
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<b><script" not in page
    assert "<dt>&lt;script&gt;" in page and "<dd>&lt;b&gt;&lt;script&gt;" in page  # the manifest's columns
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert 'data-emotion="&quot;&gt;&lt;img src=x&gt;"' in page
    error = th.render_timeline_error(f"No recording {evil!r}", "2026-03-02", f'"><script>{evil}')
    assert "<script" not in error.lower() and 'value="&quot;&gt;&lt;script&gt;' in error
    assert 'name="date" value="2026-03-02"' in error
    for not_a_date in ("2026-02-30", '2026"><b>'):  # a date input gets a date or nothing (the browser warns)
        assert 'name="date" value=""' in th.render_timeline_error("bad date", not_a_date, "r1")


def test_a_failed_recording_shows_its_reason_and_no_timeline(tmp_path):
    failed = {**SPLIT, "status": "failed", "error": f"decode failed: {tmp_path}/staging/x.wav: <bad> header"}
    timeline = build_timeline(DAY, failed, [], None)
    timeline.lake_root = tmp_path
    page = th.render_timeline(timeline)
    assert "This file failed: decode failed: [lake]/staging/x.wav: &lt;bad&gt; header" in page
    assert "No timeline: a failed file has no segments" in page
    assert "<svg" not in page and str(tmp_path) not in page


def test_talk_metrics_come_from_the_calls_row():
    call = {"channels": 2, "duration_s": 60.0, "talk_s": 35.0, "non_talk_s": 25.0, "overtalk_s": 2.0}
    call |= {
        "ch0_interruptions": 0,
        "ch1_interruptions": 1,
        "ch0_first_angry_s": None,
        "ch1_first_angry_s": 8.0,
    }
    page = th.render_timeline(build_timeline(DAY, SPLIT, rows(), call))
    metrics = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page.split('id="metrics"')[1]))
    assert metrics == {
        "talk": "35.0 s (58% of the call)",
        "non-talk": "25.0 s (42% of the call)",
        "overtalk": "2.0 s (3% of the call)",
        "interruptions": "agent 0 · customer 1",
        "first angry": "agent none · customer 0:08.0",
    }
    mono = th.render_timeline(build_timeline(DAY, {**SPLIT, "channel_mode": "mix"}, rows(), call))
    assert "overtalk" not in mono and "<dt>first angry</dt><dd>none</dd>" in mono
    assert "No talk metrics" in th.render_timeline(build_timeline(DAY, SPLIT, rows(), None))


@pytest.mark.parametrize(
    ("seconds", "tenths", "text"),
    [
        (0, False, "0:00"),
        (59.6, False, "1:00"),
        (75, False, "1:15"),
        (3725, False, "1:02:05"),
        (8.04, True, "0:08.0"),
    ],
)
def test_clock(seconds, tenths, text):
    assert th.clock(seconds, tenths) == text


def test_the_time_axis_ends_on_a_whole_tick_with_at_most_a_dozen_steps():
    for span, step, end in (
        (0, 1, 1),
        (9.2, 1, 10),
        (60, 5, 60),
        (61, 10, 70),
        (754, 120, 840),
        (50000, 7200, 50400),
    ):
        axis = th.TimeAxis.for_span(span, th.LEFT, PLOT_W)
        assert (axis.step, axis.end) == (step, end), span
        assert len(axis.ticks()) <= th.MAX_TICKS + 1


# -- parameters --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "recording"),
    [
        (None, "r1"),
        ("2026-02-30", "r1"),
        ("2026-03-02'; DROP TABLE x;--", "r1"),
        ("2026-03-02", None),
        ("2026-03-02", "  "),
        ("2026-03-02", "r1\n"),
        ("2026-03-02", "x" * 1025),
    ],
)
def test_params_refuse_bad_values_with_a_422(date, recording):
    with pytest.raises(DashboardParamError) as caught:
        TimelineParams.parse(date, recording)
    assert http_status(caught.value) == 422 and str(caught.value).split(":")[0] in ("date", "recording")


def test_links_name_the_date_and_the_recording_id_url_encoded():
    assert timeline_href(DAY, "a&b <c>") == "call?date=2026-03-02&recording=a%26b+%3Cc%3E"
    assert row_href({"date": DAY, "recording_id": None, "source_path": "/srv/x.wav"}) is None  # never a path
    board = Dashboard(DAY, DAY, "language", Path("/nonexistent/lake"), Path("/nonexistent/models"))
    board.angry = [{"date": DAY, "recording_id": "r&1", "source_path": "calls/<a>.wav", "channel": 1}]
    board.angry[0] |= {"angry_segments": 2, "segments": 3, "angry_share": 0.667, "angry_text": "no / NO"}
    board.failed = [
        {"date": DAY, "recording_id": "bad", "source_path": "calls/bad.mp3", "error": "decode failed"}
    ]
    board.angry_total, board.failed_total = 1, 1
    page = render_page(board)
    assert '<a href="call?date=2026-03-02&amp;recording=r%261">calls/&lt;a&gt;.wav</a>' in page
    assert '<a href="call?date=2026-03-02&amp;recording=bad">calls/bad.mp3</a>' in page
    assert '<section id="angry"><h2>Angriest calls (1)</h2>' in page and "67%" in page


# -- reading the rows: a plain DuckDB with the warehouse's tables ------------------------------------------------------


def _lake_tables(utterances: list[dict], recordings: list[dict]) -> duckdb.DuckDBPyConnection:
    """recordings, utterances and calls (computed by the lake's own rollup) for DAY, as the warehouse names them."""
    utt = tables.to_table(utterances, tables.UTTERANCES)
    rec = tables.to_table(recordings, tables.RECORDINGS)
    con = duckdb.connect()
    for name, table in (
        ("utterances", utt),
        ("recordings", rec),
        ("calls", tables.rollups(utt, rec)["calls"]),
    ):
        dated = table.add_column(0, "date", pa.array([DAY] * table.num_rows, pa.date32()))
        con.register(f"{name}_arrow", dated)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow")
    return con


def _recording(rec="r1", path="calls/r1.wav", **kw) -> dict:
    return {"recording_id": rec, "source_path": path, "status": "ok", "duration_s": 60.0, "channels": 2} | {
        "channel_mode": "split",
        **kw,
    }


@pytest.fixture
def con():
    other = utterance(0, 0, 0.0, 1.0, "sad", "another call", rec="r2", path="calls/r2.wav")
    failed = _recording(
        "bad", "calls/bad.mp3", status="failed", error="decode failed: <evil>", duration_s=None
    )
    connection = _lake_tables([*rows(), other], [_recording(), _recording("r2", "calls/r2.wav"), failed])
    yield connection
    connection.close()


def test_reads_a_call_by_id_or_by_path_with_its_metrics(con):
    by_id = _read(con, TimelineParams(DAY, "r1"), 100)
    by_path = _read(con, TimelineParams(DAY, "calls/r1.wav"), 100)
    assert by_id.recording_id == by_path.recording_id == "r1" and by_id.notes == []
    assert [(s.channel, s.start_s, s.end_s, s.emotion) for s in by_id.segments] == [
        (c, start, end, e) for c, _, start, end, e, _ in sorted(SEGMENTS, key=lambda s: s[2])
    ]
    # the lake's calls rollup: agent 0-10 and 30-45, customer 8-20 (cuts in at 8 s, 2 s of overtalk)
    call = by_id.call
    assert (call["talk_s"], call["non_talk_s"], call["overtalk_s"]) == (35.0, 25.0, 2.0)
    assert (call["ch0_interruptions"], call["ch1_interruptions"], call["ch1_first_angry_s"]) == (0, 1, 8.0)
    assert "<dt>interruptions</dt><dd>agent 0 · customer 1</dd>" in th.render_timeline(by_id)


def test_a_failed_recording_is_read_with_its_reason(con):
    failed = _read(con, TimelineParams(DAY, "bad"), 100)
    assert failed.failed and failed.error == "decode failed: <evil>" and failed.lanes == []
    assert "This file failed: decode failed: &lt;evil&gt;" in th.render_timeline(failed)


def test_an_unknown_recording_or_date_is_a_clear_404(con):
    for params in (TimelineParams(DAY, "nope"), TimelineParams(DAY + dt.timedelta(days=1), "r1")):
        with pytest.raises(TimelineNotFound) as caught:
            _read(con, params, 100)
        assert http_status(caught.value) == 404
        assert str(caught.value).startswith(f"No recording {params.recording!r} on {params.date.isoformat()}")


def test_many_segments_are_cut_with_a_note_and_a_missing_table_is_a_note(con):
    cut = _read(con, TimelineParams(DAY, "r1"), 2)
    assert cut.truncated and [s.start_s for s in cut.segments] == [0.0, 8.0]  # the first, on every channel
    assert "Showing the first 2 segments only" in th.render_timeline(cut)
    con.execute("DROP TABLE calls")
    older = _read(con, TimelineParams(DAY, "r1"), 100)
    assert older.call is None and older.notes == ["No calls published yet."]
    assert "No talk metrics" in th.render_timeline(older)


def test_no_warehouse_is_a_404_that_says_so(tmp_path):
    with pytest.raises(TimelineNotFound, match="No warehouse yet"):
        load_timeline(Warehouse(tmp_path / "lake"), TimelineParams(DAY, "r1"))
