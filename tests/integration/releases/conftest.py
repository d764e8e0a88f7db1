"""The release tests' private repository and Triton: these tests load and unload versions, so they never touch the
shared `fixture_triton`. Module-scoped: each module that uses them (test_models.py, test_model_releases.py) exports
and serves its own, so that no module depends on what another did to the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.server import LocalTriton
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.releases import export


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
