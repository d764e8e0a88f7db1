"""A call's timeline (the plugin page's ``call`` view): one recording of one date, its segments per channel, and its
talk metrics from the ``calls`` rollup (docs/call-analytics.md).

The request names the date and the recording (its ``recording_id``, or its ``source_path``: what the page's lists
show); both reach DuckDB only as bound parameters. The rows are read from the warehouse on one connection, then
``build_timeline`` (pure, so the unit tests give it rows) decides the lanes: a split two-channel call has channel 0
the agent and channel 1 the customer (the convention of the ``calls`` table), any other call is one lane, "call".
The HTML is ``timeline_html``'s. No Airflow import here: ``plugins/sensevoice_plugin.py`` adds the route and login.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import duckdb

from sensevoice_pipeline.errors import InputError
from sensevoice_pipeline.ui.page_data import DashboardParamError, parse_date
from sensevoice_pipeline.warehouse.database import Warehouse, WarehouseError

ROUTE = "call"  # beside the page (relative links), so it works inside Airflow's frame as the page does
MAX_RECORDING_CHARS = 1024  # a source path is a few hundred characters at most; the route refuses longer ones
MAX_SEGMENTS = (
    5000  # an hour-long call has about a thousand; past this the SVG would be too heavy to be useful
)
SPLIT_LABELS = {0: "agent", 1: "customer"}  # docs/call-analytics.md: the convention of split calls
MONO_LABEL = "call"

# The recording asked for: by id first (exact), else by its path on that date. processed_at decides between two rows
# of one path (a rerun that wrote both), so the page shows the latest, as the lists do.
RECORDING_SQL = """
SELECT recording_id, source_path, status, error, duration_s, channels, channel_mode, metadata
FROM recordings
WHERE date = $date AND (recording_id = $recording OR source_path = $recording)
ORDER BY recording_id = $recording DESC, processed_at DESC NULLS LAST
LIMIT 1
"""
# A recording the utterances name but the recordings lack (the calls table counts those too).
UTTERANCE_RECORDING_SQL = """
SELECT recording_id, any_value(source_path) AS source_path
FROM utterances
WHERE date = $date AND (recording_id = $recording OR source_path = $recording)
GROUP BY recording_id
ORDER BY recording_id = $recording DESC, recording_id
LIMIT 1
"""
SEGMENTS_SQL = """
SELECT channel, segment_index, start_s, end_s, emotion, event, language, text
FROM utterances
WHERE date = $date AND recording_id = $recording_id
ORDER BY start_s, channel, segment_index  -- past the limit, the call's first minutes on every channel
LIMIT $limit
"""
CALL_SQL = """
SELECT channels, duration_s, talk_s, non_talk_s, overtalk_s, ch0_talk_s, ch1_talk_s,
       ch0_interruptions, ch1_interruptions, ch0_first_angry_s, ch1_first_angry_s
FROM calls
WHERE date = $date AND recording_id = $recording_id
LIMIT 1
"""


class TimelineNotFound(InputError):
    """No such recording on that date (or nothing published yet): the request's fault, answered 404."""

    status = 404  # errors.http_status keeps an InputError's own status


@dataclass(frozen=True)
class TimelineParams:
    date: dt.date
    recording: str  # a recording_id or a source_path

    @classmethod
    def parse(cls, date: str | None, recording: str | None) -> TimelineParams:
        day = parse_date(date, "date")
        if day is None:
            raise DashboardParamError("date: required, the day the recording was published for (YYYY-MM-DD)")
        if recording is None or not recording.strip():
            raise DashboardParamError("recording: required, a recording id or its source path")
        if len(recording) > MAX_RECORDING_CHARS:
            raise DashboardParamError(f"recording: longer than {MAX_RECORDING_CHARS} characters")
        if not recording.isprintable():  # no ids or paths have control characters; a pasted newline is a typo
            raise DashboardParamError("recording: has control characters")
        return cls(day, recording)


def timeline_href(date: Any, recording: str) -> str:
    """The timeline's URL relative to the page (``call?date=...&recording=...``), for the page's lists to link."""
    day = date.isoformat() if isinstance(date, dt.date) else str(date)
    return f"{ROUTE}?{urlencode({'date': day, 'recording': recording})}"


def row_href(row: dict) -> str | None:
    """A list row's timeline link, by its recording id: exact, and never a server path in the page's links (a
    source path may be one). No id, no link."""
    recording, date = row.get("recording_id"), row.get("date")
    return timeline_href(date, recording) if recording and date else None


@dataclass(frozen=True)
class Segment:
    channel: int
    index: int
    start_s: float
    end_s: float
    emotion: str  # 'unknown' for a missing tag, as the rollups count it
    text: str
    event: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Lane:
    channel: int
    label: str  # agent / customer (split), call (mono), channel N (any other)
    segments: tuple[Segment, ...] = ()


@dataclass
class Timeline:
    date: dt.date
    recording_id: str
    source_path: str
    status: str  # ok | failed (recordings.status); "unknown" when only the utterances name the recording
    error: str | None = None
    duration_s: float | None = None
    split: bool = False
    lanes: list[Lane] = field(default_factory=list)
    call: dict | None = None  # the calls row: talk metrics
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    truncated: bool = False  # more than MAX_SEGMENTS segments: the first ones only
    lake_root: Any = None  # for redact(): the page names no server path

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def segments(self) -> list[Segment]:
        """Every drawn segment, in time order (the transcript's order)."""
        return sorted((s for lane in self.lanes for s in lane.segments), key=lambda s: (s.start_s, s.channel))

    @property
    def end_s(self) -> float:
        """Where the time axis ends: the duration, or the last segment's end when that is later (or unknown)."""
        return max([self.duration_s or 0.0, *(s.end_s for s in self.segments)])


def load_timeline(warehouse: Warehouse, params: TimelineParams, limit: int = MAX_SEGMENTS) -> Timeline:
    """The timeline of ``params.recording`` on ``params.date``; TimelineNotFound when the lake has no such one."""
    try:
        con = warehouse.connect()
    except (WarehouseError, duckdb.Error) as exc:
        raise TimelineNotFound(f"No warehouse yet: {exc}") from None
    try:
        timeline = _read(con, params, limit)
    finally:
        con.close()
    timeline.lake_root = warehouse.lake_root
    return timeline


def _read(con: duckdb.DuckDBPyConnection, params: TimelineParams, limit: int) -> Timeline:
    """The rows of one recording, on one connection (the unit tests give it a plain DuckDB with the three tables)."""
    notes: list[str] = []
    bound = {"date": params.date, "recording": params.recording}
    recording = _first(con, RECORDING_SQL, bound, "recordings", notes)
    if recording is None:  # not in recordings: the utterances may still name it
        recording = _first(con, UTTERANCE_RECORDING_SQL, bound, "utterances", notes)
    if recording is None:
        raise TimelineNotFound(
            f"No recording {params.recording!r} on {params.date.isoformat()}: "
            "the page's angry-calls and failed lists link to the ones there are"
        )
    if (
        recording.get("status") == "failed"
    ):  # a failed file has no segments and is no call: nothing else to read
        return build_timeline(params.date, recording, [], None, notes)
    ids = {"date": params.date, "recording_id": recording["recording_id"]}
    rows = _all(con, SEGMENTS_SQL, {**ids, "limit": limit + 1}, "utterances", notes)
    call = _first(con, CALL_SQL, ids, "calls", notes)
    timeline = build_timeline(params.date, recording, rows[:limit], call, notes)
    timeline.truncated = len(rows) > limit
    return timeline


def _all(con: duckdb.DuckDBPyConnection, sql: str, params: dict, table: str, notes: list[str]) -> list[dict]:
    """The rows as dicts; a table not published yet (an older lake without ``calls``) is a note, not an error."""
    try:
        return con.execute(sql, params).to_arrow_table().to_pylist()
    except duckdb.CatalogException:
        notes.append(f"No {table} published yet.")
        return []


def _first(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict, table: str, notes: list[str]
) -> dict | None:
    rows = _all(con, sql, params, table, notes)
    return rows[0] if rows else None


def build_timeline(
    date: dt.date, recording: dict, rows: list[dict], call: dict | None, notes: list[str] | None = None
) -> Timeline:
    """A Timeline from the rows: ``recording`` (a recordings row, or just recording_id and source_path), the
    segments (utterances rows), the calls row (None: no metrics)."""
    segments = [_segment(r) for r in rows]
    split = is_split(recording, call, {s.channel for s in segments})
    return Timeline(
        date=date,
        recording_id=str(recording.get("recording_id") or ""),
        source_path=str(recording.get("source_path") or ""),
        status=recording.get("status") or "unknown",
        error=recording.get("error"),
        duration_s=_duration(recording, call),
        split=split,
        lanes=[] if recording.get("status") == "failed" else lanes(segments, split),
        call=call,
        metadata=_metadata(recording.get("metadata")),
        notes=list(notes or []),
    )


def is_split(recording: dict, call: dict | None, channels: set[int]) -> bool:
    """Whether the call has an agent and a customer lane: the calls table's rule (a split recording of at least two
    channels) from the recording itself; else the calls row's; else whether a channel above 0 spoke."""
    if recording.get("channel_mode") is not None:
        return recording["channel_mode"] == "split" and (recording.get("channels") or 0) >= 2
    if call is not None and call.get("channels") is not None:
        return call["channels"] == 2
    return max(channels, default=0) >= 1


def lanes(segments: list[Segment], split: bool) -> list[Lane]:
    """One lane per channel, in channel order: both of a split call's even when one never spoke (a silent customer is
    worth seeing), the mono call's one, and any other channel that has segments."""
    labels = dict(SPLIT_LABELS) if split else {0: MONO_LABEL}
    for channel in sorted({s.channel for s in segments} - labels.keys()):
        labels[channel] = f"channel {channel}"
    return [
        Lane(channel, label, tuple(s for s in segments if s.channel == channel))
        for channel, label in sorted(labels.items())
    ]


def _segment(row: dict) -> Segment:
    return Segment(
        channel=int(row["channel"]),
        index=int(row.get("segment_index") or 0),
        start_s=float(row["start_s"]),
        end_s=float(row["end_s"]),
        emotion=row.get("emotion") or "unknown",
        text=row.get("text") or "",
        event=row.get("event"),
        language=row.get("language"),
    )


def _duration(recording: dict, call: dict | None) -> float | None:
    for source in (recording, call or {}):
        if source.get("duration_s") is not None:
            return float(source["duration_s"])
    return None


def _metadata(value: Any) -> dict[str, str]:
    """recordings.metadata (a MAP: a dict, or Arrow's list of pairs) as a dict of strings."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(k): str(v) for k, v in value}
    return {}
