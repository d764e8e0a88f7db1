"""A partition folder deeper than Python's recursion limit is listed (lake/partition.py walks an explicit stack, not
recursion). Not a unit test only because its clean-up needs `find -delete` in a subprocess: pytest's own removal of
such a tree recurses and fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_pipeline.lake.partition import list_work

pytestmark = pytest.mark.subprocess

DAY = "2026-11-20"


def day(tmp_path: Path) -> Path:
    part = tmp_path / "raw" / f"date={DAY}"
    part.mkdir(parents=True)
    return part


def listed(tmp_path: Path) -> dict[str, str | None]:
    return {
        item.source_path.split("/", 1)[1]: item.problem
        for item in list_work(tmp_path / "raw", DAY, "auto", "mono")
    }


def test_folders_deeper_than_the_recursion_limit_are_walked(tmp_path):
    """Issue 28's 1,100 nested folders crashed planning with RecursionError (pathlib's rglob recursed)."""
    folder = day(tmp_path)
    depth = sys.getrecursionlimit() + 100
    try:
        for _ in range(depth):  # one level at a time: pathlib's mkdir(parents=True) recurses too
            folder = folder / "d"
            os.mkdir(folder)
        (folder / "deep.wav").write_text("x")
        (items,) = listed(tmp_path).items()
        assert items == ("d/" * depth + "deep.wav", None)
    finally:  # bottom up: pytest's own clean-up (shutil.rmtree) recurses, and fails on such a tree
        subprocess.run(["find", str(tmp_path / "raw"), "-depth", "-delete"], check=True)
