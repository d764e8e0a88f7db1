"""Triggers of the SenseVoice provider; they run in the Airflow triggerer, which imports them by class path.

:class:`PartitionArrivalTrigger` waits, without holding a worker slot, for a day's raw partition
(``arrival.check_partition``), checking every ``poke_interval`` seconds until ``deadline``. It is what
``sensors.PartitionArrivalSensor`` defers to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sensevoice_pipeline.lake import arrival
from sensevoice_pipeline.lake.storage import S3Options, StorageError, as_root


class PartitionArrivalTrigger(BaseTrigger):
    """Fires once: ``{"status": "ready", ...}`` when the partition of ``date`` below ``raw_root`` is ready,
    ``{"status": "timeout", "message": ...}`` at ``deadline`` (epoch seconds; absolute, so that a trigger re-created
    by another triggerer keeps the original deadline), or ``{"status": "error", "kind": ..., "message": ...}`` for
    what waiting cannot fix (bad date or marker, a bucket that does not exist, a store that refuses).

    Every argument is plain JSON. ``raw_root`` is a local path (absolute: the triggerer's working directory is not
    the worker's) or an ``s3://bucket/prefix`` URI; the store's credentials are never part of the trigger (its
    arguments are stored in the metadata DB): they come from the ``aws`` Connection ``aws_conn_id``, looked up here,
    else from the triggerer's AWS_* environment, as ``provider.hooks.with_aws_connection`` does for tasks.
    The blocking check runs in a worker thread (``asyncio.to_thread``) so that the triggerer's event loop never
    waits on a disk or an object store."""

    def __init__(
        self,
        raw_root: str,
        date: str,
        ready_marker: str = "",
        poke_interval: float = 300.0,
        deadline: float | None = None,
        timeout_s: float = arrival.DEFAULT_TIMEOUT_S,
        aws_conn_id: str | None = None,
        started_at: float | None = None,
    ):
        super().__init__()
        self.raw_root = str(raw_root)
        self.date = str(date)
        self.ready_marker = ready_marker or ""
        self.poke_interval = float(poke_interval)
        self.timeout_s = float(timeout_s)
        self.started_at = float(started_at if started_at is not None else time.time())
        self.deadline = float(deadline if deadline is not None else self.started_at + self.timeout_s)
        self.aws_conn_id = aws_conn_id or None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "raw_root": self.raw_root,
                "date": self.date,
                "ready_marker": self.ready_marker,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "timeout_s": self.timeout_s,
                "aws_conn_id": self.aws_conn_id,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        checks = 0
        try:
            root = await self._root()
            while True:
                state = await asyncio.to_thread(arrival.check_partition, root, self.date, self.ready_marker)
                checks += 1
                waited = round(time.time() - self.started_at, 3)
                if state.ready:
                    self.log.info(
                        "%s: %s (after %.1f s, %d check(s))", state.partition, state.detail, waited, checks
                    )
                    yield TriggerEvent(
                        {"status": "ready", **state.to_dict(), "waited_s": waited, "checks": checks}
                    )
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    message = arrival.timeout_message(state, self.date, self.timeout_s, self.ready_marker)
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": message,
                            "partition": state.partition,
                            "waited_s": waited,
                            "checks": checks,
                        }
                    )
                    return
                pause = min(self.poke_interval, remaining)
                self.log.info(
                    "%s: %s; next check in %.0f s (deadline %s)",
                    state.partition,
                    state.detail,
                    pause,
                    dt.datetime.fromtimestamp(self.deadline, dt.UTC).isoformat(timespec="seconds"),
                )
                await asyncio.sleep(pause)
        except (StorageError, ValueError, OSError) as exc:  # ConfigurationError is a ValueError
            yield TriggerEvent(
                {
                    "status": "error",
                    "kind": type(exc).__name__,
                    "storage": isinstance(
                        exc, StorageError
                    ),  # the store may come back: worth the task's retries
                    "message": str(exc),
                    "checks": checks,
                }
            )

    async def _root(self):
        root = as_root(self.raw_root)
        if not root.needs_credentials or not self.aws_conn_id:
            return root
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = await BaseHook.aget_connection(self.aws_conn_id)
        except AirflowNotFoundException:
            self.log.info("no connection %r; s3:// roots use the AWS_* environment", self.aws_conn_id)
            return root
        options = S3Options.from_connection(conn.login, conn.password, conn.extra_dejson, conn.host)
        return root.with_options(options)
