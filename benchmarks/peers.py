"""The CPU peers of issue 18, item 5: what a user would run instead of the daily job, and where the job's time goes.

- **funasr-onnx** (`funasr_onnx.SenseVoiceSmall`, quantize=True, one call per file): the strongest CPU peer. It loads
  ``model_quant.onnx`` from the model dir and, when that file is missing, exports it itself with
  ``funasr.AutoModel(model=dir).export(type="onnx", quantize=True)`` (funasr_onnx/sensevoice_bin.py, 0.4.3). We run
  that same funasr export once, into a dir of our own (``ensure_funasr_onnx``), so the peer's graph is exactly the
  one funasr-onnx would build on this machine, and nothing is downloaded: funasr-onnx only asks ModelScope when the
  dir does not exist, and ``AutoModel`` gets ``disable_update=True`` (no version check).
- **The seed-loop pair** (``run_pairs``): funasr ``AutoModel``, one ``generate()`` per file (the seed's loop),
  funasr-onnx, and ``svp run`` (the daily job against a standing local Triton) over the same clips, each as a whole
  process, in rotated order round after round; medians, and the median of each round's ratios (the machine's other
  load hits every side alike). funasr's model load is reported included (the whole process) and excluded (its
  generate loop only).
- **Where the daily job's time goes** (``step_breakdown``): ``run_date`` in this process on the same clips with each
  stage timed (start-up, plan, fetch + hash, decode, VAD, publish) and Triton's statistics (queue, encoder, the BLS
  model's frontend + CTC decode), then the encoder-alone floor: features precomputed, one encoder call per whole
  file, the same threads.

    .venv/bin/python -m benchmarks.peers loop {seed,funasr-onnx} CONFIG.json OUT.json   (one side of a pair)
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import assets
from .common import (
    BENCH_DATE,
    REPO_ROOT,
    Paths,
    Sizes,
    Timers,
    load_average,
    local_encoder_instances,
    log,
    progress,
    rtfx,
    triton_threads_each,
    write_json,
)

SAMPLE_RATE = 16000
# funasr_onnx.SenseVoiceSmall reads its tokenizer under this fixed name (sensevoice_bin.py), whatever the checkpoint
# calls it
FUNASR_ONNX_BPE_NAME = "chn_jpn_yue_eng_ko_spectok.bpe.model"
SIDES = ("seed", "funasr-onnx", "svp")


# -- funasr-onnx's model dir -----------------------------------------------------------------------------------------


def funasr_onnx_dir(paths: Paths, model: str) -> Path:
    return paths.model_root / model / "funasr-onnx"


def ensure_funasr_onnx(paths: Paths, model: str) -> dict:
    """The checkpoint's config, CMVN and tokenizer (linked, the tokenizer under funasr-onnx's fixed name) beside the
    model.onnx / model_quant.onnx that funasr's own export writes; built once."""
    target = funasr_onnx_dir(paths, model)
    if (target / ".complete").is_file():
        return json.loads((target / ".complete").read_text())
    from sensevoice_export.checkpoint import find_checkpoint_files, quiet_funasr

    ckpt = paths.checkpoint(model)
    files = find_checkpoint_files(ckpt)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.yaml", "am.mvn"):
        (tmp / name).symlink_to((ckpt / name).resolve())
    (tmp / FUNASR_ONNX_BPE_NAME).symlink_to(Path(files.tokenizer).resolve())
    log(f"funasr-onnx: exporting {ckpt} with funasr's own export (quantize=True) into {target} ...")
    t0 = time.perf_counter()
    with quiet_funasr(), _quiet_root_logging():
        from funasr import AutoModel

        model_obj = AutoModel(
            model=str(ckpt), device="cpu", disable_update=True, disable_pbar=True, disable_log=True
        )
        model_obj.export(type="onnx", quantize=True, output_dir=str(tmp))
    facts = {"export_s": round(time.perf_counter() - t0, 1), **_graph_facts(tmp / "model_quant.onnx")}
    (tmp / ".complete").write_text(json.dumps(facts))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log(f"funasr-onnx export done in {facts['export_s']} s ({facts})")
    return facts


class _quiet_root_logging:
    """onnxruntime's quantizer logs one INFO line per tensor it skips."""

    def __enter__(self):
        import logging

        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.root.setLevel(self.level)


def _graph_facts(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    ops: dict[str, int] = {}
    for node in graph.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "onnx_mb": round(path.stat().st_size / 1e6, 1),
        "opset": max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "int8_matmuls": ops.get("MatMulInteger", 0) + ops.get("DynamicQuantizeMatMul", 0),
        "float_matmuls": ops.get("MatMul", 0),
    }


def load_funasr_onnx(paths: Paths, model: str, threads: int):
    from funasr_onnx import SenseVoiceSmall

    return SenseVoiceSmall(
        str(funasr_onnx_dir(paths, model)), batch_size=1, quantize=True, intra_op_num_threads=threads
    )


def funasr_onnx_text(model, audio: np.ndarray, language: str) -> str:
    return model(audio, language=language, textnorm="withitn")[
        0
    ]  # withitn: use_itn=True like every other row


# -- the peer row: funasr-onnx int8 on the clips and the call, in memory like (a) and (b) ----------------------------


def step_funasr_onnx(cfg: dict) -> dict:
    from .steps import _clips_and_call, _paired, _sizes_args

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    threads = cfg["threads"]
    graph = ensure_funasr_onnx(paths, sizes.model)
    t0 = time.perf_counter()
    model = load_funasr_onnx(paths, sizes.model, threads)
    out: dict = {"load_s": round(time.perf_counter() - t0, 2), "threads": threads, "graph": graph}
    clips, call_file, call = _clips_and_call(paths, sizes)
    funasr_onnx_text(model, clips[0][1][: 3 * SAMPLE_RATE], "auto")  # warm-up

    t0 = time.perf_counter()
    for f, audio in progress(clips, desc="funasr-onnx clips", unit="clip"):
        funasr_onnx_text(model, audio, f.language)
    wall = time.perf_counter() - t0
    audio_s = sum(a.size for _, a in clips) / SAMPLE_RATE
    out["clips"] = {
        "files": len(clips),
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "rtfx": round(rtfx(audio_s, wall), 2),
    }
    log(f"funasr-onnx clips: {audio_s:.0f} s in {wall:.1f} s = {rtfx(audio_s, wall):.1f}x")

    # funasr-onnx's SenseVoiceSmall has no VAD of its own: the call in plain 30 s pieces, as (a) gets it
    chunk = 30 * SAMPLE_RATE
    part = call[: int(min(sizes.funasr_chunked_s, call.size / SAMPLE_RATE) * SAMPLE_RATE)]
    t0 = time.perf_counter()
    for start in range(0, part.size, chunk):
        funasr_onnx_text(model, part[start : start + chunk], call_file.language)
    wall = time.perf_counter() - t0
    out["call_chunked"] = {
        "audio_s": round(part.size / SAMPLE_RATE, 2),
        "wall_s": round(wall, 3),
        "rtfx": round(rtfx(part.size / SAMPLE_RATE, wall), 2),
        "call_s": round(call.size / SAMPLE_RATE, 2),
        "measured_share": round(part.size / call.size, 3),
    }
    out["paired"] = _paired(
        paths,
        sizes,
        cfg,
        clips,
        "int8",
        "funasr_onnx",
        lambda f, audio: funasr_onnx_text(model, audio, f.language),
    )
    return out


# -- one side of a pair, as a whole process --------------------------------------------------------------------------


def clip_files(partition: Path) -> list[tuple[Path, str]]:
    with open(partition / "manifest.csv", newline="") as f:
        return [(partition / row["path"], row["language"]) for row in csv.DictReader(f)]


def loop_seed(cfg: dict) -> dict:
    """The seed's loop: funasr AutoModel, one generate() per file (decoding included, like the daily job's)."""
    import soundfile as sf
    import torch

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    from sensevoice_export.checkpoint import quiet_funasr

    with quiet_funasr():
        from funasr import AutoModel

        # ncpu: funasr calls torch.set_num_threads(ncpu) (default 4)
        model = AutoModel(
            model=cfg["checkpoint"],
            device="cpu",
            disable_update=True,
            frontend_conf={"dither": 0.0},
            disable_pbar=True,
            disable_log=True,
            ncpu=cfg["threads"],
        )
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with quiet_funasr():
        for path, language in clip_files(Path(cfg["partition"])):
            audio, _ = sf.read(str(path), dtype="float32")
            model.generate(input=audio, language=language, use_itn=True, disable_pbar=True)
    return {"load_s": round(load_s, 3), "loop_s": round(time.perf_counter() - t0, 3)}


def loop_funasr_onnx(cfg: dict) -> dict:
    import soundfile as sf

    paths = Paths(Path(cfg["workdir"]))
    t0 = time.perf_counter()
    model = load_funasr_onnx(paths, cfg["model"], cfg["threads"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path, language in clip_files(Path(cfg["partition"])):
        audio, _ = sf.read(str(path), dtype="float32")
        funasr_onnx_text(model, audio, language)
    return {"load_s": round(load_s, 3), "loop_s": round(time.perf_counter() - t0, 3)}


LOOPS = {"seed": loop_seed, "funasr-onnx": loop_funasr_onnx}


# -- the clips as a partition of their own (what every side of a pair reads) -----------------------------------------


def clips_partition(paths: Paths, sizes: Sizes) -> tuple[Path, Path]:
    """<audio>/raw-clips/date=D/: the bench partition's clips without the long call (funasr's loop cannot take a
    30-minute file), hard-linked (the daily job refuses a path that resolves outside its raw root: no symlinks).
    Returns (raw root, partition)."""
    files = [f for f in assets.read_audio(paths, sizes) if f.kind == "clip"]
    root = paths.audio_root(sizes) / "raw-clips"
    part = root / f"date={BENCH_DATE}"
    shutil.rmtree(root, ignore_errors=True)
    (part / "clips").mkdir(parents=True)
    for f in files:
        rel = f.source_path.split("/", 1)[1]
        try:
            os.link(f.path, part / rel)
        except OSError:  # another file system
            shutil.copy2(f.path, part / rel)
    with open(part / "manifest.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "language"])
        writer.writerows([f.source_path.split("/", 1)[1], f.language] for f in files)
    return root, part


# -- the pairs -------------------------------------------------------------------------------------------------------

_SVP_SECONDS = re.compile(r", ([0-9.]+) s$")


def _run_side(side: str, cfg: dict, workdir: Path, env: dict, svp: dict) -> dict:
    """One whole process; its wall clock from fork to exit."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".pair-") as tmp_name:
        tmp = Path(tmp_name)
        if side == "svp":
            cmd = [
                str(Path(sys.executable).with_name("svp")),
                "run",
                "--date",
                BENCH_DATE,
                "--raw",
                svp["raw"],
                "--lake",
                svp["lake"],
                "--url",
                svp["url"],
            ]
        else:
            (tmp / "config.json").write_text(json.dumps(cfg))
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.peers",
                "loop",
                side,
                str(tmp / "config.json"),
                str(tmp / "out.json"),
            ]
        load = load_average()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{side} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
        if side == "svp":
            first = proc.stdout.splitlines()[0]
            match = _SVP_SECONDS.search(first)
            result = {"run_date_s": float(match.group(1)) if match else None, "summary": first}
        else:
            result = json.loads((tmp / "out.json").read_text())
    return {"wall_s": round(wall, 3), "load_before": load, **result}


def run_pairs(
    paths: Paths, sizes: Sizes, threads: int, rounds: int, sides: tuple[str, ...], env: dict
) -> dict:
    """Every side over the clips partition as a whole process, rotated each round; ``svp run`` against one local
    Triton (int8) started before the rounds and warmed by one untimed ``svp run``."""
    from sensevoice_pipeline.serving.server import LocalTriton

    raw, part = clips_partition(paths, sizes)
    files = clip_files(part)
    audio_s = sum(f.seconds for f in assets.read_audio(paths, sizes) if f.kind == "clip")
    lake = paths.workdir / f"lake-pairs-{sizes.name}"
    shutil.rmtree(lake, ignore_errors=True)
    cfg = {
        "workdir": str(paths.workdir),
        "model": sizes.model,
        "checkpoint": str(paths.checkpoint(sizes.model)),
        "partition": str(part),
        "threads": threads,
    }
    server = LocalTriton(paths.repository(sizes.model, "int8"))
    t0 = time.perf_counter()
    server.start()
    server_start_s = time.perf_counter() - t0
    svp = {"raw": str(raw), "lake": str(lake), "url": server.grpc_url}
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    try:
        log(
            f"pairs: {len(files)} clips ({audio_s:.0f} s), sides {', '.join(sides)}, {rounds} rounds; "
            f"Triton int8 up in {server_start_s:.1f} s; warm-up svp run"
        )
        _run_side("svp", cfg, paths.workdir, env, svp)  # creates the lake's tables, warms the server
        for r in range(rounds):
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for side in order:
                runs[side].append(_run_side(side, cfg, paths.workdir, env, svp))
                log(f"pairs round {r + 1}/{rounds}: {side} {runs[side][-1]['wall_s']:.1f} s")
    finally:
        server.stop()
    return summarize_pairs(runs, audio_s, len(files), server_start_s, threads)


def _excluding_load(side: str, run: dict) -> float:
    """The process without its model load: funasr's and funasr-onnx's loop alone; the daily job's run_date."""
    if side == "svp":
        return run["run_date_s"] or run["wall_s"]
    return run["loop_s"]


def summarize_pairs(
    runs: dict[str, list[dict]], audio_s: float, files: int, server_start_s: float, threads: int
) -> dict:
    med = {
        side: {
            "wall_s": round(statistics.median(r["wall_s"] for r in rs), 2),
            "excluding_load_s": round(statistics.median(_excluding_load(side, r) for r in rs), 2),
            "load_s": round(statistics.median(r.get("load_s", 0.0) for r in rs), 2),
        }
        for side, rs in runs.items()
    }
    ratios = {}
    if "svp" in runs:
        svp_walls = [r["wall_s"] for r in runs["svp"]]
        for side in runs:
            if side == "svp":
                continue
            ratios[f"{side}_whole_vs_svp"] = round(
                statistics.median(r["wall_s"] / s for r, s in zip(runs[side], svp_walls)), 2
            )
            ratios[f"{side}_without_load_vs_svp"] = round(
                statistics.median(_excluding_load(side, r) / s for r, s in zip(runs[side], svp_walls)), 2
            )
    return {
        "files": files,
        "audio_s": round(audio_s, 1),
        "rounds": len(next(iter(runs.values()))),
        "threads": threads,
        "server_start_s": round(server_start_s, 1),
        "medians": med,
        "ratios": ratios,
        "runs": runs,
    }


# -- where the daily job's time goes, and the encoder-alone floor ----------------------------------------------------


def _instrument_daily(timers: Timers) -> None:
    """Time the daily job's stages where run_date looks them up (module attributes, read at call time)."""
    from sensevoice_pipeline.jobs import daily
    from sensevoice_pipeline.lake.storage import LocalRoot
    from sensevoice_pipeline.serving import recordings

    daily.plan_with_lease = timers.wrap("plan", daily.plan_with_lease)
    daily.publish = timers.wrap("publish", daily.publish)
    LocalRoot.fetch = timers.wrap("fetch + hash", LocalRoot.fetch)  # a local raw root, as the benchmark's
    recordings.load_16k = timers.wrap("decode", recordings.load_16k)
    recordings.cut_segments = timers.wrap("VAD (+ merging)", recordings.cut_segments)


def _server_stats_now(url: str) -> dict:
    from sensevoice_pipeline.serving.client import SenseVoiceClient

    from .steps import _server_stats

    async def read():
        async with SenseVoiceClient(url) as client:
            return await _server_stats(client.client)

    return asyncio.run(read())


def step_breakdown(cfg: dict) -> dict:
    """run_date over the clips partition in this process, stage by stage, then the encoder floor on the same files."""
    from .steps import _sizes_args, _stats_delta

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    t_start = time.perf_counter()
    from sensevoice_pipeline.jobs.daily import run_date
    from sensevoice_pipeline.serving.client import transcribe_sync
    from sensevoice_pipeline.serving.server import LocalTriton
    from sensevoice_pipeline.settings import Settings

    import_s = time.perf_counter() - t_start
    raw, part = Path(cfg["pairs_raw"]), Path(cfg["pairs_partition"])
    lake = paths.workdir / f"lake-breakdown-{sizes.name}"
    shutil.rmtree(lake, ignore_errors=True)
    timers = Timers()
    server = LocalTriton(paths.repository(sizes.model, "int8"))
    t0 = time.perf_counter()
    server.start()
    server_start_s = time.perf_counter() - t0
    try:
        transcribe_sync([np.zeros(3 * SAMPLE_RATE, np.float32)] * 2, url=server.grpc_url)  # warm-up
        settings = Settings(
            raw_root=raw,
            lake_root=lake,
            triton_url=server.grpc_url,
            use_itn=True,
            concurrency=sizes.concurrency,
        )
        run_date(
            settings, BENCH_DATE, run_id="bench-warm", show_progress=False
        )  # the lake's tables, like a 2nd day
        _instrument_daily(timers)
        before = _server_stats_now(server.grpc_url)
        t0 = time.perf_counter()
        result = run_date(settings, BENCH_DATE, run_id="bench-breakdown", show_progress=False)
        wall = time.perf_counter() - t0
        stats = _stats_delta(before, _server_stats_now(server.grpc_url))
    finally:
        server.stop()
    sv, enc = stats.get("sensevoice", {}), stats.get("sensevoice_encoder", {})
    stages = {k: round(v, 3) for k, v in timers.seconds.items()}
    out = {
        "wall_s": round(wall, 3),
        "audio_s": round(_partition_seconds(part), 2),
        "speech_s": result.speech_seconds,
        "files": result.files,
        "utterances": result.utterances,
        "import_s": round(import_s, 2),
        "server_start_s": round(server_start_s, 2),
        "client_stages_s": stages,
        "server": {
            "requests": sv.get("requests"),
            "executions": sv.get("executions"),
            "queue_s": sv.get("queue_s"),
            "encoder_s": enc.get("exec_s"),
            "frontend_ctc_bls_s": round((sv.get("exec_s") or 0) - (enc.get("exec_s") or 0), 3),
            "sensevoice_exec_s": sv.get("exec_s"),
        },
    }
    out["floor"] = encoder_floor(paths, sizes, part, cfg["threads"])
    return out


def _partition_seconds(partition: Path) -> float:
    import soundfile as sf

    return sum(sf.info(str(path)).duration for path, _ in clip_files(partition))


def encoder_floor(paths: Paths, sizes: Sizes, partition: Path, threads: int) -> dict:
    """The int8 encoder alone, laid out as the local Triton runs it: one session per encoder instance of the local
    config, each with its share of ``threads``, taking whole files (features computed first, untimed) from one queue
    in manifest order, one encoder call per file."""
    import soundfile as sf

    from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance

    instances, each = local_encoder_instances(), triton_threads_each(threads)
    sessions = [
        LocalTranscriber(paths.repository(sizes.model, "int8"), threads=each) for _ in range(instances)
    ]
    inputs, audio_s = [], 0.0
    for path, language in clip_files(partition):
        audio, _ = sf.read(str(path), dtype="float32")
        audio_s += audio.size / SAMPLE_RATE
        inputs.append(sessions[0].transcriber.features([Utterance(audio, language, True)]))
    for session in sessions:
        session._encode(*inputs[0])  # warm-up
    queue = iter(progress(inputs, desc="encoder floor", unit="file"))
    lock = threading.Lock()

    def drain(session) -> None:
        while True:
            with lock:
                features = next(queue, None)
            if features is None:
                return
            session._encode(*features)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(instances) as pool:
        list(pool.map(drain, sessions))  # list(): a session's error is raised here
    wall = time.perf_counter() - t0
    log(
        f"encoder floor: {len(inputs)} whole files, {audio_s:.0f} s in {wall:.1f} s "
        f"({instances} sessions x {each} threads)"
    )
    return {
        "files": len(inputs),
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "threads": threads,
        "sessions": instances,
        "threads_per_session": each,
        "rtfx": round(rtfx(audio_s, wall), 2),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or argv[0] != "loop" or argv[1] not in LOOPS:
        print(
            f"usage: python -m benchmarks.peers loop {{{','.join(LOOPS)}}} CONFIG.json OUT.json",
            file=sys.stderr,
        )
        return 2
    _, side, cfg_path, out_path = argv
    write_json(Path(out_path), LOOPS[side](json.loads(Path(cfg_path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
