"""`svp export`: checkpoint -> ONNX -> parity gate -> the next version of both Triton models.

Nothing reaches the repository unless every check passes: all files are written to a staging folder and renamed
into place at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.remote import publish_new_version
from sensevoice_pipeline.serving.repository import (
    CMVN_FILE,
    ENCODER_FILE,
    ENCODER_MODEL,
    FRONTEND_FILE,
    META_FILE,
    PIPELINE_MODEL,
    ModelRepository,
)
from sensevoice_pipeline.serving.triton_models import threads_per_instance

from . import graph as graph_mod
from . import parity
from . import precision as precision_mod
from . import rewrite as rewrite_mod
from .checkpoint import CheckpointFiles, find_checkpoint_files, load_funasr_model, resolve_model
from .errors import ExportError

log = logging.getLogger(__name__)
STEPS = ("load", "export", "verify", "write")


@dataclass(frozen=True)
class ExportResult:
    version: int
    repository: Path
    meta: dict


Progress = Callable[[str, str], None]


def _print_progress(step: str, message: str) -> None:
    index = STEPS.index(step) + 1
    print(f"[{index}/{len(STEPS)}] {step:<6} {message}", flush=True)


def run_export(
    model: str,
    repository: str | Path,
    precision: str = "fp32",
    exporter: str = "legacy",
    progress: Progress = _print_progress,
    thresholds: parity.Thresholds | None = None,
) -> ExportResult:
    """``thresholds`` replaces the precision's default parity gate (see ``parity.thresholds_for``); with
    ``precision="auto"`` it is the int8 candidate's gate."""
    precision_mod.check_precision(precision, allow_auto=True)
    if exporter not in graph_mod.EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}: expected one of {', '.join(graph_mod.EXPORTERS)}")
    repo = ModelRepository(repository)
    repo.check_target()
    started = time.perf_counter()

    progress("load", f"checkpoint {model}")
    files = find_checkpoint_files(resolve_model(model))
    _, torch_model = load_funasr_model(files)
    config = files.config_dict()
    feature_dim = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    n_params = sum(p.numel() for p in torch_model.parameters())
    progress(
        "load", f"SenseVoiceSmall, {n_params / 1e6:.1f} M parameters ({time.perf_counter() - started:.1f} s)"
    )

    # the tag ids come from the checkpoint's tokenizer (funasr's model object does not keep it): tag_probs output
    encoder_graph = graph_mod.EncoderGraph(torch_model, graph_mod.tag_token_ids(files.tokenizer)).eval()
    with repo.staging() as staging:
        t0 = time.perf_counter()
        fp32_path = staging / "fp32.onnx"
        opset = graph_mod.export_onnx(encoder_graph, fp32_path, exporter, feature_dim)
        rewrites = rewrite_mod.rewrite_file(fp32_path)
        onnx.checker.check_model(str(fp32_path))
        encoder_dir = staging / ENCODER_MODEL
        encoder_dir.mkdir()
        onnx_path, precision, choice, int8_report = _encoder_file(
            precision,
            fp32_path,
            encoder_dir / ENCODER_FILE,
            encoder_graph,
            feature_dim,
            thresholds,
            progress,
            repo,
        )
        if choice is not None and precision == "fp32":
            thresholds = None  # the caller's floors were the int8 candidate's
        fp32_path.unlink(missing_ok=True)
        onnx.checker.check_model(str(onnx_path))
        export_seconds = time.perf_counter() - t0
        size_mb = onnx_path.stat().st_size / 1e6
        progress(
            "export",
            f"{exporter} exporter, opset {opset}, {precision}, {size_mb:.1f} MB ({export_seconds:.1f} s)",
        )

        # "auto" gated its int8 candidate already: that report is this graph's
        report = (
            int8_report
            if precision == "int8" and int8_report is not None
            else parity.compare(encoder_graph, onnx_path, precision, feature_dim, thresholds)
        )
        progress(
            "verify",
            f"max abs {report.max_abs:.2e}, worst cosine {report.min_cosine:.6f}, "
            f"argmax agreement {report.argmax_agreement:.2%} over {report.frames} frames",
        )
        if not report.passed:
            raise ExportError(f"parity check failed for {precision}: {'; '.join(report.failures)}")

        meta = _export_meta(
            model, files, precision, exporter, opset, report, n_params, export_seconds, config
        )
        meta["graph_rewrites"] = rewrites
        if choice is not None:
            meta["precision_choice"] = choice
        _stage_pipeline_version(repo, staging, files, config, meta)
        shutil.copyfile(repo.model_py(ENCODER_MODEL), encoder_dir / "model.py")
        version = repo.next_version()
        meta["version"] = version
        (staging / PIPELINE_MODEL / META_FILE).write_text(json.dumps(meta, indent=2))
        repo.publish(staging, version)
    progress("write", f"version {version} of {PIPELINE_MODEL} and {ENCODER_MODEL} in {repo.path}")
    _publish_to_mirror(repo.path, version, progress)
    return ExportResult(version, repo.path, meta)


def _encoder_file(
    precision: str,
    fp32_path: Path,
    target: Path,
    encoder_graph,
    feature_dim: int,
    thresholds: parity.Thresholds | None,
    progress: Progress,
    repo: ModelRepository,
) -> tuple[Path, str, dict | None, parity.ParityReport | None]:
    """The encoder of ``precision`` written to ``target``: (path, its precision, how "auto" chose it, the int8
    candidate's parity report); the last two None unless ``precision`` is "auto", which times the candidates with
    the threads one instance of ``repo``'s local encoder gets."""
    if precision != precision_mod.AUTO:
        return precision_mod.convert(fp32_path, target, precision), precision, None, None
    int8_path = precision_mod.convert(fp32_path, fp32_path.with_name("int8.onnx"), "int8")
    int8_report = parity.compare(encoder_graph, int8_path, "int8", feature_dim, thresholds)
    if not int8_report.passed:
        choice = {
            "asked": "auto",
            "chosen": "fp32",
            "why": "int8 failed its parity gate: " + "; ".join(int8_report.failures),
        }
    else:
        threads = threads_per_instance(repo.local_encoder_instances())
        seconds = precision_mod.time_encoders(
            {"fp32": fp32_path, "int8": int8_path}, feature_dim, threads=threads
        )
        chosen = min(seconds, key=seconds.get)
        choice = {
            "asked": "auto",
            "chosen": chosen,
            "seconds": seconds,
            "frames": precision_mod.AUTO_FRAMES,
            "threads": threads,
            "why": f"{chosen} ran one {precision_mod.AUTO_FRAMES * 0.06:.0f} s segment faster on this CPU "
            f"with {threads} thread(s), as one local encoder instance runs (fp32 {seconds['fp32']:.3f} "
            f"s, int8 {seconds['int8']:.3f} s, medians of 3)",
        }
    progress("export", f"--precision auto: {choice['why']} -> {choice['chosen']}")
    (fp32_path if choice["chosen"] == "fp32" else int8_path).replace(target)
    int8_path.unlink(missing_ok=True)
    return target, choice["chosen"], choice, int8_report


def _publish_to_mirror(repository: Path, version: int, progress: Callable[[str, str], None]) -> None:
    """A repository with an s3:// mirror (`svp models mirror`) gets every new version there at once, whoever
    exported it (`svp export`, the release's export step)."""
    try:
        published = publish_new_version(repository, version)
    except ReleaseError as exc:
        raise ExportError(
            f"exported version {version} to {repository}, but could not publish it to the mirror: {exc}"
        ) from exc
    if published:
        progress("publish", f"version {version} to {published['target']} ({published['files']} files)")


def _stage_pipeline_version(
    repo: ModelRepository, staging: Path, files: CheckpointFiles, config: dict, meta: dict
):
    target = staging / PIPELINE_MODEL
    target.mkdir()
    shutil.copyfile(repo.model_py(PIPELINE_MODEL), target / "model.py")
    shutil.copyfile(files.cmvn, target / CMVN_FILE)
    shutil.copyfile(files.tokenizer, target / files.tokenizer.name)
    frontend = {
        "frontend_conf": {k: v for k, v in config["frontend_conf"].items() if k != "cmvn_file"},
        "cmvn_file": CMVN_FILE,
        "tokenizer": files.tokenizer.name,
        "blank_id": config.get("model_conf", {}).get("blank_id", 0),
    }
    (target / FRONTEND_FILE).write_text(json.dumps(frontend, indent=2))


def _export_meta(model, files, precision, exporter, opset, report, n_params, export_seconds, config) -> dict:
    import funasr
    import onnxruntime
    import torch

    return {
        "source": {
            "model": str(model),
            "dir": str(files.root.resolve()),
            "sha256": files.checksums(),
        },
        "architecture": {
            "encoder": config["encoder"],
            "encoder_conf": {
                k: config["encoder_conf"][k] for k in ("output_size", "num_blocks", "tp_blocks")
            },
            "parameters": n_params,
        },
        "precision": precision,
        "target_device": precision_mod.TARGET_DEVICE[precision],
        "exporter": exporter,
        "opset": opset,
        "parity": report.to_dict(),
        "export_seconds": round(export_seconds, 2),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tools": {
            "torch": torch.__version__,
            "funasr": funasr.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
