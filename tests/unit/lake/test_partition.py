"""A day's partition as plan lists it (lake/partition.py): every data file once, in path order, hidden and marker
files left out, a symlink checked where it leads. Folders of any depth (an explicit stack, not recursion):
tests/integration/daily/test_deep_partition.py (its clean-up runs `find`)."""

from __future__ import annotations

import os
from pathlib import Path

from sensevoice_pipeline.lake.partition import list_work

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


def test_every_data_file_once_in_path_order_and_nothing_hidden(tmp_path):
    part = day(tmp_path)
    for rel in (
        "b/call.wav",
        "a.b/call.flac",
        "a/call.mp3",
        "notes.txt",
        "_SUCCESS",
        ".hidden.wav",
        "_tmp/partial.wav",
        ".cache/x.wav",
        "manifest.csv",
        "sub/manifest.csv",
    ):
        (part / rel).parent.mkdir(parents=True, exist_ok=True)
        (part / rel).write_text("path\n" if rel.endswith("manifest.csv") else "x")
    items = listed(tmp_path)
    assert (
        list(items)
        == sorted(items)
        == ["a.b/call.flac", "a/call.mp3", "b/call.wav", "notes.txt", "sub/manifest.csv"]
    )
    assert items["notes.txt"].startswith("unsupported format '.txt'") and items["b/call.wav"] is None


def test_symlinks_are_checked_where_they_lead(tmp_path):
    part = day(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.wav").write_text("x")
    (part / "inside.wav").write_text("x")
    os.symlink(outside / "secret.wav", part / "leak.wav")
    os.symlink(part / "inside.wav", part / "alias.wav")
    os.symlink(outside, part / "folder-link")  # a linked folder is not walked into: one entry, refused
    os.symlink(tmp_path / "missing.wav", part / "dangling.wav")
    items = listed(tmp_path)
    assert items["alias.wav"] is None and items["inside.wav"] is None
    assert (
        items["leak.wav"]
        == items["folder-link"]
        == "symlink points outside the raw root; refusing to read it"
    )
    assert items["dangling.wav"] == "broken symlink"
    assert "folder-link/secret.wav" not in items


def test_a_partition_folder_that_leads_outside_the_raw_root_is_refused_file_by_file(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "call.wav").write_text("x")
    (tmp_path / "raw").mkdir()
    os.symlink(outside, tmp_path / "raw" / f"date={DAY}")
    assert listed(tmp_path) == {"call.wav": "symlink points outside the raw root; refusing to read it"}
