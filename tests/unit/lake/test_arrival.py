"""Late data (lake/arrival.py) on a local raw root: when a day's partition is ready (a visible file, or its ready
marker), bad markers and dates, and waiting with a clock that says what is missing when it times out. On S3 and in
a DAG: tests/integration/storage/test_arrival_s3.py, tests/integration/airflow/test_arrival.py."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.errors import ConfigurationError, exit_code
from sensevoice_pipeline.lake import arrival, partition

DAY = "2026-11-22"


def test_without_a_marker_a_partition_is_ready_once_it_holds_a_visible_file(tmp_path):
    part = tmp_path / f"date={DAY}"
    state = arrival.check_partition(tmp_path, DAY)
    assert not state.ready and state.partition == str(part) and "does not exist yet" in state.detail
    part.mkdir()
    assert "holds no file yet" in arrival.check_partition(tmp_path, DAY).detail
    (part / "queue-a").mkdir()
    (part / "queue-a" / ".call.wav.part").write_bytes(b"x")  # an upload in progress is not data
    assert not arrival.check_partition(tmp_path, DAY).ready
    (part / "queue-a" / "call.wav").write_bytes(b"x")
    state = arrival.check_partition(str(tmp_path), DAY)
    assert state.ready and state.files == 1 and state.detail == "the partition holds 1 file(s)"


def test_with_a_marker_only_the_marker_counts(tmp_path):
    part = tmp_path / f"date={DAY}"
    part.mkdir()
    (part / "call.wav").write_bytes(b"x")
    state = arrival.check_partition(tmp_path, DAY, "_SUCCESS")
    assert not state.ready and state.detail == "waiting for the ready marker _SUCCESS"
    (part / "_SUCCESS").mkdir()  # a folder of that name is not the marker
    assert not arrival.check_partition(tmp_path, DAY, "_SUCCESS").ready
    (part / "_SUCCESS").rmdir()
    (part / "_SUCCESS").write_bytes(b"")
    assert arrival.check_partition(tmp_path, DAY, " _SUCCESS ").ready
    assert not arrival.check_partition(tmp_path, DAY, "meta/done").ready
    (part / "meta").mkdir()
    (part / "meta" / "done").write_text("ok")
    assert arrival.check_partition(tmp_path, DAY, "meta/done").detail == "ready marker meta/done is present"


def test_bad_markers_and_dates_are_configuration_errors(tmp_path):
    for marker in ("../_SUCCESS", "/etc/passwd", "a//b", "./x", "a\\b", "meta/"):
        with pytest.raises(ConfigurationError, match="bad ready marker"):
            arrival.check_partition(tmp_path, DAY, marker)
    with pytest.raises(ConfigurationError, match="not a date: '2026-13-01'"):
        arrival.check_partition(tmp_path, "2026-13-01")
    with pytest.raises(ConfigurationError, match=f"the raw root {tmp_path / 'nowhere'} does not exist"):
        arrival.check_partition(
            tmp_path / "nowhere", DAY
        )  # a wrong root fails now instead of waiting for hours


def test_the_partition_is_the_one_the_pipeline_reads(tmp_path):
    assert arrival.partition_path(tmp_path, DAY) == partition.partition_dir(tmp_path, DAY)
    uri = "s3://bucket/raw"
    assert (
        str(arrival.partition_path(uri, DAY)) == str(partition.partition_dir(uri, DAY)) == f"{uri}/date={DAY}"
    )


def test_wait_times_out_with_a_message_that_says_what_is_missing(tmp_path):
    (tmp_path / f"date={DAY}").mkdir()
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(arrival.ArrivalTimeout) as err:
        arrival.wait_for_partition(
            tmp_path, DAY, "_SUCCESS", timeout_s=1500, poke_interval_s=600, sleep=sleep, clock=lambda: now[0]
        )
    assert sleeps == [600, 600, 300]  # the last check happens at the deadline
    assert str(err.value) == (
        f"the raw partition of {DAY} was not ready after 25 min: {tmp_path / f'date={DAY}'} (waiting for the ready "
        "marker _SUCCESS); ready means its ready marker _SUCCESS. Check the upstream export, or give it longer "
        "(DAG Param wait_timeout_minutes)."
    )
    assert exit_code(err.value) == 75  # svp: not arrived yet, try again later


def test_wait_returns_as_soon_as_the_marker_lands(tmp_path):
    part = tmp_path / f"date={DAY}"
    checks = []

    def sleep(seconds):
        checks.append(seconds)
        if len(checks) == 2:
            part.mkdir()
            (part / "manifest.csv").write_text("path\n")

    state = arrival.wait_for_partition(
        tmp_path, DAY, "manifest.csv", timeout_s=60, poke_interval_s=5, sleep=sleep
    )
    assert state.ready and len(checks) == 2
