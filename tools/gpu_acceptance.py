"""The GPU acceptance run (issue 15, item 4): `bash scripts/gpu-acceptance.sh [--model DIR]`.

On one GPU, in well under 10 minutes and with nothing downloaded:
  (a) the checkpoint: ``--model DIR`` (a real SenseVoiceSmall) or a full-size random one built with ``sensevoice_export.micro``;
  (b) ``run_export`` of it in fp32 and fp16 into a fresh repository (each export runs its own CPU parity gate);
  (c) parity of both exports on onnxruntime's CUDA execution provider against PyTorch on the same GPU, judged by
      ``sensevoice_export.parity.judge`` with the precision's own thresholds;
  (d) encoder throughput by batch size (onnxruntime fp32 / fp16 on CUDA, PyTorch fp32 on CUDA as the baseline);
  (e) the production Triton image on that repository (docker), the golden clips sent through it.
Then one markdown table, printed and written to ``<out>/acceptance.md`` (rows also in ``acceptance.json``). Exit
status: 0 all passed (skipped steps allowed), 1 a step failed, 2 something it needs is not installed.

``--device cpu`` runs the same code on the CPU execution provider with a micro checkpoint and a tiny batch list, so
that the test suite exercises every step but (e) on every run (tests/integration/export/test_gpu_acceptance.py).

A developer's tool, not part of the wheel: it drives the export step (``sensevoice_export``, the ``[export]``
extra: torch, funasr) and the serving library side by side on a GPU machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from sensevoice_export import parity
from sensevoice_pipeline.serving.repository import (
    ENCODER_FILE,
    ENCODER_MODEL,
    PIPELINE_MODEL,
    ModelRepository,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TRITON_IMAGE = "sensevoice-pipeline/triton:0.1.0"  # docker/triton.Dockerfile, as tagged in docker-compose.yml
PRECISIONS = ("fp32", "fp16")
COLUMNS = (
    "step",
    "variant",
    "batch",
    "max abs diff",
    "worst cosine",
    "token agreement",
    "audio s/s",
    "p50 ms",
    "result",
)
# What the pipeline reads of the encoder (serving/triton_models.ENCODER_OUTPUTS; tag_probs where the export has it):
# asking onnxruntime for ctc_logits too would copy [B, T, 25055] floats back to the host on every call and measure
# that copy instead of the encoder.
PIPELINE_OUTPUTS = ("token_ids", "encoder_out_lens", "tag_probs")
CONV_ALGO_SEARCHES = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


# -- the plan of a run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    device: str  # "cuda" | "cpu"
    full_size: bool  # the checkpoint built when --model is absent: full size (234 M) or micro
    batch_sizes: tuple[int, ...]
    seconds: float  # audio per utterance in the throughput batches
    warmup: int  # untimed runs per cell: cuDNN algorithm choice, arena growth, lazy CUDA init
    min_runs: int  # timed runs per cell, at least ...
    min_cell_s: float  # ... and at least this long (whichever ends later) ...
    max_cell_s: float  # ... but never longer than this, after min_runs


PLANS = {
    # 5 batch sizes x 3 engines x at most ~4 s each: about a minute of timing on one GPU.
    "cuda": Plan(
        "cuda", True, (1, 4, 8, 16, 32), 10.0, warmup=5, min_runs=20, min_cell_s=1.0, max_cell_s=4.0
    ),
    "cpu": Plan("cpu", False, (1, 2), 2.0, warmup=1, min_runs=3, min_cell_s=0.0, max_cell_s=2.0),
}


# -- the table --------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    step: str
    variant: str
    result: str  # "pass" / "measured" / "ok: ..." / "FAIL: ..." / "skipped: ..."
    batch: int | None = None
    max_abs: float | None = None
    worst_cosine: float | None = None
    token_agreement: float | None = None
    audio_s_per_s: float | None = None
    p50_ms: float | None = None

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAIL")

    def cells(self) -> list[str]:
        return [
            self.step,
            self.variant,
            _fmt(self.batch, "{}"),
            _fmt(self.max_abs, "{:.2e}"),
            _fmt(self.worst_cosine, "{:.6f}"),
            _fmt(self.token_agreement, "{:.2%}"),
            _fmt(self.audio_s_per_s, "{:.1f}"),
            _fmt(self.p50_ms, "{:.2f}"),
            self.result,
        ]


def _fmt(value, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


@dataclass
class Report:
    header: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.step:<10} {row.variant:<40} {row.result}", flush=True)
        return row

    @property
    def passed(self) -> bool:
        return not any(r.failed for r in self.rows)

    def markdown(self) -> str:
        lines = [f"- {k}: {v}" for k, v in self.header.items()]
        lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |" for r in self.rows]
        lines += ["", f"verdict: {'PASSED' if self.passed else 'FAILED'}"]
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> Path:
        (out / "acceptance.json").write_text(
            json.dumps(
                {"header": self.header, "passed": self.passed, "rows": [asdict(r) for r in self.rows]},
                indent=2,
            )
        )
        path = out / "acceptance.md"
        path.write_text(self.markdown())
        return path


# -- what must be installed -------------------------------------------------------------------------------------------


def preflight(device: str, device_id: int = 0) -> list[str]:
    """Everything missing, each with how to install it; empty when the run can start. Nothing is downloaded later."""
    problems = []
    for module, what in (
        ("torch", "torch (the export extra: pip install -e '.[export]')"),
        ("funasr", "funasr (the export extra)"),
        ("onnx", "onnx (the export extra)"),
        ("onnxconverter_common", "onnxconverter-common (the export extra, for fp16)"),
        ("onnxruntime", "onnxruntime (onnxruntime-gpu for --device cuda)"),
    ):
        if importlib.util.find_spec(module) is None:  # found, not imported: funasr alone takes seconds
            problems.append(f"{what} is not installed")
    if problems or device != "cuda":
        return problems
    import onnxruntime as ort
    import torch

    if not torch.cuda.is_available():
        problems.append(
            f"torch {torch.__version__} sees no CUDA device: install a CUDA build of torch (the pinned "
            "CPU wheel has none) and an NVIDIA driver"
        )
    elif device_id >= torch.cuda.device_count():
        problems.append(f"--device-id {device_id}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        problems.append(
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
            f"{', '.join(ort.get_available_providers())}): pip uninstall -y onnxruntime && "
            f"pip install onnxruntime-gpu=={ort.__version__}"
        )
    return problems


# -- (a) the checkpoint ------------------------------------------------------------------------------------------------


def prepare_checkpoint(model: str | None, out: Path, plan: Plan) -> tuple[Path, str]:
    """``--model DIR`` as given (a local dir only: a hub id would download), else a seeded random checkpoint."""
    if model:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"--model {model}: not a directory (the acceptance run downloads nothing)"
            )
        return path, f"--model {path}"
    from sensevoice_export.micro import EncoderSize, build_checkpoint

    size = EncoderSize.full() if plan.full_size else EncoderSize()
    path = build_checkpoint(out / "checkpoint", size=size, seed=0)
    return (
        path,
        f"random weights, {'full size' if plan.full_size else 'micro'} (sensevoice_export.micro, seed 0)",
    )


# -- (b) the exports ---------------------------------------------------------------------------------------------------


def export_all(checkpoint: Path, repo: Path, report: Report) -> dict[str, int]:
    """fp32 and fp16 as consecutive versions of ``repo``; the production configs then serve the last (fp16)."""
    from sensevoice_export.pipeline import run_export

    versions = {}
    for precision in PRECISIONS:
        t0 = time.perf_counter()
        try:
            result = run_export(str(checkpoint), repo, precision, "legacy", progress=lambda *_: None)
        except Exception as exc:  # noqa: BLE001 -- the table says why; the later steps are skipped
            report.add(Row("export", precision, f"FAIL: {_one_line(exc)}"))
            continue
        versions[precision] = result.version
        report.add(
            Row(
                "export",
                f"{precision} -> version {result.version}",
                f"ok ({time.perf_counter() - t0:.0f} s, CPU parity gate passed)",
            )
        )
    return versions


def existing_versions(checkpoint: Path, repo: Path) -> dict[str, int]:
    """``--repository``: the newest version of each precision, refused unless exported from ``checkpoint``."""
    from sensevoice_export.checkpoint import find_checkpoint_files

    repository = ModelRepository(repo)
    sha = find_checkpoint_files(checkpoint).checksums()
    versions: dict[str, int] = {}
    for version in repository.versions():
        meta = repository.read_meta(version)
        if meta.get("source", {}).get("sha256") != sha:
            raise ValueError(
                f"{repo}: version {version} was not exported from {checkpoint} (checksums differ)"
            )
        versions[meta["precision"]] = version  # versions() is ascending: the newest of each precision wins
    missing = [p for p in PRECISIONS if p not in versions]
    if missing:
        raise ValueError(f"{repo} has no {' and no '.join(missing)} version")
    return {p: versions[p] for p in PRECISIONS}


# -- (c) parity on the device -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "cpu"
    index: int = 0
    conv_algo_search: str = "HEURISTIC"

    @property
    def torch_name(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else "cpu"

    @property
    def provider(self) -> str:
        return "CUDAExecutionProvider" if self.kind == "cuda" else "CPUExecutionProvider"

    def ort_providers(self) -> list:
        """onnxruntime's CUDA options (onnxruntime/core/providers/cuda/cuda_execution_provider_info.{h,cc};
        docs: onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html):
        - ``cudnn_conv_algo_search``: the default EXHAUSTIVE benchmarks every cuDNN algorithm the first time each
          input shape is seen; HEURISTIC asks cuDNN's heuristics instead (no search; the FSMN memory blocks are
          the only convolutions). Recorded in the table's header.
        - ``arena_extend_strategy`` kSameAsRequested: as the production encoder config sets it.
        - ``use_tf32`` "0": onnxruntime enables TF32 for fp32 GEMMs and convolutions by default (``use_tf32{true}``);
          the fp32 gate (max abs < 1e-4) is for true fp32, and PyTorch runs with TF32 off too
          (``_strict_fp32_torch``). Throughput is measured with the same session that passed parity."""
        if self.kind != "cuda":
            return ["CPUExecutionProvider"]
        options = {
            "device_id": str(self.index),
            "cudnn_conv_algo_search": self.conv_algo_search,
            "arena_extend_strategy": "kSameAsRequested",
            "use_tf32": "0",
        }
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


def load_reference(checkpoint: Path, device: Device):
    """funasr's model (its own classes and loading) as the exported graph, in fp32 on ``device``."""
    from sensevoice_export.checkpoint import find_checkpoint_files, load_funasr_model
    from sensevoice_export.graph import EncoderGraph

    files = find_checkpoint_files(checkpoint)
    _, model = load_funasr_model(files)
    config = files.config_dict()
    feature_dim = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    _strict_fp32_torch()
    return EncoderGraph(model).eval().to(device.torch_name), feature_dim, config


def _strict_fp32_torch() -> None:
    """PyTorch keeps TF32 off for matmuls but on for cuDNN convolutions by default; the reference is true fp32."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def encoder_session(onnx_path: Path, device: Device):
    """The exported encoder on ``device``'s execution provider; refuses onnxruntime's silent fallback to the CPU."""
    from sensevoice_pipeline.speech.encoder import EncoderSession

    session = EncoderSession(onnx_path, providers=device.ort_providers())
    active = session.session.get_providers()[0]
    if active != device.provider:
        raise RuntimeError(f"onnxruntime runs {onnx_path.name} on {active}, not {device.provider}")
    return session


def parity_on_device(
    graph, session, precision: str, feature_dim: int, device: Device, limits: parity.Thresholds | None = None
) -> parity.ParityReport:
    """The export's own check (same batch, same judge, same thresholds) with both sides on ``device``."""
    batch = parity.check_batch(feature_dim)
    refs = parity.torch_reference(graph, *batch, device=device.torch_name)
    result = session.run(*batch, outputs=("ctc_logits", "encoder_out_lens"))
    return parity.judge(refs, result["ctc_logits"], result["encoder_out_lens"], precision, limits)


def parity_row(precision: str, device: Device, report: parity.ParityReport) -> Row:
    verdict = "pass" if report.passed else "FAIL: " + "; ".join(report.failures)
    return Row(
        "parity",
        f"{precision} on {device.provider} vs torch {device.torch_name}",
        verdict,
        max_abs=report.max_abs,
        worst_cosine=report.min_cosine,
        token_agreement=report.argmax_agreement,
    )


# -- (d) throughput ---------------------------------------------------------------------------------------------------


def lfr_frames(seconds: float, config: dict) -> int:
    """LFR frames of ``seconds`` of audio: one fbank frame per ``frame_shift`` ms, one LFR frame per ``lfr_n``."""
    frontend = config["frontend_conf"]
    return math.ceil(seconds * 1000 / frontend.get("frame_shift", 10) / frontend["lfr_n"])


def throughput_batch(batch_size: int, frames: int, feature_dim: int, seed: int = 0):
    """Full-length utterances (no padding), mixed language and ITN queries, as the encoder's batcher would see."""
    rng = np.random.default_rng(seed)
    speech = rng.standard_normal((batch_size, frames, feature_dim), dtype=np.float32)
    lengths = np.full(batch_size, frames, np.int32)
    languages = np.resize(np.array(parity.CHECK_LANGUAGES, np.int32), batch_size)
    textnorms = np.resize(np.array(parity.CHECK_TEXTNORMS, np.int32), batch_size)
    return speech, lengths, languages, textnorms


def time_runs(run_once: Callable[[], object], plan: Plan) -> list[float]:
    """Seconds of each timed call after ``plan.warmup`` untimed ones. ``run_once`` must return only when the
    device is done (onnxruntime returns host arrays; the PyTorch runner synchronises)."""
    for _ in range(plan.warmup):
        run_once()
    times: list[float] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - t)
        spent = time.perf_counter() - started
        if len(times) >= plan.min_runs and spent >= plan.min_cell_s:
            return times
        if len(times) >= 3 and spent >= plan.max_cell_s:  # a slow cell: three runs still give a median
            return times


def throughput_row(engine: str, batch_size: int, times: list[float], seconds: float) -> Row:
    audio_per_s = batch_size * seconds * len(times) / sum(times)
    return Row(
        "throughput",
        engine,
        "measured",
        batch=batch_size,
        audio_s_per_s=audio_per_s,
        p50_ms=statistics.median(times) * 1000,
    )


def ort_runner(session, batch) -> Callable[[], object]:
    return lambda: session.run(*batch, outputs=session.available(PIPELINE_OUTPUTS))


def torch_runner(graph, batch, device: Device) -> Callable[[], object]:
    """Host arrays in, token ids back on the host, like the onnxruntime runner; synchronised before returning
    (CUDA kernels are asynchronous: without it the clock would stop at the launch, not at the result)."""
    import torch

    def run():
        with torch.no_grad():
            inputs = [torch.from_numpy(a).to(device.torch_name) for a in batch]
            out = graph(*inputs)
            ids = out[2].cpu()
        if device.kind == "cuda":
            torch.cuda.synchronize(device.torch_name)
        return ids

    return run


# -- (e) the production Triton image ---------------------------------------------------------------------------------


def triton_step(
    repo: Path, versions: dict[str, int], golden_dir: Path | None, image: str, device: Device, report: Report
) -> None:
    """The image on ``repo`` with the production configs (config.pbtxt: onnxruntime backend, KIND_GPU), golden
    clips through the version Triton serves (the newest: fp16)."""
    why_not = _why_triton_cannot_run(image, device)
    if why_not:
        report.add(Row("triton", f"{image}, production configs", f"skipped: {why_not}"))
        return
    problems = ModelRepository(repo).lint()
    if problems:
        report.add(Row("triton", "repository lint", f"FAIL: {'; '.join(problems[:3])}"))
        return
    served = max(versions.values())
    try:
        with _triton_container(image, repo, device) as url:
            result = asyncio.run(_send_golden(url, served, golden_dir))
    except Exception as exc:  # noqa: BLE001 -- start-up or serving fault: the table says which
        report.add(Row("triton", f"{image}, version {served}", f"FAIL: {_one_line(exc)}"))
        return
    report.add(Row("triton", f"{image}, version {served}, {result['cases']} golden cases", result["verdict"]))


def _why_triton_cannot_run(image: str, device: Device) -> str | None:
    if device.kind != "cuda":
        return "--device cpu (the production configs need a GPU)"
    if shutil.which("docker") is None:
        return "docker is not installed"
    if _quiet(["docker", "info"]) != 0:
        return "the docker engine is not reachable (docker info failed)"
    if _quiet(["docker", "image", "inspect", image]) != 0:
        return f"image {image} is not present (build it first: docker compose build triton)"
    return None


def _quiet(command: list[str], timeout: float = 30) -> int:
    try:
        return subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


@contextlib.contextmanager
def _triton_container(image: str, repo: Path, device: Device, ready_s: float = 300):
    """The compose service's command, flags and mounts (docker-compose.yml: triton) on free local ports; removed
    on exit whatever happened."""
    from sensevoice_pipeline.serving.server import free_port

    http, grpc = free_port(), free_port()
    name = f"svp-gpu-acceptance-{os.getpid()}"
    command = [
        "docker",
        "run",
        "--detach",
        "--rm",
        "--pull",
        "never",
        "--name",
        name,
        "--gpus",
        f"device={device.index}",
        "--shm-size",
        "1g",
        "--ulimit",
        "memlock=-1",
        "--ulimit",
        "stack=67108864",
        "-p",
        f"127.0.0.1:{http}:8000",
        "-p",
        f"127.0.0.1:{grpc}:8001",
        "-v",
        f"{repo.resolve()}:/models:ro",
        image,
        "tritonserver",
        "--model-repository=/models",
        "--model-control-mode=explicit",
        f"--load-model={PIPELINE_MODEL}",
        f"--load-model={ENCODER_MODEL}",
    ]
    started = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        raise RuntimeError(f"docker run failed: {' '.join(started.stderr.split())[-400:]}")
    try:
        _wait_ready(f"http://127.0.0.1:{http}/v2/health/ready", ready_s, name)
        yield f"127.0.0.1:{grpc}"
    finally:
        _quiet(["docker", "rm", "--force", name])


def _wait_ready(url: str, timeout_s: float, name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        if _quiet(["docker", "container", "inspect", name]) != 0:
            break  # it exited (--rm removed it): no point waiting
        time.sleep(2)
    logs = subprocess.run(["docker", "logs", "--tail", "20", name], capture_output=True, text=True).stderr
    raise RuntimeError(f"Triton was not ready within {timeout_s:.0f} s: {' '.join(logs.split())[-400:]}")


async def _send_golden(url: str, version: int, golden_dir: Path | None) -> dict:
    """Every golden case through ``version`` the daily job's way. Passes when every answer is a well-formed rich
    transcription from that version, and, with ``--golden`` (expected texts of this checkpoint), when every answer
    is the expected one. The default golden set's texts belong to the fixture model, so they are not compared."""
    from sensevoice_pipeline.releases.golden import load_golden_set
    from sensevoice_pipeline.serving.client import SenseVoiceClient
    from sensevoice_pipeline.serving.recordings import RecordingTranscriber
    from sensevoice_pipeline.speech.tags import parse

    cases = load_golden_set(golden_dir)
    malformed, wrong_version, mismatched = 0, 0, 0
    async with SenseVoiceClient(url, version=version, max_concurrency=4, retries=2) as client:
        await client.check_ready()
        transcriber = RecordingTranscriber(client)
        for case in cases:
            transcript = await transcriber.transcribe_file(case.clip, case.language, case.use_itn)
            raw = tuple(transcript.raw_texts)
            malformed += any(parse(r).language is None for r in raw)
            wrong_version += any(v != str(version) for v in transcript.model_versions)
            mismatched += golden_dir is not None and case.expected is not None and raw != case.expected
    failures = [
        f"{n} {what}"
        for n, what in (
            (malformed, "answers without a language tag"),
            (wrong_version, "answers from another version"),
            (mismatched, "answers differ from expected.jsonl"),
        )
        if n
    ]
    judged = "texts compared" if golden_dir is not None else "texts not compared (default golden set)"
    verdict = (
        f"FAIL: {'; '.join(failures)}" if failures else f"pass ({len(cases)}/{len(cases)} answered, {judged})"
    )
    return {"cases": len(cases), "verdict": verdict}


# -- the run ----------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    plan = PLANS[args.device]
    if args.batch_sizes:
        plan = replace(plan, batch_sizes=tuple(args.batch_sizes))
    device = Device(args.device, args.device_id, args.conv_algo_search)
    started = time.perf_counter()
    problems = preflight(args.device, args.device_id)
    if problems:
        print("gpu-acceptance: cannot start, missing:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    out = Path(args.out or REPO_ROOT / "var" / "gpu-acceptance" / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    report = Report(header=_environment(device, plan))
    try:
        _run_steps(args, plan, device, out, report)
    except Exception as exc:  # noqa: BLE001 -- whatever stopped the run is the table's last row
        report.add(Row("stopped", "the run could not go on", f"FAIL: {_one_line(exc)}"))
    finally:
        report.header["wall time"] = f"{time.perf_counter() - started:.0f} s (after the interpreter started)"
        path = report.write(out)
        print("\n" + report.markdown() + f"\n(written to {path})")
    return 0 if report.passed else 1


def _run_steps(args, plan: Plan, device: Device, out: Path, report: Report) -> None:
    if device.kind == "cuda":
        _load_cuda_libraries()
    checkpoint, described = prepare_checkpoint(args.model, out, plan)
    report.add(Row("checkpoint", described, "ok"))
    if args.repository:
        repo = Path(args.repository)
        versions = existing_versions(checkpoint, repo)
        report.add(Row("export", f"reused {repo} versions {versions}", "ok (not exported now)"))
    else:
        repo = out / "model_repository"
        versions = export_all(checkpoint, repo, report)
    if set(versions) != set(PRECISIONS):
        report.add(Row("parity", "all", "skipped: an export failed"))
        return
    graph, feature_dim, config = load_reference(checkpoint, device)
    sessions = {}
    for precision, version in versions.items():
        onnx_path = ModelRepository(repo).version_dir(ENCODER_MODEL, version) / ENCODER_FILE
        sessions[precision] = encoder_session(onnx_path, device)
        report.add(
            parity_row(
                precision,
                device,
                parity_on_device(graph, sessions[precision], precision, feature_dim, device),
            )
        )
    frames = lfr_frames(plan.seconds, config)
    for batch_size in plan.batch_sizes:
        batch = throughput_batch(batch_size, frames, feature_dim)
        for precision, session in sessions.items():
            times = time_runs(ort_runner(session, batch), plan)
            report.add(throughput_row(f"onnxruntime {precision}", batch_size, times, plan.seconds))
        times = time_runs(torch_runner(graph, batch, device), plan)
        report.add(throughput_row("pytorch fp32", batch_size, times, plan.seconds))
    del graph, sessions  # give the GPU memory back before Triton starts on the same device
    if device.kind == "cuda":
        import torch

        torch.cuda.empty_cache()
    triton_step(repo, versions, Path(args.golden) if args.golden else None, args.image, device, report)


def _load_cuda_libraries() -> None:
    """torch first: its wheels bring CUDA and cuDNN, which onnxruntime-gpu then finds already loaded (onnxruntime
    docs, CUDA EP, "Compatibility with PyTorch"); ``preload_dlls`` (onnxruntime >= 1.21) makes that explicit."""
    import onnxruntime as ort
    import torch

    torch.zeros(1, device="cuda")
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def _environment(device: Device, plan: Plan) -> dict[str, str]:
    import onnxruntime as ort
    import torch

    header = {
        "run at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": device.torch_name,
        "torch": torch.__version__,
        "onnxruntime": f"{ort.__version__} ({device.provider})",
        "throughput": f"{plan.seconds:g} s of features per utterance, batches {list(plan.batch_sizes)}, "
        f"{plan.warmup} warm-up runs, then at least {plan.min_runs} timed runs",
    }
    if device.kind == "cuda":
        props = torch.cuda.get_device_properties(device.index)
        header["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, driver {_driver_version()}"
        header["cuda provider"] = ", ".join(f"{k}={v}" for k, v in device.ort_providers()[0][1].items())
    return header


def _driver_version() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu-acceptance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a SenseVoiceSmall checkpoint dir (default: a random full-size one)")
    parser.add_argument(
        "--device",
        choices=sorted(PLANS),
        default="cuda",
        help="cpu: CPU provider, micro checkpoint, tiny batches (what the test suite runs)",
    )
    parser.add_argument("--device-id", type=int, default=0)
    parser.add_argument("--out", help="output dir (default var/gpu-acceptance/<time>)")
    parser.add_argument(
        "--repository",
        help="check this repository's newest fp32 and fp16 versions instead of "
        "exporting (they must come from --model)",
    )
    parser.add_argument(
        "--golden",
        help="golden set with expected texts of --model (default: the fixture "
        "model's clips, answers checked for form only)",
    )
    parser.add_argument("--image", default=TRITON_IMAGE)
    parser.add_argument("--conv-algo-search", choices=CONV_ALGO_SEARCHES, default="HEURISTIC")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
