"""The Triton model repository: its layout, its versions and the checks run before a server may load it.

Layout (one version number names one consistent model)::

    <repo>/sensevoice/config.pbtxt            production config (python backend, BLS)
    <repo>/sensevoice/configs/local.pbtxt     the same model on the CPU-only PyPI Triton
    <repo>/sensevoice/model.py                template copied into each version
    <repo>/sensevoice/<N>/                    model.py, am.mvn, tokenizer, frontend.json, export_meta.json
    <repo>/sensevoice_encoder/config.pbtxt    production config (onnxruntime backend, GPU)
    <repo>/sensevoice_encoder/configs/local.pbtxt   python backend around onnxruntime CPU
    <repo>/sensevoice_encoder/<N>/            model.onnx (+ model.py for the local config)
    <repo>/serving.json                       the serving / previous / staged / retired versions (releases.py)

Every read of a version checks its ``export_meta.json`` (required keys and their types, see ``meta_problems``); a
version whose meta is wrong is *incomplete*, like one with a missing file, and cannot be staged or promoted.
Retired versions (``serving.json``) are never loaded, so their files do not stop a server from starting.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.resources import MODEL_REPOSITORY_TEMPLATE

PIPELINE_MODEL = "sensevoice"
ENCODER_MODEL = "sensevoice_encoder"
MODELS = (PIPELINE_MODEL, ENCODER_MODEL)
LOCAL_CONFIG_NAME = "local"
META_FILE = "export_meta.json"
FRONTEND_FILE = "frontend.json"
CMVN_FILE = "am.mvn"
ENCODER_FILE = "model.onnx"
SERVING_FILE = "serving.json"
PRECISIONS = (
    "fp32",
    "int8",
    "fp16",
)  # export/precision.py's, repeated here so reading a repository needs no export

# Files every complete version holds, per model; the tokenizer is named in frontend.json.
REQUIRED_VERSION_FILES = {
    PIPELINE_MODEL: ("model.py", META_FILE, FRONTEND_FILE, CMVN_FILE),
    ENCODER_MODEL: (ENCODER_FILE, "model.py"),
}


class RepositoryError(SvpError, RuntimeError):
    """The path is not a usable SenseVoice model repository."""


class MetaError(RepositoryError):
    """A version's export_meta.json is missing, unreadable or lacks what every version records."""


# export_meta.json: key -> (accepted types, required). Nested: source.model, source.sha256, parity figures.
_NUMBER = (int, float)
META_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "version": ((int,), True),
    "precision": ((str,), True),
    "exporter": ((str,), True),
    "exported_at": ((str,), True),
    "source": ((dict,), True),
    "parity": ((dict,), True),
    "target_device": ((str,), False),
    "opset": ((int,), False),
    "architecture": ((dict,), False),
    "export_seconds": (_NUMBER, False),
    "tools": ((dict,), False),
}
PARITY_NUMBERS = ("max_abs", "min_cosine", "mean_cosine", "argmax_agreement")


def _type_name(value) -> str:
    return (
        "null"
        if value is None
        else {
            dict: "an object",
            list: "a list",
            str: "a string",
            bool: "a boolean",
            int: "an integer",
            float: "a number",
        }.get(type(value), type(value).__name__)
    )


def _is(value, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def meta_problems(meta, version: int | None = None) -> list[str]:
    """What is wrong with a parsed export_meta.json (empty: nothing). Each item names the key and what it holds."""
    if not isinstance(meta, dict):
        return [f"must be a JSON object, not {_type_name(meta)}"]
    problems = []
    expected = {dict: "an object", str: "a string", int: "an integer", float: "a number"}
    for key, (types, required) in META_KEYS.items():
        if key not in meta:
            if required:
                problems.append(f"required key {key!r} is missing")
            continue
        if not _is(meta[key], types):
            problems.append(
                f"{key!r} must be {' or '.join(expected[t] for t in types)}, "
                f"not {_type_name(meta[key])} ({json.dumps(meta[key])[:40]})"
            )
    if _is(meta.get("version"), (int,)) and version is not None and meta["version"] != version:
        problems.append(f"'version' is {meta['version']} but the folder is version {version}")
    if _is(meta.get("precision"), (str,)) and meta["precision"] not in PRECISIONS:
        problems.append(f"'precision' must be one of {', '.join(PRECISIONS)}, not {meta['precision']!r}")
    if _is(meta.get("exported_at"), (str,)):
        try:
            dt.datetime.fromisoformat(meta["exported_at"])
        except ValueError:
            problems.append(f"'exported_at' is not an ISO 8601 time ({meta['exported_at'][:40]!r})")
    source = meta.get("source")
    if isinstance(source, dict):
        if not _is(source.get("model"), (str,)):
            problems.append(f"'source.model' must be a string, not {_type_name(source.get('model'))}")
        sums = source.get("sha256")
        if sums is not None and not (
            isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values())
        ):
            problems.append("'source.sha256' must map file names to checksum strings")
    parity = meta.get("parity")
    if isinstance(parity, dict):
        for key in PARITY_NUMBERS:
            if key in parity and parity[key] is not None and not _is(parity[key], _NUMBER):
                problems.append(f"'parity.{key}' must be a number, not {_type_name(parity[key])}")
        if "passed" in parity and not isinstance(parity["passed"], bool):
            problems.append(f"'parity.passed' must be true or false, not {_type_name(parity['passed'])}")
    return problems


def template_root() -> Path:
    """The project's own `model_repository/` (shipped with the package): configs and model.py shells that new
    repositories start from."""
    root = MODEL_REPOSITORY_TEMPLATE
    if not (root / PIPELINE_MODEL / "config.pbtxt").is_file():
        raise RepositoryError(
            f"model repository template not found at {root} (this installation was built "
            "without the project's model_repository/)"
        )
    return root


@dataclass(frozen=True)
class VersionInfo:
    version: int
    meta: dict
    complete: bool
    problems: tuple[str, ...]


def versions_under_policy(policy, present: list[int]) -> list[int]:
    """Which of the ``present`` versions (sorted) Triton loads under a ModelConfig ``version_policy``."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "specific":
        return sorted(v for v in policy.specific.versions if v in present)
    if kind == "all":
        return present
    n = policy.latest.num_versions if kind == "latest" else 1  # Triton's default: latest, 1
    return present[-n:] if n else []


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
            self.copy_template()

    def local_encoder_instances(self) -> int:
        """How many `sensevoice_encoder` instances the local config runs (this repository's config, else the
        template's): the encoder's speed is measured with each instance's share of the cores."""
        name = Path(ENCODER_MODEL) / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt"
        path = self.path / name if (self.path / name).is_file() else template_root() / name
        return max(1, sum(group.count or 1 for group in _parse_config(path).instance_group))

    def model_py(self, model: str) -> Path:
        """The model.py shell that new versions of ``model`` get: the repository's own, else the template's."""
        own = self.model_dir(model) / "model.py"
        return own if own.is_file() else template_root() / model / "model.py"

    def copy_template(self) -> None:
        """Write the template's configs and model.py shells over this repository's (versions are left alone)."""
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

    def meta_path(self, version: int) -> Path:
        return self.version_dir(PIPELINE_MODEL, version) / META_FILE

    def read_meta(self, version: int) -> dict:
        """The version's export_meta.json as far as it can be read ({} when it cannot: see ``load_meta``)."""
        try:
            meta = json.loads(self.meta_path(version).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def check_meta(self, version: int) -> list[str]:
        """What is wrong with the version's export_meta.json, each problem naming the file (empty: nothing)."""
        path = self.meta_path(version)
        name = path.relative_to(self.path).as_posix()
        if not path.is_file():
            return [f"{name} is missing"]
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            return [f"{name} is unreadable ({exc})"]
        except json.JSONDecodeError as exc:
            return [f"{name} is not valid JSON ({exc})"]
        return [f"{name}: {p}" for p in meta_problems(meta, version)]

    def load_meta(self, version: int) -> dict:
        """The version's export_meta.json, validated; MetaError (one line naming the file) when it is wrong."""
        problems = self.check_meta(version)
        if problems:
            raise MetaError("; ".join(problems))
        return json.loads(self.meta_path(version).read_text(encoding="utf-8"))

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
        if (self.meta_path(version)).is_file():  # a missing one is already listed above
            problems += self.check_meta(version)
        return problems

    def retired_versions(self) -> set[int]:
        """Versions ``serving.json`` records as retired (none when it is absent or unreadable)."""
        try:
            retired = json.loads((self.path / SERVING_FILE).read_text()).get("retired") or []
            return {int(v) for v in retired}
        except (OSError, ValueError, TypeError, AttributeError):
            return set()

    def policy_versions(self, model: str, config: Path) -> list[int] | None:
        """The versions of ``model`` Triton loads under ``config``'s version_policy (None: the config does not
        parse, so nothing can be assumed)."""
        present = sorted(v for v in self.versions() if self.version_dir(model, v).is_dir())
        try:
            policy = _parse_config(config).version_policy
        except Exception:  # noqa: BLE001 -- unreadable, unparsable, or no tritonclient here
            return None
        return versions_under_policy(policy, present)

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
        skipped = self._retired_and_unloaded(config_name, set(versions))
        if versions and not set(versions) - skipped:
            problems.append("every version is retired: promote one first")
        for v in versions:
            if v not in skipped:
                problems += self._version_problems(v)
        return problems

    def _retired_and_unloaded(self, config_name: str | None, versions: set[int]) -> set[int]:
        """Retired versions that no config about to be served would load: their files are never read by Triton,
        so a broken or half-deleted retired version does not stop the others from being served."""
        retired = self.retired_versions() & versions
        if not retired:
            return set()
        loaded: set[int] = set()
        for model in MODELS:
            cfg = (
                self.model_dir(model)
                / ("configs" if config_name else "")
                / f"{config_name or 'config'}.pbtxt"
            )
            policy = self.policy_versions(model, cfg) if cfg.is_file() else []
            if policy is None:
                return set()  # cannot tell what Triton would load: check every version
            loaded |= set(policy)
        return retired - loaded

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


def _parse_config(path: Path):
    """A config.pbtxt as Triton's ModelConfig protobuf (tritonclient ships its definition; imported here so that
    the repository code loads without it)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _ignore_versions(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.isdigit() or n == "__pycache__"]
