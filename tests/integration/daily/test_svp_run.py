"""`svp run` and its function (`jobs.daily.run_date`) on a day: a partition of fixture clips publishes exactly the
emotion counts the expected transcripts say, a re-run changes nothing, and a missing partition or a server that is
down is said in one line with nothing committed. The same day through the DAG: test_daily.py."""

from __future__ import annotations

from collections import Counter

import pytest

from sensevoice_pipeline.demo.sample_day import expected_answers, write_sample_day
from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.tags import parse
from tests.support.lake import differences, table_rows
from tests.support.svp import svp

GOLDEN_DAY = "2026-11-21"


@pytest.mark.triton
def test_golden_day_emotion_counts_equal_the_expected_transcripts(tmp_path, fixture_triton):
    """`svp run`'s function on a partition made only of fixture clips: emotion_daily is exactly what the expected
    transcripts say, and a re-run changes nothing."""
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    calls = write_sample_day(settings.raw_root, GOLDEN_DAY, extras=False)
    expected = expected_answers(calls)
    assert len(expected) == len(calls) + 1  # every file known; the stereo call twice

    run_date(settings, GOLDEN_DAY, show_progress=False)

    want: Counter = Counter()
    recordings: dict[tuple, set] = {}
    for (path, channel), text in expected.items():
        tags = parse(text)
        key = (tags.language, tags.emotion, channel)
        want[key] += 1
        recordings.setdefault(key, set()).add(path)
    got = {
        (r["language"], r["emotion"], r["channel"]): r
        for r in table_rows(settings.lake_root, "emotion_daily", GOLDEN_DAY)
    }
    assert {k: r["utterances"] for k, r in got.items()} == dict(want)
    assert {k: r["recordings"] for k, r in got.items()} == {k: len(v) for k, v in recordings.items()}
    assert got[("en", "angry", 0)]["utterances"] == 2 and got[("en", "angry", 0)]["recordings"] == 2

    before = {t: table_rows(settings.lake_root, t, GOLDEN_DAY) for t in tables.SCHEMAS}
    run_date(settings, GOLDEN_DAY, show_progress=False)
    assert not differences(before, {t: table_rows(settings.lake_root, t, GOLDEN_DAY) for t in tables.SCHEMAS})


@pytest.mark.subprocess
def test_svp_run_reports_a_missing_partition_and_a_server_that_is_down(tmp_path):
    (tmp_path / "raw").mkdir()
    out = svp("run", "--date", "2026-01-01", "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake"))
    assert out.returncode == 75 and "no partition for 2026-01-01" in out.stderr  # late data: try later
    write_sample_day(tmp_path / "raw", "2026-01-02", extras=False)
    from sensevoice_pipeline.serving.server import free_port

    out = svp(
        "run",
        "--date",
        "2026-01-02",
        "--raw",
        str(tmp_path / "raw"),
        "--lake",
        str(tmp_path / "lake"),
        "--url",
        f"127.0.0.1:{free_port()}",
    )
    assert out.returncode == 69 and "cannot reach Triton" in out.stderr
    assert not Lake(tmp_path / "lake").exists  # nothing was committed
