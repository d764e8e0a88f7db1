"""The first release after a plain `svp export` (no serving.json yet): its export records what serves before it adds
a version, on a real exported repository (no server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sensevoice_export.pipeline import run_export
from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from tests.support.paths import FIXTURE_MODEL_DIR

pytestmark = pytest.mark.export


def test_the_first_release_after_a_plain_export_records_what_serves_before_adding_a_version(
    tmp_path, fixture_repository
):
    """A repository that only `svp export` wrote has no serving.json, and its configs' default policy serves the
    latest version: the release's export must pin what serves now, or the new version looks served (its stage was
    refused with "version 2 is already serving", found by tests/integration/stack/test_stack.py) and a restart would
    serve it uncanaried."""
    repo = Path(shutil.copytree(fixture_repository, tmp_path / "model_repository"))
    assert not releases.read_state(repo).recorded
    exported = releases.export_version(str(FIXTURE_MODEL_DIR), repo, run_export=run_export)
    state = releases.read_state(repo)
    assert (exported.version, state.serving, state.recorded) == (2, 1, True)
    assert releases.policy_versions(repo, PIPELINE_MODEL) == [1]  # a restarted Triton still serves version 1
