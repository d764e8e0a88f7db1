"""Reliability (issue 9): Triton killed in the middle of a run, by SIGKILL of its whole process group or of its
model's python stub. The run fails clearly, nothing is published, and a re-run (or the DAG's retries of the same run
id) restores the same tables. Real Triton processes serving the trained fixture model."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import psutil
import pytest

from sensevoice_pipeline.errors import PublishError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.serving.client import ModelNotReadyError, SenseVoiceClient, TritonUnavailableError
from sensevoice_pipeline.serving.server import LocalTriton
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_named_clips as write_clips
from tests.support.fixture_model import SPEECH_CLIPS
from tests.support.lake import assert_complete, staged_runs
from tests.support.lake import lake_snapshot as snapshot

pytestmark = pytest.mark.triton


# -- 2. Triton killed in the middle of a run ---------------------------------------------------------------------------

CRASH_DAY = "2026-10-02"


def kill_hard(server: LocalTriton) -> list[int]:
    """SIGKILL tritonserver's whole process group (the server and its python stubs), as a crash would."""
    proc = server.process
    pids = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return pids


def crash_the_model(server: LocalTriton) -> None:
    """SIGKILL the python stub of `sensevoice`, as the OOM killer or a crash in native code would: the server stays
    up, the model does not. (A one-sample clip used to do this; the model now refuses it.)"""
    stubs = [
        p
        for p in psutil.Process(server.process.pid).children(recursive=True)
        if "/sensevoice/" in " ".join(p.cmdline())
    ]
    assert stubs, "no python stub of sensevoice found"
    for stub in stubs:
        stub.kill()
    deadline = time.monotonic() + 30
    while any(_alive(stub) for stub in stubs) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # dead until tritonserver reaps it
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(300)
def test_triton_killed_mid_run_fails_clearly_and_a_rerun_restores_the_same_tables(
    tmp_path, fixture_repository, monkeypatch, caplog
):
    repo = shutil.copytree(fixture_repository, tmp_path / "model_repository")
    raw = tmp_path / "raw"
    write_clips(raw, CRASH_DAY, SPEECH_CLIPS[:6])  # 3 batches of 2
    base = Settings(raw_root=raw, lake_root=tmp_path / "lake", batch_size=2)

    with LocalTriton(repo) as first:
        settings = base.with_overrides(triton_url=first.grpc_url)
        daily.run_date(settings, CRASH_DAY, run_id="undisturbed", show_progress=False)
        reference = snapshot(settings.lake_root, [CRASH_DAY])
        assert_complete(settings, CRASH_DAY)

        # `svp run` again; Triton dies at the first request sent once a batch is staged (`svp run` transcribes two
        # batches at a time: that request is the third batch's, and one or both of the first two are staged by then).
        seen = {}
        kill_once = threading.Lock()  # the batches' requests come from two threads
        real_transcribe = SenseVoiceClient.transcribe

        async def transcribe(self, audio, language="auto", use_itn=True):
            with kill_once:
                staged = sorted(p.name for p in daily.staging_dir(settings, CRASH_DAY, "crashed").iterdir())
                # a batch's utterances are written after its recordings: one there means a whole batch is staged
                if "pids" not in seen and any(name.endswith(".utterances.parquet") for name in staged):
                    seen["staged"], seen["pids"] = staged, kill_hard(first)
            return await real_transcribe(self, audio, language, use_itn)

        monkeypatch.setattr(SenseVoiceClient, "transcribe", transcribe)
        t0 = time.perf_counter()
        with pytest.raises(TritonUnavailableError, match=f"cannot reach Triton at {first.grpc_url}"):
            daily.run_date(settings, CRASH_DAY, run_id="crashed", show_progress=False)
        failed_after = time.perf_counter() - t0
        monkeypatch.undo()
    # One or both of the first two batches were wholly staged (the other may have been mid-write), never the third.
    complete = [
        i
        for i in (0, 1)
        if {f"batch-0000{i}.recordings.parquet", f"batch-0000{i}.utterances.parquet"} <= set(seen["staged"])
    ]
    assert complete and not any("batch-00002" in name for name in seen["staged"]), seen["staged"]
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in seen["pids"]
    )
    # It retried as configured (4 retries, 0.5 s doubling: 7.5 s) before giving up, and said why.
    assert (
        sum("cannot reach Triton" in r.getMessage() and "retry" in r.getMessage() for r in caplog.records)
        >= 4
    )
    assert 7 < failed_after < 60
    # Nothing was published by the crashed run, and its staged batch was removed (nobody resumes an `svp run`).
    assert snapshot(settings.lake_root, [CRASH_DAY]) == reference
    assert staged_runs(settings, CRASH_DAY) == []

    # The DAG's way: tasks of one run id. This time the server stays up but its model's python stub dies: the batch
    # must fail as a server error, not stage its files as failed rows. The task's retry runs after Triton is back; publish finds every batch staged once.
    with LocalTriton(repo) as second:
        settings = base.with_overrides(triton_url=second.grpc_url)
        batches = daily.plan(settings, CRASH_DAY, "dag-run")
        daily.process_batch(settings, batches[0])
        crash_the_model(second)
        with pytest.raises(ModelNotReadyError, match="is not healthy"):
            daily.process_batch(settings, batches[1])
        kill_hard(second)  # a server whose stub died ignores SIGTERM for a while
    stage = daily.staging_dir(settings, CRASH_DAY, "dag-run")
    assert sorted(p.name for p in stage.iterdir()) == [
        "batch-00000.recordings.parquet",
        "batch-00000.utterances.parquet",
        daily.LEASE_FILE,
        daily.PLAN_FILE,
    ]  # kept for the retry
    with pytest.raises(PublishError, match="no transcription result for date=.*; no transcription result"):
        daily.publish(settings, CRASH_DAY, "dag-run")  # publishing a partial day is refused
    assert snapshot(settings.lake_root, [CRASH_DAY]) == reference

    with LocalTriton(repo) as third:  # restarted: the retries and the re-run complete
        settings = base.with_overrides(triton_url=third.grpc_url)
        for batch in batches[1:]:
            daily.process_batch(settings, batch)
        daily.publish(settings, CRASH_DAY, "dag-run")
        assert snapshot(settings.lake_root, [CRASH_DAY]) == reference
        daily.run_date(settings, CRASH_DAY, run_id="rerun", show_progress=False)
    assert snapshot(settings.lake_root, [CRASH_DAY]) == reference
    assert_complete(settings, CRASH_DAY)
    assert staged_runs(settings, CRASH_DAY) == []
