"""Model versions for platform teams: list them, stage a candidate beside the serving version, run a canary, promote,
roll back and retire, on a running Triton, without failed requests. `svp models ...` and the
`sensevoice_model_release` DAG call these functions.

What "serving" means
--------------------
Triton answers a request that names no version with the highest READY version of the model. The serving version
is therefore defined as *the highest version of `sensevoice` that the server has loaded*, and every operation here
keeps it equal to the one recorded in the repository:

* ``<repo>/serving.json`` records the serving version, the previous one (the rollback target), the staged
  candidate, retired versions and a short history. It is written atomically (temp file + rename) under a lock
  (``<repo>/.serving.lock``), so two operations never interleave.
* ``version_policy`` of both models in every config (``config.pbtxt`` and ``configs/*.pbtxt``) lists exactly the
  versions Triton loads: `sensevoice` = the serving version, plus the previous one as a warm standby when it is
  lower (a higher one would take the unpinned traffic); `sensevoice_encoder` = the same, plus the staged
  candidate. A restarted server comes back in the same state.
* Both models' versions move together: version N of `sensevoice` calls version N of `sensevoice_encoder` (BLS), so
  an encoder version is loaded before any pipeline version that needs it and unloaded only after it.
* A staged candidate is *not* loaded as a version of `sensevoice` (it would be the highest ready version and take
  the unpinned traffic at once). It is loaded as the model ``sensevoice_staged`` through Triton's load API with a
  config and files override: the same python model, config and files as ``sensevoice/<N>/``, calling
  ``sensevoice_encoder`` version N. Only the canary (and whoever names that model) reaches it.
* Promotion (and rollback) is one ``load_model("sensevoice")`` with the new version policy: Triton loads the new
  set in the background while the loaded versions keep answering, and switches when all are ready. No request
  fails; unpinned requests move to the new version at that instant. Clients that pin a version (``svp run
  --model-version``) keep it as long as it is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.serving.repository import (ENCODER_MODEL, META_FILE, MODELS, PIPELINE_MODEL, SERVING_FILE, ModelRepository,
                         versions_under_policy)

log = logging.getLogger(__name__)

LOCK_FILE = ".serving.lock"
STAGED_MODEL = "sensevoice_staged"
HISTORY_LIMIT = 50
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GOLDEN_DIR = PROJECT_ROOT / "export" / "fixture_model"  # clips/ + expected.jsonl of the fixture model
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"}


class ReleaseError(SvpError, RuntimeError):
    """A release operation was refused or failed; the message is one line and says what to do."""


# -- the serving record ----------------------------------------------------------------------------------------------


@dataclass
class ServingState:
    serving: int | None = None
    previous: int | None = None
    staged: int | None = None
    retired: list[int] = field(default_factory=list)
    updated_at: str | None = None
    history: list[dict] = field(default_factory=list)
    recorded: bool = False  # False: no serving.json yet, derived from the configs' version_policy

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("recorded")
        return d

    def note(self, action: str, **details) -> None:
        self.updated_at = _now_iso()
        self.history = (self.history + [{"at": self.updated_at, "action": action, **details}])[-HISTORY_LIMIT:]


def serving_path(repository: str | Path) -> Path:
    return Path(repository) / SERVING_FILE


def read_state(repository: str | Path) -> ServingState:
    """serving.json, or (before the first operation) what the configs' version_policy makes Triton serve."""
    repo = ModelRepository(repository)
    path = serving_path(repo.path)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReleaseError(f"{path} is unreadable ({exc}); fix or remove it") from exc
        known = {k: data.get(k) for k in ("serving", "previous", "staged", "updated_at")}
        return ServingState(**known, retired=list(data.get("retired") or []), history=list(data.get("history") or []),
                            recorded=True)
    loaded = policy_versions(repo.path, PIPELINE_MODEL)
    return ServingState(
        serving=max(loaded) if loaded else None,
        previous=sorted(loaded)[-2] if len(loaded) > 1 else None,
    )


def write_state(repository: str | Path, state: ServingState) -> Path:
    path = serving_path(repository)
    _write_atomic(path, json.dumps(state.to_dict(), indent=2) + "\n")
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


# -- version_policy in the configs -----------------------------------------------------------------------------------


def config_files(repository: str | Path, model: str) -> list[Path]:
    """Every config of ``model``: config.pbtxt (production) and configs/*.pbtxt (e.g. the local CPU one)."""
    mdir = Path(repository) / model
    files = [mdir / "config.pbtxt"] if (mdir / "config.pbtxt").is_file() else []
    return files + sorted((mdir / "configs").glob("*.pbtxt"))


def parse_config(path: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def policy_versions(repository: str | Path, model: str) -> list[int]:
    """The versions Triton loads for ``model`` under its config.pbtxt's version_policy."""
    repo = ModelRepository(repository)
    files = config_files(repo.path, model)
    if not files:
        return []
    policy = parse_config(files[0]).version_policy
    present = sorted(v for v in repo.versions() if repo.version_dir(model, v).is_dir())
    return versions_under_policy(policy, present)


def version_policy_text(versions: list[int]) -> str:
    return "version_policy: { specific: { versions: [ %s ] } }" % ", ".join(str(v) for v in sorted(set(versions)))


def replace_version_policy(text: str, versions: list[int]) -> str:
    """``text`` (a config.pbtxt) with its version_policy block replaced (or appended); comments and everything
    else stay as they are."""
    new = version_policy_text(versions)
    span = _find_field_block(text, "version_policy")
    if span is None:
        return text.rstrip("\n") + "\n" + new + "\n"
    start, end = span
    return text[:start] + new + text[end:]


def _find_field_block(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) of a top-level ``name: { ... }`` / ``name { ... }`` block, skipping comments and strings."""
    depth, i, n = 0, 0, len(text)
    pattern = re.compile(rf"{name}\s*:?\s*\{{")
    while i < n:
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if depth == 0 and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = pattern.match(text, i)
            if m:
                end = _matching_brace(text, m.end() - 1)
                return i, end
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        i += 1
    return None


def _matching_brace(text: str, open_at: int) -> int:
    depth, i = 0, open_at
    while i < len(text):
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        if c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ReleaseError("unbalanced braces in a config's version_policy")


def set_version_policy(repository: str | Path, model: str, versions: list[int]) -> dict[Path, str]:
    """Write ``version_policy: { specific: { versions: [...] } }`` into every config of ``model``, each file
    atomically; every result must parse as a Triton ModelConfig. Returns the old texts (for ``restore_configs``)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    if not versions:
        raise ReleaseError(f"refusing to give {model} an empty version policy")
    old: dict[Path, str] = {}
    new: dict[Path, str] = {}
    for path in config_files(repository, model):
        text = path.read_text()
        updated = replace_version_policy(text, versions)
        try:
            parsed = text_format.Parse(updated, model_config_pb2.ModelConfig())
        except text_format.ParseError as exc:
            raise ReleaseError(f"{path}: the edited config does not parse ({exc}); nothing was changed") from exc
        if sorted(parsed.version_policy.specific.versions) != sorted(set(versions)):
            raise ReleaseError(f"{path}: version_policy edit did not take; nothing was changed")
        old[path], new[path] = text, updated
    if not new:
        raise ReleaseError(f"{Path(repository) / model} has no config.pbtxt")
    for path, text in new.items():
        if text != old[path]:
            _write_atomic(path, text)
    return old


def restore_configs(old: dict[Path, str]) -> None:
    for path, text in old.items():
        _write_atomic(path, text)


# -- the server ------------------------------------------------------------------------------------------------------


class TritonControl:
    """Triton's repository API (explicit model-control mode) for one server."""

    def __init__(self, url: str, timeout_s: float = 600.0):
        import tritonclient.grpc as grpcclient

        self.url = url
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url)

    def check_live(self) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            live = self.client.is_server_live(client_timeout=5)
        except InferenceServerException as exc:
            raise ReleaseError(f"cannot reach Triton at {self.url}: {_message(exc)}") from exc
        if not live:
            raise ReleaseError(f"Triton at {self.url} is not live")

    def ready_versions(self, model: str) -> set[int]:
        """Versions of ``model`` in READY state (the staged model, loaded by override, is asked directly)."""
        if model == STAGED_MODEL:
            try:
                meta = self.client.get_model_metadata(STAGED_MODEL, client_timeout=10)
            except Exception:  # noqa: BLE001 -- not loaded
                return set()
            return {int(v) for v in meta.versions if self.client.is_model_ready(STAGED_MODEL, v, client_timeout=10)}
        index = self.client.get_model_repository_index(client_timeout=10)
        return {int(m.version) for m in index.models if m.name == model and m.state == "READY" and m.version}

    def load(self, model: str, config: str | None = None, files: dict[str, bytes] | None = None) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            self.client.load_model(model, config=config, files=files, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not load {model}: {_message(exc)}") from exc

    def unload(self, model: str) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            self.client.unload_model(model, client_timeout=60)
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not unload {model}: {_message(exc)}") from exc

    def loaded_config(self, model: str) -> dict:
        from tritonclient.utils import InferenceServerException

        try:
            return self.client.get_model_config(model, as_json=True, client_timeout=10)["config"]
        except InferenceServerException as exc:
            raise ReleaseError(
                f"{model} is not loaded on Triton at {self.url} ({_message(exc)}): promote a version first"
            ) from exc

    def close(self) -> None:
        self.client.close()


def _message(exc) -> str:
    text = exc.message() if hasattr(exc, "message") else str(exc)
    return " ".join((text or str(exc)).split())


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[TritonControl | None]:
    if url is None:
        yield None
        return
    control = TritonControl(url)
    try:
        control.check_live()
        yield control
    finally:
        control.close()


def _apply_policy(repo: ModelRepository, control: TritonControl | None, model: str, versions: list[int],
                  force: bool = False) -> float:
    """Give ``model`` exactly ``versions`` in its configs and (with a server) load that set; returns the seconds
    the load took. A failed load restores the configs; Triton keeps what it had loaded."""
    versions = sorted(set(versions))
    if control is not None and not force and control.ready_versions(model) == set(versions) \
            and policy_versions(repo.path, model) == versions:
        return 0.0
    old = set_version_policy(repo.path, model, versions)
    if control is None:
        return 0.0
    t0 = time.perf_counter()
    try:
        control.load(model)
    except ReleaseError:
        restore_configs(old)
        raise
    seconds = time.perf_counter() - t0
    ready = control.ready_versions(model)
    if not set(versions) <= ready:
        restore_configs(old)
        raise ReleaseError(f"Triton at {control.url} loaded {model} but versions "
                           f"{sorted(set(versions) - ready)} are not ready; see the server log")
    return seconds


def _pipeline_versions(serving: int, standby: int | None) -> list[int]:
    """`sensevoice` loads the serving version, and the previous one as warm standby only when it is lower (the
    highest ready version is the one unpinned requests reach)."""
    return sorted({serving} | ({standby} if standby is not None and standby < serving else set()))


# -- checks ----------------------------------------------------------------------------------------------------------


def _repository(repository: str | Path) -> ModelRepository:
    repo = ModelRepository(repository)
    if not repo.is_initialised():
        raise ReleaseError(f"{repo.path} is not a SenseVoice model repository (run `svp export` first)")
    return repo


def check_version(repo: ModelRepository, version: int, state: ServingState | None = None,
                  allow_retired: bool = False) -> None:
    versions = repo.versions()
    if version not in versions:
        have = ", ".join(map(str, versions)) or "none"
        raise ReleaseError(f"unknown version {version} (the repository has: {have})")
    info = repo.version_info(version)
    if not info.complete:
        raise ReleaseError(f"version {version} is incomplete: {'; '.join(info.problems)}")
    if state is not None and not allow_retired and version in state.retired:
        raise ReleaseError(f"version {version} is retired")


# -- operations ------------------------------------------------------------------------------------------------------


def stage(repository: str | Path, version: int, url: str) -> dict:
    """Load ``version`` beside the serving one as the model ``sensevoice_staged`` (and its encoder as a version of
    ``sensevoice_encoder``); the serving version and unpinned traffic are untouched."""
    repo = _repository(repository)
    if url is None:
        raise ReleaseError("stage needs a running Triton (--url)")
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state)
        if version == state.serving:
            raise ReleaseError(f"version {version} is already serving")
        with _server(url) as control:
            return _stage(repo, control, state, version)


def _stage(repo: ModelRepository, control: TritonControl, state: ServingState, version: int) -> dict:
    if state.staged is not None and state.staged != version:
        _unstage(repo, control, state)
    pipeline = sorted(control.ready_versions(PIPELINE_MODEL)) or policy_versions(repo.path, PIPELINE_MODEL)
    encoder_before = sorted(control.ready_versions(ENCODER_MODEL))
    config = control.loaded_config(PIPELINE_MODEL)
    t0 = time.perf_counter()
    _apply_policy(repo, control, ENCODER_MODEL, sorted(set(encoder_before) | set(pipeline) | {version}))
    config.update(name=STAGED_MODEL, version_policy={"specific": {"versions": [version]}})
    try:
        control.load(STAGED_MODEL, config=json.dumps(config), files=_version_files(repo, version))
    except ReleaseError:
        _apply_policy(repo, control, ENCODER_MODEL, sorted(set(pipeline)))
        raise
    state.staged = version
    state.note("stage", version=version, serving=state.serving)
    write_state(repo.path, state)
    seconds = time.perf_counter() - t0
    log.info("staged version %d beside serving version %s (%.1f s)", version, state.serving, seconds)
    return {"staged": version, "serving": state.serving, "model": STAGED_MODEL, "seconds": round(seconds, 2)}


def unstage(repository: str | Path, url: str | None) -> dict:
    """Unload the staged candidate ``sensevoice_staged`` (and its encoder version unless another role needs it) and
    forget it in serving.json; the serving version is untouched. ``svp models unstage`` and the release DAG's
    clean-up (whatever failed) call this. Idempotent: with nothing staged it changes nothing and says so
    (``unstaged`` None, ``unloaded`` False). Without ``url`` (a stopped Triton) it edits the repository only."""
    repo = _repository(repository)
    with locked(repo.path), _server(url) as control:
        state = read_state(repo.path)
        staged = state.staged
        loaded = control is not None and bool(control.ready_versions(STAGED_MODEL))
        if staged is None and not loaded:
            return {"unstaged": None, "unloaded": False, "serving": state.serving, "server": control is not None}
        _unstage(repo, control, state)
        write_state(repo.path, state)
    log.info("unstaged version %s (%s %s); serving version %s untouched", staged, STAGED_MODEL,
             "unloaded" if loaded else "was not loaded", state.serving)
    return {"unstaged": staged, "unloaded": loaded, "serving": state.serving, "server": url is not None}


def _unstage(repo: ModelRepository, control: TritonControl | None, state: ServingState) -> None:
    staged = state.staged
    if control is not None and control.ready_versions(STAGED_MODEL):
        control.unload(STAGED_MODEL)
    if state.serving is not None:
        _apply_policy(repo, control, ENCODER_MODEL, _pipeline_versions(state.serving, state.previous))
    state.staged = None
    state.note("unstage", version=staged)


def format_unstaged(result: dict) -> str:
    serving = result["serving"] if result["serving"] is not None else "-"
    if result["unstaged"] is None and not result["unloaded"]:
        return f"nothing is staged ({STAGED_MODEL} is not loaded); serving version {serving} untouched"
    what = f"version {result['unstaged']}" if result["unstaged"] is not None else "an unrecorded candidate"
    where = (f"{STAGED_MODEL} unloaded" if result["unloaded"]
             else f"{STAGED_MODEL} was not loaded" if result.get("server") else "repository only, --offline")
    return f"unstaged {what} ({where}); serving version {serving} untouched"


def promote(repository: str | Path, version: int | None = None, url: str | None = None,
            keep_previous: bool = True, action: str = "promote") -> dict:
    """Make ``version`` (default: the staged one) the serving version. With ``url``: load it beside the serving
    one, switch in one load, keep the old one loaded as warm standby when it is lower. Without: edit the repository
    only (it takes effect when Triton next starts or loads the models)."""
    repo = _repository(repository)
    with locked(repo.path):
        state = read_state(repo.path)
        if version is None:
            version = state.staged
            if version is None:
                raise ReleaseError("nothing is staged: name the version to promote")
        check_version(repo, version, state)
        old = state.serving
        with _server(url) as control:
            if version == old and (control is None
                                   or max(control.ready_versions(PIPELINE_MODEL), default=None) == old):
                return {"serving": version, "previous": state.previous, "switch_seconds": 0.0, "changed": False}
            result = _switch(repo, control, state, version, keep_previous, action)
    log.info("%s: version %s serves (was %s), switched in %.2f s", action, version, old, result["switch_seconds"])
    return result


def rollback(repository: str | Path, url: str | None = None) -> dict:
    """Serve the previous version again (the one the last promotion replaced)."""
    repo = _repository(repository)
    state = read_state(repo.path)
    if state.previous is None:
        raise ReleaseError("no previous version to roll back to")
    return promote(repo.path, state.previous, url, action="rollback")


def _switch(repo: ModelRepository, control: TritonControl | None, state: ServingState, version: int,
            keep_previous: bool, action: str) -> dict:
    old = state.serving
    staged_after = state.staged if state.staged != version else None
    pipeline = _pipeline_versions(version, old if keep_previous and old != version else None)
    encoder_after = sorted(set(pipeline) | ({staged_after} if staged_after is not None else set()))
    if control is not None:
        # 1. the encoder versions every pipeline version (old and new) needs, 2. the switch, 3. the clean-up.
        in_use = control.ready_versions(PIPELINE_MODEL) | control.ready_versions(ENCODER_MODEL)
        _apply_policy(repo, control, ENCODER_MODEL, sorted(in_use | set(encoder_after)))
    switch_seconds = _apply_policy(repo, control, PIPELINE_MODEL, pipeline, force=True)
    if control is not None:
        default = max(control.ready_versions(PIPELINE_MODEL), default=None)
        if default != version:
            raise ReleaseError(f"after the switch Triton at {control.url} answers unpinned requests with version "
                               f"{default}, not {version}; see the server log")
    state.previous = old if old != version else state.previous
    state.serving = version
    if state.staged == version:
        state.staged = None
    state.note(action, version=version, previous=state.previous, switch_seconds=round(switch_seconds, 3))
    write_state(repo.path, state)
    if control is not None and staged_after is None and control.ready_versions(STAGED_MODEL):
        control.unload(STAGED_MODEL)
    _apply_policy(repo, control, ENCODER_MODEL, encoder_after)
    return {"serving": version, "previous": state.previous, "pipeline_versions": pipeline,
            "encoder_versions": encoder_after, "switch_seconds": round(switch_seconds, 3), "changed": True}


def retire(repository: str | Path, version: int, url: str | None = None) -> dict:
    """Take ``version`` out of every role and unload it; it can no longer be staged or promoted (files are kept)."""
    repo = _repository(repository)
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state, allow_retired=True)
        if version == state.serving:
            raise ReleaseError(f"version {version} is serving: promote or roll back to another version first")
        with _server(url) as control:
            _retire(repo, control, state, version)
    return {"retired": version, "serving": state.serving, "previous": state.previous}


def _retire(repo: ModelRepository, control: TritonControl | None, state: ServingState, version: int) -> None:
    if state.staged == version:
        _unstage(repo, control, state)
    if state.previous == version:
        state.previous = None
    if version not in state.retired:
        state.retired = sorted(state.retired + [version])
    if state.serving is not None:
        pipeline = _pipeline_versions(state.serving, state.previous)
        _apply_policy(repo, control, PIPELINE_MODEL, pipeline)
        encoder = sorted(set(pipeline) | ({state.staged} if state.staged is not None else set()))
        _apply_policy(repo, control, ENCODER_MODEL, encoder)
    state.note("retire", version=version)
    write_state(repo.path, state)


def _version_files(repo: ModelRepository, version: int) -> dict[str, bytes]:
    """sensevoice/<version>/ as the files override of Triton's load API (``file:<version>/<path>``)."""
    vdir = repo.version_dir(PIPELINE_MODEL, version)
    return {
        f"file:{version}/{p.relative_to(vdir).as_posix()}": p.read_bytes()
        for p in sorted(vdir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


# -- list / show -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    version: int
    complete: bool
    problems: tuple[str, ...]
    role: str  # serving | previous | staged | retired | ""
    precision: str | None
    exporter: str | None
    source_sha256: str | None
    exported_at: str | None
    parity: dict
    server: str | None  # default | ready | staged | encoder | - ; None without a server
    meta: dict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = list(self.problems)
        return d


def source_checksum(meta: dict) -> str | None:
    """The checkpoint's fingerprint: the sha256 of its weights file (model.pt), else of all its files."""
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    sums = source.get("sha256") or {}
    if not isinstance(sums, dict) or not sums:
        return None
    weights = [v for k, v in sums.items() if k.endswith((".pt", ".pth", ".bin", ".safetensors"))]
    if weights:
        return weights[0]
    return hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()


def list_versions(repository: str | Path, url: str | None = None) -> tuple[list[VersionRow], ServingState, dict]:
    """Every version with its meta and roles; with ``url``, also what the server has loaded. The third item
    describes the server (url, default version, whether it agrees with serving.json)."""
    repo = _repository(repository)
    state = read_state(repo.path)
    server: dict = {}
    loaded: dict[str, set[int]] = {}
    with _server(url) as control:
        if control is not None:
            loaded = {m: control.ready_versions(m) for m in (*MODELS, STAGED_MODEL)}
            default = max(loaded[PIPELINE_MODEL], default=None)
            server = {"url": url, "default_version": default,
                      "agrees": state.serving is None or default == state.serving}
    rows = []
    for v in repo.versions():
        info = repo.version_info(v)
        meta = info.meta
        role = ("serving" if v == state.serving else "staged" if v == state.staged
                else "previous" if v == state.previous else "retired" if v in state.retired else "")
        where = None
        if loaded:
            if v == server.get("default_version"):
                where = "default"
            elif v in loaded[PIPELINE_MODEL]:
                where = "ready"
            elif v in loaded[STAGED_MODEL]:
                where = "staged"
            elif v in loaded[ENCODER_MODEL]:
                where = "encoder"
            else:
                where = "-"
        parity = meta.get("parity") if isinstance(meta.get("parity"), dict) else {}
        rows.append(VersionRow(
            version=v, complete=info.complete, problems=info.problems, role=role,
            precision=_text(meta.get("precision")), exporter=_text(meta.get("exporter")),
            source_sha256=source_checksum(meta), exported_at=_text(meta.get("exported_at")), parity=parity,
            server=where, meta=meta,
        ))
    return rows, state, server


def format_parity(parity: dict) -> str:
    if not parity:
        return "-"
    return (f"max|d| {_number(parity.get('max_abs')):.1e} cos {_number(parity.get('min_cosine')):.5f} "
            f"argmax {_number(parity.get('argmax_agreement')):.1%}")


def _number(value) -> float:
    """A figure of export_meta.json for display (NaN when absent or not a number: the meta check says why)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _text(value) -> str | None:
    return None if value is None else str(value)


def _source_model(meta: dict) -> str | None:
    source = meta.get("source")
    return _text(source.get("model")) if isinstance(source, dict) else None


def format_versions(rows: list[VersionRow], state: ServingState, server: dict) -> str:
    header = ["VERSION", "ROLE", "SERVER", "PRECISION", "SOURCE", "EXPORTED", "PARITY", "FILES"]
    table = [header]
    for r in rows:
        table.append([
            str(r.version), r.role or "-", r.server if r.server is not None else "?", r.precision or "-",
            (r.source_sha256 or "-")[:12], r.exported_at or "-", format_parity(r.parity),
            "complete" if r.complete else "incomplete",
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    origin = "serving.json" if state.recorded else "config version_policy (no serving.json yet)"
    lines.append(f"# serving {state.serving if state.serving is not None else '-'} "
                 f"(previous {state.previous if state.previous is not None else '-'}, "
                 f"staged {state.staged if state.staged is not None else '-'}) from {origin}")
    if server:
        lines.append(f"# Triton at {server['url']} answers unpinned requests with version "
                     f"{server['default_version'] if server['default_version'] is not None else '-'}"
                     + ("" if server["agrees"] else "  <-- differs from serving.json: run `svp models promote`"))
    else:
        lines.append("# SERVER ?: pass --url to see what a running Triton has loaded")
    return "\n".join(lines)


def show_version(repository: str | Path, version: int, url: str | None = None) -> dict:
    repo = _repository(repository)
    rows, state, server = list_versions(repo.path, url)
    for row in rows:
        if row.version == version:
            return {**row.to_dict(), "serving_state": state.to_dict(), "server_info": server}
    have = ", ".join(str(r.version) for r in rows) or "none"
    raise ReleaseError(f"unknown version {version} (the repository has: {have})")


def format_show(d: dict) -> str:
    lines = [
        f"version {d['version']}: {d['role'] or 'no role'}"
        + (f", on the server: {d['server']}" if d["server"] is not None else ""),
        f"  files:      {'complete' if d['complete'] else 'incomplete: ' + '; '.join(d['problems'])}",
        f"  precision:  {d['precision'] or '-'} ({d['exporter'] or '-'} exporter)",
        f"  source:     {_source_model(d['meta']) or '-'}  sha256 {d['source_sha256'] or '-'}",
        f"  exported:   {d['exported_at'] or '-'}",
        f"  parity:     {format_parity(d['parity'])}"
        + (f" ({'passed' if d['parity'].get('passed') else 'FAILED'})" if d["parity"] else ""),
        f"  {META_FILE}:",
        *("    " + line for line in json.dumps(d["meta"], indent=2).splitlines()),
    ]
    return "\n".join(lines)


# -- the canary ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryThresholds:
    min_transcript_agreement: float = 0.95  # share of golden cases whose text (tags removed) is the same
    min_emotion_agreement: float = 0.95  # share of golden cases with the same emotion tag
    max_latency_ratio: float = 1.5  # median latency staged / serving


@dataclass(frozen=True)
class GoldenCase:
    clip: Path
    language: str = "auto"
    use_itn: bool = True
    expected: str | None = None


def load_golden_set(golden_dir: str | Path | None = None) -> list[GoldenCase]:
    """``expected.jsonl`` (clip, language, use_itn, text per line, clip relative to the dir) when present, else
    every audio file of the dir with hint auto and ITN on. Default: the trained fixture model's clips."""
    root = Path(golden_dir) if golden_dir else DEFAULT_GOLDEN_DIR
    if not root.is_dir():
        raise ReleaseError(f"golden set {root} is not a directory")
    manifest = root / "expected.jsonl"
    if manifest.is_file():
        cases = []
        for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                cases.append(GoldenCase(root / d["clip"], d.get("language", "auto"), bool(d.get("use_itn", True)),
                                        d.get("text")))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ReleaseError(f"{manifest}:{n}: not a golden case ({exc})") from exc
    else:
        cases = [GoldenCase(p) for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]
    missing = [str(c.clip) for c in cases if not c.clip.is_file()]
    if missing:
        raise ReleaseError(f"golden set {root}: {len(missing)} clips are missing, e.g. {missing[0]}")
    if not cases:
        raise ReleaseError(f"golden set {root} has no clips")
    return cases


def run_canary(url: str, staged_version: int | None = None, golden_dir: str | Path | None = None,
               thresholds: CanaryThresholds | dict | None = None, serving_version: int | None = None,
               repository: str | Path | None = None) -> dict:
    """Send every golden case through the serving version (pinned) and the staged one, one request at a time,
    alternating; compare texts (tags removed), emotions and median latency. Without a serving version the
    golden set's expected texts are the baseline. Returns a JSON-serialisable result with ``passed``."""
    from sensevoice_pipeline.speech.audio import load_mono_16k

    if isinstance(thresholds, dict):
        thresholds = CanaryThresholds(**thresholds)
    thresholds = thresholds or CanaryThresholds()
    if repository is not None and (staged_version is None or serving_version is None):
        state = read_state(repository)
        staged_version = staged_version if staged_version is not None else state.staged
        serving_version = serving_version if serving_version is not None else state.serving
    if staged_version is None:
        raise ReleaseError("nothing is staged: stage a version before the canary")
    cases = load_golden_set(golden_dir)
    audios = {c.clip: load_mono_16k(c.clip) for c in cases}
    t0 = time.perf_counter()
    answers = asyncio.run(_canary_requests(url, cases, audios, staged_version, serving_version))
    result = _judge(cases, answers, thresholds, staged_version, serving_version)
    result.update(golden_dir=str(Path(golden_dir) if golden_dir else DEFAULT_GOLDEN_DIR),
                  seconds=round(time.perf_counter() - t0, 2))
    log.info("canary of version %s against %s: %s", staged_version, serving_version or "expected texts",
             "passed" if result["passed"] else "; ".join(result["reasons"]))
    return result


async def _canary_requests(url, cases, audios, staged_version, serving_version):
    from sensevoice_pipeline.serving.client import SenseVoiceClient, TritonClientError

    staged = SenseVoiceClient(url, model=STAGED_MODEL, version=staged_version, max_concurrency=1, retries=2)
    serving = SenseVoiceClient(url, version=serving_version, max_concurrency=1, retries=2)
    clients = {"staged": staged} | ({"serving": serving} if serving_version is not None else {})
    out: dict[str, list] = {name: [] for name in clients}
    try:
        for c in clients.values():
            await c.__aenter__()
            await c.check_ready()
            await c.transcribe(audios[cases[0].clip], cases[0].language, cases[0].use_itn)  # warm-up, not timed
        for i, case in enumerate(cases):
            order = list(clients.items()) if i % 2 == 0 else list(reversed(clients.items()))
            for name, c in order:
                t = time.perf_counter()
                answer = await c.transcribe(audios[case.clip], case.language, case.use_itn)
                out[name].append((answer.text, time.perf_counter() - t, answer.model_version))
    except TritonClientError as exc:
        raise ReleaseError(f"canary: {exc}") from exc
    finally:
        for c in clients.values():
            await c.close()
    return out


def _judge(cases, answers, thresholds: CanaryThresholds, staged_version, serving_version) -> dict:
    from sensevoice_pipeline.speech.tags import parse

    staged = answers["staged"]
    if "serving" in answers:
        baseline = [a[0] for a in answers["serving"]]
        baseline_name = f"serving version {serving_version}"
    else:
        baseline = [c.expected for c in cases]
        baseline_name = "expected texts of the golden set"
        if any(b is None for b in baseline):
            raise ReleaseError("nothing serves and the golden set has no expected texts: no baseline for the canary")
    pairs = [(parse(b), parse(s[0])) for b, s in zip(baseline, staged)]
    n = len(cases)
    transcript = sum(b.text == s.text for b, s in pairs) / n
    emotion = sum(b.emotion == s.emotion for b, s in pairs) / n
    language = sum(b.language == s.language for b, s in pairs) / n
    event = sum(b.event == s.event for b, s in pairs) / n
    staged_ms = statistics.median(a[1] for a in staged) * 1000
    serving_ms = statistics.median(a[1] for a in answers["serving"]) * 1000 if "serving" in answers else None
    ratio = staged_ms / serving_ms if serving_ms else None
    reasons = []
    if transcript < thresholds.min_transcript_agreement:
        reasons.append(f"transcript agreement {transcript:.3f} < {thresholds.min_transcript_agreement}")
    if emotion < thresholds.min_emotion_agreement:
        reasons.append(f"emotion agreement {emotion:.3f} < {thresholds.min_emotion_agreement}")
    if ratio is not None and ratio > thresholds.max_latency_ratio:
        reasons.append(f"latency ratio {ratio:.2f} > {thresholds.max_latency_ratio}")
    expected = [c.expected for c in cases]
    match = lambda texts: (sum(t == e for t, e in zip(texts, expected)) / n  # noqa: E731
                           if all(e is not None for e in expected) else None)
    disagreements = [
        {"clip": c.clip.name, "language": c.language, "use_itn": c.use_itn, "baseline": b.raw, "staged": s.raw}
        for c, (b, s) in zip(cases, pairs) if b.text != s.text or b.emotion != s.emotion
    ]
    return {
        "passed": not reasons,
        "reasons": reasons,
        "staged_version": staged_version,
        "serving_version": serving_version,
        "baseline": baseline_name,
        "cases": n,
        "transcript_agreement": round(transcript, 4),
        "emotion_agreement": round(emotion, 4),
        "language_agreement": round(language, 4),
        "event_agreement": round(event, 4),
        "expected_match_staged": _round(match([s[0] for s in staged])),
        "expected_match_serving": _round(match(baseline)) if "serving" in answers else None,
        "latency_staged_ms": round(staged_ms, 2),
        "latency_serving_ms": _round(serving_ms, 2),
        "latency_ratio": _round(ratio, 3),
        "answered_versions": sorted({a[2] for side in answers.values() for a in side}),
        "thresholds": asdict(thresholds),
        "disagreements": disagreements[:20],
    }


# -- a whole release (the DAG's tasks, and `release()` for one process) ----------------------------------------------


def export_version(checkpoint: str, repository: str | Path, precision: str = "fp32", exporter: str = "legacy") -> dict:
    """Export ``checkpoint`` as the next version (both models). The export refuses on a parity failure and then
    writes nothing. Needs the [export] extra (torch, funasr) where it runs."""
    try:
        from export.pipeline import run_export
    except ImportError as exc:
        raise ReleaseError(f"the export step needs torch and funasr here (pip install -e '.[export]'): {exc}") from exc
    result = run_export(str(checkpoint), repository, precision, exporter)
    meta = result.meta
    return {
        "version": result.version,
        "repository": str(result.repository),
        "precision": meta["precision"],
        "exporter": meta["exporter"],
        "source_model": (meta.get("source") or {}).get("model"),
        "source_sha256": source_checksum(meta),
        "exported_at": meta.get("exported_at"),
        "parity": meta.get("parity") or {},
    }


def conclude_release(repository: str | Path, url: str, canary: dict) -> dict:
    """Promote the staged version when its canary passed; otherwise unload it and leave serving untouched."""
    version = canary["staged_version"]
    if canary["passed"]:
        result = promote(repository, version, url)
        return {"outcome": "promoted", "version": version, "serving": result["serving"],
                "previous": result["previous"], "switch_seconds": result["switch_seconds"], "reasons": []}
    unstage(repository, url)
    state = read_state(repository)
    log.warning("release of version %s refused: %s", version, "; ".join(canary["reasons"]))
    return {"outcome": "refused", "version": version, "serving": state.serving, "previous": state.previous,
            "switch_seconds": None, "reasons": canary["reasons"]}


# The steps of a release, in order (the DAG's tasks are export_model, stage, canary, promote_or_discard).
RELEASE_STEPS = ("export", "stage", "canary", "promote")


def describe_error(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line for a report: its type and its first lines of message."""
    text = " ".join(str(exc).split()) or repr(exc)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def failed_decision(repository: str | Path, step: str, error: str, candidate: int | None = None,
                    serving_before: int | None = None, unstaged: dict | None = None,
                    cleanup_error: str | None = None) -> dict:
    """The decision of a release that did not conclude: ``step`` raised ``error``. What serves now is read back
    from the repository (a failed stage or canary leaves it untouched)."""
    try:
        state = read_state(repository)
        serving, previous = state.serving, state.previous
    except (ReleaseError, OSError):
        serving = previous = None
    if serving_before is None and step in ("export", "stage", "canary"):
        serving_before = serving  # those steps never touch the serving version
    reasons = [f"{step} failed: {error}"]
    if cleanup_error:
        reasons.append(f"unstage failed: {cleanup_error}")
    return {"outcome": "failed", "version": candidate, "serving": serving, "previous": previous,
            "switch_seconds": None, "reasons": reasons, "failed_step": step, "error": error,
            "serving_before": serving_before, "unstaged": unstaged}


def abandon_release(repository: str | Path, url: str | None, step: str, error: str, candidate: int | None = None,
                    serving_before: int | None = None) -> dict:
    """After a failed step: unload whatever is staged (nothing was staged when the export failed), then the
    ``failed`` decision. Never raises for the clean-up: a failed unstage becomes one of the reasons."""
    unstaged, cleanup_error = None, None
    if step != "export":
        try:
            unstaged = unstage(repository, url)
        except Exception as exc:  # noqa: BLE001 -- recorded in the report; the step's own error is what is raised
            cleanup_error = describe_error(exc)
            log.error("could not unstage after the failed %s: %s", step, cleanup_error)
    return failed_decision(repository, step, error, candidate, serving_before, unstaged, cleanup_error)


def check_report_root(lake_root: str | Path) -> Path:
    """Release reports and the ``model_releases`` table need a local (or mounted) lake root: appending a row takes
    a file lock. Checked before a release starts, so a release is never promoted and then left without its report."""
    if str(lake_root).startswith("s3://"):
        raise ReleaseError(f"model releases write their report and table under a local lake root, not {lake_root}: "
                           "give a local path (or a mounted bucket) as lake_root")
    return Path(lake_root)


def write_release_report(lake_root: str | Path, release_id: str, exported: dict, canary: dict | None,
                         decision: dict, started_at: str | None = None, report_dir: str | Path | None = None) -> dict:
    """The release report as JSON (``<lake>/release_reports/<release_id>.json`` unless ``report_dir``) and as a
    row of the ``model_releases`` table (partition = the UTC day the release finished; re-running a release id
    replaces its row). Returns the row and the report's path. DuckDB reads the table through the warehouse's
    ``model_releases`` view."""
    lake_root = check_report_root(lake_root)
    finished = dt.datetime.now(dt.timezone.utc)
    safe_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", release_id)
    report_path = Path(report_dir or lake_root / "release_reports") / f"{safe_id}.json"
    report = {
        "release_id": release_id,
        "started_at": started_at,
        "finished_at": finished.isoformat(timespec="seconds"),
        "outcome": decision["outcome"],
        "export": exported,
        "canary": canary,
        "decision": decision,
    }
    _write_atomic(report_path, json.dumps(report, indent=2, default=str) + "\n")
    canary = canary or {}
    thresholds = canary.get("thresholds") or {}
    parity = exported.get("parity") or {}
    row = {
        "release_id": release_id,
        "started_at": _parse_time(started_at) or finished,
        "finished_at": finished,
        "outcome": decision["outcome"],
        "candidate_version": _str(exported.get("version", decision.get("version"))),
        "serving_before": _str(canary.get("serving_version", decision.get("serving_before"))),
        "serving_after": _str(decision.get("serving")),
        "precision": exported.get("precision"),
        "exporter": exported.get("exporter"),
        "source_model": exported.get("source_model"),
        "source_sha256": exported.get("source_sha256"),
        "parity_max_abs": parity.get("max_abs"),
        "parity_min_cosine": parity.get("min_cosine"),
        "parity_argmax_agreement": parity.get("argmax_agreement"),
        "golden_cases": canary.get("cases"),
        "transcript_agreement": canary.get("transcript_agreement"),
        "emotion_agreement": canary.get("emotion_agreement"),
        "latency_serving_ms": canary.get("latency_serving_ms"),
        "latency_staged_ms": canary.get("latency_staged_ms"),
        "latency_ratio": canary.get("latency_ratio"),
        "min_transcript_agreement": thresholds.get("min_transcript_agreement"),
        "min_emotion_agreement": thresholds.get("min_emotion_agreement"),
        "max_latency_ratio": thresholds.get("max_latency_ratio"),
        "switch_seconds": decision.get("switch_seconds"),
        "reasons": "; ".join(decision.get("reasons") or []) or None,
        "report_path": str(report_path),
    }
    date = finished.date().isoformat()
    partition = _append_release_row(lake_root, date, row)
    return {"outcome": decision["outcome"], "report": str(report_path), "table": str(partition), "date": date,
            "row": {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}}


def _append_release_row(lake_root: str | Path, date: str, row: dict) -> Path:
    """The row into the lake's ``model_releases`` table (catalog.py), replacing an earlier row of the same release
    id; returns the catalog holding it."""
    import pyarrow as pa

    from sensevoice_pipeline.lake import tables
    from sensevoice_pipeline.lake.catalog import Lake

    the_lake = Lake(lake_root, os.environ.get("SVP_CATALOG") or None)
    the_lake.replace_rows("model_releases", date, "release_id", pa.Table.from_pylist([row], schema=tables.MODEL_RELEASES))
    return the_lake.catalog_path


class ReleaseRefused(ReleaseError):
    """The canary refused the candidate (serving was left untouched)."""


class ReleaseFailed(ReleaseError):
    """A step of the release raised (export, stage, canary or promote); the candidate was unstaged and the report
    written with outcome ``failed``."""


def check_outcome(report: dict, fail_on_refusal: bool = True) -> dict:
    """After the report: raise ReleaseFailed for a failed release (always) and ReleaseRefused for a refused one
    when asked to, so that a DAG run shows it."""
    if report["outcome"] == "failed":
        reasons = report["row"].get("reasons") or "a step failed"
        raise ReleaseFailed(f"release {report['row']['release_id']} failed ({reasons}); serving version "
                            f"{report['row']['serving_after']}; report {report['report']}")
    if report["outcome"] != "promoted" and fail_on_refusal:
        reasons = report["row"].get("reasons") or "canary failed"
        raise ReleaseRefused(f"release {report['row']['release_id']} refused ({reasons}); serving version "
                             f"{report['row']['serving_after']} untouched; report {report['report']}")
    return report


def release(checkpoint: str, repository: str | Path, url: str, lake_root: str | Path,
            precision: str = "fp32", exporter: str = "legacy", golden_dir: str | Path | None = None,
            thresholds: CanaryThresholds | dict | None = None, release_id: str | None = None) -> dict:
    """The whole release in one process (the DAG runs the same steps as tasks): export, stage, canary, promote or
    discard, report. Returns the report summary (see ``write_release_report``). When a step raises, the candidate
    is unstaged and the report written with outcome ``failed`` (and the step's reason) before the error goes on."""
    check_report_root(lake_root)
    started = _now_iso()
    release_id = release_id or f"release-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}"
    exported: dict = {}
    staged: dict = {}
    canary = None
    step = RELEASE_STEPS[0]
    try:
        exported = export_version(checkpoint, repository, precision, exporter)
        step = "stage"
        staged = stage(repository, exported["version"], url)
        step = "canary"
        canary = run_canary(url, staged["staged"], golden_dir, thresholds, serving_version=staged["serving"])
        step = "promote"
        decision = conclude_release(repository, url, canary)
    except Exception as exc:
        decision = abandon_release(repository, url, step, describe_error(exc), exported.get("version"),
                                   staged.get("serving"))
        try:
            write_release_report(lake_root, release_id, exported, canary, decision, started_at=started)
        except Exception:  # noqa: BLE001 -- the step's error is the one to raise
            log.exception("could not write the report of the failed release %s", release_id)
        raise
    return write_release_report(lake_root, release_id, exported, canary, decision, started_at=started)


# -- helpers ---------------------------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _parse_time(value) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _str(value) -> str | None:
    return None if value is None else str(value)


def _round(value, digits: int = 4):
    return None if value is None else round(value, digits)
