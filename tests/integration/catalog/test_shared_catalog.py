"""A lake has exactly one catalog, which many hosts may share (issue 27): DuckLake on PostgreSQL beside the SQLite
default, a data path that records its owner and refuses any other catalog, garbage collection that deletes only
what its own catalog wrote. Real PostgreSQL (tests/support/services.py), real moto S3, real DuckDB/DuckLake. The
settings that enter checked: tests/unit/test_settings.py."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.catalog_db import CatalogError, PostgresCatalog, catalog_database, redact
from sensevoice_pipeline.lake.ownership import OWNER_DIR
from sensevoice_pipeline.lake.storage import ObjectPath, S3Options
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse.bi import setup_sql
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.support.audio import write_clips
from tests.support.lake import rows_without_run
from tests.support.s3 import create_buckets, moto_s3_server

DAY_A, DAY_B = "2026-11-20", "2026-11-21"
KEY_ID, SECRET = "svp-test-key-id", "svp-test-secret-key-0123456789"


def runs_row(run_id: str) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    return tables.to_table(
        [
            {
                "run_id": run_id,
                "started_at": now,
                "finished_at": now,
                "files": 1,
                "files_ok": 1,
                "files_failed": 0,
                "utterances": 0,
                "speech_seconds": 0.0,
                "model_versions": "",
            }
        ],
        tables.RUNS,
    )


def publish(lake: Lake, date: str, run_id: str, grace_s: float | None = None) -> None:
    grace = None if grace_s is None else dt.timedelta(seconds=grace_s)
    lake.commit_day(
        date,
        {"runs": runs_row(run_id), "utterances": tables.UTTERANCES.empty_table()},
        collect_garbage_older_than=grace,
    )


def data_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "data").rglob("*.parquet")}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server with a bucket, and the AWS variables pointing at it (this module only)."""
    with moto_s3_server() as url, pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
        }.items():
            mp.setenv(name, value)
        create_buckets(url, KEY_ID, SECRET, "lakes")
        yield S3Options.from_env()


# -- one catalog per lake ----------------------------------------------------------------------------------------------


def test_a_second_catalog_over_the_same_data_path_is_refused_and_deletes_nothing(tmp_path, catalog_setting):
    """The reproduction of issue 27: catalog A publishes a day; catalog B over the same lake publishes another day
    with a garbage grace of 0 s. B must refuse before writing anything, and A's day must stay readable."""
    root = tmp_path / "lake"
    owner = Lake(root, catalog_setting)
    publish(owner, DAY_A, "run-a")
    before = data_files(root)
    intruder = Lake(root, tmp_path / "elsewhere" / "catalog.sqlite")
    with pytest.raises(
        CatalogError,
        match=f"belongs to another catalog .*{owner.catalog.describe().split(' ', 1)[1]}"
        ".* set SVP_CATALOG to that catalog",
    ):
        publish(intruder, DAY_B, "run-b", grace_s=0)
    assert data_files(root) == before
    assert owner.read("runs", DAY_A).column("run_id").to_pylist() == ["run-a"]
    publish(owner, DAY_B, "run-a2", grace_s=0)  # the owner goes on writing
    assert owner.read("runs", DAY_B).column("run_id").to_pylist() == ["run-a2"]


@pytest.mark.s3
@pytest.mark.postgres
def test_an_s3_lake_shared_by_two_hosts_through_postgres_and_a_third_catalog_refused(tmp_path, s3, postgres):
    """Two 'hosts' (two working directories, no local file in common) write one s3:// lake through one PostgreSQL
    catalog and read each other's days; a host configured with its own SQLite catalog is refused."""
    url, lake_uri = postgres.new_database("lake"), "s3://lakes/shared"
    cwd = os.getcwd()
    try:
        for host, day in (("host-1", DAY_A), ("host-2", DAY_B)):
            (tmp_path / host).mkdir()
            os.chdir(tmp_path / host)
            publish(Lake(lake_uri, url), day, f"run-{host}", grace_s=0)
    finally:
        os.chdir(cwd)
    shared = Lake(lake_uri, url)
    assert [shared.read("runs", d).column("run_id").to_pylist() for d in (DAY_A, DAY_B)] == [
        ["run-host-1"],
        ["run-host-2"],
    ]
    markers = ObjectPath.parse(f"{lake_uri}/data/{OWNER_DIR}", s3).list_files()
    assert len(markers) == 1
    with pytest.raises(CatalogError, match="belongs to another catalog"):
        publish(Lake(lake_uri, tmp_path / "host-3.sqlite"), "2026-11-22", "run-host-3", grace_s=0)
    assert [shared.read("runs", d).num_rows for d in (DAY_A, DAY_B)] == [1, 1]


@pytest.mark.s3
def test_an_s3_lake_without_a_catalog_is_refused_with_what_to_set(s3):
    with pytest.raises(
        CatalogError, match="s3://lakes/x needs a catalog that every host writing it shares: set SVP_CATALOG"
    ):
        Lake("s3://lakes/x")
    settings = Settings(lake_root=ObjectPath.parse("s3://lakes/x", s3))
    with pytest.raises(CatalogError, match="needs a catalog"):
        daily.leases(settings)


def test_a_catalog_attached_to_another_lake_says_so(tmp_path, catalog_setting):
    publish(Lake(tmp_path / "lake-1", catalog_setting), DAY_A, "run-1")
    with pytest.raises(CatalogError, match="belongs to another lake, not .*lake-2"):
        publish(Lake(tmp_path / "lake-2", catalog_setting), DAY_A, "run-2")


# -- garbage collection ------------------------------------------------------------------------------------------------


def test_garbage_collection_deletes_only_what_its_catalog_wrote(tmp_path, catalog_setting, caplog):
    """An unreferenced DuckLake file written before this catalog claimed the lake (another catalog's) stays; one
    written after (a crashed writer of this catalog) is collected, and so are the files a re-published day
    superseded."""
    root = tmp_path / "lake"
    lake = Lake(root, catalog_setting)
    folder = root / "data" / "main" / "runs" / f"date={DAY_A}"
    folder.mkdir(parents=True)
    foreign = folder / "ducklake-from-another-catalog.parquet"
    foreign.write_bytes(b"PAR1 not ours")
    os.utime(foreign, (time.time() - 3600, time.time() - 3600))  # written before anyone claimed the lake
    publish(lake, DAY_A, "first")
    first_files = data_files(root) - {str(foreign.relative_to(root))}
    crashed = folder / "ducklake-crashed-writer.parquet"
    crashed.write_bytes(b"PAR1 ours, never committed")
    time.sleep(0.05)
    with caplog.at_level(logging.INFO, logger="sensevoice_pipeline.lake.catalog"):
        publish(lake, DAY_A, "second", grace_s=0)
    assert foreign.exists(), "a file this catalog cannot attribute was deleted"
    assert not crashed.exists()
    time.sleep(0.05)
    lake.collect_garbage(dt.timedelta(0))  # the superseded files were scheduled by the publish: deleted now
    assert foreign.exists()
    assert first_files and not (first_files & data_files(root)), (
        "the first publish's superseded files are there"
    )
    assert "older than this catalog's claim on the lake" in caplog.text
    assert lake.read("runs", DAY_A).column("run_id").to_pylist() == ["second"]


# -- PostgreSQL: the daily job and its readers -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.triton
@pytest.mark.timeout(300)
def test_the_daily_job_on_a_postgres_catalog_publishes_what_the_sqlite_one_does(
    tmp_path, postgres, fixture_triton
):
    raw = tmp_path / "raw"
    names = write_clips(raw, DAY_A, 3)
    results = {}
    for kind, catalog in (("sqlite", None), ("postgres", postgres.new_database("lake"))):
        settings = Settings(
            raw_root=raw, lake_root=tmp_path / kind, triton_url=fixture_triton.grpc_url, catalog=catalog
        )
        daily.run_date(settings, DAY_A, show_progress=False)
        lake = Lake(settings.lake_root, catalog)
        results[kind] = {t: rows_without_run(lake.read(t, DAY_A)) for t in tables.DAILY_TABLES}
        house = Warehouse(settings.lake_root, settings.warehouse_path, catalog)
        assert house.query("emotion-trend").num_rows > 0
        assert daily.leases(settings).holder(DAY_A) is None
    assert results["postgres"] == results["sqlite"]
    assert len(results["postgres"]["recordings"]) == len(names)


@pytest.mark.postgres
def test_a_reader_of_a_postgres_catalog_sees_no_lake_before_the_first_publish(tmp_path, postgres):
    lake = Lake(tmp_path / "lake", postgres.new_database("lake"))
    assert not lake.exists and lake.snapshot_id() is None
    assert lake.read("runs").num_rows == 0
    with pytest.raises(CatalogError, match="no lake at .* in the PostgreSQL catalog"):
        with lake.reader():
            pass


@pytest.mark.postgres
def test_the_bi_attach_lines_never_carry_the_catalogs_password(tmp_path, postgres):
    postgres.psql("CREATE ROLE bi_reader LOGIN PASSWORD 'hunter2-secret'")
    url = postgres.new_database("lake").replace("postgres@", "bi_reader:hunter2-secret@")
    catalog = catalog_database(url, tmp_path)
    assert isinstance(catalog, PostgresCatalog)
    sql = setup_sql(Lake(tmp_path / "lake", url))
    assert "hunter2" not in sql
    assert "ATTACH IF NOT EXISTS 'ducklake:postgres:postgresql://bi_reader@127.0.0.1" in sql
    assert "hunter2" not in catalog.describe() and "hunter2" not in redact("host=h password=hunter2 dbname=d")


def test_an_unreachable_postgres_catalog_is_one_line_naming_it_without_its_password(tmp_path):
    from sensevoice_pipeline.serving.server import free_port

    lake = Lake(tmp_path / "lake", f"postgresql://svp:pw-secret@127.0.0.1:{free_port()}/lake")
    with pytest.raises(
        CatalogError, match=r"cannot reach the PostgreSQL catalog postgresql://svp:\*\*\*@127"
    ) as err:
        _ = lake.exists
    assert "pw-secret" not in str(err.value)
