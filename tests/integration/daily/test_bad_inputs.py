"""Reliability (issue 9), a corpus of bad inputs: every bad file of a day is one row with a readable reason, memory
stays bounded and two hours of silence take seconds, and the DAG publishes the same rows. Real pieces: `svp run` as
a subprocess against the fixture Triton, one `airflow dags test`, Parquet partitions and the DuckDB warehouse."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from sensevoice_pipeline.demo.local_airflow import LocalAirflow, triton_connection_env
from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.support.fixture_model import CLIPS, clip, expected_text
from tests.support.lake import lake_snapshot as snapshot
from tests.support.lake import staged_runs, table_rows

pytestmark = pytest.mark.triton


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


@pytest.mark.airflow
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
