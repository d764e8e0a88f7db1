"""Hostile inputs bounded, nothing deleted by accident (issue 28), through `svp run` against the fixture Triton: a
small compressed file holding an hour of audio and FIFOs in the raw tree become failed rows of a published day; a
re-run over an emptied partition is refused instead of replacing the day with nothing. The pure parts:
tests/unit/ (speech/test_audio.py, lake/test_files.py, jobs/test_daily.py, ui/test_cli.py, test_settings.py)."""

from __future__ import annotations

import os
from functools import partial

import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from tests.support.audio import silent_flac, write_clips
from tests.support.svp import svp as run_svp

pytestmark = pytest.mark.triton

DAY = "2026-11-20"
svp = partial(run_svp, timeout=240)


@pytest.mark.timeout(300)
def test_a_day_with_an_endless_file_and_fifos_is_published_with_them_as_failed_rows(tmp_path, fixture_triton):
    """The daily job under SVP_MAX_RECORDING_S=600: a FLAC of an hour whose header hides its length, a FIFO and a
    symlink to one (opening either would wait for a writer for ever) fail with their reasons; the rest of the day
    is published, and the run ends."""
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    clips = write_clips(raw, DAY, 2)
    part = raw / f"date={DAY}"
    silent_flac(part / "endless.flac", 1.0, length_in_header=False)
    os.mkfifo(part / "pipe.wav")
    os.mkfifo(tmp_path / "raw" / "elsewhere.fifo")
    os.symlink(raw / "elsewhere.fifo", part / "linked.wav")
    out = svp(
        "run",
        "--date",
        DAY,
        "--raw",
        str(raw),
        "--lake",
        str(lake),
        "--url",
        fixture_triton.grpc_url,
        "--failure-budget",
        "1",
        env={"SVP_MAX_RECORDING_S": "600"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {r["source_path"].split("/", 1)[1]: r for r in Lake(lake).read("recordings", DAY).to_pylist()}
    assert rows["endless.flac"]["error"].endswith(
        "(SVP_MAX_RECORDING_S; found while decoding): not transcribed"
    )
    assert rows["pipe.wav"]["error"] == "not a regular file (a FIFO); refusing to read it"
    assert rows["linked.wav"]["error"] == "not a regular file (a FIFO); refusing to read it"
    assert sorted(name for name, r in rows.items() if r["status"] == "ok") == sorted(
        c.split("/", 1)[1] for c in clips
    )


# -- no silent shrink --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_re_run_never_silently_replaces_a_published_day_with_much_less(tmp_path, fixture_triton):
    """Issue 28's reproduction: the partition now holds only _SUCCESS (a retention job emptied it); the re-run used
    to exit 0 and replace 3 recordings with nothing."""
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    names = write_clips(settings.raw_root, DAY, 3)
    daily.run_date(settings, DAY, show_progress=False)
    before = Lake(settings.lake_root).read("recordings", DAY).to_pylist()
    part = settings.raw_root / f"date={DAY}"
    for name in names:
        (settings.raw_root / name).unlink()
    (part / "_SUCCESS").touch()
    args = (
        "run",
        "--date",
        DAY,
        "--raw",
        str(settings.raw_root),
        "--lake",
        str(settings.lake_root),
        "--url",
        fixture_triton.grpc_url,
    )
    refused = svp(*args)
    assert refused.returncode == 64, refused.stderr[-2000:]
    assert (
        f"{DAY}: the partition holds 0 recordings, the published day 3 (3 utterances); re-running would "
        "replace them with nothing, so nothing was done"
    ) in refused.stderr
    assert "--allow-shrink" in refused.stderr and "Traceback" not in refused.stderr
    assert Lake(settings.lake_root).read("recordings", DAY).to_pylist() == before
    assert daily.leases(settings).holder(DAY) is None
    allowed = svp(*args, "--allow-shrink")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert Lake(settings.lake_root).read("recordings", DAY).num_rows == 0
