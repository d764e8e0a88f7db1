"""benchmarks/peers.py and benchmarks/report.py on hand-made runs: the seed-loop pairs report the median of each
round's ratio to `svp run` (a loaded round changes no ratio). The quick benchmark run itself:
tests/integration/benchmarks/test_bench_smoke.py."""


def test_pairs_report_the_median_of_each_rounds_ratio_to_svp_run():
    from benchmarks.peers import summarize_pairs
    from benchmarks.report import pair_rows

    runs = {  # round 2 ran on a loaded machine: every side slower, the ratios unchanged
        "seed": [
            {"wall_s": 40.0, "load_s": 10.0, "loop_s": 28.0},
            {"wall_s": 80.0, "load_s": 20.0, "loop_s": 56.0},
            {"wall_s": 44.0, "load_s": 10.0, "loop_s": 30.0},
        ],
        "svp": [
            {"wall_s": 10.0, "run_date_s": 8.0},
            {"wall_s": 20.0, "run_date_s": 16.0},
            {"wall_s": 10.0, "run_date_s": 8.0},
        ],
    }
    pairs = summarize_pairs(runs, audio_s=600.0, files=36, server_start_s=5.0, threads=2)
    assert pairs["ratios"] == {"seed_whole_vs_svp": 4.0, "seed_without_load_vs_svp": 2.8}
    assert pairs["medians"]["seed"] == {"wall_s": 44.0, "excluding_load_s": 30.0, "load_s": 10.0}
    rows = {r["side"]: r for r in pair_rows({"pairs": pairs})}
    assert rows["svp"]["whole_vs_svp"] == 1.0 and rows["svp"]["without_load_s"] == 8.0
    assert rows["seed"]["whole_vs_svp"] == 4.0
