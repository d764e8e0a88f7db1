"""The daily job's own metrics, sent through Airflow's metrics API (``airflow.sdk.observability.stats``, what the
Task SDK gives task code): to StatsD when ``[metrics] statsd_on`` is set (every name behind ``[metrics]
statsd_prefix``, default ``airflow``), to OpenTelemetry when ``otel_on`` is, nowhere otherwise. In the compose stack
a statsd-exporter turns them into Prometheus series (deploy/statsd/mapping.yml: ``sensevoice.daily.files`` ->
``sensevoice_daily_files_total``, the timers -> ``sensevoice_daily_<stage>_seconds`` histograms; docs/deployment.md,
"Pipeline metrics").

Counters, once per published day (``publish``; a day published over its failure budget counts too, since its rows
are in the lake), with the day's totals:

- ``sensevoice.daily.days``: days published (1 each);
- ``sensevoice.daily.files``, ``.files_ok``, ``.files_failed``: the day's raw files, as written to ``recordings``;
- ``sensevoice.daily.utterances``: rows written to ``utterances``;
- ``sensevoice.daily.speech_seconds``: their speech, in seconds.

A gauge: ``sensevoice.daily.failed_share``, the share of the last published day's files that failed (what the
failure budget is compared with). Timers, in milliseconds, of each stage that did its work (a stage that raised
sends none, except ``publish`` over the failure budget, which did publish): ``sensevoice.daily.plan``,
``sensevoice.daily.transcribe`` (one per batch task), ``sensevoice.daily.publish``.

A re-run of a date counts its files again: the counters measure work done; the ``runs`` table says what each
published day holds.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.observability import stats

from sensevoice_pipeline.errors import FailureBudgetExceeded
from sensevoice_pipeline.jobs.results import DayPublished

__all__ = ["COUNTERS", "PREFIX", "STAGES", "day_published", "stage"]

PREFIX = "sensevoice.daily"
COUNTERS = ("files", "files_ok", "files_failed", "utterances", "speech_seconds")  # DayPublished's fields
STAGES = ("plan", "transcribe", "publish")
# Exceptions that end a stage that did its work: the day is in the lake, then the run is failed on purpose.
_DONE_ANYWAY = (FailureBudgetExceeded,)


def day_published(result: DayPublished) -> None:
    """The counters and the failure gauge of one published day."""
    stats.incr(f"{PREFIX}.days", 1)
    for name in COUNTERS:
        stats.incr(f"{PREFIX}.{name}", getattr(result, name))
    stats.gauge(f"{PREFIX}.failed_share", result.files_failed / result.files if result.files else 0.0)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` (one of :data:`STAGES`); sent when it ends without an error."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}: one of {', '.join(STAGES)}")
    started = time.monotonic()
    try:
        yield
    except _DONE_ANYWAY:
        _timing(name, started)
        raise
    _timing(name, started)


def _timing(name: str, started: float) -> None:
    stats.timing(f"{PREFIX}.{name}", dt.timedelta(seconds=time.monotonic() - started))
