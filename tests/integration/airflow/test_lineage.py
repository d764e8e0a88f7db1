"""OpenLineage from a real run of the daily DAG: Airflow's OpenLineage provider, configured with its file transport,
writes the events of `airflow dags test` on the fixture model's Triton (conftest.observed_day); the COMPLETE event
of `publish` names the day's raw partition as input and every table of the lake as outputs, each where its Parquet
files are and with the schema the lake's catalog really has. The datasets' builder alone:
tests/unit/provider/test_lineage.py."""

from __future__ import annotations

import ast

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.integration.airflow.conftest import OBSERVED_DAY

pytestmark = [pytest.mark.airflow, pytest.mark.triton]


def _task_events(observed, task_id: str) -> dict[str, dict]:
    events = [e for e in observed.events if e.get("job", {}).get("name") == f"sensevoice_daily.{task_id}"]
    return {e["eventType"]: e for e in events}


def test_every_task_of_the_run_emits_start_and_complete(observed_day):
    assert observed_day.events, "the OpenLineage provider wrote no event"
    for task_id in ("check_pool", "wait_for_partition", "plan", "publish", "release"):
        assert {"START", "COMPLETE"} <= set(_task_events(observed_day, task_id)), task_id


def test_publish_completes_with_every_lake_table_as_output_and_the_raw_partition_as_input(observed_day):
    complete = _task_events(observed_day, "publish")["COMPLETE"]
    settings = observed_day.settings
    lake = Lake(settings.lake_root)

    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("file", str((settings.raw_root / f"date={OBSERVED_DAY}").resolve()))
    ]
    outputs = {d["name"]: d for d in complete["outputs"]}
    want = {str(lake.table_root(t).resolve()): t for t in tables.DAILY_TABLES}
    assert sorted(outputs) == sorted(want) and len(want) == 10
    for name, table in want.items():
        assert outputs[name]["namespace"] == "file"
        # the name is where the lake really keeps the table: the day's partition is there
        assert (lake.table_root(table) / f"date={OBSERVED_DAY}").is_dir(), name
        assert outputs[name]["facets"]["storage"]["storageLayer"] == "ducklake"


def test_each_output_carries_the_schema_the_lake_has(observed_day):
    complete = _task_events(observed_day, "publish")["COMPLETE"]
    lake = Lake(observed_day.settings.lake_root)
    con = Warehouse(observed_day.settings.lake_root).connect()
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' "
            "ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    in_lake: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        in_lake.setdefault(table, []).append((column, data_type))
    by_name = {d["name"]: d for d in complete["outputs"]}
    for table in tables.DAILY_TABLES:
        fields = by_name[str(lake.table_root(table).resolve())]["facets"]["schema"]["fields"]
        assert [(f["name"], f["type"]) for f in fields] == in_lake[table], table


def test_the_lake_asset_names_every_table_of_the_days_commit(observed_day):
    """The Airflow Asset the publish task updates lists the nine tables of a day (it named three), as the provider's airflow
    facet shows the task's outlets (a Python repr)."""
    complete = _task_events(observed_day, "publish")["COMPLETE"]
    outlets = ast.literal_eval(complete["run"]["facets"]["airflow"]["task"]["outlets"])
    (asset,) = [o for o in outlets if o["type"] == "asset"]
    assert asset["uri"] == "sensevoice://lake/utterances"
    assert asset["extra"]["tables"].split(",") == list(tables.DAILY_TABLES)
