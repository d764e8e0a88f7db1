"""What the partition sensor does with the trigger's error event (provider/sensors.py): a store that cannot be used
now is left to the task's retries, anything else fails the task at once. The trigger and sensor against a real
store: tests/integration/storage/test_arrival_s3.py."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from sensevoice_pipeline.lake.storage import StorageError
from sensevoice_pipeline.provider.sensors import PartitionArrivalSensor


def sensor() -> PartitionArrivalSensor:
    return PartitionArrivalSensor(task_id="wait_for_partition", raw_root="/tmp/raw", date="2026-01-01")


@pytest.mark.parametrize(
    "event",
    [
        {
            "status": "error",
            "kind": "StoreUnreachableError",
            "storage": True,
            "message": "cannot reach the store",
        },
        {
            "status": "error",
            "kind": "StorageError",
            "message": "cannot reach the store",
        },  # an older trigger's
    ],
)
def test_a_store_that_cannot_be_reached_is_left_to_the_tasks_retries(event):
    with pytest.raises(StorageError, match="cannot reach the store"):
        sensor().execute_complete({}, event)


def test_any_other_error_fails_the_task_at_once():
    event = {"status": "error", "kind": "ConfigurationError", "storage": False, "message": "bad ready marker"}
    with pytest.raises(AirflowFailException, match="bad ready marker"):
        sensor().execute_complete({}, event)
