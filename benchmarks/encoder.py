"""The encoder graph itself (issue 18): what each export choice does to the encoder's speed, side by side.

From one checkpoint, the encoder graph as torch.onnx writes it ("plain") and after export/rewrite.py ("rewritten"),
each converted the way export/precision.py did before issue 18 (``quantize_dynamic`` with its defaults: every
MatMul with a weight and every Conv) and the way it does now (``INT8_OP_TYPES``: the weight MatMuls only), plus
the fp32 graphs and the attention MatMuls quantized too. Every variant runs the same inputs in turns (rotated
each round) through :class:`EncoderSession`, the serving session options, for batch 1 at 6 / 15 / 30 s and batch 4
at 15 s; the table gives medians and the median of each round's ratio to the pre-issue-18 int8 export. One
onnxruntime profile per variant says where its time goes (op types, 30 s segment), and
``precision.time_encoders`` says what ``svp export --precision auto`` keeps on this CPU.

    .venv/bin/python -m benchmarks.encoder [--model full|fixture] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from .common import DEFAULT_WORKDIR, Paths, load_average, log

SHAPES = ((1, 100), (1, 250), (1, 500), (4, 250))  # (batch, frames of 60 ms)
QUICK_SHAPES = ((1, 100), (2, 50))
PROFILE_FRAMES = 500
BASELINE = "int8 before"
# name: (graph, how it is converted); "before" is quantize_dynamic's defaults, what the export did until issue 18
VARIANTS = {
    BASELINE: ("plain", "int8-all"),
    "int8 weight MatMuls only": ("plain", "int8"),
    "int8 now (rewritten + weight MatMuls)": ("rewritten", "int8"),
    "int8 now + attention MatMuls": ("rewritten", "int8-attention"),
    "fp32 before": ("plain", "fp32"),
    "fp32 now (rewritten)": ("rewritten", "fp32"),
}


def build_variants(checkpoint: Path, folder: Path) -> dict[str, Path]:
    """Every variant's ONNX file under ``folder`` (cached: rebuilt when the checkpoint or export code changes)."""
    from sensevoice_export import rewrite
    from sensevoice_export.checkpoint import find_checkpoint_files, load_funasr_model
    from sensevoice_export.graph import EncoderGraph, export_onnx, tag_token_ids

    folder.mkdir(parents=True, exist_ok=True)
    graphs = {"plain": folder / "plain-fp32.onnx", "rewritten": folder / "rewritten-fp32.onnx"}
    if not graphs["rewritten"].is_file():
        files = find_checkpoint_files(checkpoint)
        _, model = load_funasr_model(files)
        log(f"encoder variants: exporting {checkpoint} ...")
        export_onnx(EncoderGraph(model, tag_token_ids(files.tokenizer)).eval(), graphs["plain"])
        tmp = graphs["rewritten"].with_suffix(".tmp")
        shutil.copyfile(graphs["plain"], tmp)
        rewrite.rewrite_file(tmp)
        tmp.rename(graphs["rewritten"])
    paths = {}
    for name, (graph, conversion) in VARIANTS.items():
        paths[name] = graphs[graph] if conversion == "fp32" else _converted(graphs[graph], conversion)
    return paths


def _converted(source: Path, conversion: str) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sensevoice_export.precision import INT8_OP_TYPES

    target = source.with_name(source.name.replace("-fp32", f"-{conversion}"))
    if not target.is_file():
        kwargs = {
            "int8-all": {},
            "int8": {"op_types_to_quantize": INT8_OP_TYPES},
            "int8-attention": {
                "op_types_to_quantize": INT8_OP_TYPES,
                "extra_options": {"MatMulConstBOnly": False},
            },
        }[conversion]
        log(f"encoder variants: {conversion} of {source.name} ...")
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, **kwargs)
    return target


SERVED_OUTPUTS = (
    "token_ids",
    "encoder_out_lens",
    "tag_probs",
)  # what the sensevoice model asks its encoder for


def time_variants(paths: dict[str, Path], shapes, rounds: int, feature_dim: int) -> list[dict]:
    from sensevoice_export.precision import random_segments
    from sensevoice_pipeline.speech.encoder import EncoderSession

    sessions = {name: EncoderSession(path) for name, path in paths.items()}
    for session in sessions.values():
        session.run(*random_segments(1, 50, feature_dim, 0), outputs=SERVED_OUTPUTS)
    names = list(sessions)
    seconds = {(name, shape): [] for name in names for shape in shapes}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for shape in shapes:
            inputs = random_segments(*shape, feature_dim, r)
            for name in order:
                started = time.perf_counter()
                sessions[name].run(*inputs, outputs=SERVED_OUTPUTS)
                seconds[(name, shape)].append(time.perf_counter() - started)
    rows = []
    for shape in shapes:
        base = seconds[(BASELINE, shape)]
        for name in names:
            mine = seconds[(name, shape)]
            audio_s = shape[0] * shape[1] * 0.06
            rows.append(
                {
                    "variant": name,
                    "batch": shape[0],
                    "frames": shape[1],
                    "audio_s": round(audio_s, 2),
                    "median_s": round(statistics.median(mine), 4),
                    "rtfx": round(audio_s / statistics.median(mine), 1),
                    "x_before": round(statistics.median(b / m for b, m in zip(base, mine)), 2),
                }
            )
    return rows


def op_profile(path: Path, frames: int, feature_dim: int, threads: int) -> dict[str, float]:
    """Share of kernel time per op type (onnxruntime's profiler, 2 runs after a warm-up), top 10."""
    import onnxruntime as ort

    from sensevoice_export.precision import random_segments

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_name("profile"))
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    speech, lengths, language, textnorm = random_segments(1, frames, feature_dim, 0)
    feeds = {
        "speech": speech,
        "speech_lengths": lengths.astype(np.int32),
        "language": language.astype(np.int32),
        "textnorm": textnorm.astype(np.int32),
    }
    for _ in range(3):
        session.run(list(SERVED_OUTPUTS), feeds)
    trace = Path(session.end_profiling())
    per_op: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    total = sum(per_op.values()) or 1
    return {op: round(100 * us / total, 1) for op, us in per_op.most_common(10)}


def _feature_dim(checkpoint: Path) -> int:
    from sensevoice_export.checkpoint import find_checkpoint_files

    conf = find_checkpoint_files(checkpoint).config_dict()["frontend_conf"]
    return conf["n_mels"] * conf["lfr_m"]


def main(argv: list[str] | None = None) -> int:
    from sensevoice_export.precision import time_encoders

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="full", choices=("full", "fixture"))
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small shapes, no profiles")
    args = p.parse_args(argv)
    os.environ["SVP_ORT_THREADS"] = str(args.threads)
    paths = Paths(args.workdir)
    variants = build_variants(
        paths.checkpoint(args.model), paths.model_root / args.model / "encoder-variants"
    )
    feature_dim = _feature_dim(paths.checkpoint(args.model))
    load_before = load_average()
    shapes = QUICK_SHAPES if args.quick else SHAPES
    log(
        f"encoder variants: {len(variants)} x {len(shapes)} shapes x {args.rounds} rounds (load {load_before})"
    )
    rows = time_variants(variants, shapes, args.rounds, feature_dim)
    profiles = (
        {}
        if args.quick
        else {
            name: op_profile(variants[name], PROFILE_FRAMES, feature_dim, args.threads)
            for name in (BASELINE, "int8 now (rewritten + weight MatMuls)", "fp32 now (rewritten)")
        }
    )
    auto = time_encoders(
        {"fp32": variants["fp32 now (rewritten)"], "int8": variants["int8 now (rewritten + weight MatMuls)"]},
        feature_dim,
    )
    result = {
        "model": args.model,
        "threads": args.threads,
        "rounds": args.rounds,
        "rows": rows,
        "profiles_at_frames": PROFILE_FRAMES,
        "profiles": profiles,
        "auto": {"seconds": auto, "chosen": min(auto, key=auto.get)},
        "load_before": load_before,
        "load_after": load_average(),
    }
    (args.workdir / "encoder.json").write_text(json.dumps(result, indent=2))
    for row in rows:
        log(
            f"{row['variant']:<40} b={row['batch']} T={row['frames']:<4} {row['median_s']:.3f} s "
            f"RTFx {row['rtfx']:>5} x before {row['x_before']}"
        )
    log(f"--precision auto keeps {result['auto']['chosen']} here ({auto})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
