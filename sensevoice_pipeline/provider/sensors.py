"""Sensors of the SenseVoice provider.

:class:`PartitionArrivalSensor` waits for a day's raw partition (``<raw_root>/date=YYYY-MM-DD/``, ready as
``arrival.check_partition`` says) before a run plans the day. It checks once on the worker; if the partition is not
ready, it defers to ``triggers.PartitionArrivalTrigger`` and frees its worker slot until the triggerer reports the
partition ready, or the wait timed out (``AirflowSensorTimeout``, not retried, with the partition, the marker and
the time waited in its message).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake import arrival
from sensevoice_pipeline.lake.storage import StorageError, as_root
from sensevoice_pipeline.provider.hooks import DEFAULT_AWS_CONN_ID, with_aws_connection
from sensevoice_pipeline.provider.triggers import PartitionArrivalTrigger
from sensevoice_pipeline.settings import Settings, check_run_params

# Extra time the triggerer gives the trigger past its own deadline before Airflow fails the task itself: the
# trigger's own timeout event (with the readable message) comes first.
TRIGGER_GRACE_S = 120.0


def partition_date(context) -> str:
    """The date a run of the daily DAG processes: the ``date`` Param when set, else the day that just ended (the
    start of the run's data interval); a manual run without a logical date takes the day before it ran."""
    params = context.get("params") or {}
    if params.get("date"):
        return str(params["date"])
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:  # manual runs without a logical date
        start = context["dag_run"].run_after - dt.timedelta(days=1)
    return start.date().isoformat()


def _number(value, name: str, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:  # also refuses NaN
        raise AirflowFailException(f"{name} must be a number >= {minimum:g}, not {value!r}")
    return number


class PartitionArrivalSensor(BaseSensorOperator):
    """Wait for ``<raw_root>/date=<date>/`` to be ready.

    :param raw_root: a local dir or ``s3://bucket/prefix``; empty: $SVP_RAW_ROOT (default var/raw). Templated.
    :param date: YYYY-MM-DD; empty: :func:`partition_date` of the run (the ``date`` Param, else the day that just
        ended). Templated.
    :param ready_marker: a file inside the partition whose presence means "complete" (``_SUCCESS``,
        ``manifest.csv``); empty: the partition exists and holds at least one (non-hidden) file. Templated.
    :param wait_timeout_minutes: how long to wait before failing (not retried). Templated (a Param's value).
    :param poke_interval_seconds: seconds between checks. Templated.
    :param aws_conn_id: the ``aws`` Connection for an s3:// root (missing: the AWS_* environment). Templated.
    :param deferrable: wait in the triggerer (default); False: poke from the worker like any sensor.
    """

    template_fields: Sequence[str] = (
        "raw_root",
        "date",
        "ready_marker",
        "wait_timeout_minutes",
        "poke_interval_seconds",
        "aws_conn_id",
    )
    ui_color = "#d9f0e3"

    def __init__(
        self,
        *,
        raw_root: str = "",
        date: str = "",
        ready_marker: str = "",
        wait_timeout_minutes: float | str = arrival.DEFAULT_TIMEOUT_S / 60,
        poke_interval_seconds: float | str = arrival.DEFAULT_POKE_INTERVAL_S,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        deferrable: bool = True,
        **kwargs,
    ):
        # BaseSensorOperator wants numbers now; templated values are only known when the task runs (execute).
        kwargs.setdefault("timeout", _static(wait_timeout_minutes, arrival.DEFAULT_TIMEOUT_S / 60) * 60)
        kwargs.setdefault("poke_interval", _static(poke_interval_seconds, arrival.DEFAULT_POKE_INTERVAL_S))
        super().__init__(**kwargs)
        self.raw_root = raw_root
        self.date = date
        self.ready_marker = ready_marker
        self.wait_timeout_minutes = wait_timeout_minutes
        self.poke_interval_seconds = poke_interval_seconds
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable

    # -- what to wait for ----------------------------------------------------------------------------------------

    def _configure(self, context) -> None:
        """Turn the rendered template fields into checked values; a value that cannot work fails the task at once
        (AirflowFailException: retrying would not fix it)."""
        self.timeout = _number(self.wait_timeout_minutes, "wait_timeout_minutes", 0) * 60
        self.poke_interval = _number(self.poke_interval_seconds, "poke_interval_seconds", 0.1)
        try:
            self._date = arrival.check_date(self.date or partition_date(context))
            self._marker = arrival.check_marker(self.ready_marker)
            self._root = self._resolve_root()
        except (ConfigurationError, StorageError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def _resolve_root(self) -> str:
        """The raw root as the triggerer must see it: a URI, or an absolute local path ($SVP_RAW_ROOT and relative
        paths are resolved here, on the worker, in the environment the other tasks of the run see)."""
        check_run_params(Settings.from_env(), {"raw_root": self.raw_root, "aws_conn_id": self.aws_conn_id})
        root = Settings.from_env(raw_root=self.raw_root or None).raw_root
        return str(root.absolute())

    def _root_with_credentials(self):
        root = as_root(self._root)
        if not root.needs_credentials:
            return root
        return with_aws_connection(Settings(raw_root=root), self.aws_conn_id or DEFAULT_AWS_CONN_ID).raw_root

    def _check(self) -> arrival.Arrival:
        """One check; a StorageError (the store is down or refuses) is left to the task's retries."""
        try:
            return arrival.check_partition(self._root_with_credentials(), self._date, self._marker)
        except ConfigurationError as exc:  # e.g. a raw root that does not exist: waiting would not help
            raise AirflowFailException(str(exc)) from exc

    # -- running ---------------------------------------------------------------------------------------------------

    def execute(self, context) -> Any:
        self._configure(context)
        first = self._check()  # most days are there already: no trip through the triggerer
        if first.ready:
            self.log.info("%s: %s", first.partition, first.detail)
            return {"status": "ready", **first.to_dict(), "waited_s": 0.0, "checks": 1}
        if not self.deferrable:
            return super().execute(context)  # BaseSensorOperator's loop over poke()
        now = time.time()
        self.log.info(
            "%s: %s; deferring (check every %g s, for up to %s)",
            first.partition,
            first.detail,
            self.poke_interval,
            arrival.describe_wait(self.timeout),
        )
        self.defer(
            trigger=PartitionArrivalTrigger(
                raw_root=self._root,
                date=self._date,
                ready_marker=self._marker,
                poke_interval=self.poke_interval,
                deadline=now + self.timeout,
                timeout_s=self.timeout,
                aws_conn_id=self.aws_conn_id if as_root(self._root).needs_credentials else None,
                started_at=now,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout + self.poke_interval + TRIGGER_GRACE_S),
        )

    def poke(self, context) -> bool:
        state = self._check()
        self.log.info("%s: %s", state.partition, state.detail)
        return state.ready

    def execute_complete(self, context, event: dict | None = None) -> dict:
        event = event or {}
        status = event.get("status")
        if status == "ready":
            self.log.info(
                "%s: %s (waited %.1f s, %s checks)",
                event.get("partition"),
                event.get("detail"),
                event.get("waited_s", 0.0),
                event.get("checks"),
            )
            return event
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message") or "the raw partition was not ready in time")
        if status == "error":
            message = event.get("message") or "the partition check failed"
            if (
                event.get("storage") or event.get("kind") == "StorageError"
            ):  # (kind: an event from before "storage")
                raise StorageError(message)  # the store may come back: the task's retries apply
            raise AirflowFailException(message)
        raise AirflowFailException(f"unexpected event from PartitionArrivalTrigger: {event!r}")


def _static(value, default: float) -> float:
    """``value`` as a number when it already is one (else ``default``, until the template is rendered)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
