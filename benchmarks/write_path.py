"""The daily job's write path at scale (issue 27): `plan` and `publish` of one day of N recordings and 10 N
utterances, staged as transcription batches would stage them but generated without audio, on a SQLite and on a
PostgreSQL catalog. Each step runs in a process of its own, so its wall time and its peak memory (the process's
maximum resident set, the interpreter and its imports included; the baseline of a process that only imports is
printed beside it) are its own.

    python -m benchmarks.write_path [--days 20000 200000 ...] [--catalogs sqlite postgres] [--workdir var/bench]

`make bench` runs it (section 7) with 20,000 / 50,000 / 200,000 recordings; `--quick` with 1,000. Goal (issue 27):
publish of 200,000 recordings and 2,000,000 utterances under 60 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .common import DEFAULT_WORKDIR, REPO_ROOT, log, write_json

DATE = "2026-06-01"
RUN_ID = "bench-write-path"
UTTERANCES_PER_RECORDING = 10
# Files per mapped transcription task. Airflow maps at most [core] max_map_length (1,024) tasks from one list, so a
# day of 200,000 files needs batches of at least 196: the DAG's batch_size Param must grow with the day.
BATCH_SIZE = 256
QUEUES = 50  # folders of the raw partition (queue/agent style): the listing walks them
EMOTIONS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "unknown"]
EVENTS = ["Speech", "Laughter", "Applause", "BGM", "Cough"]
LANGUAGES = ["zh", "en", "yue", "ja", "ko"]


# -- the day -----------------------------------------------------------------------------------------------------------


def source_path(i: int) -> str:
    return f"date={DATE}/q{i % QUEUES:02d}/call-{i:07d}.wav"


def make_template(folder: Path, recordings: int) -> Path:
    """``folder``/raw (empty audio files: only their listing matters here) and ``folder``/staged (the batches as
    ``process_batch`` writes them), built once per size and reused."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    log(f"write path: generating a day of {recordings:,} recordings")
    raw = folder / "raw"
    for q in range(QUEUES):
        (raw / f"date={DATE}" / f"q{q:02d}").mkdir(parents=True)
    for i in range(recordings):
        (raw / source_path(i)).touch()
    staged = folder / "staged"
    staged.mkdir()
    from sensevoice_pipeline.lake import tables

    rng = np.random.default_rng(0)
    processed = dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)
    in_plan_order = np.array(sorted(range(recordings), key=source_path))  # plan sorts the day's files by path
    for index, start in enumerate(range(0, recordings, BATCH_SIZE)):
        ids = in_plan_order[start : start + BATCH_SIZE]
        pq.write_table(
            recordings_batch(ids, processed, tables.RECORDINGS),
            staged / f"batch-{index:05d}.recordings.parquet",
        )
        pq.write_table(
            utterances_batch(ids, rng, processed, tables.UTTERANCES),
            staged / f"batch-{index:05d}.utterances.parquet",
        )
    done.touch()
    return folder


def recordings_batch(ids: np.ndarray, processed: dt.datetime, schema: pa.Schema) -> pa.Table:
    n = len(ids)
    columns = {
        "recording_id": [f"rec-{i:07d}" for i in ids],
        "source_path": [source_path(i) for i in ids],
        "size_bytes": [0] * n,
        "sha256": [f"{i:064x}" for i in ids],
        "format": ["WAV"] * n,
        "sample_rate": [8000] * n,
        "channels": [1] * n,
        "duration_s": [180.0] * n,
        "status": ["ok"] * n,
        "error": [None] * n,
        "n_segments": [UTTERANCES_PER_RECORDING] * n,
        "language_hint": ["auto"] * n,
        "channel_mode": ["mono"] * n,
        "model_version": ["1"] * n,
        "run_id": [RUN_ID] * n,
        "processed_at": [processed] * n,
        "metadata": [[("queue", f"q{i % QUEUES:02d}")] for i in ids],
    }
    return _table(columns, schema, n)


def _table(columns: dict, schema: pa.Schema, n: int) -> pa.Table:
    return pa.table(
        {
            name: pa.array(columns.get(name, [None] * n), type=schema.field(name).type)
            for name in schema.names
        },
        schema=schema,
    )


def utterances_batch(
    ids: np.ndarray, rng: np.random.Generator, processed: dt.datetime, schema: pa.Schema
) -> pa.Table:
    k = UTTERANCES_PER_RECORDING
    recording = np.repeat(ids, k)
    n = len(recording)
    segment = np.tile(np.arange(k), len(ids))
    emotion = rng.choice(EMOTIONS, n)
    language = rng.choice(LANGUAGES, n)
    event = rng.choice(EVENTS, n)
    confidence = rng.random(n).round(3)
    columns = {
        "recording_id": [f"rec-{i:07d}" for i in recording],
        "source_path": [source_path(i) for i in recording],
        "channel": [0] * n,
        "segment_index": segment,
        "start_s": segment * 15.0,
        "end_s": segment * 15.0 + 12.5,
        "language": language,
        "language_hint": ["auto"] * n,
        "emotion": emotion,
        "event": event,
        "itn": [True] * n,
        "text": [
            f"utterance {s} of call {r}: I would like a refund for my last order, please."
            for r, s in zip(recording, segment)
        ],
        "raw_text": [
            f"<|{lang}|><|{e.upper()}|><|{v}|><|withitn|>utterance {s} of call {r}."
            for lang, e, v, r, s in zip(language, emotion, event, recording, segment)
        ],
        "model_name": ["sensevoice"] * n,
        "model_version": ["1"] * n,
        "run_id": [RUN_ID] * n,
        "processed_at": [processed] * n,
        "language_confidence": confidence,
        "emotion_confidence": confidence,
        "event_confidence": confidence,
        "emotion_probs": [[(e, float(c))] for e, c in zip(emotion, confidence)],
        "redactions": [0] * n,
    }
    return _table(columns, schema, n)


# -- the steps, each in its own process --------------------------------------------------------------------------------


def step(name: str, config: dict) -> dict:
    """Runs in the child: one step of the daily job, timed; with its peak memory."""
    from sensevoice_pipeline.jobs import daily
    from sensevoice_pipeline.settings import Settings

    settings = Settings(
        raw_root=Path(config["raw"]),
        lake_root=Path(config["lake"]),
        catalog=config["catalog"],
        batch_size=BATCH_SIZE,
        failure_budget=1.0,
    )
    t0 = time.perf_counter()
    if name == "plan":
        batches = daily.plan(settings, DATE, RUN_ID)
        detail = {"batches": len(batches)}
    elif name == "publish":
        stage = daily.staging_dir(settings, DATE, RUN_ID)
        for path in Path(config["staged"]).glob("*.parquet"):
            os.link(path, stage / path.name)  # the staged batches, as the transcription tasks left them
        t0 = time.perf_counter()
        result = daily.publish(settings, DATE, RUN_ID)
        detail = {
            "files": result.files,
            "utterances": result.utterances,
            "snapshot": result.snapshot,
        }
    elif name == "imports":
        detail = {}
    else:
        raise SystemExit(f"unknown step {name}")
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        **detail,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_step(name: str, config: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.write_path", "--step", name, json.dumps(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if out.returncode != 0:
        raise SystemExit(f"write path: {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def catalogs(kinds: list[str], folder: Path):
    """catalog kind -> a function giving a fresh SVP_CATALOG value per run."""
    with contextlib.ExitStack() as stack:
        makers = {}
        if "sqlite" in kinds:
            counter = iter(range(1_000_000))
            makers["sqlite"] = lambda: str(folder / f"catalog-{next(counter)}.sqlite")
        if "postgres" in kinds:
            sys.path.insert(0, str(REPO_ROOT))
            from tests.support.services import postgres_server  # the same PostgreSQL the tests start

            server = stack.enter_context(postgres_server())
            makers["postgres"] = lambda: server.new_database("bench")
        yield makers


def measure(days: list[int], kinds: list[str], workdir: Path) -> dict:
    folder = workdir / "write-path"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    baseline = run_step("imports", {"raw": "", "lake": "", "catalog": None})
    shutil.rmtree(
        folder / "catalogs", ignore_errors=True
    )  # a catalog belongs to one lake: fresh ones each run
    with catalogs(kinds, folder / "catalogs") as new_catalog:
        for recordings in days:
            template = make_template(folder / f"day-{recordings}", recordings)
            for kind in kinds:
                lake = folder / "lakes" / f"{kind}-{recordings}"
                shutil.rmtree(lake, ignore_errors=True)
                config = {
                    "raw": str(template / "raw"),
                    "lake": str(lake),
                    "catalog": new_catalog[kind](),
                    "staged": str(template / "staged"),
                }
                log(f"write path: {recordings:,} recordings on {kind}")
                plan = run_step("plan", config)
                publish = run_step("publish", config)
                assert publish["utterances"] == recordings * UTTERANCES_PER_RECORDING, publish
                rows.append(
                    {
                        "catalog": kind,
                        "recordings": recordings,
                        "utterances": publish["utterances"],
                        "plan": plan,
                        "publish": publish,
                    }
                )
                shutil.rmtree(lake, ignore_errors=True)
    return {"batch_size": BATCH_SIZE, "baseline_rss_mb": baseline["peak_rss_mb"], "rows": rows}


def render(result: dict) -> str:
    lines = [
        f"\n7. Write path (issue 27): plan and publish of one day, staged batches of {result['batch_size']} files "
        f"generated without audio; each step its own process (a process that only imports: "
        f"{result['baseline_rss_mb']} MB)",
        f"    {'catalog':<9} {'recordings':>10} {'utterances':>11} {'plan s':>7} {'plan MB':>8} {'publish s':>9} "
        f"{'publish MB':>10}",
    ]
    for r in result["rows"]:
        lines.append(
            f"    {r['catalog']:<9} {r['recordings']:>10,} {r['utterances']:>11,} {r['plan']['seconds']:>7} "
            f"{r['plan']['peak_rss_mb']:>8} {r['publish']['seconds']:>9} {r['publish']['peak_rss_mb']:>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.write_path", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--days", type=int, nargs="+", default=[20_000, 50_000, 200_000], metavar="RECORDINGS")
    p.add_argument("--catalogs", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    p.add_argument("--step", nargs=2, metavar=("NAME", "CONFIG"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        print(json.dumps(step(args.step[0], json.loads(args.step[1]))))
        return 0
    result = measure(args.days, args.catalogs, args.workdir.resolve())
    write_json(args.workdir.resolve() / "write_path.json", result)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
