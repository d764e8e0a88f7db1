"""Reliability and safety (issue 9): bad inputs, a crashed Triton, re-runs, concurrent runs and readers lose nothing.

Everything is real: Triton processes serving the trained fixture model, `svp run` (as a subprocess) and
`daily.run_date`, one `airflow dags test`, files on disk, Parquet partitions and the DuckDB warehouse.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import soxr

from sensevoice_pipeline.demo.local_airflow import LocalAirflow, triton_connection_env
from sensevoice_pipeline.errors import PublishError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.partition import list_work
from sensevoice_pipeline.serving.client import (
    ModelNotReadyError,
    SenseVoiceClient,
    TritonUnavailableError,
    transcribe_sync,
)
from sensevoice_pipeline.serving.server import LocalTriton, free_port
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse.database import Warehouse

from .conftest import FIXTURE_MODEL_DIR, fixture_cases

CLIPS = FIXTURE_MODEL_DIR / "clips"
DAILY_TABLES = tables.DAILY_TABLES
# Columns that name the run rather than the data: they differ between two runs of the same date.
RUN_COLUMNS = ("run_id", "processed_at", "started_at", "finished_at")
SPEECH_CLIPS = sorted(p.stem for p in CLIPS.glob("*.wav") if not p.stem.startswith("nospeech"))


# -- helpers -----------------------------------------------------------------------------------------------------------


def clip(name: str) -> np.ndarray:
    audio, rate = sf.read(CLIPS / f"{name}.wav", dtype="float32")
    assert rate == 16000
    return audio


def expected_text(name: str, language: str = "auto", use_itn: bool = True) -> str:
    (case,) = [
        c
        for c in fixture_cases()
        if c["clip"] == f"clips/{name}.wav" and c["language"] == language and c["use_itn"] == use_itn
    ]
    return case["text"]


def write_clips(raw: Path, date: str, names: list[str]) -> list[str]:
    part = raw / f"date={date}"
    part.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(CLIPS / f"{name}.wav", part / f"{name}.wav")
    return [f"date={date}/{n}.wav" for n in names]


def table_rows(lake: Path, table: str, date: str) -> list[dict]:
    data = Lake(lake).read(table, date)
    return data.select([c for c in data.column_names if c not in RUN_COLUMNS]).to_pylist()


def snapshot(lake: Path, dates: list[str]) -> dict:
    return {(t, d): table_rows(lake, t, d) for t in DAILY_TABLES for d in dates}


def assert_complete(settings: Settings, date: str) -> None:
    """No gaps (every listed work item has its row) and no duplicates, in recordings and utterances."""
    recordings = table_rows(settings.lake_root, "recordings", date)
    paths = [r["source_path"] for r in recordings]
    assert len(paths) == len(set(paths))
    assert set(paths) == {i.source_path for i in list_work(settings.raw_root, date, "auto", "mono")}
    utterances = table_rows(settings.lake_root, "utterances", date)
    keys = [(u["recording_id"], u["channel"], u["segment_index"]) for u in utterances]
    assert len(keys) == len(set(keys))
    per_recording = {r["recording_id"]: r["n_segments"] for r in recordings}
    assert {k: sum(1 for u in keys if u[0] == k) for k in per_recording} == per_recording


def staged_runs(settings: Settings, date: str) -> list[str]:
    stage = settings.lake_root / daily.STAGING / f"date={date}"
    return sorted(p.name for p in stage.iterdir()) if stage.is_dir() else []


def bound_sockets(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every listening TCP socket and bound UDP socket of the process and its descendants."""
    root = psutil.Process(pid)
    found = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for c in connections:
            if c.laddr and not c.raddr and c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE):
                found.add((_unmapped(c.laddr.ip), c.laddr.port))
    return sorted(found)


def _unmapped(ip: str) -> str:
    """gRPC listens on a dual-stack socket: ``::ffff:127.0.0.1`` is IPv4 loopback seen through IPv6."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


# -- 1. a corpus of bad inputs -----------------------------------------------------------------------------------------

BAD_DAY = "2026-10-01"
TWO_HOURS = 2 * 3600


def write_bad_corpus(raw: Path, date: str) -> None:
    part = raw / f"date={date}"
    (part / "queue a").mkdir(parents=True)
    rng = np.random.default_rng(9)
    good = clip("en_refund_angry")
    sf.write(part / "control_en_refund_angry.wav", good, 16000, subtype="PCM_16")
    (part / "empty.wav").write_bytes(b"")
    (part / "truncated_header.wav").write_bytes((part / "control_en_refund_angry.wav").read_bytes()[:30])
    (part / "random_bytes.mp3").write_bytes(rng.bytes(8192))
    (part / "random_bytes.wav").write_bytes(rng.bytes(8192))
    sf.write(part / "zero_samples.wav", np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    poisoned = good.copy()
    poisoned[100], poisoned[2000] = np.nan, np.inf
    sf.write(part / "nan_inf_float.wav", poisoned, 16000, subtype="FLOAT")
    happy = clip("en_thanks_happy_applause")
    sf.write(part / "six_channels.wav", np.tile(happy[:, None], (1, 6)), 16000, subtype="PCM_16")
    sf.write(
        part / "mulaw_8k.wav", soxr.resample(clip("ko_thanks_neutral"), 16000, 8000), 8000, subtype="ULAW"
    )
    sf.write(
        part / "hires_96k.flac", soxr.resample(clip("ja_thanks_happy"), 16000, 96000), 96000, subtype="PCM_24"
    )
    # Two hours of 8 kHz silence: 180 KB of FLAC, 0.46 GB once decoded to 16 kHz float32.
    with sf.SoundFile(part / "two_hours_silent.flac", "w", 8000, 1, format="FLAC", subtype="PCM_16") as f:
        minute = np.zeros(8000 * 60, np.int16)
        for _ in range(TWO_HOURS // 60):
            f.write(minute)
    sf.write(part / "silence_only.wav", np.zeros(10 * 16000, np.float32), 16000, subtype="PCM_16")
    sf.write(part / "one_sample.wav", np.full(1, 0.1, np.float32), 16000, subtype="PCM_16")
    shutil.copy(CLIPS / "en_paid_sad_cough.wav", part / "voice_memo.m4a")
    (part / "notes.xyz").write_text("not audio\n")
    shutil.copy(CLIPS / "zh_refund_angry.wav", part / "queue a" / "通话 ünïcødé #1.wav")
    outside = raw.parent / "outside"
    outside.mkdir()
    shutil.copy(CLIPS / "en_order_neutral_bgm.wav", outside / "secret.wav")
    (part / "link_outside.wav").symlink_to(outside / "secret.wav")
    shutil.copy(
        CLIPS / "ko_help_fearful.wav", raw / "escape.wav"
    )  # exists, but the manifest may not reach it
    shutil.copy(CLIPS / "yue_thanks_happy.wav", part / "unknown_language.wav")
    (part / "manifest.csv").write_text(
        "path,language,channel_mode,agent\n"
        "control_en_refund_angry.wav,en,,ana\n"
        "six_channels.wav,,split,bo\n"
        "../escape.wav,en,,eve\n"
        "unknown_language.wav,klingon,,kim\n"
        "missing.wav,en,,max\n",
        encoding="utf-8",
    )


# source path (relative to the partition) -> (status, exact error or a fragment of it)
BAD_EXPECTED = {
    "control_en_refund_angry.wav": ("ok", None),
    "empty.wav": ("failed", "empty.wav is an empty file (0 bytes)"),
    "truncated_header.wav": (
        "failed",
        "cannot decode truncated_header.wav: Error in WAV file. No 'data' chunk marker.",
    ),
    "random_bytes.mp3": ("failed", "cannot decode random_bytes.mp3: not a valid audio file"),
    "random_bytes.wav": ("failed", "cannot decode random_bytes.wav: Format not recognised."),
    "zero_samples.wav": ("failed", "zero_samples.wav holds no samples"),
    "nan_inf_float.wav": ("failed", "nan_inf_float.wav contains NaN or Inf samples"),
    "six_channels.wav": ("ok", None),
    "mulaw_8k.wav": ("ok", None),
    "hires_96k.flac": ("ok", None),
    "two_hours_silent.flac": ("ok", None),
    "silence_only.wav": ("ok", None),
    "one_sample.wav": (
        "failed",
        "too short to transcribe: 0.06 ms of audio at 16 kHz (at least 10 ms needed)",
    ),
    "voice_memo.m4a": ("failed", "unsupported format '.m4a'; supported formats: wav, flac, mp3, ogg"),
    "notes.xyz": ("failed", "unsupported format '.xyz'; supported formats: wav, flac, mp3, ogg"),
    "queue a/通话 ünïcødé #1.wav": ("ok", None),
    "link_outside.wav": ("failed", "symlink points outside the raw root; refusing to read it"),
    "../escape.wav": ("failed", "manifest path '../escape.wav' leaves the partition; refusing to read it"),
    "unknown_language.wav": (
        "failed",
        "unknown language 'klingon' in manifest.csv: expected one of auto, zh, en",
    ),
    "missing.wav": ("failed", "listed in manifest.csv but not found in the partition"),
}

# `svp run` with its own peak RSS: the baseline is taken after the imports a run needs.
SVP_RUN_WITH_RSS = textwrap.dedent(
    """
    import json, resource, sys
    import psutil
    from sensevoice_pipeline.ui import cli
    from sensevoice_pipeline.jobs import daily
    from sensevoice_pipeline.warehouse import database as warehouse  # noqa: F401 -- what the run imports, in the baseline
    import tqdm  # noqa: F401
    base = psutil.Process().memory_info().rss
    rc = cli.main(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RSS " + json.dumps({"base": base, "peak": peak}), flush=True)
    sys.exit(rc)
    """
)


@pytest.fixture(scope="module")
def bad_day(tmp_path_factory, fixture_triton):
    root = tmp_path_factory.mktemp("bad-inputs")
    settings = Settings(raw_root=root / "raw", lake_root=root / "lake", triton_url=fixture_triton.grpc_url)
    write_bad_corpus(settings.raw_root, BAD_DAY)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SVP_RUN_WITH_RSS,
            "run",
            "--date",
            BAD_DAY,
            "--raw",
            str(settings.raw_root),
            "--lake",
            str(settings.lake_root),
            "--url",
            fixture_triton.grpc_url,
            "--failure-budget",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )  # a corpus of bad inputs: most of its files fail on purpose, so no failure budget applies
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    rss = json.loads(out.stdout.split("RSS ", 1)[1].splitlines()[0])
    return settings, out.stdout, rss, seconds


@pytest.mark.timeout(300)
def test_every_bad_input_is_one_row_with_a_readable_reason(bad_day, fixture_triton):
    settings, stdout, _, seconds = bad_day
    n_rows = len(BAD_EXPECTED)
    assert (
        f"{BAD_DAY}: {n_rows} files ({sum(s == 'failed' for s, _ in BAD_EXPECTED.values())} failed)" in stdout
    )
    rows = table_rows(settings.lake_root, "recordings", BAD_DAY)
    assert len(rows) == n_rows
    by_path = {r["source_path"].removeprefix(f"date={BAD_DAY}/"): r for r in rows}
    assert sorted(by_path) == sorted(BAD_EXPECTED)
    for path, (status, reason) in BAD_EXPECTED.items():
        row = by_path[path]
        assert row["status"] == status, (path, row["error"])
        if (
            status == "ok"
        ):  # the model version is that of the answers: none for a file without speech segments
            assert row["error"] is None, path
            assert row["model_version"] == (None if path == "two_hours_silent.flac" else "1"), path
        else:
            assert row["error"].startswith(reason), (path, row["error"])
            assert "\n" not in row["error"] and str(settings.raw_root) not in row["error"], row["error"]
            assert row["n_segments"] == 0
    # The refused paths were never opened: no size, no hash.
    for path in ("link_outside.wav", "../escape.wav", "missing.wav", "voice_memo.m4a", "notes.xyz"):
        assert by_path[path]["size_bytes"] is None and by_path[path]["sha256"] is None, path
    assert by_path["empty.wav"]["size_bytes"] == 0
    assert dict(by_path["control_en_refund_angry.wav"]["metadata"]) == {"agent": "ana"}
    assert by_path["unknown_language.wav"]["language_hint"] == "klingon"

    utterances = table_rows(settings.lake_root, "utterances", BAD_DAY)
    by_file: dict[str, list[dict]] = {}
    for u in utterances:
        by_file.setdefault(u["source_path"].removeprefix(f"date={BAD_DAY}/"), []).append(u)
    assert sorted(by_file) == sorted(
        p for p, (s, _) in BAD_EXPECTED.items() if s == "ok" and p != "two_hours_silent.flac"
    )
    assert [u["raw_text"] for u in by_file["control_en_refund_angry.wav"]] == [
        expected_text("en_refund_angry", "en")
    ]
    assert [u["raw_text"] for u in by_file["queue a/通话 ünïcødé #1.wav"]] == [
        expected_text("zh_refund_angry")
    ]
    assert [u["raw_text"] for u in by_file["hires_96k.flac"]] == [expected_text("ja_thanks_happy")]
    six = by_path["six_channels.wav"]
    assert (six["channels"], six["channel_mode"], six["n_segments"]) == (6, "split", 6)
    assert [(u["channel"], u["raw_text"]) for u in by_file["six_channels.wav"]] == [
        (c, expected_text("en_thanks_happy_applause")) for c in range(6)
    ]
    mulaw = by_path["mulaw_8k.wav"]
    assert (mulaw["sample_rate"], mulaw["format"], mulaw["n_segments"]) == (8000, "WAV", 1)
    assert by_file["mulaw_8k.wav"][0]["raw_text"].startswith(
        "<|"
    )  # answered; its marker tones lie above 4 kHz
    assert len(by_file["silence_only.wav"]) == 1  # short: sent whole, SenseVoice handles silence itself
    long = by_path["two_hours_silent.flac"]
    assert (long["duration_s"], long["sample_rate"], long["n_segments"]) == (TWO_HOURS, 8000, 0)

    # The day published with its run summary and the warehouse sees it.
    (run,) = table_rows(settings.lake_root, "runs", BAD_DAY)
    assert (run["files"], run["files_failed"]) == (
        n_rows,
        sum(s == "failed" for s, _ in BAD_EXPECTED.values()),
    )
    con = Warehouse(settings.lake_root).connect()
    try:
        count = con.execute("SELECT count(*) FROM recordings WHERE date = ?", [BAD_DAY]).fetchone()[0]
    finally:
        con.close()
    assert count == n_rows
    assert staged_runs(settings, BAD_DAY) == []
    # The one-sample file did not take the shared server down with it (the model refuses such a clip per request).
    (answer,) = transcribe_sync([clip("ko_help_fearful")], url=fixture_triton.grpc_url)
    assert answer.text == expected_text("ko_help_fearful")
    assert seconds < 120, f"the bad day took {seconds:.0f} s"


def test_memory_stays_bounded_and_two_hours_of_silence_take_seconds(bad_day):
    _, _, rss, seconds = bad_day
    decoded = TWO_HOURS * 16000 * 4  # the two-hour file at 16 kHz, float32: 0.46 GB, held once
    growth = rss["peak"] - rss["base"]
    # Bounded means: a small multiple of the decoded file, not of its length at its source rate or of the day.
    # Measured: 0.6 GB in most runs; 1.45 GB once, in a full-suite run while a benchmark loaded both cores (the
    # cause is not pinned down: allocator arenas of the decode threads are the suspect).
    assert growth < 3.5 * decoded + 200 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"
    assert seconds < 90, f"`svp run` of the bad day took {seconds:.0f} s"


@pytest.mark.timeout(300)
def test_the_dag_publishes_the_same_rows_for_the_bad_day(bad_day, fixture_triton, local_airflow, tmp_path):
    settings, *_ = bad_day
    lake = tmp_path / "dag-lake"
    airflow = LocalAirflow(home=local_airflow.home, extra_env=triton_connection_env(fixture_triton.grpc_url))
    airflow._migrated = True  # the session's home is migrated already
    conf = {
        "date": BAD_DAY,
        "raw_root": str(settings.raw_root),
        "lake_root": str(lake),
        "batch_size": 8,
        "failure_budget": 1,
    }
    # The logical date must not precede the DAG's start_date (2026-11-01): Airflow then runs no task at all and
    # still reports the run successful. The date to process comes from the `date` param.
    airflow.dags_test("sensevoice_daily", "2026-11-02T00:00:00+00:00", conf=conf, timeout=240)
    assert snapshot(lake, [BAD_DAY]) == snapshot(settings.lake_root, [BAD_DAY])
    assert staged_runs(Settings(raw_root=settings.raw_root, lake_root=lake), BAD_DAY) == []


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


# -- 3. re-runs, a backfilled week, two dates at once ------------------------------------------------------------------

WEEK = [f"2026-10-{d:02d}" for d in range(5, 12)]


@pytest.mark.timeout(300)
def test_reruns_and_backfills_give_identical_tables_even_two_dates_at_a_time(tmp_path, fixture_triton):
    settings = Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        triton_url=fixture_triton.grpc_url,
        batch_size=1,
    )
    for i, date in enumerate(WEEK):
        write_clips(settings.raw_root, date, [SPEECH_CLIPS[(2 * i) % 18], SPEECH_CLIPS[(2 * i + 1) % 18]])
    for date in WEEK:  # the backfill
        daily.run_date(settings, date, show_progress=False)
    first = snapshot(settings.lake_root, WEEK)
    for date in WEEK:
        assert_complete(settings, date)
        assert len(first[("utterances", date)]) == 2
    for attempt in range(3):
        daily.run_date(settings, WEEK[3], run_id=f"rerun-{attempt}", show_progress=False)
        assert snapshot(settings.lake_root, WEEK) == first
    # The week again, two dates at a time in two threads: same lake, same warehouse.
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(lambda d: daily.run_date(settings, d, run_id=f"parallel-{d}", show_progress=False), WEEK)
        )
    assert snapshot(settings.lake_root, WEEK) == first
    con = Warehouse(settings.lake_root).connect()
    try:
        per_day = dict(con.execute("SELECT date::VARCHAR, count(*) FROM utterances GROUP BY ALL").fetchall())
        assert per_day == {d: 2 for d in WEEK}
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == len(WEEK)
    finally:
        con.close()
    assert not any((settings.lake_root / daily.STAGING).glob("date=*"))


@pytest.mark.timeout(120)
def test_concurrent_publishers_of_different_dates_both_land(tmp_path):
    """Two publishers of different dates commit to one fresh lake and refresh its warehouse at once, 10 times over:
    both dates land in every table (writers take turns on the catalog; table creation is not raced)."""
    runs = {
        d: tables.to_table([{"run_id": f"run-{d}", "files": 0}], tables.RUNS)
        for d in ("2026-10-01", "2026-10-02")
    }
    for i in range(10):
        lake = tmp_path / f"lake-{i}"
        barrier = threading.Barrier(2)

        def publisher(date: str, lake=lake, barrier=barrier):
            barrier.wait()
            Lake(lake).commit_day(date, {"runs": runs[date], "utterances": tables.UTTERANCES.empty_table()})
            Warehouse(lake).refresh()

        with ThreadPoolExecutor(2) as pool:
            [f.result() for f in [pool.submit(publisher, d) for d in runs]]
        con = Warehouse(lake).connect()
        try:
            got = con.execute("SELECT date::VARCHAR, run_id FROM runs ORDER BY date").fetchall()
        finally:
            con.close()
        assert got == [(d, f"run-{d}") for d in runs], f"attempt {i}"


# -- 4. a reader looping over the views while the date is re-published -------------------------------------------------

READER_DAY = "2026-10-20"
# A reader as a BI user's would be: the warehouse file, the catalog attached, one read transaction per look. Every
# look checks that the date's four tables come from one run and agree with each other.
READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from sensevoice_pipeline.warehouse.database import Warehouse
    lake, date, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    seen, errors, n = {}, [], 0
    while not stop.exists():
        try:
            con = Warehouse(lake).connect()
            try:
                con.execute("BEGIN")
                q = lambda sql: con.execute(sql, [date]).fetchall()
                (run, files, utt), = q("SELECT run_id, files, utterances FROM runs WHERE date = ?")
                runs_u = {r for r, in q("SELECT DISTINCT run_id FROM utterances WHERE date = ?")}
                runs_r = {r for r, in q("SELECT DISTINCT run_id FROM recordings WHERE date = ?")}
                (n_u, itn), = q("SELECT count(*), string_agg(DISTINCT itn::VARCHAR, ',') FROM utterances WHERE date = ?")
                (n_r,), = q("SELECT count(*) FROM recordings WHERE date = ?")
                (rolled,), = q("SELECT sum(utterances) FROM emotion_daily WHERE date = ?")
                con.execute("COMMIT")
            finally:
                con.close()
            if runs_u != {run} or runs_r != {run} or (n_u, n_r, rolled) != (utt, files, utt):
                errors.append(f"mixed day: runs={run} utterances={runs_u} recordings={runs_r} "
                              f"counts={(n_u, n_r, rolled)} vs {(utt, files)}")
            seen[run] = itn
        except Exception as exc:  # noqa: BLE001 -- every error is what the test looks for
            errors.append(f"{type(exc).__name__}: {exc}")
        n += 1
        if n == 1:
            print("ready", flush=True)
    print(json.dumps({"iterations": n, "seen": seen, "errors": errors[:5], "n_errors": len(errors)}), flush=True)
    """
)


def start_reader(lake: Path, date: str, stop: Path) -> subprocess.Popen:
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(lake), date, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = reader.stdout.readline().strip()
    assert first == "ready", (first, reader.stderr.read() if reader.poll() is not None else "")
    return reader


def stop_reader(reader: subprocess.Popen, stop: Path) -> dict:
    stop.touch()
    out, err = reader.communicate(timeout=60)
    assert out.strip(), f"the reader printed nothing (exit {reader.returncode}): {err[-3000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n_errors"] == 0, (result, err[-3000:])
    return result


@pytest.mark.timeout(300)
def test_a_reader_only_ever_sees_whole_days_while_the_date_is_republished_with_different_data(
    tmp_path, fixture_triton
):
    """Runs with ITN and without it give different rows for the same files: published alternately, a reader in
    another process sees one run's four tables or the other's, never a mix, never an error."""
    with_itn = Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        triton_url=fixture_triton.grpc_url,
        batch_size=2,
    )
    without_itn = with_itn.with_overrides(use_itn=False)
    write_clips(with_itn.raw_root, READER_DAY, SPEECH_CLIPS[:5])
    daily.run_date(with_itn, READER_DAY, run_id="itn-0", show_progress=False)
    stop = tmp_path / "stop"
    reader = start_reader(with_itn.lake_root, READER_DAY, stop)
    lake = Lake(with_itn.lake_root)
    try:
        days = {}
        for attempt, settings in enumerate([without_itn, with_itn, without_itn]):  # real re-runs of the date
            run_id = f"{'itn' if settings.use_itn else 'plain'}-{attempt + 1}"
            daily.run_date(settings, READER_DAY, run_id=run_id, show_progress=False)
            days[settings.use_itn] = {t: lake.read(t, READER_DAY) for t in DAILY_TABLES}
        assert days[True]["utterances"].column("raw_text") != days[False]["utterances"].column("raw_text")
        for i in range(30):  # and the commit alone, as fast as it goes, alternating the two different days
            lake.commit_day(READER_DAY, days[i % 2 == 0])
    finally:
        result = stop_reader(reader, stop)
    assert result["iterations"] >= 10, result  # it did read while the date was being re-published
    assert {"true", "false"} <= set(result["seen"].values()), result  # it saw both versions of the day
    assert_complete(with_itn, READER_DAY)


# -- 5. Triton listens on loopback only --------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_local_triton_and_svp_serve_bind_to_loopback_only(tmp_path, fixture_repository):
    repo = shutil.copytree(fixture_repository, tmp_path / "model_repository")
    with LocalTriton(repo) as server:
        sockets = bound_sockets(server.process.pid)
        ports = {server.http_port, server.grpc_port, server.metrics_port}
    assert ports <= {port for _, port in sockets}, sockets
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets

    ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
    args = [x for kv in ports.items() for x in (kv[0], str(kv[1]))]
    serve = subprocess.Popen(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "serve", "--repository", str(repo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Triton ready"):
                break
        assert lines and lines[-1].startswith("Triton ready"), "".join(lines)[-3000:]
        assert f"gRPC 127.0.0.1:{ports['--grpc-port']}" in lines[-1]
        triton_pids = [c.pid for c in psutil.Process(serve.pid).children(recursive=True)]
        sockets = bound_sockets(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, rest[-3000:]
    assert set(ports.values()) <= {port for _, port in sockets}, sockets
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in triton_pids
    )
