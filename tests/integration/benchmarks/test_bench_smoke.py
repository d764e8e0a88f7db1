"""`python -m benchmarks --quick`: every measurement of issue 8 runs end to end and reports positive numbers.

A smoke test only: the numbers of a quick run (tiny fixture model, a minute of audio, a tiny BI lake) say nothing
about performance, and no timing is asserted. The full benchmark is `make bench`. The quick run took 40 s on an
idle 2-core machine (76 s with four other test runs on it). It leaves out the funasr-onnx peer and the seed-loop
pairs (benchmarks/run.py NOT_IN_QUICK: funasr-onnx's own export of the fixture took ~50 s on a loaded machine, the
pairs a dozen whole processes); the pairs' summary is checked on hand-made runs in tests/unit/benchmarks/.

Marked slow like the benchmarks themselves (`make test-slow`): under the default run's load it took ~3 minutes of a
worker, and it covers the benchmark harness, not a part of the product (every part it drives is run for real by the
default tests)."""

import json
import math
import subprocess
import sys

import pytest

from tests.support.paths import ROOT as REPO

pytestmark = [pytest.mark.triton, pytest.mark.slow]

THROUGHPUT_IDS = {
    "a",
    "a-whole-call",
    "b-fp32",
    "b-int8",
    "c-fp32",
    "c-int8",
    "c-fp32-serial",
    "c-int8-serial",
    "d-int8",
}


def positive(value) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench")
    out = workdir / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--workdir", str(workdir), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1. Throughput" in proc.stdout and "6. Targets" in proc.stdout
    return json.loads(out.read_text())


def test_every_throughput_row_has_positive_numbers(results):
    rows = {r["id"]: r for r in results["throughput"]}
    assert set(rows) == THROUGHPUT_IDS
    for r in rows.values():
        for key in ("clips_rtfx", "call_rtfx", "all_rtfx", "clips_wall_s", "call_wall_s"):
            if key in r:
                assert positive(r[key]), (r["id"], key, r[key])
        assert any(k in r for k in ("clips_rtfx", "call_rtfx", "all_rtfx")), r
    assert positive(rows["d-int8"]["all_rtfx"])
    assert positive(rows["c-int8"]["speedup_clips_vs_a"])


def test_overhead_bi_memory_and_targets_are_reported(results):
    overhead = results["triton_overhead"]
    assert {(r["precision"], r["inputs"].split(",")[0].split(" ")[0]) for r in overhead} >= {
        ("fp32", "clips"),
        ("int8", "clips"),
        ("fp32", "call"),
        ("int8", "call"),
    }
    assert all(
        positive(r["b_wall_s"]) and positive(r["c_wall_s"]) and math.isfinite(r["overhead_pct"])
        for r in overhead
    )
    queries = results["bi"]["queries"]
    from sensevoice_pipeline.warehouse.queries import QUERIES

    for (
        name,
        query,
    ) in QUERIES.items():  # each canned query on its rollup, and the same question on the raw view
        assert {q["reads"] for q in queries if q["query"] == name} == {query.reads}, name
        assert any(q["reads"] == "utterances" for q in queries if q["query"] == f"{name} (raw view)"), name
    assert {q["query"] for q in queries if q["reads"] == "page"} == {"page (default range)", "page (a year)"}
    assert all(positive(q["p50_s"]) and positive(q["p95_s"]) and q["result_rows"] > 0 for q in queries)
    assert all(positive(m["total_mb"]) and positive(m["client_mb"]) for m in results["memory"])
    assert any(positive(m.get("server_pss_mb")) for m in results["memory"])  # the Triton tree was sampled
    assert results["targets"] and all(isinstance(t["met"], bool) for t in results["targets"])
    assert positive(results["meta"]["wall_s"]) and len(results["meta"]["load_before"]) == 3


def test_segment_merging_is_measured_against_merging_off(results):
    rows = {r["merge_s"]: r for r in results["merging"]["models"]["fixture"]["sentences"]}
    assert set(rows) == {0.0, 15.0}
    assert rows[0.0]["encoder_ratio"] == rows[0.0]["wall_ratio"] == 1.0
    assert rows[15.0]["requests"] < rows[0.0]["requests"]  # the sentences are joined: fewer requests
    for r in rows.values():
        assert positive(r["wall_s"]) and positive(r["encoder_compute_s"]) and positive(r["audio_s"])


def test_the_daily_jobs_time_is_broken_down_next_to_its_encoder_floor(results):
    d = results["daily_breakdown"]
    assert {"plan", "fetch + hash", "decode", "VAD (+ merging)", "publish"} <= set(d["client_stages_s"])
    assert all(v >= 0 for v in d["client_stages_s"].values()) and positive(d["client_stages_s"]["publish"])
    assert d["server"]["requests"] >= d["files"] > 0  # every clip went through Triton during the timed run
    for key in ("run_date_wall_s", "floor_s", "run_date_vs_floor", "server_start_s"):
        assert positive(d[key]), key
    assert positive(d["server"]["encoder_s"]) and d["server"]["queue_s"] >= 0


def test_the_encoder_export_variants_are_timed_side_by_side(results):
    from benchmarks.encoder import BASELINE, QUICK_SHAPES, VARIANTS

    encoder = results["encoder"]
    assert {(r["variant"], (r["batch"], r["frames"])) for r in encoder["rows"]} == {
        (name, shape) for name in VARIANTS for shape in QUICK_SHAPES
    }
    assert all(r["x_before"] == 1.0 for r in encoder["rows"] if r["variant"] == BASELINE)
    assert all(positive(r["median_s"]) and positive(r["rtfx"]) for r in encoder["rows"])
    assert encoder["auto"]["chosen"] == min(encoder["auto"]["seconds"], key=encoder["auto"]["seconds"].get)


def test_the_write_path_is_measured_on_both_catalogs(results):
    """Section 7 (benchmarks/write_path.py): plan and publish of a generated day, each in its own process, on SQLite
    and on PostgreSQL, with the day's rows all published."""
    write_path = results["write_path"]
    assert {row["catalog"] for row in write_path["rows"]} == {"sqlite", "postgres"}
    for row in write_path["rows"]:
        assert row["utterances"] == 10 * row["recordings"] and row["publish"]["files"] == row["recordings"]
        for step in ("plan", "publish"):
            assert (
                positive(row[step]["seconds"]) and row[step]["peak_rss_mb"] >= write_path["baseline_rss_mb"]
            )
