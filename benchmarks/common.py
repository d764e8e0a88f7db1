"""Shared bits of the benchmark: sizes of a run, paths under the work dir, logging, timing and memory helpers."""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / "var" / "bench"
PRECISIONS = ("fp32", "int8")
BENCH_DATE = "2025-06-01"
FIXTURE_MODEL_DIR = REPO_ROOT / "export" / "fixture_model"  # the raw partition that (d) processes


@dataclass(frozen=True)
class Sizes:
    """Everything that makes a full run different from a --quick smoke run."""

    name: str  # full | quick
    model: str  # full (234 M, the real architecture, random weights) | fixture (export/fixture_model, 0.26 M)
    clips_total_s: float  # at least this much audio in clips of clip_min_s..clip_max_s
    clip_min_s: float
    clip_max_s: float
    call_s: float  # the long call (goes through VAD)
    funasr_whole_max_s: float  # funasr gets the whole call if it is at most this long, else prefixes + a fit
    funasr_prefixes_s: tuple[float, ...]
    funasr_chunked_s: float  # how much of the call funasr also runs as plain 30 s chunks
    bi_rows_per_day: int
    bi_days: int
    bi_templates: int  # distinct generated days, copied round-robin onto the year
    bi_repeats: int
    bi_view_repeats: int
    bi_rollup_ranges: tuple[int, ...]  # days back from the last date; 0 = all
    bi_view_ranges: tuple[int, ...]
    concurrency: int = 8
    serial_triton: bool = True  # also run Triton one request at a time (the cleanest overhead figure) ...
    serial_clips_s: float = 90.0  # ... on the first clips, this much audio (also (a) against (b), paired)

    def to_dict(self) -> dict:
        return asdict(self)


FULL = Sizes(
    name="full",
    model="full",
    clips_total_s=600.0,
    clip_min_s=3.0,
    clip_max_s=30.0,
    call_s=1800.0,
    funasr_whole_max_s=240.0,
    funasr_prefixes_s=(30.0, 60.0, 90.0, 120.0),
    funasr_chunked_s=90.0,
    bi_rows_per_day=500_000,
    bi_days=365,
    bi_templates=7,
    bi_repeats=20,
    bi_view_repeats=3,
    bi_rollup_ranges=(30, 0),
    bi_view_ranges=(1, 7, 30),
)

QUICK = Sizes(
    name="quick",
    model="fixture",  # trained: int8 passes the export's parity gate (a random micro model's flat logits do not)
    clips_total_s=24.0,
    clip_min_s=3.0,
    clip_max_s=8.0,
    call_s=50.0,
    funasr_whole_max_s=240.0,
    funasr_prefixes_s=(10.0, 20.0, 40.0),
    funasr_chunked_s=50.0,
    bi_rows_per_day=2_000,
    bi_days=5,
    bi_templates=2,
    bi_repeats=3,
    bi_view_repeats=2,
    bi_rollup_ranges=(2, 0),
    bi_view_ranges=(1, 0),
    serial_triton=True,
    serial_clips_s=1e9,
)


@dataclass
class Paths:
    workdir: Path

    @property
    def model_root(self) -> Path:  # per model size: checkpoint + one repository per precision
        return self.workdir / "models"

    def checkpoint(self, model: str) -> Path:
        if model == "fixture":
            return FIXTURE_MODEL_DIR
        return self.model_root / model / "checkpoint"

    def repository(self, model: str, precision: str) -> Path:
        return self.model_root / model / f"repo-{precision}"

    def audio_root(self, sizes: Sizes) -> Path:
        return self.workdir / f"audio-{sizes.name}"

    def raw_root(self, sizes: Sizes) -> Path:
        return self.audio_root(sizes) / "raw"

    def lake_root(self, sizes: Sizes) -> Path:
        return self.workdir / f"lake-{sizes.name}"  # (d) writes its tables here

    def bi_root(self, sizes: Sizes) -> Path:
        return self.workdir / f"bi-{sizes.bi_rows_per_day}x{sizes.bi_days}-t{sizes.bi_templates}"

    @property
    def profile_dir(self) -> Path:
        return self.workdir / "profile"


# -- logging ---------------------------------------------------------------------------------------------------------

_PREFIX = os.environ.get("SVP_BENCH_PREFIX", "bench")


def set_prefix(prefix: str) -> None:
    global _PREFIX
    _PREFIX = prefix


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} {_PREFIX}] {message}", file=sys.stderr, flush=True)


def progress(iterable, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm bar on a terminal; otherwise (make bench > log, pytest) a log line every 20 s and one at the end."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(
            iterable, total=total, desc=f"[{_PREFIX}] {desc}", unit=unit, file=sys.stderr, dynamic_ncols=True
        )
        return
    items = list(iterable)
    t0 = last = time.perf_counter()
    for i, item in enumerate(items):
        yield item
        now = time.perf_counter()
        if now - last >= 20.0 and i + 1 < len(items):
            log(f"{desc}: {i + 1}/{len(items)} {unit}s, {now - t0:.0f} s")
            last = now
    log(f"{desc}: {len(items)}/{len(items)} {unit}s in {time.perf_counter() - t0:.1f} s")


# -- measurement helpers ---------------------------------------------------------------------------------------------


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB). For RUSAGE_CHILDREN: the largest single
    waited-for descendant, not their sum."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Timers:
    """Wall time per named stage, accumulated by wrapping callables."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()  # the daily job times stages in worker threads (asyncio.to_thread)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, name: str, fn):
        """A stand-in for ``fn`` that times its calls and passes attribute reads through (``frontend.config``)."""
        return _Timed(self, name, fn)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class _Timed:
    def __init__(self, timers: Timers, name: str, fn):
        self._timers, self._name, self._fn = timers, name, fn

    def __get__(self, obj, owner=None):
        """Set on a class (a method such as ``LocalRoot.fetch``), it binds to the instance like the method did."""
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._fn(*args, **kwargs)
        finally:
            self._timers.add(self._name, time.perf_counter() - t0)

    def __getattr__(self, attr):
        return getattr(self._fn, attr)


@dataclass
class TreeSampler:
    """Samples the memory of a process and all its descendants (Triton and its python-backend stubs) in a thread.

    ``rss`` sums resident sets (counts shared pages once per process: an over-estimate); ``pss`` shares them out
    (the honest total), read from smaps_rollup less often because it costs more.
    """

    pid: int
    interval_s: float = 0.2
    pss_every: int = 5
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    peak_largest_mb: float = 0.0
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak_rss_mb = self.peak_pss_mb = self.peak_largest_mb = 0.0

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            if not self._sample(pss=n % self.pss_every == 0):
                return
            n += 1
            self._stop.wait(self.interval_s)

    def _sample(self, pss: bool) -> bool:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return False
        rss_sum, pss_sum, largest = 0.0, 0.0, 0.0
        for p in procs:
            try:
                info = p.memory_full_info() if pss else p.memory_info()
            except psutil.Error:
                continue
            rss_sum += info.rss / 2**20
            largest = max(largest, info.rss / 2**20)
            if pss:
                pss_sum += getattr(info, "pss", info.rss) / 2**20
        self.processes = max(self.processes, len(procs))
        self.peak_rss_mb = max(self.peak_rss_mb, rss_sum)
        self.peak_largest_mb = max(self.peak_largest_mb, largest)
        if pss:
            self.peak_pss_mb = max(self.peak_pss_mb, pss_sum)
        return True

    def snapshot(self) -> dict:
        """The peaks since the last reset, including one sample taken now (short phases may fall between two)."""
        self._sample(pss=True)
        return {
            "peak_rss_sum_mb": round(self.peak_rss_mb, 1),
            "peak_pss_sum_mb": round(self.peak_pss_mb, 1),
            "peak_largest_process_mb": round(self.peak_largest_mb, 1),
            "processes": self.processes,
        }

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.snapshot()


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def rtfx(audio_s: float, wall_s: float) -> float:
    return audio_s / wall_s if wall_s > 0 else float("nan")


def machine_speed(seconds: float = 0.5) -> float:
    """GFLOP/s of float32 matrix products (numpy's BLAS, all its threads) over about ``seconds``: a yardstick of
    how much CPU the other users of this machine left us, taken before and after the run."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ a
        n += 1
    return round(2 * 512**3 * n / (time.perf_counter() - t0) / 1e9, 1)


def local_encoder_instances() -> int:
    """How many `sensevoice_encoder` instances the local Triton config runs (the bench's repositories are exported
    with the project's configs): the Triton side shares ``--threads`` out among them, and the encoder floor runs
    that many sessions side by side."""
    from sensevoice_pipeline.serving.repository import ModelRepository, template_root

    return ModelRepository(template_root()).local_encoder_instances()


def triton_threads_each(threads: int) -> int:
    return max(1, threads // local_encoder_instances())
