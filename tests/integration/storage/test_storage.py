"""s3:// storage roots end to end, against a real S3-compatible server (moto's server mode, on 127.0.0.1): listing a
day, reading its audio, staging and publishing Parquet atomically, DuckDB views over S3 -- through `svp run`, the
daily functions and the sensevoice_daily DAG -- compared with the same day on local paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from sensevoice_pipeline.demo.local_airflow import triton_connection_env
from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake import storage, tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.partition import PartitionError, list_work
from sensevoice_pipeline.lake.storage import ObjectPath, S3Options, StorageError
from sensevoice_pipeline.serving.server import free_port
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse.database import GROUP_BY, QUERIES, Warehouse
from tests.support.lake import differences, table_rows
from tests.support.s3 import KEY_ID, LAKE_BUCKET, RAW_BUCKET, RAW_URI, SECRET

pytestmark = pytest.mark.s3

DAY = "2026-11-20"


def upload_dir(local: Path, target: ObjectPath) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        with target.filesystem.open_output_stream(
            (target / path.relative_to(local).as_posix()).fs_path
        ) as out:
            out.write(path.read_bytes())


def objects(prefix: ObjectPath) -> list[str]:
    return sorted(rel for rel, *_ in prefix.list_files())


def snapshot(lake, catalog: Path | None = None) -> dict[str, list[dict]]:
    return {t: table_rows(lake, t, DAY, catalog) for t in tables.SCHEMAS}


def data_objects(lake: ObjectPath) -> list[str]:
    """The lake's objects, by table and date folder (DuckLake names the files): staging and data (the marker of
    the catalog that owns the lake aside)."""
    return sorted({rel.rsplit("/", 1)[0] for rel in objects(lake)} - {"data/_svp_catalog"})


# -- the sample day, local and in S3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_day(tmp_path_factory, buckets, options):
    local_raw = tmp_path_factory.mktemp("storage") / "raw"
    calls = write_sample_day(local_raw, DAY)
    upload_dir(local_raw, ObjectPath.parse(RAW_URI, options))
    return local_raw, calls


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, sample_day, fixture_triton):
    """The day on local paths: the reference every s3:// run is compared with."""
    local_raw, _ = sample_day
    lake = tmp_path_factory.mktemp("local-lake")
    settings = Settings(raw_root=local_raw, lake_root=lake, triton_url=fixture_triton.grpc_url)
    run_date(settings, DAY, show_progress=False)
    return settings, snapshot(lake)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, sample_day, fixture_triton, aws_env):
    """`svp run` with both roots in S3, configured through the AWS_* environment only."""
    lake = f"s3://{LAKE_BUCKET}/cli"
    warehouse = tmp_path_factory.mktemp("cli-warehouse") / "warehouse.duckdb"
    catalog = warehouse.with_name("catalog.sqlite")
    env = {**os.environ, **aws_env, "SVP_WAREHOUSE": str(warehouse), "SVP_CATALOG": str(catalog)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "run",
            "--date",
            DAY,
            "--raw",
            RAW_URI,
            "--lake",
            lake,
            "--url",
            fixture_triton.grpc_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    settings = Settings.from_env(
        lake_root=lake, warehouse=warehouse, triton_url=fixture_triton.grpc_url, catalog=str(catalog)
    )
    return settings, out.stdout


# -- svp run, publish, warehouse -------------------------------------------------------------------------------------


@pytest.mark.triton
def test_svp_run_with_s3_roots_gives_the_same_tables_as_local_paths(cli_run, local_run):
    settings, stdout = cli_run
    _, want = local_run
    assert f"tables in s3://{LAKE_BUCKET}/cli" in stdout
    got = snapshot(settings.lake_root, settings.catalog)
    assert not differences(want, got)
    assert got == want  # sizes and sha256 of the downloaded objects included
    corrupt = [r for r in got["recordings"] if r["status"] == "failed"]
    assert len(corrupt) == 1 and corrupt[0]["error"].startswith("cannot decode corrupt_upload.wav")
    # The tables' Parquet files in hive-style date folders in the bucket; the staged batches are gone.
    assert data_objects(settings.lake_root) == sorted(f"data/main/{t}/date={DAY}" for t in tables.SCHEMAS)


@pytest.mark.triton
def test_rerun_on_s3_replaces_partitions_in_place_and_readers_never_see_half_of_one(
    cli_run, fixture_triton, tmp_path
):
    settings, _ = cli_run
    before = snapshot(settings.lake_root, settings.catalog)
    expected_rows = len(before["utterances"])
    reads: list[int] = []
    errors: list[str] = []
    done = threading.Event()

    def reader():
        while not done.is_set() and len(reads) < 2000:
            try:
                reads.append(Lake(settings.lake_root, settings.catalog).read("utterances", DAY).num_rows)
            except Exception as exc:  # any failure is a reader that saw a missing or broken partition
                errors.append(repr(exc))
            time.sleep(0.02)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        run_date(
            settings.with_overrides(raw_root=RAW_URI, warehouse=tmp_path / "w.duckdb"),
            DAY,
            show_progress=False,
        )
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors[:3]
    assert reads and set(reads) == {expected_rows}
    assert not differences(before, snapshot(settings.lake_root, settings.catalog))
    assert data_objects(settings.lake_root) == sorted(f"data/main/{t}/date={DAY}" for t in tables.SCHEMAS)


@pytest.mark.triton
def test_duckdb_views_over_the_s3_lake_answer_like_the_local_lake(cli_run, local_run):
    settings, _ = cli_run
    local_settings, _ = local_run
    s3_house = Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog)
    local_house = Warehouse(local_settings.lake_root)
    for name in QUERIES:
        for by in GROUP_BY:
            got, want = s3_house.query(name, by=by), local_house.query(name, by=by)
            # (the sample day has no call that starts calm and ends angry: escalations is empty on both)
            assert got.equals(want) and (got.num_rows > 0 or name == "escalations"), (name, by)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        views = dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())
        assert set(views) == set(tables.ALL_SCHEMAS)
        assert (
            "the lake is not attached to this DuckDB session" in views["utterances"]
        )  # svp bi's SQL reads it
        assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone()[0] == 0
    finally:
        con.close()
    assert SECRET.encode() not in settings.warehouse_path.read_bytes(), (
        "credentials persisted in the DuckDB file"
    )


@pytest.mark.airflow
@pytest.mark.triton
def test_dag_with_s3_roots_gives_the_same_tables_as_local_paths(
    local_airflow, fixture_triton, local_run, aws_env, tmp_path
):
    """The endpoint comes from an `aws` Connection, the keys from the AWS_* environment; the environment's own
    endpoint is a closed port, so the run only succeeds if the connection is used."""
    _, want = local_run
    lake = f"s3://{LAKE_BUCKET}/dag"
    conn = {
        "conn_type": "aws",
        "extra": {"endpoint_url": aws_env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"},
    }
    env = {
        **triton_connection_env(fixture_triton.grpc_url),
        **aws_env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AIRFLOW_CONN_SVP_S3": json.dumps(conn),
        "SVP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "SVP_CATALOG": str(tmp_path / "catalog.sqlite"),
    }
    conf = {"date": DAY, "raw_root": RAW_URI, "lake_root": lake, "batch_size": 8, "aws_conn_id": "svp_s3"}
    local_airflow.dags_test("sensevoice_daily", f"{DAY}T00:00:00+00:00", conf=conf, env=env)
    lake_root = ObjectPath.parse(lake, S3Options.from_env())
    assert not differences(want, snapshot(lake_root, tmp_path / "catalog.sqlite"))
    assert data_objects(lake_root) == sorted(f"data/main/{t}/date={DAY}" for t in tables.SCHEMAS)
    assert (tmp_path / "warehouse.duckdb").is_file()


# -- listing and refusals --------------------------------------------------------------------------------------------


def test_s3_listing_gives_the_same_work_items_as_a_local_partition(tmp_path, buckets, options):
    """Manifest hints, bad rows, paths leaving the partition, hidden and unsupported files: the same items (and so
    the same failed rows) from a listing of keys as from a local directory."""
    day = "2026-02-03"
    part = tmp_path / "raw" / f"date={day}"
    for name in ("q/a.wav", "q/b.flac", "notes.txt", ".hidden.wav", "q/.cache/c.wav"):
        (part / name).parent.mkdir(parents=True, exist_ok=True)
        (part / name).write_bytes(b"RIFF")
    (part / "manifest.csv").write_text(
        "path,language,channel_mode,agent\n"
        "q/a.wav,yue,split,wing\n"
        "q/b.flac,klingon,,bo\n"
        "../escape.wav,en,,x\n"
        "/etc/passwd,,,x\n"
        "q/missing.wav,,,x\n"
        "notes.txt,,stereo,x\n"
    )
    upload_dir(tmp_path / "raw", ObjectPath.parse(f"s3://{RAW_BUCKET}/listing", options))
    unstamped = lambda items: [{**i.to_dict(), "stamp": bool(i.stamp)} for i in items]  # noqa: E731 -- mtimes differ
    local = unstamped(list_work(tmp_path / "raw", day, "auto", "mono"))
    remote = unstamped(list_work(f"s3://{RAW_BUCKET}/listing", day, "auto", "mono"))
    assert remote == local
    problems = {i["source_path"]: i["problem"] for i in remote}
    assert "leaves the partition" in problems[f"date={day}/../escape.wav"]
    assert "leaves the partition" in problems[f"date={day}//etc/passwd"]
    assert problems[f"date={day}/q/a.wav"] is None
    assert not any(".hidden" in p or ".cache" in p for p in problems)


def test_object_keys_with_dot_dot_segments_are_refused(buckets, options):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=options.endpoint_url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    day = "2026-02-04"
    client.put_object(Bucket=RAW_BUCKET, Key=f"dots/date={day}/ok.wav", Body=b"RIFF")
    client.put_object(Bucket=RAW_BUCKET, Key=f"dots/date={day}/x/../../escape.wav", Body=b"RIFF")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=RAW_BUCKET, Prefix="dots/")["Contents"]]
    if not any(".." in k for k in keys):
        pytest.skip("this S3 server normalises '..' in keys")
    items = {i.source_path: i.problem for i in list_work(f"s3://{RAW_BUCKET}/dots", day, "auto", "mono")}
    assert items[f"date={day}/ok.wav"] is None
    (escaping,) = [p for s, p in items.items() if ".." in s]
    assert "'..' segment" in escaping
    with pytest.raises(StorageError, match=r"'\.\.'"):
        ObjectPath.parse(f"s3://{RAW_BUCKET}/dots") / f"date={day}/x/../../escape.wav"


def test_unreachable_endpoint_and_missing_bucket_are_clear_errors(buckets, options, aws_env, tmp_path):
    dead = S3Options(endpoint_url=f"http://127.0.0.1:{free_port()}", access_key=KEY_ID, secret_key=SECRET)
    t0 = time.monotonic()
    with pytest.raises(
        StorageError, match=r"cannot reach the object store at http://127\.0\.0\.1:\d+ \(listing s3://"
    ):
        list_work(ObjectPath.parse(RAW_URI, dead), DAY, "auto", "mono")
    assert time.monotonic() - t0 < 20
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist at http://127.0.0.1"):
        list_work("s3://no-such-bucket/calls", DAY, "auto", "mono")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        Lake("s3://no-such-bucket/lake", tmp_path / "c.sqlite").commit_day(
            DAY, {"runs": tables.RUNS.empty_table()}
        )
    with pytest.raises(PartitionError, match=f"no partition for 2026-01-01: {RAW_URI}/date=2026-01-01"):
        list_work(RAW_URI, "2026-01-01", "auto", "mono")
    # The same through `svp run`: one line, exit code 64, nothing written.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "run",
            "--date",
            DAY,
            "--raw",
            "s3://no-such-bucket/calls",
            "--lake",
            f"s3://{LAKE_BUCKET}/never",
            "--url",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **aws_env, "SVP_WAREHOUSE": str(tmp_path / "w.duckdb")},
    )
    assert out.returncode == 64, out.stderr[-3000:]
    assert "bucket 'no-such-bucket' does not exist" in out.stderr and "Traceback" not in out.stderr
    assert objects(ObjectPath.parse(f"s3://{LAKE_BUCKET}/never", options)) == []


# -- configuration ---------------------------------------------------------------------------------------------------


def test_roots_and_options_from_the_environment_and_an_aws_connection(aws_env, s3_endpoint):
    settings = Settings.from_env(raw_root=f"{RAW_URI}/", lake_root=f"s3://{LAKE_BUCKET}/lake/x", warehouse="")
    assert isinstance(settings.raw_root, ObjectPath) and str(settings.raw_root) == RAW_URI
    assert settings.lake_root.options == S3Options(s3_endpoint, KEY_ID, SECRET, None, "us-east-1")
    assert settings.warehouse_path == Path("var/warehouse") / LAKE_BUCKET / "lake/x" / "warehouse.duckdb"
    assert Settings.from_env(lake_root="var/some-lake").warehouse_path == Path(
        "var/some-lake/warehouse.duckdb"
    )
    assert KEY_ID not in repr(settings) and SECRET not in repr(settings)
    conn = S3Options.from_connection("other-key", "other-secret", {"endpoint_url": "http://minio:9000"})
    assert (conn.endpoint_url, conn.access_key, conn.secret_key, conn.region) == (
        "http://minio:9000",
        "other-key",
        "other-secret",
        "us-east-1",
    )
    assert conn.endpoint() == ("minio:9000", "http")
    assert S3Options.from_connection(None, None, {}, base=S3Options()).endpoint() == (None, "https")
    with pytest.raises(StorageError, match="unsupported storage URI"):
        Settings.from_env(raw_root="gs://bucket/raw")
    with pytest.raises(ValueError, match="warehouse is a local file"):
        Settings.from_env(warehouse=f"s3://{LAKE_BUCKET}/w.duckdb")
    with pytest.raises(StorageError, match="no bucket"):
        storage.as_root("s3:///raw")
    root = ObjectPath.parse(f"s3://{LAKE_BUCKET}/lake")
    assert str(root / "utterances" / "date=D") == f"s3://{LAKE_BUCKET}/lake/utterances/date=D"
    assert (root / "a/b").parent == root / "a" and root in (root / "a/b").parents
    with pytest.raises(TypeError):
        open(root / "x")  # never mistaken for a local path
