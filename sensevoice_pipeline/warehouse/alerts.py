"""Alerts on a published day (issue 32, item 3): each of its figures against the same figure over the days before.

Figures, per day, read from the rollups and the runs table (so a check costs milliseconds at any lake size):

- ``angry share`` per language (``emotion_daily``: angry segments / segments) and per queue (``calls``: angry speech
  / speech, the manifest's ``queue``);
- ``unknown-emotion share`` (``emotion_daily``: segments whose emotion is unknown / segments);
- ``failed-file share`` (``runs``: failed files / files);
- ``recordings`` (``runs``: files of the day).

A figure's band is its baseline's mean plus or minus the larger of ``sigmas`` standard deviations and a floor (a
flat history would otherwise flag any change at all): 5 points for shares, half the mean for the volume. The
baseline is the figure's values on the ``baseline_days`` days before the day that have data; with fewer than
``min_history`` such days, or a group too small that day to say anything (fewer than ``min_support`` segments,
calls or files), the figure is not judged.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

ANGRY_SHARE = "angry share"
UNKNOWN_SHARE = "unknown-emotion share"
FAILED_SHARE = "failed-file share"
RECORDINGS = "recordings"

# One row per (date, figure, group): its value and how many segments / calls / files it stands on.
FIGURES_SQL = """
SELECT date, 'angry share' AS figure, 'language ' || language AS grp,
       sum(utterances) FILTER (WHERE emotion = 'angry')::DOUBLE / sum(utterances) AS value,
       sum(utterances)::BIGINT AS support
FROM emotion_daily WHERE date BETWEEN $first AND $last GROUP BY ALL
UNION ALL
SELECT date, 'unknown-emotion share', 'all',
       sum(utterances) FILTER (WHERE emotion = 'unknown')::DOUBLE / sum(utterances), sum(utterances)::BIGINT
FROM emotion_daily WHERE date BETWEEN $first AND $last GROUP BY ALL
UNION ALL
SELECT date, 'angry share', 'queue ' || coalesce(metadata['queue'], '(none)'),
       sum(coalesce(ch0_angry_s, 0) + coalesce(ch1_angry_s, 0))
           / nullif(sum(coalesce(ch0_talk_s, 0) + coalesce(ch1_talk_s, 0)), 0),
       count(*)::BIGINT
FROM calls WHERE date BETWEEN $first AND $last GROUP BY ALL
UNION ALL
SELECT date, 'failed-file share', 'all', sum(files_failed)::DOUBLE / nullif(sum(files), 0), sum(files)::BIGINT
FROM runs WHERE date BETWEEN $first AND $last GROUP BY ALL
UNION ALL
SELECT date, 'recordings', 'all', sum(files)::DOUBLE, sum(files)::BIGINT
FROM runs WHERE date BETWEEN $first AND $last GROUP BY ALL
"""


@dataclass(frozen=True)
class AlertRules:
    baseline_days: int = 14
    min_history: int = 5
    sigmas: float = 3.0
    share_floor: float = 0.05  # the narrowest half-band of a share, in absolute terms
    volume_floor: float = 0.5  # the narrowest half-band of the volume, as a share of its mean
    min_support: int = (
        20  # segments (emotion shares), calls (queue shares) or files (failed share) on the day
    )

    def half_width(self, figure: str, mean: float, std: float) -> float:
        floor = self.volume_floor * mean if figure == RECORDINGS else self.share_floor
        return max(self.sigmas * std, floor)


@dataclass(frozen=True)
class Breach:
    date: dt.date
    figure: str
    group: str
    value: float
    mean: float
    low: float
    high: float
    history: int  # baseline days
    first: dt.date
    last: dt.date

    @property
    def name(self) -> str:
        return self.figure if self.group == "all" else f"{self.figure} ({self.group})"

    def line(self) -> str:
        fmt = _format(self.figure)
        return (
            f"{self.name} on {self.date}: {fmt(self.value)}, outside its band {fmt(self.low)} to {fmt(self.high)} "
            f"(baseline mean {fmt(self.mean)} over {self.history} days, {self.first} to {self.last})"
        )

    def to_dict(self) -> dict:
        return {
            "date": self.date.isoformat(),
            "figure": self.figure,
            "group": self.group,
            "value": round(self.value, 4),
            "baseline_mean": round(self.mean, 4),
            "band": [round(self.low, 4), round(self.high, 4)],
            "baseline_days": self.history,
            "baseline_from": self.first.isoformat(),
            "baseline_to": self.last.isoformat(),
        }


def _format(figure: str):
    return (lambda v: f"{v:,.0f}") if figure == RECORDINGS else (lambda v: f"{v:.1%}")


def figures(warehouse, day: dt.date, rules: AlertRules) -> list[tuple]:
    """(date, figure, group, value, support) of ``day`` and its baseline window."""
    first = day - dt.timedelta(days=rules.baseline_days)
    con = warehouse.connect()
    try:
        return con.execute(FIGURES_SQL, {"first": first, "last": day}).fetchall()
    finally:
        con.close()


def judge(rows: list[tuple], day: dt.date, rules: AlertRules = AlertRules()) -> list[Breach]:
    """The figures of ``day`` outside their band, in a stable order (figure, group)."""
    history: dict[tuple[str, str], list[tuple[dt.date, float]]] = defaultdict(list)
    today: dict[tuple[str, str], tuple[float, int]] = {}
    for date, figure, group, value, support in rows:
        if value is None:
            continue
        if date == day:
            today[(figure, group)] = (float(value), int(support or 0))
        elif day - dt.timedelta(days=rules.baseline_days) <= date < day:
            history[(figure, group)].append((date, float(value)))
    breaches = []
    for key in sorted(today):
        value, support = today[key]
        past = sorted(history.get(key, []))
        if len(past) < rules.min_history or (key[0] != RECORDINGS and support < rules.min_support):
            continue
        values = [v for _, v in past]
        mean, std = statistics.fmean(values), statistics.pstdev(values)
        half = rules.half_width(key[0], mean, std)
        if not mean - half <= value <= mean + half:
            low = max(mean - half, 0.0)
            breaches.append(
                Breach(day, *key, value, mean, low, mean + half, len(past), past[0][0], past[-1][0])
            )
    return breaches


def check_day(warehouse, day: dt.date, rules: AlertRules = AlertRules()) -> list[Breach]:
    """The breaches of a published ``day`` (an empty list when everything is within its band)."""
    return judge(figures(warehouse, day, rules), day, rules)


def message(breaches: list[Breach]) -> tuple[str, str]:
    """(subject, body) of one notification for the breaches of one day."""
    day = breaches[0].date
    names = ", ".join(b.name for b in breaches[:3]) + (
        f" and {len(breaches) - 3} more" if len(breaches) > 3 else ""
    )
    subject = f"SenseVoice {day}: {names} outside the usual band"
    body = "\n".join(
        ["Figures of the published day outside their baseline band:", *(f"- {b.line()}" for b in breaches)]
    )
    return subject, body
