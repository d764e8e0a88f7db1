"""Moving versions between roles on a running Triton, without failed requests: stage a candidate beside the serving
version, unstage it, promote, roll back, retire. `svp models ...` and the release orchestrator call these.

What "serving" means
--------------------
Triton answers a request that names no version with the highest READY version of the model. The serving version
is therefore defined as *the highest version of `sensevoice` that the server has loaded*, and every operation here
keeps it equal to the one recorded in the repository's serving.json (state.py):

* ``version_policy`` of both models in every config (``config.pbtxt`` and ``configs/*.pbtxt``, policy.py) lists
  exactly the versions Triton loads: `sensevoice` = the serving version, plus the previous one as a warm standby
  when it is lower (a higher one would take the unpinned traffic); `sensevoice_encoder` = the same, plus the staged
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

import json
import logging
import time
from pathlib import Path

from sensevoice_pipeline.releases.control import STAGED_MODEL, TritonControl, open_control
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.policy import pipeline_versions, policy_versions, restore_configs, set_version_policy
from sensevoice_pipeline.releases.state import (ServingState, check_version, locked, open_repository, read_state,
                                                write_state)
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL, ModelRepository

log = logging.getLogger(__name__)


# -- stage / unstage -------------------------------------------------------------------------------------------------


def stage(repository: str | Path, version: int, url: str) -> dict:
    """Load ``version`` beside the serving one as the model ``sensevoice_staged`` (and its encoder as a version of
    ``sensevoice_encoder``); the serving version and unpinned traffic are untouched."""
    repo = open_repository(repository)
    if url is None:
        raise ReleaseError("stage needs a running Triton (--url)")
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state)
        if version == state.serving:
            raise ReleaseError(f"version {version} is already serving")
        with open_control(url) as control:
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


def _version_files(repo: ModelRepository, version: int) -> dict[str, bytes]:
    """sensevoice/<version>/ as the files override of Triton's load API (``file:<version>/<path>``)."""
    vdir = repo.version_dir(PIPELINE_MODEL, version)
    return {
        f"file:{version}/{p.relative_to(vdir).as_posix()}": p.read_bytes()
        for p in sorted(vdir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def unstage(repository: str | Path, url: str | None) -> dict:
    """Unload the staged candidate ``sensevoice_staged`` (and its encoder version unless another role needs it) and
    forget it in serving.json; the serving version is untouched. ``svp models unstage`` and the release's clean-up
    (whatever failed) call this. Idempotent: with nothing staged it changes nothing and says so (``unstaged``
    None, ``unloaded`` False). Without ``url`` (a stopped Triton) it edits the repository only."""
    repo = open_repository(repository)
    with locked(repo.path), open_control(url) as control:
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
        _apply_policy(repo, control, ENCODER_MODEL, pipeline_versions(state.serving, state.previous))
    state.staged = None
    state.note("unstage", version=staged)


def format_unstaged(result: dict) -> str:
    """What ``svp models unstage`` prints for ``unstage``'s result."""
    serving = result["serving"] if result["serving"] is not None else "-"
    if result["unstaged"] is None and not result["unloaded"]:
        return f"nothing is staged ({STAGED_MODEL} is not loaded); serving version {serving} untouched"
    what = f"version {result['unstaged']}" if result["unstaged"] is not None else "an unrecorded candidate"
    where = (f"{STAGED_MODEL} unloaded" if result["unloaded"]
             else f"{STAGED_MODEL} was not loaded" if result.get("server") else "repository only, --offline")
    return f"unstaged {what} ({where}); serving version {serving} untouched"


# -- promote / rollback ----------------------------------------------------------------------------------------------


def promote(repository: str | Path, version: int | None = None, url: str | None = None,
            keep_previous: bool = True, action: str = "promote") -> dict:
    """Make ``version`` (default: the staged one) the serving version. With ``url``: load it beside the serving
    one, switch in one load, keep the old one loaded as warm standby when it is lower. Without: edit the repository
    only (it takes effect when Triton next starts or loads the models)."""
    repo = open_repository(repository)
    with locked(repo.path):
        state = read_state(repo.path)
        if version is None:
            version = state.staged
            if version is None:
                raise ReleaseError("nothing is staged: name the version to promote")
        check_version(repo, version, state)
        old = state.serving
        with open_control(url) as control:
            if version == old and (control is None
                                   or max(control.ready_versions(PIPELINE_MODEL), default=None) == old):
                return {"serving": version, "previous": state.previous, "switch_seconds": 0.0, "changed": False}
            result = _switch(repo, control, state, version, keep_previous, action)
    log.info("%s: version %s serves (was %s), switched in %.2f s", action, version, old, result["switch_seconds"])
    return result


def rollback(repository: str | Path, url: str | None = None) -> dict:
    """Serve the previous version again (the one the last promotion replaced)."""
    repo = open_repository(repository)
    state = read_state(repo.path)
    if state.previous is None:
        raise ReleaseError("no previous version to roll back to")
    return promote(repo.path, state.previous, url, action="rollback")


def _switch(repo: ModelRepository, control: TritonControl | None, state: ServingState, version: int,
            keep_previous: bool, action: str) -> dict:
    old = state.serving
    staged_after = state.staged if state.staged != version else None
    pipeline = pipeline_versions(version, old if keep_previous and old != version else None)
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


# -- retire ----------------------------------------------------------------------------------------------------------


def retire(repository: str | Path, version: int, url: str | None = None) -> dict:
    """Take ``version`` out of every role and unload it; it can no longer be staged or promoted (files are kept)."""
    repo = open_repository(repository)
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state, allow_retired=True)
        if version == state.serving:
            raise ReleaseError(f"version {version} is serving: promote or roll back to another version first")
        with open_control(url) as control:
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
        pipeline = pipeline_versions(state.serving, state.previous)
        _apply_policy(repo, control, PIPELINE_MODEL, pipeline)
        encoder = sorted(set(pipeline) | ({state.staged} if state.staged is not None else set()))
        _apply_policy(repo, control, ENCODER_MODEL, encoder)
    state.note("retire", version=version)
    write_state(repo.path, state)


# -- the configs and the server together -----------------------------------------------------------------------------


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
