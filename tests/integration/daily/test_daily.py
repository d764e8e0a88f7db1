"""The daily job end to end: the sensevoice_daily DAG under `airflow dags test` on the sample day, against a real
local Triton serving the trained fixture model, real Parquet partitions and a real DuckDB warehouse; `svp query`
over the day it published. `svp run` and its function: test_svp_run.py."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sensevoice_pipeline.demo.local_airflow import triton_connection_env
from sensevoice_pipeline.demo.sample_day import expected_answers, write_sample_day
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.tags import parse
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.support.lake import differences, table_rows
from tests.support.svp import svp

pytestmark = [pytest.mark.airflow, pytest.mark.triton]

DEMO_DAY = "2026-11-22"


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory, fixture_triton, local_airflow):
    """The sample day (golden clips, a stereo 8 kHz call, a long call, a corrupt upload) through the real DAG."""
    root = tmp_path_factory.mktemp("daily")
    settings = Settings(raw_root=root / "raw", lake_root=root / "lake")
    calls = write_sample_day(settings.raw_root, DEMO_DAY)
    conf = {
        "date": DEMO_DAY,
        "raw_root": str(settings.raw_root),
        "lake_root": str(settings.lake_root),
        "batch_size": 8,
    }
    env = triton_connection_env(fixture_triton.grpc_url)
    output = local_airflow.dags_test("sensevoice_daily", f"{DEMO_DAY}T00:00:00+00:00", conf=conf, env=env)
    return settings, calls, conf, env, output


def test_every_file_has_exactly_one_recordings_row(demo_day):
    settings, calls, *_ = demo_day
    rows = {r["source_path"]: r for r in table_rows(settings.lake_root, "recordings", DEMO_DAY)}
    assert sorted(rows) == sorted(f"date={DEMO_DAY}/{c.path}" for c in calls)
    corrupt = rows[f"date={DEMO_DAY}/billing/corrupt_upload.wav"]
    assert corrupt["status"] == "failed" and "cannot decode corrupt_upload.wav" in corrupt["error"]
    assert corrupt["n_segments"] == 0 and corrupt["size_bytes"] > 0 and len(corrupt["sha256"]) == 64
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == len(calls) - 1 and all(r["error"] is None for r in ok)
    assert all(r["model_version"] == "1" for r in ok)
    phone = rows[f"date={DEMO_DAY}/support/phone_8khz_stereo.wav"]
    assert (phone["sample_rate"], phone["channels"], phone["channel_mode"]) == (8000, 2, "split")
    assert dict(rows[f"date={DEMO_DAY}/billing/en_refund_angry.wav"]["metadata"]) == {
        "agent": "ana",
        "queue": "billing",
    }


def test_known_answers_come_back_exactly_with_manifest_hints(demo_day):
    settings, calls, *_ = demo_day
    want = {
        (f"date={DEMO_DAY}/{path}", channel): text
        for (path, channel), text in expected_answers(calls).items()
    }
    got = {
        (r["source_path"], r["channel"]): r["raw_text"]
        for r in table_rows(settings.lake_root, "utterances", DEMO_DAY)
        if (r["source_path"], r["channel"]) in want
    }
    assert got == want
    # The manifest forced Cantonese: the same audio is Mandarin without the hint.
    assert got[(f"date={DEMO_DAY}/billing/cantonese_refund.wav", 0)].startswith("<|yue|>")


def test_utterance_rows_have_sane_segments_and_parsed_tags(demo_day):
    settings, *_ = demo_day
    recordings = {r["source_path"]: r for r in table_rows(settings.lake_root, "recordings", DEMO_DAY)}
    utterances = table_rows(settings.lake_root, "utterances", DEMO_DAY)
    by_file = Counter((u["source_path"]) for u in utterances)
    for path, count in by_file.items():
        assert count == recordings[path]["n_segments"]
    for u in utterances:
        duration = recordings[u["source_path"]]["duration_s"]
        assert 0 <= u["start_s"] < u["end_s"] <= duration + 1e-3 and u["end_s"] - u["start_s"] <= 30.0
        tags = parse(u["raw_text"])
        assert (u["language"], u["emotion"], u["event"], u["text"]) == (
            tags.language,
            tags.emotion,
            tags.event,
            tags.text,
        )
        assert u["model_name"] == "sensevoice" and u["model_version"] == "1"
        # word times from the start of the recording, inside their segment (a frame of slack at its edges)
        assert u["words"] is not None
        assert all(u["start_s"] - 0.06 <= w["start_s"] <= w["end_s"] <= u["end_s"] + 0.06 for w in u["words"])
    assert sum(len(u["words"]) for u in utterances) > 10  # the fixture model speaks: words, not empty lists
    long_call = sorted(
        (u for u in utterances if u["source_path"].endswith("long_call.mp3")),
        key=lambda u: u["segment_index"],
    )
    assert len(long_call) >= 3, "the 75 s call should be cut into several VAD segments"
    assert all(a["end_s"] <= b["start_s"] for a, b in zip(long_call, long_call[1:]))
    assert {u["channel"] for u in utterances if "stereo" in u["source_path"]} == {0, 1}


def test_rollup_runs_and_warehouse(demo_day):
    settings, calls, *_ = demo_day
    utterances = table_rows(settings.lake_root, "utterances", DEMO_DAY)
    rollup = table_rows(settings.lake_root, "emotion_daily", DEMO_DAY)
    assert sum(r["utterances"] for r in rollup) == len(utterances)
    (run,) = table_rows(settings.lake_root, "runs", DEMO_DAY)
    assert (run["files"], run["files_failed"], run["utterances"]) == (len(calls), 1, len(utterances))
    # the run's own start, not the logical date `airflow dags test` gives its DagRun (weeks before the test ran)
    (times,) = (
        Lake(settings.lake_root).read("runs", DEMO_DAY).select(["started_at", "finished_at"]).to_pylist()
    )
    assert dt.timedelta(0) < times["finished_at"] - times["started_at"] < dt.timedelta(minutes=30)
    con = Warehouse(settings.lake_root).connect()
    try:
        assert con.execute("SELECT count(*) FROM utterances WHERE date = ?", [DEMO_DAY]).fetchone()[0] == len(
            utterances
        )
        views = {
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        assert views == set(tables.ALL_SCHEMAS)
    finally:
        con.close()


def test_a_second_dag_run_of_the_date_leaves_identical_tables(demo_day, local_airflow):
    settings, _, conf, env, _ = demo_day
    before = {t: table_rows(settings.lake_root, t, DEMO_DAY) for t in tables.SCHEMAS}
    local_airflow.dags_test("sensevoice_daily", f"{DEMO_DAY}T00:00:00+00:00", conf=conf, env=env)
    after = {t: table_rows(settings.lake_root, t, DEMO_DAY) for t in tables.SCHEMAS}
    assert not differences(before, after)
    assert not list((settings.lake_root / "_staging").rglob("*"))  # no staging left behind


def test_svp_query_prints_writes_csv_and_draws(demo_day, tmp_path):
    settings, *_ = demo_day
    csv_path, png_path = tmp_path / "angry.csv", tmp_path / "trend.png"
    out = svp("query", "angry-calls", "--lake", str(settings.lake_root), "--csv", str(csv_path))
    assert out.returncode == 0, out.stderr
    assert "billing/en_refund_angry.wav" in out.stdout
    header = csv_path.read_text().splitlines()[0]
    assert "source_path" in header and "angry_segments" in header
    out = svp(
        "query",
        "emotion-trend",
        "--by",
        "channel",
        "--from",
        DEMO_DAY,
        "--to",
        DEMO_DAY,
        "--lake",
        str(settings.lake_root),
        "--png",
        str(png_path),
    )
    assert out.returncode == 0, out.stderr
    assert "angry" in out.stdout and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = svp("query", "emotion-trend", "--from", "yesterday", "--lake", str(settings.lake_root))
    assert out.returncode == 64 and "not a date" in out.stderr


def test_partition_files_are_parquet_with_the_design_schema(demo_day):
    """The lake's data files are plain Parquet in hive-style date folders: the design's columns after the date."""
    settings, *_ = demo_day
    for table, schema in tables.SCHEMAS.items():
        files = sorted(
            (Path(settings.lake_root) / "data" / "main" / table / f"date={DEMO_DAY}").glob("*.parquet")
        )
        assert files, table
        written = pq.read_schema(files[-1])
        assert written.names == ["date", *schema.names], table
        assert [f.type for f in written][1:] == list(schema.types), table
