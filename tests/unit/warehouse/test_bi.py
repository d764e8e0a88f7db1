"""`svp bi`'s setup SQL for a lake in an object store (warehouse/bi.py): httpfs, and a secret whose credentials are
placeholders -- never the ones this process has. The SQL run in a real offline DuckDB: tests/integration/cli/."""

from __future__ import annotations

from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.warehouse.bi import needed_extensions, setup_sql


def test_an_s3_lake_gets_httpfs_and_a_secret_template_without_the_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret-value")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    lake = Lake("s3://calls/lake", "postgresql://bi_reader:pw-secret@db.internal:5432/lake")
    assert needed_extensions(lake) == ["ducklake", "postgres_scanner", "httpfs"]
    sql = setup_sql(lake)
    assert "INSTALL httpfs;\nLOAD httpfs;" in sql
    secret = next(line for line in sql.splitlines() if line.startswith("CREATE OR REPLACE SECRET"))
    for field in (
        "TYPE 's3'",
        "SCOPE 's3://calls'",
        "KEY_ID '<your access key id>'",
        "SECRET '<your secret access key>'",
        "ENDPOINT 'minio.internal:9000'",
        "URL_STYLE 'path'",
        "USE_SSL false",
    ):
        assert field in secret, (field, secret)
    assert "AKIAREALKEY123" not in sql and "real-secret-value" not in sql and "pw-secret" not in sql
    assert (
        "ATTACH IF NOT EXISTS 'ducklake:postgres:postgresql://bi_reader@db.internal:5432/lake' AS lake" in sql
    )


def test_a_local_lake_needs_no_httpfs_and_no_secret(tmp_path):
    sql = setup_sql(Lake(tmp_path / "lake"))
    assert "httpfs" not in sql and "SECRET" not in sql
    assert sql.splitlines()[-2:] == [
        f"ATTACH IF NOT EXISTS 'ducklake:sqlite:{(tmp_path / 'lake' / 'catalog.sqlite').resolve()}' AS lake (READ_ONLY);",
        "USE lake;",
    ]
