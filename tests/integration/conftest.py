"""Fixtures several integration features share. Session: the micro checkpoint and the trained fixture model, each
exported for real and served by a real local Triton; the faulty-encoder Triton; a migrated Airflow home; each built
once per test process (with `pytest -n 2 --dist loadfile`, once per worker that needs it). Module: the plugin page's
small lake and model repository, and the plugin in a real Airflow api-server over them (page/, airflow/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.triton import export_fresh_repository, serve

# -- the micro checkpoint (random weights, built with funasr's classes) ------------------------------------------------


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory) -> Path:
    from sensevoice_export.micro import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("micro") / "checkpoint", seed=0)


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


# -- the trained fixture model (export/fixture_model): real answers for end-to-end tests -------------------------------


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


# -- the fault harness (tests/support/fault_models) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_repository(tmp_path_factory, fixture_repository) -> Path:
    """The trained fixture model with the faulty encoder (defaults: 3 s stall, 0.5 s batching delay)."""
    from tests.support.fault_models import build_fault_repository

    return build_fault_repository(
        fixture_repository, tmp_path_factory.mktemp("fault-repo") / "model_repository"
    )


@pytest.fixture(scope="session")
def fault_triton(fault_repository):
    """A real local Triton (127.0.0.1) on :func:`fault_repository`; stopped at the end of the session."""
    yield from serve(fault_repository)


# -- the plugin page's small lake (tests/support/page.py): its data tests, the api-server, the browser --------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    from tests.support.page import build_lake

    root = tmp_path_factory.mktemp("lake")
    build_lake(root)
    return root


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory) -> Path:
    from tests.support.page import build_model_repository

    return build_model_repository(tmp_path_factory.mktemp("models") / "model_repository")


# -- Airflow -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_airflow(tmp_path_factory):
    """A throwaway, migrated Airflow home (SQLite) for `airflow dags test` runs of the project's DAGs."""
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow

    airflow = LocalAirflow(home=tmp_path_factory.mktemp("airflow-home"))
    airflow.migrate()
    return airflow


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, lake, model_repo, fixture_triton):
    """A real api-server with the plugin, over the small lake (tests/support/page.py); its ``sensevoice_triton``
    Connection names the fixture model's Triton (tests/support/airflow.py). Module-scoped: each module that uses it
    starts its own (the plugin's HTTP tests, the browser tests)."""
    pytest.importorskip("airflow")
    from tests.support.airflow import running_api_server

    home = tmp_path_factory.mktemp("airflow-home")
    with running_api_server(home, lake, model_repo, fixture_triton.grpc_url) as server:
        yield server
