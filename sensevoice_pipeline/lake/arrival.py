"""Has a day's raw partition landed? One check, shared by ``svp`` and the Airflow sensor (provider.sensors, whose
trigger runs it in a thread of the triggerer).

The partition is ``<raw_root>/date=YYYY-MM-DD/`` (a local dir or an ``s3://bucket/prefix`` key prefix). It is ready
when:

- ``marker`` is set (``_SUCCESS``, ``manifest.csv``, ``meta/done``): that file exists inside the partition. Use a
  marker whenever the upstream export writes a day over time: only the marker says that it has finished;
- ``marker`` is empty: the partition exists and holds at least one file. Hidden files (a segment starting with
  ``.``, as partial uploads often are) do not count, as they are not data for the pipeline either. Object stores
  have no empty folders, so for ``s3://`` this is "at least one object below the prefix".

A check never waits and never raises for a partition that is merely missing; it raises for what waiting cannot fix:
a bad date or marker, or a local raw root that does not exist (:class:`~sensevoice_pipeline.errors.ConfigurationError`),
an s3:// bucket that does not exist or an object store that refuses or cannot be reached
(:class:`~sensevoice_pipeline.lake.storage.StorageError`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from sensevoice_pipeline.errors import ConfigurationError, RetryLaterError
from sensevoice_pipeline.lake.storage import ObjectPath, Root, as_root

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 6 * 3600.0
DEFAULT_POKE_INTERVAL_S = 300.0


class ArrivalTimeout(RetryLaterError):
    """The partition was not ready within the time allowed (exit code 75 on the command line: try later)."""


@dataclass(frozen=True)
class Arrival:
    """What one check saw. ``detail`` is one readable line: why the partition is ready, or what is missing."""

    ready: bool
    partition: str  # the partition's path or s3:// URI
    detail: str
    files: int | None = None  # data files seen (None when only the marker was looked at)

    def to_dict(self) -> dict:
        return asdict(self)


def check_marker(marker: str | None) -> str:
    """``marker`` as a clean relative path inside the partition ("" = none); raises ConfigurationError for one that
    would leave the partition (absolute, ``..``) or is not a file name (``.``, empty segments, backslashes)."""
    marker = (marker or "").strip()
    if not marker:
        return ""
    parts = marker.split("/")
    if marker.startswith("/") or "\\" in marker or any(p in ("", ".", "..") for p in parts):
        raise ConfigurationError(
            f"bad ready marker {marker!r}: expected a file name inside the partition, "
            "e.g. _SUCCESS or manifest.csv (no '/', '..' or '.' at either end or in between)"
        )
    return PurePosixPath(*parts).as_posix()


def check_date(date: str) -> str:
    """``date`` as YYYY-MM-DD; ConfigurationError otherwise."""
    try:
        return dt.date.fromisoformat(str(date)).isoformat()
    except ValueError as exc:
        raise ConfigurationError(f"not a date: {date!r} (expected YYYY-MM-DD)") from exc


def partition_path(raw_root: str | Root, date: str) -> Root:
    """``<raw_root>/date=YYYY-MM-DD`` (a Path, or an s3:// ObjectPath carrying the root's options): the same path as
    ``partition.partition_dir``, without importing the audio stack into the triggerer."""
    return as_root(raw_root) / f"date={check_date(date)}"


def check_partition(raw_root: str | Root, date: str, marker: str | None = "") -> Arrival:
    """Is the partition of ``date`` below ``raw_root`` ready (see the module's doc)? Blocking I/O: one stat or one
    listing; call it from a thread in async code."""
    marker = check_marker(marker)
    part = partition_path(raw_root, date)
    folder = part.local_path  # a local folder can exist empty; an object store has only objects
    return _check_remote(part, marker) if folder is None else _check_local(folder, marker)


def _hidden(rel: str) -> bool:
    return any(p.startswith(".") for p in rel.split("/"))


def _check_local(part: Path, marker: str) -> Arrival:
    if (
        not part.parent.is_dir()
    ):  # a wrong path (or a relative one in another working directory), not late data
        raise ConfigurationError(f"the raw root {part.parent} does not exist or is not a directory")
    if not part.is_dir():
        what = "does not exist yet" if not part.exists() else "is not a directory"
        return Arrival(False, str(part), f"the partition folder {what}")
    if marker:
        if (part / marker).is_file():
            return Arrival(True, str(part), f"ready marker {marker} is present")
        return Arrival(False, str(part), f"waiting for the ready marker {marker}")
    files = sum(1 for p in part.rglob("*") if p.is_file() and not _hidden(p.relative_to(part).as_posix()))
    if files:
        return Arrival(True, str(part), f"the partition holds {files} file(s)", files)
    return Arrival(False, str(part), "the partition folder exists but holds no file yet", 0)


def _check_remote(part: ObjectPath, marker: str) -> Arrival:
    if marker:
        if (part / marker).is_file():
            return Arrival(True, str(part), f"ready marker {marker} is present")
        part.check_reachable()  # a bucket that does not exist is a mistake, not data that is late
        return Arrival(False, str(part), f"waiting for the ready marker {marker}")
    files = sum(1 for entry in part.list_files() if not _hidden(entry[0]))  # (key, size, ...)
    if files:
        return Arrival(True, str(part), f"the partition holds {files} object(s)", files)
    part.check_reachable()
    return Arrival(False, str(part), "no object below the partition's prefix yet", 0)


def describe_wait(timeout_s: float) -> str:
    """``timeout_s`` for people: 45 s, 90 min, 6 h."""
    if timeout_s < 60:
        return f"{timeout_s:.3g} s"
    minutes = timeout_s / 60
    return f"{minutes:.4g} min" if minutes < 120 else f"{minutes / 60:.4g} h"


def timeout_message(arrival: Arrival, date: str, timeout_s: float, marker: str = "") -> str:
    """The one line that ends a wait that ran out, in ``svp`` and in the DAG alike."""
    want = f"its ready marker {marker}" if marker else "at least one file"
    return (
        f"the raw partition of {date} was not ready after {describe_wait(timeout_s)}: {arrival.partition} "
        f"({arrival.detail}); ready means {want}. Check the upstream export, or give it longer "
        "(DAG Param wait_timeout_minutes)."
    )


def wait_for_partition(
    raw_root: str | Root,
    date: str,
    marker: str | None = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poke_interval_s: float = DEFAULT_POKE_INTERVAL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Arrival:
    """Check every ``poke_interval_s`` until the partition is ready (returned) or ``timeout_s`` has passed
    (:class:`ArrivalTimeout`); the last check happens at the deadline. The blocking counterpart of the DAG's
    deferrable sensor, for ``svp``."""
    marker = check_marker(marker)
    deadline = clock() + max(0.0, timeout_s)
    while True:
        arrival = check_partition(raw_root, date, marker)
        if arrival.ready:
            return arrival
        remaining = deadline - clock()
        if remaining <= 0:
            raise ArrivalTimeout(timeout_message(arrival, date, timeout_s, marker))
        log.info(
            "%s: %s; next check in %.0f s", arrival.partition, arrival.detail, min(poke_interval_s, remaining)
        )
        sleep(max(0.0, min(poke_interval_s, remaining)))
