"""Where the tests find the repository's own files, whatever folder a test module lives in."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
ASSETS = ROOT / "tests" / "assets"
EXAMPLE_AUDIO = sorted((ASSETS / "audio").glob("*.mp3"))
FIXTURE_MODEL_DIR = ROOT / "export" / "fixture_model"  # the trained fixture model: real answers end to end


def snapshot(path: Path) -> list[str]:
    """Every path under ``path``, relative to it and sorted (nothing when it does not exist): what a refusal must
    leave unchanged."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def broken_copy(src: Path, dst: Path) -> Path:
    """A copy of the folder ``src`` at ``dst``, for a test to break."""
    shutil.copytree(src, dst)
    return dst
