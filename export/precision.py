"""Precision variants of the fp32 graph: int8 for CPU serving, fp16 for GPU serving."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import onnx

from .errors import PrecisionError

PRECISIONS = ("fp32", "int8", "fp16")
# `svp export --precision auto`: fp32 or int8, whichever the encoder runs faster on this machine's CPU, measured at
# export (int8 gains 2-3x with AVX-512 VNNI and little on older AVX2 CPUs). The version records the measurement.
AUTO = "auto"
AUTO_FRAMES = 250  # one 15 s segment (60 ms frames), batch 1: what a CPU server runs most
# Where each variant is meant to run. int8 dynamic quantisation is fast on CPUs and usually slower than fp16 on
# GPUs, so the metadata says so and `svp models` warns when it is served on a GPU config.
TARGET_DEVICE = {"fp32": "any", "int8": "cpu", "fp16": "gpu"}
# Ops that must stay fp32 in an fp16 graph: the sinusoidal position encoding computes positions with Range and
# angles with Sin/Cos, and casts its inputs to float; in half precision onnxruntime refuses the graph.
FP16_KEEP_FP32_OPS = ("Range", "Sin", "Cos")


def check_precision(precision: str, allow_auto: bool = False) -> str:
    known = PRECISIONS + ((AUTO,) if allow_auto else ())
    if precision not in known:
        raise PrecisionError(f"unknown precision {precision!r}: expected one of {', '.join(known)}")
    return precision


def random_segments(batch: int, frames: int, feature_dim: int, seed: int = 0) -> tuple:
    """EncoderSession.run's inputs for ``batch`` full-length segments of standard-normal features (what CMVN'd
    features look like): an encoder's cost does not depend on the values."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, frames, feature_dim), dtype=np.float32),
        np.full(batch, frames),
        np.zeros(batch),
        np.full(batch, 14),
    )


def time_encoders(
    paths: dict[str, Path],
    feature_dim: int,
    frames: int = AUTO_FRAMES,
    rounds: int = 3,
    threads: int | None = None,
) -> dict[str, float]:
    """Median seconds per call of each encoder on the same batch-1 segment, the encoders taking turns so that
    other load on the machine hits them alike; sessions opened as serving opens them (EncoderSession), with
    ``threads`` each (what one serving instance gets)."""
    from sensevoice_pipeline.speech.encoder import EncoderSession

    batch = random_segments(1, frames, feature_dim)
    sessions = {name: EncoderSession(path, threads=threads) for name, path in paths.items()}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for session in sessions.values():
        session.run(*batch, outputs=("token_ids",))  # warm-up: first-run allocations
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(*batch, outputs=("token_ids",))
            seconds[name].append(time.perf_counter() - started)
    return {name: round(statistics.median(times), 4) for name, times in seconds.items()}


def convert(fp32_path: Path, out_path: Path, precision: str) -> Path:
    """Write the ``precision`` variant of ``fp32_path`` to ``out_path`` (a copy for fp32)."""
    check_precision(precision)
    if precision == "fp32":
        out_path.write_bytes(fp32_path.read_bytes())
    elif precision == "int8":
        _quantize_int8(fp32_path, out_path)
    else:
        _convert_fp16(fp32_path, out_path)
    return out_path


# Only the MatMuls with weights (the linear layers: 281 in SenseVoiceSmall). Left to its defaults quantize_dynamic
# also turns the FSMN blocks' depthwise Conv into ConvInteger, which onnxruntime runs 7x slower than the fp32 Conv
# (20% of the int8 encoder on a 30 s segment); the attention MatMuls (both inputs computed) stay fp32, as
# quantizing them too was slower (it quantizes and packs both operands on every call). benchmarks/README.md.
INT8_OP_TYPES = ["MatMul"]


def _quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=INT8_OP_TYPES)


def _convert_fp16(src: Path, dst: Path) -> None:
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    # Stale fp32 type annotations of intermediate tensors contradict the converted nodes; drop them and let
    # onnxruntime infer types from the nodes themselves.
    del model.graph.value_info[:]
    keep = [node.name for node in model.graph.node if _must_stay_fp32(node)]
    half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    _read_outputs_before_their_casts(half)
    onnx.save(half, str(dst))


def _read_outputs_before_their_casts(model: onnx.ModelProto) -> None:
    """With keep_io_types the converter renames a graph output's producer to ``<x>_cast_to_<name>`` and adds a Cast
    to fp32 named ``<name>``, but nodes that also read ``<name>`` inside the graph (argmax and gather read
    ``ctc_logits``) keep reading the fp32 copy and no longer type-check. Point them at the fp16 tensor."""
    outputs = {o.name for o in model.graph.output}
    before_cast = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Cast" and node.output and node.output[0] in outputs
    }
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in before_cast:
            continue
        for i, name in enumerate(node.input):
            if name in before_cast:
                node.input[i] = before_cast[name]


def _must_stay_fp32(node: onnx.NodeProto) -> bool:
    if node.op_type in FP16_KEEP_FP32_OPS:
        return True
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        return to == onnx.TensorProto.FLOAT
    return False
