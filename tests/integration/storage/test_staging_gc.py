"""Staging that nobody collects (issue 28): a run's abandoned staging is removed once past the grace period, on a
local lake and on S3 (a moto server of its own)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.settings import Settings
from tests.support.s3 import create_buckets, moto_s3_server

pytestmark = pytest.mark.s3


def test_abandoned_staging_is_removed_after_the_grace_period_local_and_s3(tmp_path):
    with moto_s3_server() as url, pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
        }.items():
            mp.setenv(name, value)
        create_buckets(url, "k", "s", "lakes")
        for root in (tmp_path / "lake", "s3://lakes/lake"):
            settings = Settings.from_env(
                lake_root=str(root), gc_grace_s=2, catalog=str(tmp_path / f"{id(root)}.db")
            )
            old = daily.staging_dir(settings, "2026-11-01", "killed-run")
            (old / "batch-00000.utterances.parquet").write_atomic(b"transcripts of a run that died")
            time.sleep(2.5)  # older than the grace period now
            fresh = daily.staging_dir(settings, "2026-11-02", "running-run")
            (fresh / "batch-00000.utterances.parquet").write_atomic(b"a run still at work")
            daily._drop_stale_staging(settings, dt.timedelta(seconds=settings.gc_grace_s))
            assert not old.list_files(), root
            assert [name for name, *_ in fresh.list_files()] == ["batch-00000.utterances.parquet"], root
