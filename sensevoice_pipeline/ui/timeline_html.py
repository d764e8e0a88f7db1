"""A call's timeline as HTML (the plugin's ``call`` page): one lane per channel, each segment a bar from its start to
its end in its emotion's colour (``report.EMOTION_COLORS``, as the dashboard's trend), its text as the bar's
tooltip; a time axis in minutes:seconds, a legend of the emotions present, the call's talk metrics and its
transcript. A failed file gets its reason instead.

Server-rendered SVG, no script, nothing loaded from anywhere (``html_parts.SECURITY_HEADERS``); every value from
data goes through ``esc``, free text from errors through ``for_viewer`` / ``redact`` (no server path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sensevoice_pipeline.ui.chart import legend_svg
from sensevoice_pipeline.ui.html_parts import Column, html_document, render_table
from sensevoice_pipeline.ui.page_data import DashboardParamError, parse_date
from sensevoice_pipeline.ui.page_text import esc, for_viewer, redact
from sensevoice_pipeline.ui.timeline import MAX_RECORDING_CHARS, ROUTE, Lane, Segment, Timeline
from sensevoice_pipeline.warehouse.report import emotion_colors, emotion_order

WIDTH = 1160
LEFT, RIGHT = 96, 36  # room for the lane labels on the left, for the last time label on the right
LEGEND_H, LANE_H, BAR_H, AXIS_H = 30, 36, 24, 30
MIN_BAR_W = 1.5  # px: a very short segment stays visible (and hoverable) on an hour-long axis
MAX_TICKS = 12  # about this many time labels, whatever the call's length
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # seconds: whole, round clock steps
BACK = '<p class="meta"><a href="./">Back to the dashboard</a></p>'


@dataclass(frozen=True)
class TimeAxis:
    """Seconds to x: 0 at ``left``, ``end`` (the call's end rounded up to a whole tick) at ``left + width``."""

    end: float
    step: int
    left: float
    width: float

    @classmethod
    def for_span(cls, span: float, left: float, width: float) -> TimeAxis:
        span = max(float(span), 1.0)
        step = next(
            (s for s in TICK_STEPS if span <= s * MAX_TICKS), math.ceil(span / MAX_TICKS / 3600) * 3600
        )
        return cls(math.ceil(span / step) * step, step, left, width)

    def x(self, seconds: float) -> float:
        return self.left + self.width * min(max(seconds, 0.0), self.end) / self.end

    def ticks(self) -> list[int]:
        return list(range(0, int(self.end) + 1, self.step))


def clock(seconds: float | None, tenths: bool = False) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour), with tenths of a second for a segment's start and end."""
    if seconds is None:
        return ""
    units = round(seconds * 10) if tenths else round(seconds) * 10  # tenths of a second, rounded once
    hours, rest = divmod(units, 36000)
    minutes, rest = divmod(rest, 600)
    secs = f"{rest / 10:04.1f}" if tenths else f"{rest // 10:02d}"
    return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes}:{secs}"


def render_timeline(timeline: Timeline) -> str:
    """The whole page for one recording."""
    roots = {"lake": timeline.lake_root} if timeline.lake_root is not None else {}
    source = redact(timeline.source_path or timeline.recording_id, roots)
    notes = "".join(f"<li>{esc(redact(n, roots))}</li>" for n in timeline.notes)
    head = [
        BACK,
        f'<section id="timeline"><h2>Call timeline: {esc(source)}</h2>',
        _summary(timeline),
        _metadata(timeline),
        f'<ul class="notes">{notes}</ul>' if notes else "",
    ]
    if timeline.failed:
        reason = redact(timeline.error or "no reason recorded", roots)
        body = [
            f'<p class="error" id="timeline-failed">This file failed: {esc(reason)}</p>',
            '<p class="empty">No timeline: a failed file has no segments and is no call.</p>',
        ]
    else:
        body = [timeline_svg(timeline), _truncated(timeline), _metrics(timeline), _transcript(timeline)]
    return html_document(f"call {source}", *head, *body, "</section>")


def render_timeline_error(message: str, date: str = "", recording: str = "") -> str:
    """What a bad or unknown request gets: the reason in one line, and the form to ask again."""
    return html_document(
        "call timeline",
        BACK,
        '<section id="timeline"><h2>Call timeline</h2>',
        f'<p class="error" id="timeline-error">{esc(for_viewer(message))}</p>',
        _lookup_form(date, recording),
        "</section>",
    )


def _lookup_form(date: str, recording: str) -> str:
    """A GET form back to this page, filled with what was asked (escaped), so a typo is fixed in place. The date only
    when it is one: a date input given anything else makes the browser warn (seen in the browser test)."""
    return (
        f'<form method="get" action="{ROUTE}">'
        f'<label>date<input type="date" name="date" value="{esc(_calendar_date(date))}"></label>'
        f'<label>recording (id or source path)<input name="recording" size="48" '
        f'maxlength="{MAX_RECORDING_CHARS}" value="{esc(recording[:MAX_RECORDING_CHARS])}"></label>'
        '<button type="submit">Show</button></form>'
    )


def _calendar_date(text: str) -> str:
    try:
        return parse_date(text, "date").isoformat() if text else ""
    except DashboardParamError:
        return ""


def _summary(timeline: Timeline) -> str:
    layout = "split: agent on channel 0, customer on channel 1" if timeline.split else "one channel"
    duration = f"{timeline.duration_s:.1f} s" if timeline.duration_s is not None else "unknown"
    return (
        f'<p class="summary">Date <b>{esc(timeline.date.isoformat())}</b> · status <b>{esc(timeline.status)}</b>'
        f" · duration {esc(duration)} · {esc(layout)}</p>"
        f'<p class="meta">recording <code>{esc(timeline.recording_id)}</code></p>'
    )


def _metadata(timeline: Timeline) -> str:
    """The manifest's free columns (agent, queue, ...): who and what the call was."""
    if not timeline.metadata:
        return ""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in sorted(timeline.metadata.items()))
    return f'<dl class="metadata">{items}</dl>'


def _truncated(timeline: Timeline) -> str:
    if not timeline.truncated:
        return ""
    n = len(timeline.segments)
    return f'<p class="note">Showing the first {esc(n)} segments only: the rest are not drawn.</p>'


# -- the SVG ------------------------------------------------------------------------------------------------------------


def timeline_svg(timeline: Timeline, width: int = WIDTH) -> str:
    """One lane per channel, each segment a bar in its emotion's colour with its text as the tooltip; the legend
    lists the emotions present; the time axis below in m:ss."""
    segments = timeline.segments
    emotions = emotion_order(s.emotion for s in segments)
    colors = emotion_colors(emotions)
    axis = TimeAxis.for_span(timeline.end_s, LEFT, width - LEFT - RIGHT)
    lanes_h = LANE_H * len(timeline.lanes)
    height = LEGEND_H + lanes_h + AXIS_H
    label = f"Segments of {len(timeline.lanes)} channel(s) over {clock(axis.end)}, coloured by emotion"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto" role="img" aria-label="{esc(label)}">',
        legend_svg(emotions, colors, LEFT),
        _time_grid(axis, LEGEND_H, LEGEND_H + lanes_h),
    ]
    for i, lane in enumerate(timeline.lanes):
        out.append(_lane(axis, lane, LEGEND_H + i * LANE_H, colors))
    out.append("</svg>")
    if not segments:
        out.append('<p class="empty">No speech segments in this recording: silence all through.</p>')
    return "".join(out)


def _time_grid(axis: TimeAxis, top: int, bottom: int) -> str:
    """A vertical line and an m:ss label at every tick; "m:ss" on the left says how to read them."""
    # right-aligned well left of the axis' start, whose 0:00 label is centred on it (they touched in the screenshot)
    out = [f'<text x="{LEFT - 22}" y="{bottom + 18}" class="ylab">m:ss</text>']
    for t in axis.ticks():
        x = axis.x(t)
        out.append(
            f'<line x1="{x:.2f}" y1="{top}" x2="{x:.2f}" y2="{bottom}" class="grid"/>'
            f'<text x="{x:.2f}" y="{bottom + 18}" class="xlab">{esc(clock(t))}</text>'
        )
    return "".join(out)


def _lane(axis: TimeAxis, lane: Lane, top: int, colors: dict[str, str]) -> str:
    """A lane: its label, its background over the whole call, its segments' bars."""
    mid = top + LANE_H / 2
    bars = "".join(_bar(axis, lane, s, top + (LANE_H - BAR_H) / 2, colors[s.emotion]) for s in lane.segments)
    return (
        f'<g class="lane-row" data-channel="{esc(lane.channel)}">'
        f'<text x="{LEFT - 8}" y="{mid + 4:.1f}" class="lane-label">{esc(lane.label)}</text>'
        f'<rect class="lane" x="{LEFT}" y="{top + 3}" width="{axis.width:.2f}" height="{LANE_H - 6}"/>'
        f"{bars}</g>"
    )


def _bar(axis: TimeAxis, lane: Lane, segment: Segment, y: float, color: str) -> str:
    """A segment from ``start_s`` to ``end_s``; its tooltip: who, when, the emotion and the text."""
    x0 = axis.x(segment.start_s)
    w = max(axis.x(segment.end_s) - x0, MIN_BAR_W)
    tip = (
        f"{lane.label} {clock(segment.start_s, True)}–{clock(segment.end_s, True)} "
        f"{segment.emotion}: {segment.text}"
    )
    return (
        f'<rect class="seg" x="{x0:.2f}" y="{y:.1f}" width="{w:.2f}" height="{BAR_H}" fill="{color}" '
        f'data-emotion="{esc(segment.emotion)}"><title>{esc(tip)}</title></rect>'
    )


# -- metrics and transcript ---------------------------------------------------------------------------------------------


def _seconds(value: Any, of: float | None = None) -> str:
    """``12.3 s``, with its share of ``of`` (the duration) when known; "—" when the calls row has no value."""
    if value is None:
        return "—"
    share = f" ({float(value) / of:.0%} of the call)" if of else ""
    return f"{float(value):.1f} s{share}"


def _first_angry(value: Any) -> str:
    return "none" if value is None else clock(float(value), True)


def _metrics(timeline: Timeline) -> str:
    """The calls row (docs/call-analytics.md): talk, non-talk, overtalk, interruptions, first angry moment."""
    call = timeline.call
    if call is None:
        return (
            '<p class="note" id="metrics">No talk metrics: the calls table has no row for this recording.</p>'
        )
    duration = call.get("duration_s")  # the row's own: its shares and its non-talk agree (none without one)
    items = [
        ("talk", _seconds(call.get("talk_s"), duration)),
        ("non-talk", _seconds(call.get("non_talk_s"), duration)),
    ]
    if timeline.split:  # overtalk and interruptions need two speakers
        items += [
            ("overtalk", _seconds(call.get("overtalk_s"), duration)),
            ("interruptions", f"agent {_count(call, 'ch0')} · customer {_count(call, 'ch1')}"),
            (
                "first angry",
                f"agent {_first_angry(call.get('ch0_first_angry_s'))} · "
                f"customer {_first_angry(call.get('ch1_first_angry_s'))}",
            ),
        ]
    else:
        items.append(("first angry", _first_angry(call.get("ch0_first_angry_s"))))
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return (
        f'<h3>Talk metrics</h3><dl id="metrics">{rows}</dl>'
        '<p class="note">From the calls table (docs/call-analytics.md defines each); "—": not known, e.g. no '
        "duration recorded.</p>"
    )


def _count(call: dict, channel: str) -> str:
    value = call.get(f"{channel}_interruptions")
    return "—" if value is None else str(int(value))


def _transcript(timeline: Timeline) -> str:
    """Every segment in time order: the tooltips' texts, readable without a mouse."""
    segments = timeline.segments
    if not segments:
        return ""
    labels = {lane.channel: lane.label for lane in timeline.lanes}
    columns = [
        Column("start_s", "start", get=lambda s: clock(s.start_s, True)),
        Column("end_s", "end", get=lambda s: clock(s.end_s, True)),
        Column("channel", "speaker", get=lambda s: labels.get(s.channel, f"channel {s.channel}")),
        Column("emotion", "emotion"),
        Column("event", "event"),
        Column("text", "text", wrap=True),
    ]
    table = render_table(columns, segments, "No segments.", "compact")
    return f"<details><summary>Transcript ({esc(len(segments))} segments)</summary>{table}</details>"
