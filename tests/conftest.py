"""Shared fixtures: a micro checkpoint built with funasr's classes, its real export, a real local Triton."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).parent / "assets"
EXAMPLE_AUDIO = sorted((ASSETS / "audio").glob("*.mp3"))

# Keep onnxruntime inside Triton's python models from fighting the test process for the two cores.
os.environ.setdefault("SVP_ORT_THREADS", "1")
# Every Triton of the session locks its control plane with this key, and every release call sends it
# (serving/admin.py); tests of the lock itself start servers with keys of their own.
TEST_ADMIN_KEY = "svp-test-admin-key-0123456789"
os.environ.setdefault("SVP_TRITON_ADMIN_KEY", TEST_ADMIN_KEY)
# DAG runs of the tests point their Params at the tests' own folders and buckets (settings.check_run_params refuses
# what the deployment does not allow; tests/test_run_params.py checks that with its own settings).
os.environ.setdefault("SVP_ALLOWED_ROOTS", "/,s3://")
os.environ.setdefault("SVP_ALLOWED_CONNECTIONS", "svp_s3")


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory) -> Path:
    from sensevoice_export.micro import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("micro") / "checkpoint", seed=0)


def export_fresh_repository(model_dir: Path, repo: Path) -> Path:
    """``model_dir`` exported (fp32, legacy exporter) as version 1 of a new repository at ``repo``."""
    from sensevoice_export.pipeline import run_export

    result = run_export(str(model_dir), repo, "fp32", "legacy", progress=lambda *_: None)
    assert result.version == 1
    return repo


def serve(repository: Path):
    """A real local Triton on ``repository`` for as long as the fixture lives."""
    from sensevoice_pipeline.serving.server import LocalTriton

    with LocalTriton(repository) as server:
        yield server


@pytest.fixture(scope="session")
def exported_repository(tmp_path_factory, micro_checkpoint) -> Path:
    """The micro checkpoint as version 1 of a fresh repository."""
    return export_fresh_repository(micro_checkpoint, tmp_path_factory.mktemp("repo") / "model_repository")


@pytest.fixture(scope="session")
def triton(exported_repository):
    yield from serve(exported_repository)


@pytest.fixture(scope="session")
def funasr_model(micro_checkpoint):
    from sensevoice_export.checkpoint import find_checkpoint_files, load_funasr_model

    auto, _ = load_funasr_model(find_checkpoint_files(micro_checkpoint))
    return auto


def funasr_text(auto, audio: np.ndarray, language: str, use_itn: bool) -> str:
    from sensevoice_export.checkpoint import quiet_funasr

    with quiet_funasr():
        return auto.generate(input=audio, language=language, use_itn=use_itn, disable_pbar=True)[0]["text"]


def synthetic_clip(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """A deterministic speech-like signal: a few gliding harmonics under an amplitude envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 80 * rng.random() + 30 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * (2 + 3 * rng.random()) * t))
    signal = 0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


# -- the trained fixture model (export/fixture_model): real answers for end-to-end tests -------------------------------

FIXTURE_MODEL_DIR = Path(__file__).resolve().parents[1] / "export" / "fixture_model"


def fixture_cases() -> list[dict]:
    """expected.jsonl of the fixture model: one case per (clip, language hint, use_itn) with funasr's exact text."""
    import json

    lines = (FIXTURE_MODEL_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="session")
def fixture_repository(tmp_path_factory) -> Path:
    """The trained fixture model as version 1 of a fresh repository."""
    return export_fresh_repository(
        FIXTURE_MODEL_DIR, tmp_path_factory.mktemp("fixture-repo") / "model_repository"
    )


@pytest.fixture(scope="session")
def fixture_triton(fixture_repository):
    """A real local Triton serving the trained fixture model; shared by every end-to-end test of the session."""
    yield from serve(fixture_repository)


@pytest.fixture(scope="session")
def local_airflow(tmp_path_factory):
    """A throwaway, migrated Airflow home (SQLite) for `airflow dags test` runs of the project's DAGs."""
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow

    airflow = LocalAirflow(home=tmp_path_factory.mktemp("airflow-home"))
    airflow.migrate()
    return airflow


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


# -- servers from the system packages (scripts/install-system-deps.sh) -------------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of this test session (tests/support/services.py); each test asks it for a database."""
    from tests.support.services import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_kind(request) -> str:
    """Run a test once per kind of lake catalog (lake/catalog_db.py)."""
    return request.param


@pytest.fixture
def catalog_setting(request, catalog_kind, tmp_path) -> str:
    """SVP_CATALOG for ``catalog_kind``: a SQLite file in this test's folder, or a fresh PostgreSQL database."""
    if catalog_kind == "sqlite":
        return str(tmp_path / "catalog" / "catalog.sqlite")
    return request.getfixturevalue("postgres").new_database("lake")
