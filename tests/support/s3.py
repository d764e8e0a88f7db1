"""moto's S3 server, on a free loopback port, and buckets on it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

# The storage tests' credentials and buckets on moto (tests/integration/storage/conftest.py creates them).
KEY_ID, SECRET = "svp-test-key-id", "svp-test-secret-key-0123456789"
RAW_BUCKET, LAKE_BUCKET = "svp-raw", "svp-lake"
RAW_URI = f"s3://{RAW_BUCKET}/calls"


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, listening; yields its endpoint URL and stops it at the end."""
    import logging

    from moto.server import ThreadedMotoServer

    from sensevoice_pipeline.serving.server import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per S3 request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto server did not listen on 127.0.0.1:{port} within 20 s"
                    ) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def create_buckets(endpoint_url: str, key_id: str, secret: str, *buckets: str) -> None:
    """Create ``buckets`` on the S3 server at ``endpoint_url`` (moto in the tests)."""
    import pyarrow.fs as pafs

    admin = pafs.S3FileSystem(
        access_key=key_id,
        secret_key=secret,
        endpoint_override=endpoint_url.split("://")[1],
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
        # moto imports its S3 backend on the first request: seconds on a loaded machine
        connect_timeout=30,
        request_timeout=60,
    )
    for bucket in buckets:
        admin.create_dir(bucket)
