"""One measurement per process: ``python -m benchmarks.steps STEP CONFIG.json OUT.json``.

Each step runs in a fresh interpreter so that its peak memory (ru_maxrss) is its own, torch and onnxruntime do not
share thread pools, and one step's caches do not help the next. Audio is read into memory before any clock starts:
(a), (b) and (c) time transcription from samples; (d) times the daily task from the files on disk.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path

import numpy as np

from . import assets
from .common import (
    BENCH_DATE,
    Paths,
    Sizes,
    Timers,
    TreeSampler,
    load_average,
    log,
    peak_rss_mb,
    progress,
    rtfx,
    set_prefix,
    write_json,
)

SAMPLE_RATE = 16000
MAX_SEGMENT_S = 30.0


def _clips_and_call(paths: Paths, sizes: Sizes):
    files = assets.read_audio(paths, sizes)
    clips = [(f, assets.load(f.path)) for f in files if f.kind == "clip"]
    call_file = next(f for f in files if f.kind == "call")
    return clips, call_file, assets.load(call_file.path)


def _audio_s(audio: np.ndarray) -> float:
    return audio.size / SAMPLE_RATE


def _segments_info(segments, call_audio) -> dict:
    lengths = [(s.end - s.start) / SAMPLE_RATE for s in segments]
    return {
        "segments": len(segments),
        "mean_segment_s": round(float(np.mean(lengths)), 2) if lengths else 0,
        "max_segment_s": round(max(lengths, default=0), 2),
        "speech_share": round(sum(lengths) / _audio_s(call_audio), 3),
    }


def _profile_to(path: Path, profiler: cProfile.Profile, top: int = 30) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path.with_suffix(".prof")))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    text2 = io.StringIO()
    pstats.Stats(profiler, stream=text2).sort_stats("tottime").print_stats(top)
    path.with_suffix(".txt").write_text(text.getvalue() + "\n\n" + text2.getvalue())
    return str(path.with_suffix(".txt"))


# -- prepare: models and audio ---------------------------------------------------------------------------------------


def step_prepare(cfg: dict) -> dict:
    from .assets import build_audio, build_models, model_facts

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    built = build_models(paths, sizes.model)
    files = build_audio(paths, sizes)
    clips = [f for f in files if f.kind == "clip"]
    call = next(f for f in files if f.kind == "call")
    return {
        "built": built,
        "models": model_facts(paths, sizes.model),
        "audio": {
            "clips": len(clips),
            "clips_s": round(sum(f.seconds for f in clips), 1),
            "clip_min_s": round(min(f.seconds for f in clips), 1),
            "clip_max_s": round(max(f.seconds for f in clips), 1),
            "call_s": round(call.seconds, 1),
            "partition": str(paths.raw_root(sizes) / f"date={BENCH_DATE}"),
        },
    }


# -- (a) funasr AutoModel, PyTorch, one file at a time ---------------------------------------------------------------


def step_funasr(cfg: dict) -> dict:
    import torch

    from sensevoice_export.checkpoint import quiet_funasr

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    torch.set_num_threads(cfg["threads"])
    ckpt = paths.checkpoint(sizes.model)
    t0 = time.perf_counter()
    with quiet_funasr():
        from funasr import AutoModel

        # ncpu: funasr calls torch.set_num_threads(ncpu), default 4, more threads than this machine has cores
        model = AutoModel(
            model=str(ckpt),
            device="cpu",
            disable_update=True,
            frontend_conf={"dither": 0.0},
            disable_pbar=True,
            disable_log=True,
            ncpu=cfg["threads"],
        )
    torch.set_num_threads(cfg["threads"])
    load_s = time.perf_counter() - t0
    log(f"funasr AutoModel loaded in {load_s:.1f} s (torch threads {torch.get_num_threads()})")
    clips, call_file, call = _clips_and_call(paths, sizes)

    def generate(audio: np.ndarray, language: str) -> str:
        with quiet_funasr():
            return model.generate(input=audio, language=language, use_itn=True, disable_pbar=True)[0]["text"]

    generate(clips[0][1][: 3 * SAMPLE_RATE], "auto")  # warm-up
    out: dict = {"load_s": round(load_s, 2), "threads": torch.get_num_threads()}

    t0 = time.perf_counter()
    for f, audio in progress(clips, desc="(a) funasr clips", unit="clip"):
        generate(audio, f.language)
    wall = time.perf_counter() - t0
    audio_s = sum(_audio_s(a) for _, a in clips)
    out["clips"] = {
        "files": len(clips),
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "rtfx": round(rtfx(audio_s, wall), 2),
    }
    log(f"(a) clips: {audio_s:.0f} s of audio in {wall:.1f} s = {rtfx(audio_s, wall):.1f}x real time")
    out["rss_after_clips_mb"] = round(peak_rss_mb(), 1)

    # The long call as a plain user would pass it: the whole file in one generate(). When that is too big to run
    # here, time growing prefixes of it and fit t = a*L + b*L^2 (attention is quadratic in the length).
    call_s = _audio_s(call)
    whole: dict = {"audio_s": round(call_s, 2)}
    # memory while one generate() runs: RSS sampled every 0.1 s (ru_maxrss already holds the model loading peak)
    sampler = TreeSampler(os.getpid(), interval_s=0.1, pss_every=10**9).start()

    def timed_generate(audio: np.ndarray) -> dict:
        import psutil

        before = psutil.Process().memory_info().rss / 2**20
        sampler.reset()
        t0 = time.perf_counter()
        generate(audio, call_file.language)
        wall = time.perf_counter() - t0
        peak = sampler.snapshot()["peak_rss_sum_mb"]
        return {
            "audio_s": round(_audio_s(audio), 2),
            "wall_s": round(wall, 3),
            "peak_rss_mb": round(peak, 1),
            "rss_before_mb": round(before, 1),
            "growth_mb": round(max(0.0, peak - before), 1),
        }

    if call_s <= sizes.funasr_whole_max_s:
        point = timed_generate(call)
        whole.update(measured=True, wall_s=point["wall_s"], peak_rss_mb=point["peak_rss_mb"])
    else:
        points = []
        for prefix_s in progress(sizes.funasr_prefixes_s, desc="(a) funasr call prefixes", unit="prefix"):
            points.append(timed_generate(call[: int(prefix_s * SAMPLE_RATE)]))
            log(
                f"(a) whole-file generate on the first {prefix_s:g} s: {points[-1]['wall_s']:.2f} s, "
                f"RSS {points[-1]['rss_before_mb']:.0f} MB -> peak {points[-1]['peak_rss_mb']:.0f} MB"
            )
        lengths = np.array([p["audio_s"] for p in points])
        walls = np.array([p["wall_s"] for p in points])
        basis = np.stack([lengths, lengths**2], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, walls, rcond=None)
        if b < 0:  # noise: fall back to linear through the longest prefix
            a, b = walls[-1] / lengths[-1], 0.0
        (m1, m2), *_ = np.linalg.lstsq(basis, np.array([p["growth_mb"] for p in points]), rcond=None)
        frames = call_s * 100 / 6 + 4  # LFR frames + the 4 query frames
        attention_gb = (
            2 * 4 * frames**2 * 4 / 1e9
        )  # two [heads=4, T, T] float32 maps (scores, softmax) per layer
        whole.update(
            measured=False,
            prefixes=points,
            fit={"a_s_per_s": float(a), "b_s_per_s2": float(b)},
            wall_s_extrapolated=round(float(a * call_s + b * call_s**2), 1),
            peak_rss_mb_extrapolated=round(
                points[-1]["rss_before_mb"] + max(0.0, float(m1 * call_s + m2 * call_s**2)), 0
            ),
            attention_maps_gb=round(attention_gb, 1),
            note=(
                f"not run: one generate() on {call_s / 60:.0f} min needs one attention map of "
                f"{attention_gb / 2:.0f} GB per layer ({frames:.0f} frames); time extrapolated from "
                f"{', '.join(f'{p:g}' for p in sizes.funasr_prefixes_s)} s prefixes with t = a*L + b*L^2"
            ),
        )
        log(
            f"(a) whole call extrapolated: {whole['wall_s_extrapolated']:.0f} s "
            f"({rtfx(call_s, whole['wall_s_extrapolated']):.1f}x), {whole['note']}"
        )
    out["call_whole"] = whole

    # What a careful user does without a VAD model: cut the file into plain 30 s pieces (words get cut too).
    chunk = int(MAX_SEGMENT_S * SAMPLE_RATE)
    part = call[: int(min(sizes.funasr_chunked_s, call_s) * SAMPLE_RATE)]
    t0 = time.perf_counter()
    for start in progress(range(0, part.size, chunk), desc="(a) funasr call, 30 s chunks", unit="chunk"):
        generate(part[start : start + chunk], call_file.language)
    wall = time.perf_counter() - t0
    out["call_chunked"] = {
        "audio_s": round(_audio_s(part), 2),
        "wall_s": round(wall, 3),
        "rtfx": round(rtfx(_audio_s(part), wall), 2),
        "call_s": round(call_s, 2),
        "measured_share": round(_audio_s(part) / call_s, 3),
    }
    log(
        f"(a) call in 30 s chunks: {_audio_s(part):.0f} s in {wall:.1f} s = {rtfx(_audio_s(part), wall):.1f}x"
    )
    sampler.stop()
    out["paired"] = _paired(
        paths, sizes, cfg, clips, "int8", "funasr", lambda f, audio: generate(audio, f.language)
    )
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def _paired(paths: Paths, sizes: Sizes, cfg: dict, clips, precision: str, name: str, other) -> dict:
    """``other`` against in-process onnxruntime on the first clips, alternating which goes first, so that both
    see the same load from whatever else runs on this machine (the whole-run ratios drift with it)."""
    from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance

    local = LocalTranscriber(paths.repository(sizes.model, precision), threads=cfg["threads"])
    local.transcribe([Utterance(clips[0][1][: 3 * SAMPLE_RATE], "auto", True)])  # warm-up
    subset, total = [], 0.0
    for f, audio in clips:
        if total >= sizes.serial_clips_s:
            break
        subset.append((f, audio))
        total += _audio_s(audio)
    spent = {"ort": 0.0, name: 0.0}
    for i, (f, audio) in enumerate(progress(subset, desc=f"paired {name} / ort {precision}", unit="clip")):
        runs = [
            ("ort", lambda f=f, audio=audio: local.transcribe([Utterance(audio, f.language, True)])),
            (name, lambda f=f, audio=audio: other(f, audio)),
        ]
        for key, run in runs if i % 2 == 0 else runs[::-1]:
            t0 = time.perf_counter()
            run()
            spent[key] += time.perf_counter() - t0
    result = {
        "precision": precision,
        "files": len(subset),
        "audio_s": round(total, 2),
        "ort_s": round(spent["ort"], 3),
        f"{name}_s": round(spent[name], 3),
        "ratio": round(spent[name] / spent["ort"], 3),
    }
    log(
        f"paired on {len(subset)} clips ({total:.0f} s): {name} {spent[name]:.1f} s, in-process {precision} "
        f"{spent['ort']:.1f} s ({100 * (spent[name] / spent['ort'] - 1):+.0f}%)"
    )
    return result


# -- (b) in-process onnxruntime: library frontend + encoder session + CTC decoder -------------------------------------


def step_ort(cfg: dict) -> dict:
    from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance
    from sensevoice_pipeline.speech.vad import SileroVad, segment_for_asr

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    precision = cfg["precision"]
    t0 = time.perf_counter()
    local = LocalTranscriber(paths.repository(sizes.model, precision), threads=cfg["threads"])
    load_s = time.perf_counter() - t0
    vad = SileroVad()
    clips, call_file, call = _clips_and_call(paths, sizes)
    rss_loaded = peak_rss_mb()

    timers = Timers()
    transcriber = local.transcriber
    transcriber.frontend = timers.wrap("frontend", transcriber.frontend)
    local._encode = timers.wrap("encoder", local._encode)
    transcriber.decoder.decode_batch = timers.wrap("decode", transcriber.decoder.decode_batch)
    transcribe = timers.wrap("total", local.transcribe)

    transcribe([Utterance(clips[0][1][: 3 * SAMPLE_RATE], "auto", True)])  # warm-up
    timers.reset()
    out: dict = {"precision": precision, "load_s": round(load_s, 2), "threads": cfg["threads"]}

    # the call first, so that the peak RSS read right after it is the call's (model + audio + work)
    if cfg.get("with_call", True):
        t0 = time.perf_counter()
        segments = segment_for_asr(call, vad, MAX_SEGMENT_S)
        vad_s = time.perf_counter() - t0
        for s in progress(segments, desc=f"(b) ort {precision} call", unit="seg"):
            transcribe([Utterance(call[s.start : s.end], call_file.language, True)])
        wall = time.perf_counter() - t0
        out["call"] = {
            "audio_s": round(_audio_s(call), 2),
            "wall_s": round(wall, 3),
            "vad_s": round(vad_s, 3),
            "rtfx": round(rtfx(_audio_s(call), wall), 2),
            **_segments_info(segments, call),
            "stages_s": {k: round(v, 3) for k, v in timers.seconds.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        log(
            f"(b) {precision} call: {_audio_s(call):.0f} s in {wall:.1f} s = {rtfx(_audio_s(call), wall):.1f}x "
            f"({len(segments)} VAD segments, VAD {vad_s:.1f} s)"
        )
        timers.reset()
    out["rss_after_load_mb"] = round(rss_loaded, 1)

    per_clip = []
    t0 = time.perf_counter()
    for f, audio in progress(clips, desc=f"(b) ort {precision} clips", unit="clip"):
        t1 = time.perf_counter()
        transcribe([Utterance(audio, f.language, True)])
        per_clip.append(round(time.perf_counter() - t1, 4))
    wall = time.perf_counter() - t0
    audio_s = sum(_audio_s(a) for _, a in clips)
    out["clips"] = {
        "files": len(clips),
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "rtfx": round(rtfx(audio_s, wall), 2),
        "per_clip_wall_s": per_clip,
        "stages_s": {k: round(v, 3) for k, v in timers.seconds.items()},
    }
    log(
        f"(b) {precision} clips: {audio_s:.0f} s in {wall:.1f} s = {rtfx(audio_s, wall):.1f}x "
        f"(frontend {timers.seconds.get('frontend', 0):.1f} s, encoder {timers.seconds.get('encoder', 0):.1f} s, "
        f"decode {timers.seconds.get('decode', 0):.2f} s)"
    )

    if cfg.get("profile"):
        profiler = cProfile.Profile()
        profiler.enable()
        for f, audio in clips:
            local.transcribe([Utterance(audio, f.language, True)])
        profiler.disable()
        out["profile"] = _profile_to(paths.profile_dir / f"ort-{precision}-clips", profiler)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


# -- (c) the pipeline through the local Triton -----------------------------------------------------------------------


STAT_KEYS = ("success", "queue", "compute_input", "compute_infer", "compute_output")


async def _settled_stats(client, before: dict, requests: int, timeout_s: float = 5.0) -> None:
    """Triton records a request's statistics just after answering it: wait until all of a phase's are in."""
    deadline = time.monotonic() + timeout_s
    want = before.get("sensevoice", {}).get("success", {}).get("count", 0) + requests
    while time.monotonic() < deadline:
        now = await _server_stats(client)
        if now.get("sensevoice", {}).get("success", {}).get("count", 0) >= want:
            return
        await asyncio.sleep(0.05)


async def _server_stats(client) -> dict:
    from sensevoice_pipeline.serving.repository import MODELS

    stats = {}
    for name in MODELS:
        raw = await client.get_inference_statistics(name, as_json=True)
        for m in raw.get("model_stats", []):
            entry = stats.setdefault(
                name,
                {"inference_count": 0, "execution_count": 0, **{k: {"count": 0, "ns": 0} for k in STAT_KEYS}},
            )
            entry["inference_count"] += int(m.get("inference_count", 0))
            entry["execution_count"] += int(m.get("execution_count", 0))
            for k in STAT_KEYS:
                s = m.get("inference_stats", {}).get(k, {})
                entry[k]["count"] += int(s.get("count", 0))
                entry[k]["ns"] += int(s.get("ns", 0))
            # per execution (inference_stats charge every request of a batch the whole batch's time)
            entry.setdefault("exec_ns", 0)
            for b in m.get("batch_stats", []):
                entry["exec_ns"] += sum(
                    int(b.get(k, {}).get("ns", 0))
                    for k in ("compute_input", "compute_infer", "compute_output")
                )
    return stats


def _stats_delta(before: dict, after: dict) -> dict:
    out = {}
    for name, a in after.items():
        b = before.get(name)
        requests = a["inference_count"] - (b["inference_count"] if b else 0)
        executions = a["execution_count"] - (b["execution_count"] if b else 0)
        successes = a["success"]["count"] - (b["success"]["count"] if b else 0)
        entry = {
            "requests": requests,
            "executions": executions,
            "mean_batch": round(requests / executions, 2) if executions else 0.0,
            "exec_s": round((a["exec_ns"] - (b["exec_ns"] if b else 0)) / 1e9, 3),
        }
        for k in STAT_KEYS:
            ns = a[k]["ns"] - (b[k]["ns"] if b else 0)
            entry[f"{k}_s"] = round(ns / 1e9, 3)
            entry[f"{k}_ms_per_request"] = round(ns / 1e6 / successes, 2) if successes else 0.0
        out[name] = entry
    return out


def step_triton(cfg: dict) -> dict:
    from sensevoice_pipeline.serving.client import Request, SenseVoiceClient
    from sensevoice_pipeline.serving.server import LocalTriton
    from sensevoice_pipeline.speech.vad import SileroVad, segment_for_asr

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    precision, concurrency = cfg["precision"], sizes.concurrency
    clips, call_file, call = _clips_and_call(paths, sizes)
    vad = SileroVad()
    out: dict = {
        "precision": precision,
        "concurrency": concurrency,
        "server_ort_threads": os.environ.get("SVP_ORT_THREADS"),
    }
    server = LocalTriton(paths.repository(sizes.model, precision))
    t0 = time.perf_counter()
    server.start()
    out["server_start_s"] = round(time.perf_counter() - t0, 2)
    log(f"(c) Triton ({precision}) ready in {out['server_start_s']:.1f} s at {server.grpc_url}")
    sampler = TreeSampler(server.process.pid).start()

    async def measure():
        async with SenseVoiceClient(server.grpc_url, max_concurrency=concurrency, timeout_s=900) as client:
            await client.check_ready()
            warm = clips[0][1][: 3 * SAMPLE_RATE]
            await client.transcribe_many([Request(warm, "auto", True)] * concurrency)
            await _settled_stats(client.client, {}, concurrency)
            stats = [await _server_stats(client.client)]

            if cfg.get("with_call", True):
                sampler.reset()
                t0 = time.perf_counter()
                segments = await asyncio.to_thread(segment_for_asr, call, vad, MAX_SEGMENT_S)
                vad_s = time.perf_counter() - t0
                await client.transcribe_many(
                    Request(call[s.start : s.end], call_file.language, True) for s in segments
                )
                wall = time.perf_counter() - t0
                await _settled_stats(client.client, stats[-1], len(segments))
                out["call"] = {
                    "audio_s": round(_audio_s(call), 2),
                    "wall_s": round(wall, 3),
                    "vad_s": round(vad_s, 3),
                    "rtfx": round(rtfx(_audio_s(call), wall), 2),
                    **_segments_info(segments, call),
                    "client_peak_rss_mb": round(peak_rss_mb(), 1),
                    "server": sampler.snapshot(),
                }
                stats.append(await _server_stats(client.client))
                out["call"]["server_stats"] = _stats_delta(stats[-2], stats[-1])
                log(
                    f"(c) {precision} call: {_audio_s(call):.0f} s in {wall:.1f} s = "
                    f"{rtfx(_audio_s(call), wall):.1f}x ({len(segments)} segments); client peak RSS "
                    f"{out['call']['client_peak_rss_mb']:.0f} MB, server tree PSS "
                    f"{out['call']['server']['peak_pss_sum_mb']:.0f} MB"
                )

            audio_s = sum(_audio_s(a) for _, a in clips)
            requests = [Request(a, f.language, True) for f, a in clips]
            sampler.reset()
            t0 = time.perf_counter()
            await client.transcribe_many(requests)
            wall = time.perf_counter() - t0
            await _settled_stats(client.client, stats[-1], len(requests))
            stats.append(await _server_stats(client.client))
            out["clips"] = {
                "files": len(clips),
                "audio_s": round(audio_s, 2),
                "wall_s": round(wall, 3),
                "rtfx": round(rtfx(audio_s, wall), 2),
                "server_stats": _stats_delta(stats[-2], stats[-1]),
                "client_peak_rss_mb": round(peak_rss_mb(), 1),
                "server": sampler.snapshot(),
            }
            log(
                f"(c) {precision} clips, {concurrency} in flight: {audio_s:.0f} s in {wall:.1f} s = "
                f"{rtfx(audio_s, wall):.1f}x"
            )

            if sizes.serial_triton:
                # one request at a time, alternating with the same clip in-process: the per-request overhead
                loop = asyncio.get_running_loop()

                def triton_one(f, audio):
                    return asyncio.run_coroutine_threadsafe(
                        client.transcribe(audio, f.language, True), loop
                    ).result()

                before = await _server_stats(client.client)
                paired = await asyncio.to_thread(
                    _paired, paths, sizes, cfg, clips, precision, "triton", triton_one
                )
                await _settled_stats(client.client, before, paired["files"])
                stats.append(await _server_stats(client.client))
                out["clips_serial"] = {
                    "files": paired["files"],
                    "audio_s": paired["audio_s"],
                    "wall_s": paired["triton_s"],
                    "rtfx": round(rtfx(paired["audio_s"], paired["triton_s"]), 2),
                    "paired_ort_s": paired["ort_s"],
                    "server_stats": _stats_delta(before, stats[-1]),
                }

    try:
        asyncio.run(measure())
    finally:
        out["server_whole_run"] = sampler.stop()
        server.stop()
    out["server_largest_process_maxrss_mb"] = round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


# -- (d) the whole daily task: daily.run_date over the raw partition -------------------------------------------------


def step_daily(cfg: dict) -> dict:
    import shutil

    from sensevoice_pipeline.jobs.daily import run_date
    from sensevoice_pipeline.serving.client import transcribe_sync
    from sensevoice_pipeline.serving.server import LocalTriton
    from sensevoice_pipeline.settings import Settings

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    precision = cfg["precision"]
    files = assets.read_audio(paths, sizes)
    lake = paths.lake_root(sizes)
    shutil.rmtree(lake, ignore_errors=True)
    out: dict = {"precision": precision, "concurrency": sizes.concurrency}
    server = LocalTriton(paths.repository(sizes.model, precision))
    t0 = time.perf_counter()
    server.start()
    out["server_start_s"] = round(time.perf_counter() - t0, 2)
    sampler = TreeSampler(server.process.pid).start()
    try:
        transcribe_sync([np.zeros(3 * SAMPLE_RATE, np.float32)] * 2, url=server.grpc_url)  # warm-up
        settings = Settings(
            raw_root=paths.raw_root(sizes),
            lake_root=lake,
            triton_url=server.grpc_url,
            use_itn=True,
            concurrency=sizes.concurrency,
        )
        sampler.reset()
        profiler = cProfile.Profile() if cfg.get("profile") else None
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        result = run_date(settings, BENCH_DATE, run_id="bench", show_progress=sys.stderr.isatty())
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - t0
        server_mem = sampler.snapshot()
    finally:
        sampler.stop()
        server.stop()
    audio_s = sum(f.seconds for f in files)
    if result.files_failed:
        raise RuntimeError(f"the daily run failed {result.files_failed} files: {result}")
    out.update(
        files=len(files),
        audio_s=round(audio_s, 2),
        wall_s=round(wall, 3),
        rtfx=round(rtfx(audio_s, wall), 2),
        result={k: v for k, v in result.to_dict().items() if k != "seconds"},
        client_peak_rss_mb=round(peak_rss_mb(), 1),
        server=server_mem,
        server_largest_process_maxrss_mb=round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
    )
    if profiler:
        out["profile"] = _profile_to(paths.profile_dir / "daily", profiler)
    log(
        f"(d) daily run_date: {len(files)} files, {audio_s:.0f} s in {wall:.1f} s = {rtfx(audio_s, wall):.1f}x, "
        f"{result.utterances} utterances"
    )
    return out


# -- BI --------------------------------------------------------------------------------------------------------------


def step_bi(cfg: dict) -> dict:
    from .bi import run_bi

    paths, sizes = Paths(Path(cfg["workdir"])), Sizes(**_sizes_args(cfg["sizes"]))
    return run_bi(paths.bi_root(sizes), sizes)


# -- the peers of issue 18 (benchmarks/peers.py) ---------------------------------------------------------------------


def step_funasr_onnx(cfg: dict) -> dict:
    from .peers import step_funasr_onnx as run

    return run(cfg)


def step_funasr_onnx_export(cfg: dict) -> dict:
    from .peers import ensure_funasr_onnx

    return {"graph": ensure_funasr_onnx(Paths(Path(cfg["workdir"])), cfg["sizes"]["model"])}


def step_breakdown(cfg: dict) -> dict:
    from .peers import step_breakdown as run

    return run(cfg)


STEPS = {
    "prepare": step_prepare,
    "funasr": step_funasr,
    "ort": step_ort,
    "triton": step_triton,
    "daily": step_daily,
    "funasr_onnx": step_funasr_onnx,
    "funasr_onnx_export": step_funasr_onnx_export,
    "breakdown": step_breakdown,
    "bi": step_bi,
}


def _sizes_args(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in STEPS:  # the config's "then": more steps in this process
        print(
            f"usage: python -m benchmarks.steps {{{','.join(STEPS)}}} CONFIG.json OUT.json", file=sys.stderr
        )
        return 2
    name, cfg_path, out_path = argv
    cfg = json.loads(Path(cfg_path).read_text())
    set_prefix(cfg.get("label", name))
    results = {}
    # --quick runs (a) in the prepare process: importing funasr twice costs more than the rest of a smoke run
    for step in [name, *cfg.get("then", [])]:
        load_before = load_average()
        t0 = time.perf_counter()
        result = STEPS[step](cfg)
        result["step"] = {
            "name": step,
            "wall_s": round(time.perf_counter() - t0, 2),
            "load_before": load_before,
            "load_after": load_average(),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        results[step] = result
    write_json(Path(out_path), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
