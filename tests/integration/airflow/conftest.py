"""Fixtures of the Airflow tests: one real run of the daily DAG observed from outside, through what Airflow emits:
the OpenLineage provider's file transport writing its events to a file (test_lineage.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensevoice_pipeline.demo.local_airflow import triton_connection_env
from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.settings import Settings

OBSERVED_DAY = "2026-11-12"  # its own logical date: the session's Airflow home is shared


@dataclass
class ObservedDay:
    settings: Settings
    files: int  # raw files written for the day
    events: list[dict]  # every OpenLineage event of the run, as the file transport wrote them
    output: str


@pytest.fixture(scope="session")
def observed_day(tmp_path_factory, fixture_triton, local_airflow) -> ObservedDay:
    """The sample day (with its corrupt upload) through the real daily DAG under `airflow dags test`, on the fixture
    model's Triton, with OpenLineage's file transport."""
    root = tmp_path_factory.mktemp("observed")
    settings = Settings(raw_root=root / "raw", lake_root=root / "lake")
    calls = write_sample_day(settings.raw_root, OBSERVED_DAY)
    events_file = root / "openlineage.jsonl"
    conf = {"date": OBSERVED_DAY, "raw_root": str(settings.raw_root), "lake_root": str(settings.lake_root)}
    env = {
        **triton_connection_env(fixture_triton.grpc_url),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "sensevoice-test",
    }
    output = local_airflow.dags_test("sensevoice_daily", f"{OBSERVED_DAY}T00:00:00+00:00", conf=conf, env=env)
    return ObservedDay(settings, len(calls), _events(events_file), output)


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
