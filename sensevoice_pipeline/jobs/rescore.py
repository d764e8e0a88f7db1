"""`svp rescore`: a range of published days transcribed again with one model version, a commit per day.

After a promote, history stays scored by the old version and a trend chart mixes versions at the promote date. A
re-score runs the daily job (jobs/daily.run_date: the day's lease, its raw partition, one commit) for each published
date of the range with the version pinned. Before the first commit it keeps the current snapshot
(Lake.keep_snapshot, named ``before-rescore-<stamp>``, kept ``keep_days`` past the garbage-collection grace), so the
old version's rows stay readable: `svp query ... --model-version OLD` or `--as-of NAME`, and `svp query
model-compare` side by side (warehouse/versions.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from tqdm import tqdm

from sensevoice_pipeline.errors import ConfigurationError, FailureBudgetExceeded, InputError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.jobs.results import DayPublished
from sensevoice_pipeline.lake.catalog import ALIAS
from sensevoice_pipeline.lake.lease import DateBusyError
from sensevoice_pipeline.lake.partition import check_date
from sensevoice_pipeline.records import Record
from sensevoice_pipeline.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_KEEP_DAYS = 90


class NothingToRescoreError(ConfigurationError):
    """The range holds no published day."""


@dataclasses.dataclass(frozen=True)
class Rescored(Record):
    """What a re-score did: the snapshot it kept (the lake before it), each day it published, each it could not."""

    model_version: str | None
    kept_snapshot: int
    kept_name: str
    kept_versions: str
    days: list[dict]  # DayPublished.to_dict() of each re-scored day
    failed: dict  # date -> why it was not re-scored (its published rows stand)


def rescore(
    settings: Settings,
    date_from: str,
    date_to: str,
    model_version: str | None = None,
    keep_days: float = DEFAULT_KEEP_DAYS,
    show_progress: bool = True,
) -> Rescored:
    """Re-score every published date in [date_from, date_to] with ``model_version`` (None: whatever serves), after
    keeping the current snapshot. A day that fails (its audio gone, the date busy) keeps its published rows and is
    reported; a serving fault stops the re-score (the days before it stay re-scored)."""
    date_from, date_to = check_date(date_from), check_date(date_to)
    if date_from > date_to:
        raise NothingToRescoreError(f"--from {date_from} is after --to {date_to}: no date can match")
    lake = daily.lake(settings)
    dates, versions = _published(lake, date_from, date_to)
    if not dates:
        raise NothingToRescoreError(
            f"no published day between {date_from} and {date_to} in {settings.lake_root}"
        )
    name = f"before-rescore-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    reason = f"re-score of {date_from}..{date_to} with model version {model_version or 'serving'}"
    kept = lake.keep_snapshot(name, versions, date_from, date_to, dt.timedelta(days=keep_days), reason)
    pinned = dataclasses.replace(settings, model_version=model_version or settings.model_version)
    days, failed = [], {}
    for date in tqdm(dates, unit="day", desc=f"re-scoring with version {model_version or 'serving'}",
                     disable=not show_progress):  # fmt: skip
        try:
            days.append(daily.run_date(pinned, date, show_progress=False).to_dict())
        except FailureBudgetExceeded as exc:  # published all the same
            days.append(exc.result.to_dict() if isinstance(exc.result, DayPublished) else {"date": date})
        except (
            ConfigurationError,
            InputError,
            DateBusyError,
        ) as exc:  # e.g. the audio is gone (ShrinkRefused)
            failed[date] = " ".join(str(exc).split())
            log.warning("%s not re-scored: %s", date, failed[date])
    return Rescored(model_version, kept, name, versions, days, failed)


def keep_before_rescore(settings: Settings, name: str, keep_days: float, reason: str) -> int | None:
    """The DAG's re-score path (sensevoice_daily's ``keep_snapshot_as`` Param, given to every run of a backfill):
    keep the lake's current snapshot under ``name`` once, before the first of those runs publishes. None: the lake
    has nothing published yet, so there is nothing to keep."""
    lake = daily.lake(settings)
    if not lake.exists:
        return None
    with lake.reader() as con:
        first, last, versions = con.execute(
            f"SELECT min(date)::VARCHAR, max(date)::VARCHAR, "
            f"string_agg(DISTINCT model_version, ',' ORDER BY model_version) FROM {ALIAS}.model_usage_daily"
        ).fetchone()
    if first is None:
        return None
    return lake.keep_snapshot(name, versions, first, last, dt.timedelta(days=keep_days), reason)


def _published(lake, date_from: str, date_to: str) -> tuple[list[str], str]:
    """The published dates of the range and the model versions that scored them (comma-separated)."""
    if not lake.exists:
        return [], ""
    with lake.reader() as con:
        dates = [
            str(r[0])
            for r in con.execute(
                f"SELECT DISTINCT date FROM {ALIAS}.runs WHERE date BETWEEN ?::DATE AND ?::DATE ORDER BY date",
                [date_from, date_to],
            ).fetchall()
        ]
        versions = con.execute(
            f"SELECT string_agg(DISTINCT model_version, ',' ORDER BY model_version) FROM {ALIAS}.model_usage_daily "
            "WHERE date BETWEEN ?::DATE AND ?::DATE",
            [date_from, date_to],
        ).fetchone()[0]
    return dates, versions or ""
