"""How the local CPU shape spreads its work over the cores (issue 18): several single-threaded encoder instances
sharing the machine's cores, each utterance sent to the encoder on its own, and `svp run` transcribing two batches
at a time.

Real pieces: a local Triton on the micro export whose own log says what each encoder instance took, and
`daily.run_date` against the fixture Triton (``process_batch`` is wrapped to observe and to fail a batch; the
library has no fault switch). How many instances and threads a config asks for:
tests/unit/serving/test_triton_models.py."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time

import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.releases.policy import parse_config
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    LOCAL_CONFIG_NAME,
    PIPELINE_MODEL,
    ModelRepository,
)
from sensevoice_pipeline.serving.server import LocalTriton
from sensevoice_pipeline.serving.triton_models import THREADS_LOG
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_named_clips as write_clips
from tests.support.fault_models import model_statistics
from tests.support.fixture_model import SPEECH_CLIPS, clip

pytestmark = pytest.mark.triton

DAY = "2026-10-05"


def test_the_local_triton_runs_the_configs_encoder_instances_each_on_its_share_of_the_cores(
    exported_repository, monkeypatch
):
    """No SVP_ORT_THREADS: every encoder instance of the local config starts, and each says in the server's log
    that it took the machine's cores divided by the instance count."""
    config = parse_config(
        ModelRepository(exported_repository).model_dir(ENCODER_MODEL)
        / "configs"
        / f"{LOCAL_CONFIG_NAME}.pbtxt"
    )
    instances = sum(group.count for group in config.instance_group)
    assert instances >= 2  # the layout issue 18 measured; one instance would leave cores idle
    monkeypatch.delenv("SVP_ORT_THREADS", raising=False)
    with LocalTriton(exported_repository) as server:
        log_text = open(server.log_file, encoding="utf-8", errors="replace").read()
    taken = re.findall(rf"{ENCODER_MODEL}_\d+(?:_\d+)?: onnxruntime CPU, {THREADS_LOG} (\d+)", log_text)
    expected = max(1, len(os.sched_getaffinity(0)) // instances)
    assert [int(t) for t in taken] == [expected] * instances, log_text[-3000:]


@pytest.mark.timeout(300)
def test_the_local_triton_sends_each_utterance_to_the_encoder_on_its_own(fixture_triton):
    """Eight requests at once, more than the instances: with a dynamic batcher on `sensevoice` the queued ones would
    be merged into one execution and one padded encoder call, which runs on a single encoder instance while the
    other idles. Locally every request is its own execution and its own batch-1 encoder call, so the default
    scheduler hands each to whichever encoder instance is free."""
    url, names = fixture_triton.grpc_url, SPEECH_CLIPS[:8]

    async def at_once():
        async with SenseVoiceClient(url, max_concurrency=len(names)) as client:
            return await asyncio.gather(*(client.transcribe(clip(n), "auto") for n in names))

    def settled_statistics(expected_requests: dict[str, int]) -> dict:
        """Triton records an execution's statistics after its response has gone out: under load the last one can
        land a moment after the client has its answer, so wait (briefly) until every request is counted."""
        deadline = time.monotonic() + 10
        while True:
            stats = {m: model_statistics(url, m) for m in (PIPELINE_MODEL, ENCODER_MODEL)}
            counted = all(stats[m]["inference_count"] >= n for m, n in expected_requests.items())
            if counted or time.monotonic() > deadline:
                return stats
            time.sleep(0.1)

    before = {m: model_statistics(url, m) for m in (PIPELINE_MODEL, ENCODER_MODEL)}
    answers = asyncio.run(at_once())
    after = settled_statistics({m: before[m]["inference_count"] + len(names) for m in before})
    assert all(a.text for a in answers)
    for model in (PIPELINE_MODEL, ENCODER_MODEL):
        requests = after[model]["inference_count"] - before[model]["inference_count"]
        executions = after[model]["execution_count"] - before[model]["execution_count"]
        batch_1 = after[model]["batches"].get(1, 0) - before[model]["batches"].get(1, 0)
        assert requests == executions == batch_1 == len(names), (model, before[model], after[model])


# -- `svp run`: batches in flight ----------------------------------------------------------------------------------


def settings_for(tmp_path, url: str) -> Settings:
    return Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=url, batch_size=1)


@pytest.mark.timeout(300)
def test_svp_run_transcribes_batches_side_by_side_and_every_file_once(tmp_path, fixture_triton, monkeypatch):
    """Batch 0 and batch 1 meet at a barrier before they transcribe: one batch at a time would never get both
    there (the barrier breaks after its timeout and the run fails)."""
    settings = settings_for(tmp_path, fixture_triton.grpc_url)
    names = SPEECH_CLIPS[:5]
    write_clips(settings.raw_root, DAY, names)
    side_by_side = threading.Barrier(daily.BATCHES_IN_FLIGHT, timeout=60)
    real = daily.process_batch

    def process_batch(settings, batch, started_at, cancelled):
        if batch.index < daily.BATCHES_IN_FLIGHT:
            side_by_side.wait()
        return real(settings, batch, started_at, cancelled)

    monkeypatch.setattr(daily, "process_batch", process_batch)
    result = daily.run_date(settings, DAY, run_id="side-by-side", show_progress=False)
    assert result.files == len(names)
    recordings = Lake(settings.lake_root).read("recordings", DAY).to_pylist()
    assert sorted(r["source_path"] for r in recordings) == sorted(f"date={DAY}/{n}.wav" for n in names)
    assert {r["status"] for r in recordings} == {"ok"}


@pytest.mark.timeout(300)
def test_a_failed_batch_cancels_the_batches_not_started_and_waits_for_the_running_one(
    tmp_path, fixture_triton, monkeypatch
):
    """Ten batches; batch 0 fails while batch 1 is still transcribing. The run raises batch 0's error only after
    batch 1 has ended (nothing writes to the staging area after it is released; it starts no further file), no
    batch past the one a freed worker may already have taken starts, and nothing is published or left staged."""
    settings = settings_for(tmp_path, fixture_triton.grpc_url)
    write_clips(settings.raw_root, DAY, SPEECH_CLIPS[:10])
    started, ended = [], []
    batch_0_failing = threading.Event()
    real = daily.process_batch

    def process_batch(settings, batch, started_at, cancelled):
        started.append(batch.index)
        if batch.index == 0:
            batch_0_failing.set()
            raise RuntimeError("batch 0 failed")
        if batch.index == 1:
            batch_0_failing.wait(60)
            time.sleep(0.5)  # still transcribing when batch 0's error reaches run_date
        try:
            return real(
                settings, batch, started_at, cancelled
            )  # stops before its next file: the run is failing
        finally:
            ended.append(batch.index)

    monkeypatch.setattr(daily, "process_batch", process_batch)
    with pytest.raises(RuntimeError, match="batch 0 failed"):
        daily.run_date(settings, DAY, run_id="failing", show_progress=False)
    assert 1 in ended  # run_date returned only after the running batch had ended
    assert set(started) <= {0, 1, 2}, (
        started
    )  # batch 2: the worker freed by batch 0 may have taken it already
    assert not list((settings.lake_root / daily.STAGING).rglob("*.parquet"))
    assert daily.leases(settings).holder(DAY) is None
    assert Lake(settings.lake_root).snapshot_id() is None  # nothing was ever published
