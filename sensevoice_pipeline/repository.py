"""The Triton model repository: its layout, its versions and the checks run before a server may load it.

Layout (one version number names one consistent model)::

    <repo>/sensevoice/config.pbtxt            production config (python backend, BLS)
    <repo>/sensevoice/configs/local.pbtxt     the same model on the CPU-only PyPI Triton
    <repo>/sensevoice/model.py                template copied into each version
    <repo>/sensevoice/<N>/                    model.py, am.mvn, tokenizer, frontend.json, export_meta.json
    <repo>/sensevoice_encoder/config.pbtxt    production config (onnxruntime backend, GPU)
    <repo>/sensevoice_encoder/configs/local.pbtxt   python backend around onnxruntime CPU
    <repo>/sensevoice_encoder/<N>/            model.onnx (+ model.py for the local config)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PIPELINE_MODEL = "sensevoice"
ENCODER_MODEL = "sensevoice_encoder"
MODELS = (PIPELINE_MODEL, ENCODER_MODEL)
LOCAL_CONFIG_NAME = "local"
META_FILE = "export_meta.json"
FRONTEND_FILE = "frontend.json"
CMVN_FILE = "am.mvn"
ENCODER_FILE = "model.onnx"

# Files every complete version holds, per model; the tokenizer is named in frontend.json.
REQUIRED_VERSION_FILES = {
    PIPELINE_MODEL: ("model.py", META_FILE, FRONTEND_FILE, CMVN_FILE),
    ENCODER_MODEL: (ENCODER_FILE, "model.py"),
}


class RepositoryError(RuntimeError):
    """The path is not a usable SenseVoice model repository."""


def template_root() -> Path:
    """The project's own `model_repository/`: configs and model.py shells that new repositories start from."""
    root = Path(__file__).resolve().parents[1] / "model_repository"
    if not (root / PIPELINE_MODEL / "config.pbtxt").is_file():
        raise RepositoryError(f"model repository template not found at {root} (run from a clone of the project)")
    return root


@dataclass(frozen=True)
class VersionInfo:
    version: int
    meta: dict
    complete: bool
    problems: tuple[str, ...]


class ModelRepository:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- layout -------------------------------------------------------------------------------------------------
    def model_dir(self, model: str) -> Path:
        return self.path / model

    def version_dir(self, model: str, version: int) -> Path:
        return self.model_dir(model) / str(version)

    def is_initialised(self) -> bool:
        return all((self.model_dir(m) / "config.pbtxt").is_file() for m in MODELS)

    def check_target(self) -> None:
        """Accept an existing SenseVoice repository, or a missing or empty dir (it becomes one on publish); refuse
        anything else, so that an export never scatters files into an unrelated folder."""
        if self.path.exists() and not self.path.is_dir():
            raise RepositoryError(f"{self.path} is not a directory")
        if self.is_initialised():
            return
        if self.path.is_dir() and any(p for p in self.path.iterdir() if not p.name.startswith(".")):
            raise RepositoryError(
                f"{self.path} is not a SenseVoice model repository (expected "
                f"{PIPELINE_MODEL}/config.pbtxt and {ENCODER_MODEL}/config.pbtxt) and is not empty"
            )

    def validate_or_init(self) -> None:
        """``check_target``, then give a missing or empty dir the configs and model.py shells of the template."""
        self.check_target()
        if not self.is_initialised():
            self._copy_template()

    def model_py(self, model: str) -> Path:
        """The model.py shell that new versions of ``model`` get: the repository's own, else the template's."""
        own = self.model_dir(model) / "model.py"
        return own if own.is_file() else template_root() / model / "model.py"

    def _copy_template(self) -> None:
        src = template_root()
        self.path.mkdir(parents=True, exist_ok=True)
        for model in MODELS:
            shutil.copytree(src / model, self.model_dir(model), ignore=_ignore_versions, dirs_exist_ok=True)

    # -- versions -----------------------------------------------------------------------------------------------
    def _numeric_dirs(self, model: str) -> set[int]:
        d = self.model_dir(model)
        if not d.is_dir():
            return set()
        return {int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()}

    def versions(self) -> list[int]:
        """Every version number present under either model (complete or not)."""
        return sorted(set().union(*(self._numeric_dirs(m) for m in MODELS)))

    def next_version(self) -> int:
        return max(self.versions(), default=0) + 1

    def latest_complete_version(self) -> int | None:
        complete = [v for v in self.versions() if self.version_info(v).complete]
        return max(complete) if complete else None

    def read_meta(self, version: int) -> dict:
        path = self.version_dir(PIPELINE_MODEL, version) / META_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def version_info(self, version: int) -> VersionInfo:
        problems = self._version_problems(version)
        return VersionInfo(version, self.read_meta(version), not problems, tuple(problems))

    def _version_problems(self, version: int) -> list[str]:
        problems = []
        for model, files in REQUIRED_VERSION_FILES.items():
            vdir = self.version_dir(model, version)
            if not vdir.is_dir():
                problems.append(f"{model}/{version}/ is missing")
                continue
            problems += [f"{model}/{version}/{f} is missing" for f in files if not (vdir / f).is_file()]
        return problems

    # -- lint -----------------------------------------------------------------------------------------------------
    def lint(self, config_name: str | None = None) -> list[str]:
        """Problems that would make Triton fail or hang while loading. A python model whose version folder lacks
        model.py hangs the PyPI Triton and ignores SIGTERM, so this runs before every start."""
        if not self.path.is_dir():
            return [f"{self.path} does not exist"]
        problems = []
        for model in MODELS:
            mdir = self.model_dir(model)
            cfg = mdir / "config.pbtxt"
            if config_name:
                cfg = mdir / "configs" / f"{config_name}.pbtxt"
            if not cfg.is_file():
                problems.append(f"{cfg.relative_to(self.path)} is missing")
        versions = self.versions()
        if not versions:
            problems.append("no model version: run `svp export` first")
        for v in versions:
            problems += self._version_problems(v)
        return problems

    # -- publishing ----------------------------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder on the repository's filesystem (so the final rename is atomic); removed afterwards.
        It sits inside the repository when that exists, beside it otherwise (a failed export creates nothing)."""
        if self.path.is_dir():
            where = self.path
        else:
            where = self.path.parent
            where.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}-staging-", dir=where))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def publish(self, staged: Path, version: int) -> None:
        """Move ``staged/<model>/`` folders into place as version ``version``; the encoder goes first so that a
        pipeline version never refers to an encoder that is not there yet."""
        self.validate_or_init()
        for model in (ENCODER_MODEL, PIPELINE_MODEL):
            target = self.version_dir(model, version)
            if target.exists():
                raise RepositoryError(f"{target} already exists; refusing to overwrite a published version")
        for model in (ENCODER_MODEL, PIPELINE_MODEL):
            os.replace(staged / model, self.version_dir(model, version))


def _ignore_versions(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.isdigit() or n == "__pycache__"]
