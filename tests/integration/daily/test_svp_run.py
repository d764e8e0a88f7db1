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


@pytest.mark.triton
@pytest.mark.subprocess
def test_svp_run_json_is_one_object_and_a_day_over_its_budget_exits_65(tmp_path, fixture_triton):
    """For automation: with --json, stdout is one JSON object (the published day, inside the error when the day went
    over its failure budget), the exit code 65 says "look at the data", and no progress bar reaches a log."""
    import json

    write_sample_day(tmp_path / "raw", GOLDEN_DAY)  # with its corrupt upload: 1 of the day's files fails
    args = ["run", "--date", GOLDEN_DAY, "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake")]
    out = svp(*args, "--url", fixture_triton.grpc_url, "--json", "--failure-budget", "0")
    assert out.returncode == 65, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    assert answer["kind"] == "FailureBudgetExceeded" and answer["exit_code"] == 65
    day = answer["result"]
    assert (
        day["date"] == GOLDEN_DAY and day["files_failed"] == 1 and day["files"] > 1 and day["utterances"] > 0
    )
    assert "\r" not in out.stderr and "transcribing" not in out.stderr  # not a terminal: no progress bar
    assert Lake(tmp_path / "lake").exists  # published all the same

    out = svp(*args, "--url", fixture_triton.grpc_url, "--json", "--log-format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["files_failed"] == 1
    # (libsndfile's mpg123 writes its own complaints about the sample day's MP3 straight to stderr: not log lines)
    logs = [json.loads(line) for line in out.stderr.splitlines() if not line.startswith("[src/libmpg123")]
    assert logs and {"time", "level", "logger", "message"} <= set(logs[0])
    assert any(f"{GOLDEN_DAY}: 24 files" in entry["message"] for entry in logs), logs


@pytest.mark.triton
@pytest.mark.subprocess
def test_svp_transcribe_json_is_one_object_per_file_and_a_bad_file_exits_65(tmp_path, fixture_triton):
    import json

    calls = write_sample_day(tmp_path / "raw", GOLDEN_DAY)
    part = tmp_path / "raw" / f"date={GOLDEN_DAY}"
    good = next(part / c.path for c in calls if c.path.endswith(".wav") and "corrupt" not in c.path)
    bad = next(part / c.path for c in calls if "corrupt" in c.path)
    out = svp("transcribe", str(good), str(bad), "--url", fixture_triton.grpc_url, "--json")
    assert out.returncode == 65, out.stderr[-2000:]
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert first["file"] == str(good) and first["text"] and first["model_versions"] == ["1"]
    segment = first["segments"][0]
    assert segment["raw"].startswith("<|") and segment["emotion"] and segment["language"]
    assert second["file"] == str(bad) and "cannot decode" in second["error"]
