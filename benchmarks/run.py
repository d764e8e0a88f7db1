"""`make bench` / `python -m benchmarks`: throughput against plain funasr, the Triton overhead, BI latency and peak
memory, printed as tables and written to <workdir>/results.json (issue 8).

Each measurement runs in its own process (benchmarks/steps.py); models, audio and the BI lake are built once and
cached under the work dir (default var/bench/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .common import (
    DEFAULT_WORKDIR,
    FULL,
    PRECISIONS,
    QUICK,
    REPO_ROOT,
    Sizes,
    load_average,
    log,
    machine_speed,
    triton_threads_each,
    write_json,
)
from .report import build_results, render

ALL_STEPS = (
    "funasr",
    "funasr-onnx",
    "ort",
    "triton",
    "daily",
    "pairs",
    "breakdown",
    "merging",
    "encoder",
    "bi",
    "write-path",
    "word-times",
)
# --quick leaves these out unless --only names them: funasr-onnx exports its own graph with funasr (the fixture's
# alone took ~20 s here), and the pairs start a dozen whole processes: each would double the smoke run in CI
NOT_IN_QUICK = ("funasr-onnx", "pairs")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: the tiny fixture model, ~25 s of clips and a 50 s call, a tiny BI lake (about a minute)",
    )
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="cache and output dir (default: var/bench)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="results JSON (default: <workdir>/results[-quick].json)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 2,
        help="onnxruntime / torch threads in-process; in Triton, shared out among the local config's "
        "encoder instances (default: all cores, %(default)s)",
    )
    p.add_argument("--concurrency", type=int, default=None, help="Triton requests in flight (default 8)")
    p.add_argument("--only", nargs="+", choices=ALL_STEPS, default=None, help="run only these measurements")
    p.add_argument("--clips-minutes", type=float, default=None, help="minutes of 3-30 s clips (default 10)")
    p.add_argument("--call-minutes", type=float, default=None, help="length of the long call (default 30)")
    p.add_argument("--bi-rows-per-day", type=int, default=None, help="utterances per day (default 500,000)")
    p.add_argument("--bi-days", type=int, default=None, help="days of BI data (default 365)")
    p.add_argument("--bi-repeats", type=int, default=None, help="runs per rollup query (default 20)")
    p.add_argument("--no-serial", action="store_true", help="skip Triton one-request-at-a-time runs")
    p.add_argument(
        "--fp32-call",
        action="store_true",
        help="also run the long call in fp32 in (b) and (c) (default: clips only in fp32; ~+8 min)",
    )
    p.add_argument(
        "--pair-rounds",
        type=int,
        default=3,
        help="rounds of the seed-loop pair: funasr AutoModel, funasr-onnx and svp run as whole processes "
        "(default %(default)s)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile (b) int8 on the clips and the daily run (writes <workdir>/profile/)",
    )
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    changes = {}
    if args.concurrency:
        changes["concurrency"] = args.concurrency
    if args.clips_minutes:
        changes["clips_total_s"] = args.clips_minutes * 60
    if args.call_minutes:
        changes["call_s"] = args.call_minutes * 60
    if args.bi_rows_per_day:
        changes["bi_rows_per_day"] = args.bi_rows_per_day
    if args.bi_days:
        changes["bi_days"] = args.bi_days
    if args.bi_repeats:
        changes["bi_repeats"] = args.bi_repeats
    if args.no_serial:
        changes["serial_triton"] = False
    return replace(sizes, **changes)


def run_step(name: str, label: str, cfg: dict, workdir: Path, env: dict) -> dict:
    """One measurement in a fresh interpreter; its progress goes to our stderr, its result comes back as JSON."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".step-") as tmp:
        cfg_file, out_file = Path(tmp) / "config.json", Path(tmp) / "out.json"
        cfg_file.write_text(json.dumps({**cfg, "label": label}))
        log(f"--- {label} (load average {' '.join(map(str, load_average()))})")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.steps", name, str(cfg_file), str(out_file)],
            cwd=REPO_ROOT,
            env=env,
            stdout=sys.stderr,
        )
        if proc.returncode != 0 or not out_file.is_file():
            raise SystemExit(f"benchmark step {label} failed (exit code {proc.returncode})")
        result = json.loads(out_file.read_text())
        log(f"--- {label} done in {time.perf_counter() - t0:.0f} s")
        return result


def _run_module(
    label: str, module: str, arguments: list[str], workdir: Path, env: dict, out_name: str
) -> dict:
    """A measurement that is its own script (``python -m benchmarks.<module>``), in its own interpreter; its JSON."""
    log(f"--- {label}")
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--workdir", str(workdir), *arguments],
        cwd=REPO_ROOT,
        env=env,
        stdout=sys.stderr,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step {label} failed (exit code {proc.returncode})")
    return json.loads((workdir / out_name).read_text())


def run_merging(args, sizes, workdir: Path, env: dict) -> dict:
    """Segment merging (benchmarks/merging.py): the int8 serving model of the run's size and the trained fixture
    model (whose answers say what merging does to them)."""
    models = ["fixture"] if sizes.model == "fixture" else [f"{sizes.model}-int8", "fixture"]
    quick = ["--merge", "0", "15", "--rounds", "1", "--call-seconds", "30"] if args.quick else []
    return _run_module(
        f"segment merging ({', '.join(models)})",
        "merging",
        [
            "--models",
            *models,
            "--threads",
            str(args.threads),
            "--concurrency",
            str(sizes.concurrency),
            *quick,
        ],
        workdir,
        env,
        "merging.json",
    )


def run_encoder(args, sizes, workdir: Path, env: dict) -> dict:
    """The encoder's export variants side by side (benchmarks/encoder.py)."""
    quick = ["--quick", "--rounds", "1"] if args.quick else []
    return _run_module(
        "encoder variants",
        "encoder",
        ["--model", sizes.model, "--threads", str(args.threads), *quick],
        workdir,
        env,
        "encoder.json",
    )


def run_word_times(args, workdir: Path, env: dict) -> dict:
    """What the WORDS output costs per request (benchmarks/word_times.py)."""
    rounds = ["--rounds", "1"] if args.quick else []
    return _run_module("word times", "word_times", rounds, workdir, env, "word_times.json")


def run_write_path(args, workdir: Path, env: dict) -> dict:
    """The write path at scale (benchmarks/write_path.py): plan and publish of one day, SQLite and PostgreSQL."""
    days = ["--days", "1000"] if args.quick else []
    return _run_module("write path (plan, publish)", "write_path", days, workdir, env, "write_path.json")


def run_peers(args, sizes, steps, cfg: dict, workdir: Path, env: dict, raw: dict) -> None:
    """Issue 18's peers (benchmarks/peers.py): the seed-loop pair as whole processes, then the daily job's time
    stage by stage and the encoder floor, all on the clips partition."""
    from .common import Paths
    from .peers import clips_partition, funasr_onnx_dir, run_pairs

    paths = Paths(workdir)
    if "pairs" in steps:
        with_onnx = "funasr-onnx" in steps or (
            importlib.util.find_spec("funasr_onnx") is not None
            and (funasr_onnx_dir(paths, sizes.model) / ".complete").is_file()
        )
        if with_onnx and "funasr_onnx" not in raw:
            run_step("funasr_onnx_export", "funasr-onnx export", cfg, workdir, env)
        sides = ("seed", "funasr-onnx", "svp") if with_onnx else ("seed", "svp")
        log(f"--- seed-loop pairs ({', '.join(sides)}; load average {' '.join(map(str, load_average()))})")
        t0 = time.perf_counter()
        raw["pairs"] = run_pairs(paths, sizes, args.threads, args.pair_rounds, sides, env)
        log(f"--- seed-loop pairs done in {time.perf_counter() - t0:.0f} s")
    if "breakdown" in steps:
        raw_root, part = clips_partition(paths, sizes)
        raw["breakdown"] = run_step(
            "breakdown",
            "daily breakdown + encoder floor",
            {**cfg, "pairs_raw": str(raw_root), "pairs_partition": str(part)},
            workdir,
            env,
        )["breakdown"]


def git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_from(args)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = args.out or workdir / ("results-quick.json" if args.quick else "results.json")
    steps = args.only or [s for s in ALL_STEPS if not (args.quick and s in NOT_IN_QUICK)]
    if "funasr-onnx" in steps and importlib.util.find_spec("funasr_onnx") is None:
        log("funasr-onnx is not installed (pip install -e '.[bench]'): its row and pair side are left out")
        steps = [s for s in steps if s != "funasr-onnx"]
    # In-process sessions and torch take --threads themselves; the local Triton shares them out among its encoder
    # instances (one process each), as it shares a machine's cores when SVP_ORT_THREADS is unset.
    env = {**os.environ, "SVP_ORT_THREADS": str(triton_threads_each(args.threads)), "PYTHONUNBUFFERED": "1"}
    cfg = {
        "workdir": str(workdir),
        "sizes": sizes.to_dict(),
        "threads": args.threads,
        "profile": args.profile,
    }
    started = time.perf_counter()

    def with_call(
        precision: str,
    ) -> bool:  # the long call in fp32 too doubles the run; int8 is the CPU serving one
        return precision == "int8" or args.fp32_call or args.quick

    meta = {
        "mode": sizes.name,
        "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "git": git_commit(),
        "threads": args.threads,
        "concurrency": sizes.concurrency,
        "sizes": sizes.to_dict(),
        "load_before": load_average(),
        "gflops_before": machine_speed(),
    }
    log(f"benchmark ({sizes.name}: {sizes.model} model) in {workdir}; load average {meta['load_before']}")
    raw: dict = {}
    if args.quick and "funasr" in steps:
        raw.update(run_step("prepare", "prepare + (a) funasr", {**cfg, "then": ["funasr"]}, workdir, env))
    else:
        raw.update(run_step("prepare", "prepare", cfg, workdir, env))
        if "funasr" in steps:
            raw.update(run_step("funasr", "(a) funasr", cfg, workdir, env))
    if "funasr-onnx" in steps:
        raw.update(run_step("funasr_onnx", "(a2) funasr-onnx int8", cfg, workdir, env))
    for precision in PRECISIONS:
        if "ort" in steps:
            raw[f"ort_{precision}"] = run_step(
                "ort",
                f"(b) ort {precision}",
                {**cfg, "precision": precision, "with_call": with_call(precision)},
                workdir,
                env,
            )["ort"]
    for precision in PRECISIONS:
        if "triton" in steps:
            raw[f"triton_{precision}"] = run_step(
                "triton",
                f"(c) triton {precision}",
                {**cfg, "precision": precision, "with_call": with_call(precision)},
                workdir,
                env,
            )["triton"]
    if "daily" in steps:
        raw["daily"] = run_step("daily", "(d) daily", {**cfg, "precision": "int8"}, workdir, env)["daily"]
    run_peers(args, sizes, steps, cfg, workdir, env, raw)
    if "merging" in steps:
        raw["merging"] = run_merging(args, sizes, workdir, env)
    if "encoder" in steps:
        raw["encoder"] = run_encoder(args, sizes, workdir, env)
    if "bi" in steps:
        raw["bi"] = run_step("bi", "BI", cfg, workdir, env)["bi"]
    if "write-path" in steps:
        raw["write_path"] = run_write_path(args, workdir, env)
    if "word-times" in steps:
        raw["word_times"] = run_word_times(args, workdir, env)
    meta["load_after"] = load_average()
    meta["gflops_after"] = machine_speed()
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    results = build_results(meta, raw)
    write_json(out_path, results)
    print(render(results))
    print(f"\nresults: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
