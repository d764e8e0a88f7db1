"""The daily job's own metrics from a real run of the daily DAG: `airflow dags test` on the fixture model's Triton
with `[metrics] statsd_on` pointed at a UDP socket this test listens on (conftest.observed_day); the packets carry
the day's counters, equal to what the lake holds for the day, and one timer per stage (per batch for transcribe)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from sensevoice_pipeline.lake.catalog import Lake
from tests.integration.airflow.conftest import OBSERVED_DAY

pytestmark = [pytest.mark.airflow, pytest.mark.triton]

PREFIX = "airflow.sensevoice.daily."  # [metrics] statsd_prefix, then the project's names


def _ours(packets: list[str]) -> dict[tuple[str, str], list[float]]:
    """(name without the prefix, StatsD type) -> the values received, in order."""
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in packets:
        if not line.startswith(PREFIX):
            continue
        name, _, rest = line[len(PREFIX) :].partition(":")
        value, _, kind = rest.partition("|")
        seen[(name, kind.split("|")[0])].append(float(value))
    return dict(seen)


def test_the_days_counters_match_what_was_published(observed_day):
    metrics = _ours(observed_day.packets)
    assert metrics, f"no sensevoice.daily.* packet among {len(observed_day.packets)} received"
    (run,) = Lake(observed_day.settings.lake_root).read("runs", OBSERVED_DAY).to_pylist()
    recordings = Lake(observed_day.settings.lake_root).read("recordings", OBSERVED_DAY).to_pylist()
    failed = sum(r["status"] == "failed" for r in recordings)
    assert failed == 1  # the sample day's corrupt upload

    assert metrics[("files", "c")] == [observed_day.files] == [len(recordings)]
    assert metrics[("files_failed", "c")] == [failed]
    assert metrics[("files_ok", "c")] == [observed_day.files - failed]
    assert metrics[("utterances", "c")] == [run["utterances"]] and run["utterances"] > 0
    assert math.isclose(metrics[("speech_seconds", "c")][0], run["speech_seconds"], rel_tol=1e-6)
    assert metrics[("days", "c")] == [1]
    assert metrics[("failed_share", "g")] == [pytest.approx(failed / observed_day.files)]


def test_each_stage_sends_its_timing(observed_day):
    metrics = _ours(observed_day.packets)
    batches = math.ceil(observed_day.files / 16)  # the batch_size Param's default
    assert len(metrics[("plan", "ms")]) == 1 and len(metrics[("publish", "ms")]) == 1
    assert len(metrics[("transcribe", "ms")]) == batches == 2
    assert all(v > 0 for stage in ("plan", "transcribe", "publish") for v in metrics[(stage, "ms")])
