"""A serving fault is never data, and a day is one commit (issue 13).

Real pieces throughout: a Triton whose encoder fails or stalls on a marker (tests/support/fault_models) behind the
real `sensevoice` model, `daily` runs and `svp run` processes, a publisher SIGKILLed at every point of its commit
while a reader process checks every look, files renamed and symlinks swapped under a running day. A second DAG run's
plan refused: tests/integration/airflow/test_dag_plan_lease.py; the date lease and the lake's garbage collection
alone: tests/unit/lake/test_date_lease.py, tests/unit/lake/test_catalog.py.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sensevoice_pipeline.errors import FailureBudgetExceeded, PublishError, ServingError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.serving.client import TritonClientError, TritonDeadlineError
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_named_clips as write_clips
from tests.support.fault_models import RAISE_LANGUAGE, STALL_LANGUAGE
from tests.support.fixture_model import SPEECH_CLIPS
from tests.support.lake import lake_state, start_reader, stop_reader

pytestmark = pytest.mark.triton

DAY = "2026-09-14"


def write_manifest(part: Path, hints: dict[str, str]) -> None:
    with open(part / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "language"])
        writer.writerows(hints.items())


# -- serving faults ----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["internal error", "deadline"])
def test_a_serving_fault_mid_run_fails_the_run_and_leaves_the_published_day_as_it_was(
    tmp_path, fault_triton, fault
):
    """Four good files and one that makes the encoder fail (or stall past the deadline), in the middle of the day:
    the run fails with the serving error, no good file becomes a `failed` row, and the lake is untouched."""
    settings = Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        triton_url=fault_triton.grpc_url,
        batch_size=2,
        request_timeout_s=1.0,
    )
    names = SPEECH_CLIPS[:5]
    write_clips(settings.raw_root, DAY, names)
    daily.run_date(settings, DAY, run_id="good", show_progress=False)
    before = lake_state(settings)
    assert {r["status"] for r in before[1]["recordings"]} == {"ok"}

    marker = RAISE_LANGUAGE if fault == "internal error" else STALL_LANGUAGE
    write_manifest(settings.raw_root / f"date={DAY}", {f"{names[2]}.wav": marker})  # batch 1 of 3
    expected = TritonClientError if fault == "internal error" else TritonDeadlineError
    with pytest.raises(expected) as caught:
        daily.run_date(settings, DAY, run_id="faulty", show_progress=False)
    assert isinstance(caught.value, ServingError)
    assert lake_state(settings) == before  # same snapshot, same rows: nothing of the faulty run was published
    assert not list((settings.lake_root / daily.STAGING).rglob("*.parquet"))
    assert daily.leases(settings).holder(DAY) is None  # the failed run gave the date back


# -- a day is one commit: SIGKILL at every point of publishing ---------------------------------------------------------

# The publisher, in its own process: `daily.publish` of a staged run, SIGKILLed at one point (test code wraps the
# library's functions here; the library has no fault switch).
PUBLISHER = textwrap.dedent(
    """
    import os, signal, sys
    from sensevoice_pipeline.jobs import daily
    from sensevoice_pipeline.lake import catalog
    from sensevoice_pipeline.warehouse import database as warehouse
    from sensevoice_pipeline.settings import Settings
    raw, lake, date, run_id, point = sys.argv[1:6]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)

    def before(owner, name, when):
        real = getattr(owner, name)
        def wrapper(*args, **kwargs):
            if when():
                die()
            return real(*args, **kwargs)
        setattr(owner, name, wrapper)

    inserts = []
    if point == "after-verify":
        before(daily, "_run_summary", lambda: True)
    elif point.startswith("after-insert-"):  # inside the transaction, after the n-th table was written
        real_insert = catalog.Lake._insert
        def insert(*args, **kwargs):
            real_insert(*args, **kwargs)
            inserts.append(1)
            if len(inserts) == int(point.rsplit("-", 1)[1]):
                die()
        catalog.Lake._insert = staticmethod(insert)
    elif point == "before-commit":
        real_commit = catalog.Lake.commit_day
        catalog.Lake.commit_day = lambda self, d, t, before_commit=None, **kw: real_commit(self, d, t, die, **kw)
    elif point == "after-commit":
        before(warehouse.Warehouse, "refresh", lambda: True)
    elif point == "after-refresh":
        before(daily, "release", lambda: True)
    daily.publish(Settings().with_overrides(raw_root=raw, lake_root=lake), date, run_id)
    print("published")
    """
)
KILL_POINTS = [
    "after-verify",
    "after-insert-1",
    "after-insert-2",
    "after-insert-3",
    "after-insert-4",
    "before-commit",
    "after-commit",
    "after-refresh",
]
COMMITTED_AT = KILL_POINTS.index("after-commit")


def stage_run(settings: Settings, run_id: str) -> Path:
    """Plan and transcribe a run of DAY without publishing it; returns a copy of its staging (to restore it)."""
    for batch in daily.plan(settings, DAY, run_id):
        daily.process_batch(settings, batch)
    daily.leases(settings).release(DAY, run_id)  # the staged run waits; another may take the date
    stage = daily.staging_dir(settings, DAY, run_id)
    return Path(shutil.copytree(stage, settings.lake_root.parent / f"saved-{run_id}"))


def restore(settings: Settings, run_id: str, saved: Path) -> None:
    """Put a staged run back, holding the date again (its publish presents the new lease's token)."""
    stage = daily.staging_dir(settings, DAY, run_id)
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(saved, stage)
    daily.record_lease(stage, daily.leases(settings).acquire(DAY, run_id))


def published_run(settings: Settings) -> str:
    (run,) = Lake(settings.lake_root).read("runs", DAY).column("run_id").to_pylist()
    return run


@pytest.mark.timeout(420)
def test_a_publisher_killed_at_any_point_leaves_one_whole_run_and_a_retry_completes_it(
    tmp_path, fixture_triton
):
    """Runs "itn" and "plain" hold different rows for the same files. With "itn" published, "plain" is published by
    a process SIGKILLed at each point of publishing in turn: the reader never sees a mix; the day is "itn" until the
    commit and "plain" from it; re-publishing "plain" (the task's retry) then completes the day."""
    itn = Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        triton_url=fixture_triton.grpc_url,
        batch_size=2,
    )
    plain = itn.with_overrides(use_itn=False)
    write_clips(itn.raw_root, DAY, SPEECH_CLIPS[:4])
    saved = {"itn": stage_run(itn, "itn"), "plain": stage_run(plain, "plain")}
    restore(itn, "itn", saved["itn"])
    daily.publish(itn, DAY, "itn")
    stop = tmp_path / "stop"
    reader = start_reader(itn.lake_root, DAY, stop)
    try:
        for i, point in enumerate(KILL_POINTS):
            if published_run(itn) != "itn":  # start every round from the other run's day
                restore(itn, "itn", saved["itn"])
                daily.publish(itn, DAY, "itn")
            restore(itn, "plain", saved["plain"])
            out = subprocess.run(
                [sys.executable, "-c", PUBLISHER, str(itn.raw_root), str(itn.lake_root), DAY, "plain", point],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == -signal.SIGKILL, (point, out.stdout, out.stderr[-2000:])
            assert published_run(itn) == ("plain" if i >= COMMITTED_AT else "itn"), point
            daily.publish(plain, DAY, "plain")  # the retry of the killed task
            assert published_run(itn) == "plain", point
    finally:
        result = stop_reader(reader, stop)
    assert set(result["seen"]) == {"itn", "plain"}, result


# -- one run per date ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_two_svp_runs_of_one_date_started_together_publish_one_run(tmp_path, fixture_triton):
    """Five rounds of two `svp run` processes of one date started at the same moment: each round ends with the
    tables of exactly one run, a refused run says who holds the date, and nothing is left staged or leased."""
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    write_clips(settings.raw_root, DAY, SPEECH_CLIPS[:2])
    command = [
        sys.executable,
        "-m",
        "sensevoice_pipeline.ui.cli",
        "run",
        "--date",
        DAY,
        "--raw",
        str(settings.raw_root),
        "--lake",
        str(settings.lake_root),
        "--url",
        fixture_triton.grpc_url,
    ]
    refused = 0
    for _ in range(5):
        procs = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [(p.wait(timeout=240), *p.communicate()) for p in procs]
        assert {rc for rc, *_ in outs} <= {0, 75}, outs  # 75: the date is busy, try again later
        for rc, _, err in outs:
            if rc == 75:
                refused += 1
                assert "is being processed by run 'svp-run-" in err and "Traceback" not in err, err
        assert any(rc == 0 for rc, *_ in outs), outs
        runs = {
            t: set(Lake(settings.lake_root).read(t, DAY).column("run_id").to_pylist())
            for t in ("utterances", "recordings", "runs")
        }
        assert len(set.union(*runs.values())) == 1, runs
    assert refused >= 1  # the two really overlapped at least once
    assert not list((settings.lake_root / daily.STAGING).rglob("*.parquet"))
    assert daily.leases(settings).holder(DAY) is None


# -- publish verifies the plan; files are read inside the raw root -----------------------------------------------------


@pytest.mark.timeout(300)
def test_a_file_renamed_after_plan_fails_the_publish_and_names_the_change(tmp_path, fixture_triton):
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    names = SPEECH_CLIPS[:2]
    write_clips(settings.raw_root, DAY, names)
    daily.run_date(settings, DAY, run_id="first", show_progress=False)
    before = lake_state(settings)
    batches = daily.plan(settings, DAY, "renamed")
    for batch in batches:
        daily.process_batch(settings, batch)
    part = settings.raw_root / f"date={DAY}"
    os.rename(part / f"{names[0]}.wav", part / "late-name.wav")
    with pytest.raises(
        PublishError, match=f"added date={DAY}/late-name.wav; removed date={DAY}/{names[0]}.wav"
    ):
        daily.publish(settings, DAY, "renamed")
    assert lake_state(settings) == before


@pytest.mark.timeout(300)
def test_a_symlink_swapped_after_plan_is_not_read_outside_the_raw_root(tmp_path, fixture_triton):
    """A symlink that pointed inside the raw root at plan time and outside it when the file is read: the file is
    refused when opened (its row says why, no byte of the outside file is hashed), and publish refuses the changed
    partition."""
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    (good,) = write_clips(settings.raw_root, DAY, SPEECH_CLIPS[:1])
    part = settings.raw_root / f"date={DAY}"
    inside = settings.raw_root / "library" / "clip.wav"
    inside.parent.mkdir()
    shutil.copy(part / Path(good).name, inside)
    outside = tmp_path / "secret" / "clip.wav"
    outside.parent.mkdir()
    shutil.copy(part / Path(good).name, outside)
    (part / "link.wav").symlink_to(inside)
    (batch,) = daily.plan(settings, DAY, "swapped")
    (part / "link.wav").unlink()
    (part / "link.wav").symlink_to(outside)  # swapped after plan

    daily.process_batch(settings, batch)
    (staged,) = daily.staging_dir(settings, DAY, "swapped").glob("*.recordings.parquet")
    rows = {r["source_path"]: r for r in pq.read_table(staged).to_pylist()}
    link = rows[f"date={DAY}/link.wav"]
    assert link["status"] == "failed" and "resolves outside the raw root when opened" in link["error"]
    assert link["sha256"] is None and link["size_bytes"] is None
    assert rows[good]["status"] == "ok"
    with pytest.raises(PublishError, match=f"changed date={DAY}/link.wav"):
        daily.publish(settings, DAY, "swapped")
    assert not Lake(settings.lake_root).exists


# -- the failure budget ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_day_over_its_failure_budget_is_published_and_the_run_fails_with_a_clear_message(
    tmp_path, fixture_triton
):
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=fixture_triton.grpc_url
    )
    write_clips(settings.raw_root, DAY, SPEECH_CLIPS[:2])
    (settings.raw_root / f"date={DAY}" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(
        FailureBudgetExceeded, match=r"1 of 3 files failed \(33%, over the failure budget of 20%\)"
    ):
        daily.run_date(settings, DAY, run_id="over", show_progress=False)
    recordings = Lake(settings.lake_root).read("recordings", DAY).to_pylist()
    assert sorted(r["status"] for r in recordings) == ["failed", "ok", "ok"]  # published all the same
    daily.run_date(settings.with_overrides(failure_budget=0.5), DAY, run_id="within", show_progress=False)
    assert published_run(settings) == "within"
