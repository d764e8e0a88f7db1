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
  an encoder version is loaded before any pipeline version that needs it and unloaded only after it. "After" means
  after the pipeline version has *finished*, not after the load that removed it returned: Triton lets a removed
  version complete the requests it holds (server docs/user_guide/model_management.md), and here the load of the new
  `sensevoice` set returned while the old version was still UNLOADING with requests queued, each about to call its
  encoder. So every change of the encoder set first waits, on every server, until the repository index shows no
  live (READY / LOADING / UNLOADING) `sensevoice` version outside the new set (``_apply_policy``;
  tests/integration/releases/test_release_switch.py).
* A staged candidate is *not* loaded as a version of `sensevoice` (it would be the highest ready version and take
  the unpinned traffic at once). It is loaded as the model ``sensevoice_staged`` through Triton's load API with a
  config and files override: the same python model, config and files as ``sensevoice/<N>/``, calling
  ``sensevoice_encoder`` version N. Only the canary (and whoever names that model) reaches it.
* Promotion (and rollback) is one ``load_model("sensevoice")`` with the new version policy: Triton loads the new
  set in the background while the loaded versions keep answering, and switches when all are ready. No request
  fails; unpinned requests move to the new version at that instant. Clients that pin a version (``svp run
  --model-version``) keep it as long as it is loaded.

A fleet
-------
``url`` may name several servers, comma-separated (``a:8001,b:8001``), all reading one shared repository (a shared
folder, or an ``s3://`` repository published with remote.py): the configs and serving.json are written once, and
every server then loads. A candidate is staged (and canaried, canary.py) on the first server only. A promotion
first loads the encoder versions it needs on every server, then switches the servers one after another (the canary
server first); a server that cannot switch stops it, every server already switched is switched back (the configs
restored and reloaded, as Triton keeps the old set when a load fails), and the encoder set returns to what it was,
so the fleet serves the previous version and the error names the server (tests/integration/fleet/test_fleet_release.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sensevoice_pipeline.records import Record
from sensevoice_pipeline.releases.control import STAGED_MODEL, TritonControl, canary_url, open_fleet
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.policy import (
    pipeline_versions,
    policy_versions,
    restore_configs,
    set_version_policy,
)
from sensevoice_pipeline.releases.remote import publish_configs, publish_new_version
from sensevoice_pipeline.releases.state import (
    ServingState,
    check_version,
    locked,
    open_repository,
    read_state,
    write_state,
)
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL, ModelRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged(Record):
    """A candidate loaded beside the serving version: ``staged`` as the model ``model``, in ``seconds``."""

    staged: int
    serving: int | None
    model: str
    seconds: float


# -- stage / unstage -------------------------------------------------------------------------------------------------


def stage(repository: str | Path, version: int, url: str) -> Staged:
    """Load ``version`` beside the serving one as the model ``sensevoice_staged`` (and its encoder as a version of
    ``sensevoice_encoder``) on the canary server (the first of ``url``'s); the serving version and unpinned traffic
    are untouched."""
    repo = open_repository(repository)
    if url is None:
        raise ReleaseError("stage needs a running Triton (--url)")
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state)
        if version == state.serving:
            raise ReleaseError(f"version {version} is already serving")
        with open_fleet(canary_url(url)) as (control,):
            return _stage(repo, control, state, version)


def _stage(repo: ModelRepository, control: TritonControl, state: ServingState, version: int) -> Staged:
    if state.staged is not None and state.staged != version:
        _unstage(repo, [control], state)
    pipeline = sorted(control.ready_versions(PIPELINE_MODEL)) or policy_versions(repo.path, PIPELINE_MODEL)
    encoder_before = sorted(control.ready_versions(ENCODER_MODEL))
    config = control.loaded_config(PIPELINE_MODEL)
    t0 = time.perf_counter()
    publish_new_version(repo.path, version)  # servers reading a mirror find the candidate's files there
    _apply_policy(repo, [control], ENCODER_MODEL, sorted(set(encoder_before) | set(pipeline) | {version}))
    config.update(name=STAGED_MODEL, version_policy={"specific": {"versions": [version]}})
    try:
        control.load(STAGED_MODEL, config=json.dumps(config), files=_version_files(repo, version))
    except ReleaseError:
        _apply_policy(repo, [control], ENCODER_MODEL, sorted(set(pipeline)))
        raise
    state.staged = version
    state.note("stage", version=version, serving=state.serving)
    write_state(repo.path, state)
    seconds = time.perf_counter() - t0
    log.info("staged version %d beside serving version %s (%.1f s)", version, state.serving, seconds)
    return Staged(staged=version, serving=state.serving, model=STAGED_MODEL, seconds=round(seconds, 2))


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
    None, ``unloaded`` False). Without ``url`` (a stopped Triton) it edits the repository only; with several servers
    it unloads the candidate wherever it is loaded."""
    repo = open_repository(repository)
    with locked(repo.path), open_fleet(url) as fleet:
        state = read_state(repo.path)
        staged = state.staged
        loaded = any(control.ready_versions(STAGED_MODEL) for control in fleet)
        if staged is None and not loaded:
            return {"unstaged": None, "unloaded": False, "serving": state.serving, "server": bool(fleet)}
        _unstage(repo, fleet, state)
        write_state(repo.path, state)
    log.info(
        "unstaged version %s (%s %s); serving version %s untouched",
        staged,
        STAGED_MODEL,
        "unloaded" if loaded else "was not loaded",
        state.serving,
    )
    return {"unstaged": staged, "unloaded": loaded, "serving": state.serving, "server": url is not None}


def _unstage(repo: ModelRepository, fleet: list[TritonControl], state: ServingState) -> None:
    staged = state.staged
    _unload_staged(fleet)
    if state.serving is not None:
        _apply_policy(repo, fleet, ENCODER_MODEL, pipeline_versions(state.serving, state.previous))
    state.staged = None
    state.note("unstage", version=staged)


def format_unstaged(result: dict) -> str:
    """What ``svp models unstage`` prints for ``unstage``'s result."""
    serving = result["serving"] if result["serving"] is not None else "-"
    if result["unstaged"] is None and not result["unloaded"]:
        return f"nothing is staged ({STAGED_MODEL} is not loaded); serving version {serving} untouched"
    what = f"version {result['unstaged']}" if result["unstaged"] is not None else "an unrecorded candidate"
    where = (
        f"{STAGED_MODEL} unloaded"
        if result["unloaded"]
        else f"{STAGED_MODEL} was not loaded"
        if result.get("server")
        else "repository only, --offline"
    )
    return f"unstaged {what} ({where}); serving version {serving} untouched"


# -- promote / rollback ----------------------------------------------------------------------------------------------


def promote(
    repository: str | Path,
    version: int | None = None,
    url: str | None = None,
    keep_previous: bool = True,
    action: str = "promote",
) -> dict:
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
        with open_fleet(url) as fleet:
            # the same version again changes nothing only where it is recorded already and every server has the
            # recorded set (else it is how a drifted fleet is brought back together: `svp models list` says so, and
            # how a repository that only `svp export` wrote gets its serving.json)
            recorded = set(policy_versions(repo.path, PIPELINE_MODEL))
            if (
                version == old
                and state.recorded
                and all(
                    control.ready_versions(PIPELINE_MODEL) == recorded and _default_version(control) == old
                    for control in fleet
                )
            ):
                return {
                    "serving": version,
                    "previous": state.previous,
                    "switch_seconds": 0.0,
                    "changed": False,
                }
            result = _switch(repo, fleet, state, version, keep_previous, action)
    log.info(
        "%s: version %s serves (was %s), switched in %.2f s", action, version, old, result["switch_seconds"]
    )
    return result


def rollback(repository: str | Path, url: str | None = None) -> dict:
    """Serve the previous version again (the one the last promotion replaced)."""
    repo = open_repository(repository)
    state = read_state(repo.path)
    if state.previous is None:
        raise ReleaseError("no previous version to roll back to")
    return promote(repo.path, state.previous, url, action="rollback")


def _default_version(control: TritonControl) -> int | None:
    """The version unpinned requests reach on this server: the highest ready one."""
    return max(control.ready_versions(PIPELINE_MODEL), default=None)


def _switch(
    repo: ModelRepository,
    fleet: list[TritonControl],
    state: ServingState,
    version: int,
    keep_previous: bool,
    action: str,
) -> dict:
    old = state.serving
    staged_after = state.staged if state.staged != version else None
    pipeline = pipeline_versions(version, old if keep_previous and old != version else None)
    encoder_after = sorted(set(pipeline) | ({staged_after} if staged_after is not None else set()))
    encoder_before = policy_versions(repo.path, ENCODER_MODEL)
    # 1. every server: the encoder versions every pipeline version (old and new) needs; 2. the switch, server by
    # server; 3. the clean-up, once no server runs a pipeline version that needs what is removed.
    in_use = set().union(*(c.ready_versions(PIPELINE_MODEL) | c.ready_versions(ENCODER_MODEL) for c in fleet))
    if fleet:
        _apply_policy(repo, fleet, ENCODER_MODEL, sorted(in_use | set(encoder_after)))
    try:
        switch_seconds = _apply_policy(repo, fleet, PIPELINE_MODEL, pipeline, force=True)
    except ReleaseError:
        if fleet and encoder_before:  # every server is back on the old pipeline set; so are the encoders
            _apply_policy(repo, fleet, ENCODER_MODEL, encoder_before)
        raise
    state.previous = old if old != version else state.previous
    state.serving = version
    if state.staged == version:
        state.staged = None
    state.note(action, version=version, previous=state.previous, switch_seconds=round(switch_seconds, 3))
    write_state(repo.path, state)
    if staged_after is None:
        _unload_staged(fleet)
    _apply_policy(repo, fleet, ENCODER_MODEL, encoder_after)
    return {
        "serving": version,
        "previous": state.previous,
        "pipeline_versions": pipeline,
        "encoder_versions": encoder_after,
        "switch_seconds": round(switch_seconds, 3),
        "changed": True,
    }


# -- retire ----------------------------------------------------------------------------------------------------------


def retire(repository: str | Path, version: int, url: str | None = None) -> dict:
    """Take ``version`` out of every role and unload it; it can no longer be staged or promoted (files are kept)."""
    repo = open_repository(repository)
    with locked(repo.path):
        state = read_state(repo.path)
        check_version(repo, version, state, allow_retired=True)
        if version == state.serving:
            raise ReleaseError(f"version {version} is serving: promote or roll back to another version first")
        with open_fleet(url) as fleet:
            _retire(repo, fleet, state, version)
    return {"retired": version, "serving": state.serving, "previous": state.previous}


def _retire(repo: ModelRepository, fleet: list[TritonControl], state: ServingState, version: int) -> None:
    if state.staged == version:
        _unstage(repo, fleet, state)
    if state.previous == version:
        state.previous = None
    if version not in state.retired:
        state.retired = sorted(state.retired + [version])
    if state.serving is not None:
        pipeline = pipeline_versions(state.serving, state.previous)
        _apply_policy(repo, fleet, PIPELINE_MODEL, pipeline)
        encoder = sorted(set(pipeline) | ({state.staged} if state.staged is not None else set()))
        _apply_policy(repo, fleet, ENCODER_MODEL, encoder)
    state.note("retire", version=version)
    write_state(repo.path, state)


# -- the configs and the server together -----------------------------------------------------------------------------


def _unload_staged(fleet: list[TritonControl]) -> None:
    """Unload ``sensevoice_staged`` wherever it is loaded. Triton's unload returns at once and the model is not in
    the repository index, so its drain cannot be watched: only the canary (finished before any caller of this) and
    whoever names the model reach it."""
    for control in fleet:
        if control.ready_versions(STAGED_MODEL):
            control.unload(STAGED_MODEL)


def _apply_policy(
    repo: ModelRepository, fleet: list[TritonControl], model: str, versions: list[int], force: bool = False
) -> float:
    """Give ``model`` exactly ``versions`` in its configs and load that set on every server of ``fleet``, one after
    another; returns the seconds the loads took. An encoder set is changed only once no server still runs a
    `sensevoice` version outside it (each calls its own encoder version). A server that fails stops it: the configs
    are restored and the servers already loaded load them again (the one that failed kept what it had: "if the
    reload fails ... the already loaded model will be unchanged", Triton's model_management.md)."""
    versions = sorted(set(versions))
    if (
        fleet
        and not force
        and policy_versions(repo.path, model) == versions
        and all(control.ready_versions(model) == set(versions) for control in fleet)
    ):
        return 0.0
    if model == ENCODER_MODEL:
        for control in fleet:
            control.wait_until_gone(PIPELINE_MODEL, keep=set(versions))
    old = set_version_policy(repo.path, model, versions)
    publish_configs(repo.path)  # a mirrored repository: the servers read the configs there
    t0 = time.perf_counter()
    done: list[TritonControl] = []
    try:
        for control in fleet:
            done.append(control)  # the failing one too: it may have loaded the configs, then missed a version
            _load_checked(control, model, versions)
    except ReleaseError:
        restore_configs(old)
        publish_configs(repo.path)
        _reload_after_failure(done, model)
        raise
    return time.perf_counter() - t0


def _load_checked(control: TritonControl, model: str, versions: list[int]) -> None:
    """Load ``model`` on one server and check that ``versions`` are ready there (for `sensevoice`: that the highest,
    which unpinned requests reach, is the highest of ``versions``)."""
    control.load(model)
    ready = control.ready_versions(model)
    if not set(versions) <= ready:
        raise ReleaseError(
            f"Triton at {control.url} loaded {model} but versions "
            f"{sorted(set(versions) - ready)} are not ready; see the server log"
        )
    if model == PIPELINE_MODEL and max(ready) != max(versions):
        raise ReleaseError(
            f"after the switch Triton at {control.url} answers unpinned requests with version "
            f"{max(ready)}, not {max(versions)}; see the server log"
        )


def _reload_after_failure(done: list[TritonControl], model: str) -> None:
    """The servers that had loaded the new set load the restored configs again. Each is tried (a second failure is
    logged, not raised: the first error is the one to report)."""
    for control in done:
        try:
            control.load(model)
        except ReleaseError as exc:
            log.error("could not return %s to its previous versions on %s: %s", model, control.url, exc)
