"""The project as a user installs it: a wheel built from this clone, installed into a fresh venv outside the clone,
runs `svp demo` (what `make demo` runs) end to end from a directory outside the clone, and again to show it reuses
its export. This is the default suite's one demo run.

The fresh venv gets the dependencies of the test's own environment without the network: a .pth file lists that
environment's site-packages. Lines of a .pth only extend sys.path; the .pth files *inside* the listed folder (the
clone's editable install among them) are processed only for real site dirs, so the clone stays invisible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.subprocess

DAY = "2026-11-20"
SHIPPED = "sensevoice_pipeline/shipped"
# What a build must never see: environments, build outputs, caches, local runs (see .gitignore).
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    "var",
    "work",
    "node_modules",
)

# Printed by the installed interpreter: where everything comes from.
WHERE_SCRIPT = """
import importlib.util, json, sys
import sensevoice_export, sensevoice_pipeline
from sensevoice_pipeline import resources
print(json.dumps({
    "sys_path": sys.path,
    "modules": [sensevoice_pipeline.__file__, sensevoice_export.__file__],
    "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
    "trainer": importlib.util.find_spec("sensevoice_export.train_fixture") is not None,
    "resources": {name: str(getattr(resources, name)) for name in
                  ("VAD_MODEL", "DAGS_DIR", "PLUGINS_DIR", "MODEL_REPOSITORY_TEMPLATE", "FIXTURE_MODEL_DIR",
                   "SPEECH_EXAMPLES_DIR")},
}))
"""


def _run(cmd: list, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert out.returncode == 0, f"{cmd}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools builds in <source>/build/, and files left there by an older build (a moved
    # module) would end up in the wheel; the copy also keeps this test from writing into the clone.
    source = tmp_path_factory.mktemp("source") / "sensevoice-pipeline"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            dist,
            source,
        ]
    )
    (built,) = dist.glob("sensevoice_pipeline-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the clone with the wheel installed; the dependencies are the test environment's."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site_packages = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    (site_packages / "_test_environment.pth").write_text("\n".join(sorted(_test_environment())) + "\n")
    # pip comes from the test environment too; --ignore-installed: it must never touch the clone's editable install,
    # which it sees on sys.path. Run outside the clone: `python -m` puts the working directory on sys.path.
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            wheel,
        ],
        cwd=venv.parent,
        env=_outside_env(venv),
    )
    return venv


def _test_environment() -> set[str]:
    """The site-packages of the environment running the tests: where the dependencies are installed."""
    return {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}


def _outside_env(venv: Path) -> dict[str, str]:
    """The environment of a user of that venv: its bin/ first on PATH, nothing that points into the clone."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(VIRTUAL_ENV=str(venv), PATH=str(venv / "bin") + os.pathsep + env.get("PATH", ""))
    return env


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A working directory outside the clone."""
    cwd = tmp_path_factory.mktemp("user")
    assert ROOT not in cwd.parents
    return cwd


@pytest.fixture(scope="module")
def where(venv, outside) -> dict:
    out = _run([venv / "bin" / "python", "-c", WHERE_SCRIPT], cwd=outside, env=_outside_env(venv))
    return json.loads(out.stdout)


def _shipped_sources() -> set[str]:
    """Every file of the folders that sensevoice_pipeline/shipped/ links to, as the wheel names it, minus build
    outputs: exported model versions and caches."""
    names = set()
    for link in (ROOT / SHIPPED).iterdir():
        target = link.resolve()
        for path in target.rglob("*"):
            rel = path.relative_to(target)
            if path.is_file() and not any(
                p.isdigit() or p == "__pycache__" or p.startswith(".") for p in rel.parts
            ):
                names.add(f"{SHIPPED}/{link.name}/{rel.as_posix()}")
    return names


def test_the_wheel_ships_the_projects_folders_and_the_vad_model_but_not_the_trainer(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n for n in names if n.startswith(f"{SHIPPED}/")} == _shipped_sources()
    for needed in (
        "dags/sensevoice_daily.py",
        "model_repository/sensevoice/config.pbtxt",
        "model_repository/sensevoice_encoder/model.py",
        "fixture_model/model.pt",
        "fixture_model/expected.jsonl",
        "fixture_model/clips/en_refund_angry.wav",
        "speech_examples/en.mp3",
    ):
        assert f"{SHIPPED}/{needed}" in names
    assert "sensevoice_pipeline/data/silero_vad.onnx" in names
    assert (
        "sensevoice_export/pipeline.py" in names and "sensevoice_export/reference_model/config.yaml" in names
    )
    assert not [n for n in names if n.startswith("export/")]  # the folder ships under its own name only
    assert not [
        n
        for n in names
        if "train_fixture" in n or "gpu_acceptance" in n or n.startswith(("tools/", "tests/"))
    ]


def test_the_installed_package_is_the_wheel_not_the_clone(venv, where):
    installed = venv.resolve() / "lib"
    for module in where["modules"]:
        assert installed in Path(module).parents, module
    # The one folder of the clone on sys.path is the test environment's site-packages (the dependencies).
    into_the_clone = [p for p in where["sys_path"] if p and (Path(p) == ROOT or ROOT in Path(p).parents)]
    assert set(into_the_clone) <= _test_environment(), into_the_clone
    assert not where["editable_finders"]
    assert not where["trainer"]  # train_fixture is a developer tool (tools/), not shipped
    for name, path in where["resources"].items():
        assert installed in Path(path).parents and Path(path).exists(), (name, path)


def _svp_demo(venv: Path, cwd: Path, workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv / "bin" / "svp", "demo", "--workdir", workdir, "--date", DAY],
        cwd=cwd,
        env=_outside_env(venv),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.triton
@pytest.mark.airflow
def test_svp_demo_from_the_wheel_runs_end_to_end_and_reuses_its_export(venv, where, outside):
    workdir = outside / "demo"
    out = _svp_demo(venv, outside, workdir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"[4/5] airflow dags test sensevoice_daily {DAY}" in out.stdout
    assert "24 files: 23 ok, 1 failed" in out.stdout
    assert f"failed: date={DAY}/billing/corrupt_upload.wav: cannot decode" in out.stdout
    trend = out.stdout.split(f"# Emotion trend by language, {DAY}", 1)[1]
    assert any(line.split()[1:3] == ["yue", "surprised"] for line in trend.splitlines() if line.strip())
    assert (workdir / "emotion_trend.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "lake" / "warehouse.duckdb").is_file()

    again = _svp_demo(venv, outside, workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "serving version 1" in again.stdout and "[1/4] load" not in again.stdout  # no second export
