"""releases/release.py: what a release refuses before it exports anything."""

from __future__ import annotations

import pytest

from sensevoice_pipeline import releases
from tests.support.releases import release_settings


def test_a_release_refuses_an_object_store_lake_without_a_catalog_before_it_exports(tmp_path):
    with pytest.raises(releases.ReleaseError, match="s3://bucket/lake needs a catalog that every host"):
        releases.release(
            "no-such-checkpoint", release_settings(tmp_path / "repo", "127.0.0.1:1", "s3://bucket/lake")
        )
    assert not (tmp_path / "repo").exists()
