"""An ``s3://`` model repository: every server of a fleet reads the same versions from an object store, which Triton
reads natively (``--model-repository=s3://...``, credentials from the standard AWS_* variables; for an S3-compatible
store that is not AWS, ``s3://http://host:port/bucket/path``: server docs/user_guide/model_repository.md, "S3").

The repository is built and checked on local disk (``svp export`` writes there, ``ModelRepository`` lints it) and
then *published*: :func:`publish_version` uploads one version of both models, and the model-level files (configs,
the python models, serving.json) they are loaded with. Order matters, because Triton lists the store when it loads:
the encoder's version first, then the pipeline's files, its ``export_meta.json`` last (a version whose meta is
missing is incomplete for every reader of the repository, so a half-published version is never promoted), then
the model-level files (their version_policy says which versions to load).

A shared *folder* needs none of this: every server is started with the same path (tests/test_fleet_release.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.fs as pafs

from sensevoice_pipeline.lake.storage import ObjectPath, S3Options
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, META_FILE, MODELS, PIPELINE_MODEL, SERVING_FILE
from sensevoice_pipeline.releases.state import check_version, open_repository

log = logging.getLogger(__name__)

SKIPPED = ("__pycache__",)


def triton_repository_uri(target: ObjectPath) -> str:
    """What ``tritonserver --model-repository=`` takes for ``target``: ``s3://bucket/prefix`` on AWS, or
    ``s3://http(s)://host:port/bucket/prefix`` for another S3-compatible endpoint (Triton's own syntax)."""
    host, scheme = target.options.endpoint()
    if host is None:
        return str(target)
    return f"s3://{scheme}://{host}/{target.fs_path}"


def publish_version(repository: str | Path, version: int, target: str | ObjectPath,
                    options: S3Options | None = None) -> dict:
    """Upload ``version`` of both models from the local ``repository`` to the ``s3://`` repository ``target``
    (see the module's docstring for the order), then the model-level files. Returns what was uploaded."""
    repo = open_repository(repository)
    check_version(repo, version)
    target = target if isinstance(target, ObjectPath) else ObjectPath.parse(str(target), options)
    fs = target.filesystem
    uploads = _version_files(repo.path, version) + _model_files(repo.path)
    total = 0
    for local, key in uploads:
        total += _upload(fs, local, target / key)
    log.info("published version %d of %s to %s: %d files, %d bytes", version, repo.path, target, len(uploads), total)
    return {"version": version, "target": str(target), "triton_uri": triton_repository_uri(target),
            "files": len(uploads), "bytes": total}


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
        files += [(p, p.relative_to(root).as_posix()) for p in sorted(_files(mdir))
                  if not p.relative_to(mdir).parts[0].isdigit()]
    if (root / SERVING_FILE).is_file():
        files.append((root / SERVING_FILE, SERVING_FILE))
    return files


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not any(s in p.parts for s in SKIPPED)
            and p.suffix != ".pyc"]


def _upload(fs: pafs.S3FileSystem, local: Path, key: ObjectPath) -> int:
    data = local.read_bytes()
    try:
        with fs.open_output_stream(key.fs_path) as out:  # one PUT: readers see the old object or the new one
            out.write(data)
    except OSError as exc:
        raise ReleaseError(f"could not upload {local} to {key}: {' '.join(str(exc).split())}") from exc
    return len(data)
