"""The release tests' private repository and Triton: these tests load and unload versions, so they never touch the
shared `fixture_triton`. Module-scoped: each module that uses them (test_models.py, test_model_releases.py) exports
and serves its own, so that no module depends on what another did to the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.releases.policy import config_files
from sensevoice_pipeline.serving.repository import MODELS, SERVING_FILE
from sensevoice_pipeline.serving.server import LocalTriton
from tests.support.fault_models import add_angry_version
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.releases import export
from tests.support.triton import serve


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory) -> Path:
    """The trained fixture model exported twice (1: fp32, 2: int8); version 1 set to serve (offline, before start)."""
    repo = tmp_path_factory.mktemp("releases") / "model_repository"
    assert export(FIXTURE_MODEL_DIR, repo, "fp32") == 1
    assert export(FIXTURE_MODEL_DIR, repo, "int8") == 2
    releases.promote(repo, 1, url=None)
    return repo


@pytest.fixture(scope="module")
def release_triton(release_repo):
    with LocalTriton(release_repo) as server:
        yield server


# -- the angry candidate (tests/support/fault_models: add_angry_version): test_shadow_canary.py, test_rescore.py ------


@pytest.fixture(scope="module")
def angry_repo(tmp_path_factory, fixture_repository):
    repo = shutil.copytree(fixture_repository, tmp_path_factory.mktemp("angry") / "model_repository")
    releases.promote(
        repo, 1, url=None
    )  # pin version 1: the export's `latest` policy would serve the candidate
    before = {p: p.read_text() for m in MODELS for p in config_files(repo, m)}
    state = (repo / SERVING_FILE).read_text()
    assert add_angry_version(repo) == 2
    assert {p: p.read_text() for m in MODELS for p in config_files(repo, m)} == before
    assert (repo / SERVING_FILE).read_text() == state
    return repo


@pytest.fixture(scope="module")
def angry_triton(angry_repo):
    yield from serve(angry_repo)
