"""provider/lineage.py: the OpenLineage datasets of the DAGs, built from the lake's table schemas and named after
the roots (a local path or s3://), without Airflow. What the OpenLineage provider emits from a real DAG run:
tests/integration/airflow/test_lineage.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from openlineage.client.event_v2 import InputDataset, OutputDataset

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.storage import as_root
from sensevoice_pipeline.provider import lineage
from sensevoice_pipeline.settings import Settings

DAY = "2026-11-20"


def test_a_local_root_is_the_file_namespace_and_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lineage.location(as_root("var/lake")) == ("file", str(tmp_path / "var" / "lake"))


def test_an_s3_root_is_its_bucket_and_its_key():
    assert lineage.location(as_root("s3://calls/lake/2026")) == ("s3://calls", "lake/2026")


def test_publishing_a_day_reads_its_partition_and_writes_every_daily_table(tmp_path):
    settings = Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake")
    inputs, outputs = lineage.daily_publish_lineage(settings, DAY)
    assert [(type(d), d.namespace, d.name) for d in inputs] == [
        (InputDataset, "file", str(tmp_path / "raw" / f"date={DAY}"))
    ]
    assert all(isinstance(d, OutputDataset) and d.namespace == "file" for d in outputs)
    assert [d.name for d in outputs] == [str(tmp_path / "lake" / "data" / "main" / t) for t in tables.SCHEMAS]
    assert len(outputs) == len(tables.SCHEMAS) == 10


def test_each_output_has_its_tables_schema_date_first_with_the_catalogs_types(tmp_path):
    _, outputs = lineage.daily_publish_lineage(Settings(lake_root=tmp_path / "lake"), DAY)
    for table, dataset in zip(tables.SCHEMAS, outputs):
        fields = dataset.facets["schema"].fields
        assert [f.name for f in fields] == ["date", *tables.SCHEMAS[table].names], table
        assert fields[0].type == "DATE" and all(f.type for f in fields)
        assert dataset.facets["storage"].storageLayer == "ducklake"
        assert dataset.facets["storage"].fileFormat == "parquet"
        assert dataset.facets["documentation"].description
    utterances = {f.name: f.type for f in outputs[0].facets["schema"].fields}
    assert utterances["processed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert utterances["emotion_probs"] == "MAP(VARCHAR, FLOAT)"
    assert utterances["channel"] == "SMALLINT"


def test_an_s3_lake_names_its_tables_in_the_bucket():
    settings = Settings.from_env(
        raw_root="s3://calls/raw", lake_root="s3://calls/lake", catalog="postgresql://svp@db:5432/lake"
    )
    inputs, outputs = lineage.daily_publish_lineage(settings, DAY)
    assert [(d.namespace, d.name) for d in inputs] == [("s3://calls", f"raw/date={DAY}")]
    assert {(d.namespace, d.name) for d in outputs} == {
        ("s3://calls", f"lake/data/main/{t}") for t in tables.DAILY_TABLES
    }


def test_a_release_writes_the_model_releases_table(tmp_path):
    inputs, outputs = lineage.release_report_lineage(Settings(lake_root=tmp_path / "lake"))
    assert inputs == []
    (dataset,) = outputs
    assert dataset.name == str(Path(tmp_path / "lake" / "data" / "main" / "model_releases"))
    assert [f.name for f in dataset.facets["schema"].fields] == ["date", *tables.MODEL_RELEASES.names]


def test_every_table_is_described_and_the_asset_lists_every_daily_table():
    assert set(lineage.DESCRIPTIONS) == set(tables.ALL_SCHEMAS)
    assert lineage.lake_asset_extra() == {"tables": ",".join(tables.DAILY_TABLES)}
    assert len(tables.DAILY_TABLES) == 10


@pytest.mark.parametrize("table", sorted(tables.ALL_SCHEMAS))
def test_every_table_can_be_described(tmp_path, table):
    from sensevoice_pipeline.lake.catalog import Lake

    dataset = lineage.table_dataset(Lake(tmp_path / "lake"), table)
    assert dataset.name.endswith(f"/data/main/{table}")
