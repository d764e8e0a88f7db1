"""A day's partition as plan lists it (lake/partition.py): every data file once, in path order, hidden and marker
files left out, a symlink checked where it leads, folders of any depth (an explicit stack, not recursion)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from sensevoice_pipeline.jobs import daily
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


def test_publish_sorts_only_what_is_out_of_order():
    """Staged batches arrive in the tables' order (plan sorts the files): no copy of the day is made then; rows
    out of order are sorted."""
    in_order = pa.table({"source_path": ["a", "a", "b"], "channel": [0, 1, 0], "segment_index": [0, 0, 0]})
    assert daily._sorted(in_order, "utterances") is in_order
    shuffled = in_order.take([2, 0, 1])
    assert daily._sorted(shuffled, "utterances").to_pylist() == in_order.to_pylist()
    assert daily._sorted(in_order.slice(0, 0), "utterances").num_rows == 0
