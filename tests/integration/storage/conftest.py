"""moto's S3 server for the storage tests, once per module (tests/support/s3.py), the standard AWS variables
pointing at it, and the raw and lake buckets on it."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.lake.storage import S3Options
from tests.support.s3 import KEY_ID, LAKE_BUCKET, RAW_BUCKET, SECRET, create_buckets, moto_s3_server


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a free port of 127.0.0.1, for this module; stopped at its end."""
    with moto_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def aws_env(s3_endpoint):
    """The standard AWS variables pointing at the test server, in this process and for the subprocesses."""
    values = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
            mp.delenv(name, raising=False)
        for name, value in values.items():
            mp.setenv(name, value)
        yield values


@pytest.fixture(scope="module")
def options(aws_env) -> S3Options:
    return S3Options.from_env()


@pytest.fixture(scope="module")
def buckets(options):
    create_buckets(options.endpoint_url, KEY_ID, SECRET, RAW_BUCKET, LAKE_BUCKET)
    return options.filesystem()
