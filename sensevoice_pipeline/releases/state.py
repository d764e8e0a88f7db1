"""The release record of a model repository: ``<repo>/serving.json`` (the serving version, the previous one, the
staged candidate, retired versions and a short history), the lock that serialises release operations, and the
checks every operation makes before it touches a repository or a version.

serving.json is written atomically (temp file + rename) under the lock ``<repo>/.serving.lock``, so two operations
never interleave. Before the first operation there is no serving.json: the state is then what the configs'
version_policy makes Triton serve.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sensevoice_pipeline.atomic import write_atomic
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.policy import policy_versions
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL, SERVING_FILE, ModelRepository

LOCK_FILE = ".serving.lock"
HISTORY_LIMIT = 50


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class ServingState:
    serving: int | None = None
    previous: int | None = None
    staged: int | None = None
    retired: list[int] = field(default_factory=list)
    # An s3:// repository every change of this one is published to before any server loads it (remote.py,
    # `svp models mirror`); None: the servers read this folder itself.
    mirror: str | None = None
    updated_at: str | None = None
    history: list[dict] = field(default_factory=list)
    recorded: bool = False  # False: no serving.json yet, derived from the configs' version_policy

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("recorded")
        return d

    def note(self, action: str, **details) -> None:
        self.updated_at = now_iso()
        self.history = (self.history + [{"at": self.updated_at, "action": action, **details}])[
            -HISTORY_LIMIT:
        ]


def serving_path(repository: str | Path) -> Path:
    return Path(repository) / SERVING_FILE


def read_state(repository: str | Path) -> ServingState:
    """serving.json, or (before the first operation) what the configs' version_policy makes Triton serve."""
    repo = ModelRepository(repository)
    path = serving_path(repo.path)
    if path.is_file():
        return _recorded_state(path)
    loaded = policy_versions(repo.path, PIPELINE_MODEL)
    return ServingState(
        serving=max(loaded) if loaded else None,
        previous=sorted(loaded)[-2] if len(loaded) > 1 else None,
    )


def _recorded_state(path: Path) -> ServingState:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{path} is unreadable ({exc}); fix or remove it") from exc
    known = {k: data.get(k) for k in ("serving", "previous", "staged", "mirror", "updated_at")}
    return ServingState(
        **known,
        retired=list(data.get("retired") or []),
        history=list(data.get("history") or []),
        recorded=True,
    )


def write_state(repository: str | Path, state: ServingState) -> Path:
    path = serving_path(repository)
    write_atomic(path, json.dumps(state.to_dict(), indent=2) + "\n")
    state.recorded = True
    return path


@contextlib.contextmanager
def locked(repository: str | Path, timeout_s: float = 120.0) -> Iterator[None]:
    """One release operation at a time per repository (across processes)."""
    path = Path(repository) / LOCK_FILE
    if not Path(repository).is_dir():
        raise ReleaseError(f"{repository} is not a model repository")
    with open(path, "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ReleaseError(f"another release operation holds {path}; try again later") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_repository(repository: str | Path) -> ModelRepository:
    """The repository, refused unless an export initialised it."""
    repo = ModelRepository(repository)
    if not repo.is_initialised():
        raise ReleaseError(f"{repo.path} is not a SenseVoice model repository (run `svp export` first)")
    return repo


def check_version(
    repo: ModelRepository, version: int, state: ServingState | None = None, allow_retired: bool = False
) -> None:
    """Refuse an unknown or incomplete version, and (unless ``allow_retired``) a retired one."""
    versions = repo.versions()
    if version not in versions:
        have = ", ".join(map(str, versions)) or "none"
        raise ReleaseError(f"unknown version {version} (the repository has: {have})")
    info = repo.version_info(version)
    if not info.complete:
        raise ReleaseError(f"version {version} is incomplete: {'; '.join(info.problems)}")
    if state is not None and not allow_retired and version in state.retired:
        raise ReleaseError(f"version {version} is retired")
