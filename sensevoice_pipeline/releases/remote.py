"""An ``s3://`` model repository: every server of a fleet reads the same versions from an object store, which Triton
reads natively (``--model-repository=s3://...``, credentials from the standard AWS_* variables; for an S3-compatible
store that is not AWS, ``s3://http://host:port/bucket/path``: server docs/user_guide/model_repository.md, "S3").

The repository is built and checked on local disk (``svp export`` writes there, ``ModelRepository`` lints it) and
then *published*: :func:`publish_version` uploads one version of both models, and the model-level files (configs,
the python models, serving.json) they are loaded with. Order matters, because Triton lists the store when it loads:
the encoder's version first, then the pipeline's files, its ``export_meta.json`` last (a version whose meta is
missing is incomplete for every reader of the repository, so a half-published version is never promoted), then
the model-level files (their version_policy says which versions to load).

A repository that has a *mirror* (``svp models mirror s3://...``, recorded in serving.json) stays in step with it:
``svp export`` and the release's export publish each new version, staging publishes the candidate if it is not
there yet, and every version_policy edit publishes the configs before any server is asked to load (operations.py).
The local folder stays the one the release worker writes and locks; Triton servers read the mirror. Retired or
removed versions are not deleted from the mirror (Triton loads only what the version_policy lists).

A shared *folder* needs none of this: every server is started with the same path (tests/integration/fleet/test_fleet_release.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.fs as pafs

from sensevoice_pipeline.lake.storage import ObjectPath, S3Options
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.state import check_version, locked, open_repository, read_state, write_state
from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    META_FILE,
    MODELS,
    PIPELINE_MODEL,
    SERVING_FILE,
)

log = logging.getLogger(__name__)

SKIPPED = ("__pycache__",)


def triton_repository_uri(target: ObjectPath) -> str:
    """What ``tritonserver --model-repository=`` takes for ``target``: ``s3://bucket/prefix`` on AWS, or
    ``s3://http(s)://host:port/bucket/prefix`` for another S3-compatible endpoint (Triton's own syntax)."""
    host, scheme = target.options.endpoint()
    if host is None:
        return str(target)
    return f"s3://{scheme}://{host}/{target.fs_path}"


def publish_version(
    repository: str | Path, version: int, target: str | ObjectPath, options: S3Options | None = None
) -> dict:
    """Upload ``version`` of both models from the local ``repository`` to the ``s3://`` repository ``target``
    (see the module's docstring for the order), then the model-level files. Returns what was uploaded."""
    repo = open_repository(repository)
    check_version(repo, version)
    target = target if isinstance(target, ObjectPath) else ObjectPath.parse(str(target), options)
    uploads = _version_files(repo.path, version) + _model_files(repo.path)
    total = _publish_files(uploads, target)
    log.info(
        "published version %d of %s to %s: %d files, %d bytes",
        version,
        repo.path,
        target,
        len(uploads),
        total,
    )
    return {
        "version": version,
        "target": str(target),
        "triton_uri": triton_repository_uri(target),
        "files": len(uploads),
        "bytes": total,
    }


def set_mirror(repository: str | Path, target: str, options: S3Options | None = None) -> dict:
    """Record ``target`` (``s3://bucket/prefix``) as the repository's mirror and publish every complete version and
    the configs to it, so servers started on ``triton_repository_uri(target)`` load what this folder serves."""
    repo = open_repository(repository)
    mirror = _parse_mirror(target, options)
    with locked(repo.path):
        state = read_state(repo.path)
        state.mirror = str(mirror)
        state.note("mirror", target=str(mirror))
        write_state(repo.path, state)
        versions = [v for v in repo.versions() if repo.version_info(v).complete]
        for version in versions:
            publish_version(repo.path, version, mirror)
        if not versions:
            _publish_files(_model_files(repo.path), mirror)
    return {"mirror": str(mirror), "triton_uri": triton_repository_uri(mirror), "versions": versions}


def mirror_of(repository: str | Path, options: S3Options | None = None) -> ObjectPath | None:
    """The repository's mirror (serving.json), or None."""
    recorded = read_state(repository).mirror
    return _parse_mirror(recorded, options) if recorded else None


def publish_new_version(repository: str | Path, version: int) -> dict | None:
    """Publish ``version`` to the repository's mirror unless it is already there (its export_meta.json, uploaded
    last, is the mark); None without a mirror."""
    mirror = mirror_of(repository)
    if mirror is None:
        return None
    meta = mirror / f"{PIPELINE_MODEL}/{version}/{META_FILE}"
    if mirror.filesystem.get_file_info(meta.fs_path).type == pafs.FileType.File:
        return {"version": version, "target": str(mirror), "files": 0, "bytes": 0}
    return publish_version(repository, version, mirror)


def publish_configs(repository: str | Path) -> None:
    """Publish the configs (version_policy) and serving.json to the repository's mirror, if it has one: called after
    every version_policy edit, before any server loads."""
    mirror = mirror_of(repository)
    if mirror is not None:
        _publish_files(_model_files(Path(repository)), mirror)


def _parse_mirror(target: str, options: S3Options | None) -> ObjectPath:
    if not str(target).startswith("s3://"):
        raise ReleaseError(f"a mirror is an s3:// repository (s3://bucket/prefix), not {target!r}")
    return ObjectPath.parse(str(target), options or S3Options.from_env())


def _publish_files(files: list[tuple[Path, str]], target: ObjectPath) -> int:
    return sum(_upload(target.filesystem, local, target / key) for local, key in files)


def _version_files(root: Path, version: int) -> list[tuple[Path, str]]:
    """(local file, key) of ``version``: the encoder's first, then the pipeline's with its meta last."""
    files = []
    for model in (ENCODER_MODEL, PIPELINE_MODEL):
        vdir = root / model / str(version)
        ordered = sorted(_files(vdir), key=lambda p: (p.name == META_FILE, p.as_posix()))
        files += [(p, p.relative_to(root).as_posix()) for p in ordered]
    return files


def _model_files(root: Path) -> list[tuple[Path, str]]:
    """Configs and python models of both models (what is not a version folder), then serving.json."""
    files = []
    for model in MODELS:
        mdir = root / model
        files += [
            (p, p.relative_to(root).as_posix())
            for p in sorted(_files(mdir))
            if not p.relative_to(mdir).parts[0].isdigit()
        ]
    if (root / SERVING_FILE).is_file():
        files.append((root / SERVING_FILE, SERVING_FILE))
    return files


def _files(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(s in p.parts for s in SKIPPED) and p.suffix != ".pyc"
    ]


def _upload(fs: pafs.S3FileSystem, local: Path, key: ObjectPath) -> int:
    data = local.read_bytes()
    try:
        with fs.open_output_stream(key.fs_path) as out:  # one PUT: readers see the old object or the new one
            out.write(data)
    except OSError as exc:
        raise ReleaseError(f"could not upload {local} to {key}: {' '.join(str(exc).split())}") from exc
    return len(data)
