"""releases/report.py: a release's row goes to the catalog it is given, not the lake's default one."""

from __future__ import annotations

from sensevoice_pipeline import releases
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings


def test_the_release_row_goes_to_the_catalog_it_is_given(tmp_path):
    lake, catalog = tmp_path / "lake", tmp_path / "elsewhere" / "catalog.sqlite"
    run = releases.ReleaseRun(
        Settings(model_repository=tmp_path / "repo"), "release-1", "2026-01-01T00:00:00+00:00"
    )
    run.failure = releases.StepFailure("export", "ExportError: no checkpoint")
    decision = run.failed_decision()
    summary = releases.write_release_report(lake, "release-1", None, None, decision, catalog=catalog)
    assert summary.table == f"SQLite catalog {catalog}" and catalog.is_file()
    assert not list(lake.glob("*.sqlite"))  # not the lake's default catalog
    (row,) = Lake(lake, catalog).read("model_releases", summary.date).to_pylist()
    assert (row["release_id"], row["outcome"], row["reasons"]) == (
        "release-1",
        "failed",
        "export failed: ExportError: no checkpoint",
    )
