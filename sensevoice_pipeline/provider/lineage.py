"""What the DAGs read and write, as OpenLineage datasets: the raw audio partition a daily run reads, every table
of the lake it publishes (each with its schema), the ``model_releases`` table a release writes. The DAGs' tasks
hand these to Airflow's OpenLineage provider through ``provider.decorators.lineage_task``; this module builds them
and imports no Airflow.

Names follow the OpenLineage naming spec for storage locations (``openlineage.client.naming``), derived from the
roots: a local root is namespace ``file`` and its absolute path (``/srv/lake/data/main/utterances``), an
``s3://bucket/prefix`` root namespace ``s3://bucket`` and the key (``prefix/data/main/utterances``). A table is
named by the folder that holds its Parquet files, where DuckLake writes them (``catalog.Lake.table_root``), so the
same table read by another tool (Spark, DuckDB over the files) joins the same node of the lineage graph.
"""

from __future__ import annotations

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import documentation_dataset, schema_dataset, storage_dataset
from openlineage.client.naming.dataset import S3, LocalFileSystem

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake, table_columns
from sensevoice_pipeline.lake.partition import partition_dir
from sensevoice_pipeline.lake.storage import Root
from sensevoice_pipeline.settings import Settings

__all__ = [
    "LAKE_ASSET_URI",
    "daily_publish_lineage",
    "lake_asset_extra",
    "location",
    "raw_partition",
    "release_report_lineage",
    "table_dataset",
]

# The Airflow Asset the daily DAG's publish task updates (downstream DAGs schedule on it), whatever the lake's root.
LAKE_ASSET_URI = "sensevoice://lake/utterances"

# The table format and file format of the lake's tables (the storage facet), and what each table holds.
STORAGE_LAYER = "ducklake"
FILE_FORMAT = "parquet"
DESCRIPTIONS = {
    "utterances": "One row per transcribed segment: text, language, emotion, event and their confidences",
    "recordings": "One row per raw audio file of the day: its format, status (ok | failed) and error",
    "emotion_daily": "Utterances and speech seconds per language, emotion and channel",
    "emotion_confidence_daily": "emotion_daily split by the emotion confidence's bucket",
    "event_daily": "Utterances and recordings per sound event",
    "model_usage_daily": "Utterances and recordings per model version",
    "angry_calls": "The day's 1,000 angriest recordings x channels",
    "calls": "One row per recording: talk, non-talk, overtalk, interruptions, talk speed, emotions per channel",
    "calls_daily": "calls summed per agent, queue and channel count: talk, silence, overtalk, ended angry",
    "runs": "The run that published the day: files, failures, utterances, speech seconds, model versions",
    "model_releases": "One row per model release: outcome, versions, canary agreement and latency",
    "kept_snapshots": "Lake snapshots kept past the grace period: the rows of a model version before a re-score",
}


def lake_asset_extra() -> dict[str, str]:
    """The extra of the lake's Airflow Asset: every table one daily commit writes, comma-separated."""
    return {"tables": ",".join(tables.DAILY_TABLES)}


def location(root: Root) -> tuple[str, str]:
    """The OpenLineage (namespace, name) of a storage location: ``("file", "/abs/path")`` for a local root,
    ``("s3://bucket", "key")`` for an ``s3://`` one."""
    if root.local_path is not None:
        naming = LocalFileSystem(path=str(root.local_path.resolve()))
    else:
        bucket, _, key = root.duckdb_uri.removeprefix("s3://").partition("/")
        naming = S3(bucket_name=bucket, object_key=key or "/")
    return naming.get_namespace(), naming.get_name()


def schema_facet(table: str) -> schema_dataset.SchemaDatasetFacet:
    """Table ``table``'s columns as the lake's catalog declares them (DuckDB types, ``date`` first)."""
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=name, type=column_type)
            for name, column_type in table_columns(table)
        ]
    )


def table_dataset(lake: Lake, table: str) -> OutputDataset:
    """Table ``table`` of ``lake`` as an output: its location, schema, storage format and description."""
    namespace, name = location(lake.table_root(table))
    return OutputDataset(
        namespace=namespace,
        name=name,
        facets={
            "schema": schema_facet(table),
            "storage": storage_dataset.StorageDatasetFacet(
                storageLayer=STORAGE_LAYER, fileFormat=FILE_FORMAT
            ),
            "documentation": documentation_dataset.DocumentationDatasetFacet(description=DESCRIPTIONS[table]),
        },
    )


def raw_partition(raw_root: Root, date: str) -> InputDataset:
    """The day's raw audio partition, ``<raw_root>/date=YYYY-MM-DD``."""
    namespace, name = location(partition_dir(raw_root, date))
    return InputDataset(namespace=namespace, name=name)


def daily_publish_lineage(settings: Settings, date: str) -> tuple[list[InputDataset], list[OutputDataset]]:
    """What publishing ``date`` reads and writes: the raw partition in, every table of the day's commit out."""
    lake = Lake(settings.lake_root, settings.catalog)
    return [raw_partition(settings.raw_root, date)], [table_dataset(lake, t) for t in tables.DAILY_TABLES]


def release_report_lineage(settings: Settings) -> tuple[list[InputDataset], list[OutputDataset]]:
    """What a release's report writes: its row of ``model_releases``."""
    lake = Lake(settings.lake_root, settings.catalog)
    return [], [table_dataset(lake, "model_releases")]
