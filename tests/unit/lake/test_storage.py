"""lake/storage: the choice of a root's kind, and the local implementation of the root's interface (one interface,
so the daily job, the catalog and the sensor never ask which kind of root they hold; the s3:// implementation
against a real S3 server: tests/integration/storage/)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from sensevoice_pipeline.lake.storage import (
    LocalRoot,
    NotARegularFileError,
    ObjectPath,
    OutsideRootError,
    StorageError,
    as_root,
    default_warehouse,
    local_only,
    modification_times,
    read_parquet_files,
    root_text,
)


def test_the_kind_is_chosen_once_and_derived_paths_keep_it(tmp_path):
    local, remote = as_root(str(tmp_path)), as_root("s3://bucket/raw/")
    assert isinstance(local, LocalRoot) and isinstance(local / "date=2026-01-01" / "a.wav", LocalRoot)
    assert isinstance(local.parent, LocalRoot) and as_root(local) is local
    assert isinstance(remote / "date=2026-01-01", ObjectPath) and str(remote) == "s3://bucket/raw"
    assert (local.local_path, remote.local_path) == (Path(tmp_path), None)
    assert (local.needs_credentials, remote.needs_credentials) == (False, True)
    with pytest.raises(StorageError, match="unsupported storage URI"):
        as_root("gs://bucket/raw")


def test_local_places_and_texts(tmp_path):
    assert default_warehouse(as_root(str(tmp_path))) == tmp_path / "warehouse.duckdb"
    assert default_warehouse(as_root("s3://b/lake/x")) == Path("var/warehouse/b/lake/x/warehouse.duckdb")
    assert local_only("model_repository", "the repository") == Path("model_repository")
    with pytest.raises(StorageError, match="the repository must be a local path"):
        local_only("s3://b/repo", "the repository")
    assert root_text("s3://") == "s3:" and root_text("s3://b/x/") == "s3://b/x"
    assert root_text("relative/dir/") == str(Path("relative/dir").absolute())


def test_a_scan_lists_data_files_and_says_what_is_wrong_with_the_others(tmp_path):
    root = LocalRoot(tmp_path / "raw")
    part = root / "date=2026-01-01"
    (part / "queue" / ".partial").mkdir(parents=True)
    (part / "queue" / "a.wav").write_bytes(b"a")
    (part / "queue" / ".partial" / "b.wav").write_bytes(b"b")  # hidden: not data
    (part / "_SUCCESS").write_bytes(b"")  # a marker: not data
    (tmp_path / "secret.wav").write_bytes(b"s")
    (part / "escape.wav").symlink_to(tmp_path / "secret.wav")
    (part / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    os.mkfifo(part / "pipe.wav")
    scanned = part.scan(root)
    assert sorted(scanned) == ["dangling.wav", "escape.wav", "pipe.wav", "queue/a.wav"]
    assert scanned["queue/a.wav"].problem is None and scanned["queue/a.wav"].size == 1
    assert scanned["escape.wav"].problem == "symlink points outside the raw root; refusing to read it"
    assert scanned["dangling.wav"].problem == "broken symlink"
    assert scanned["pipe.wav"].problem == "not a regular file (a FIFO); refusing to read it"
    assert (root / "date=2026-01-02").scan(root) is None  # a missing folder, not an empty day


def test_fetch_reads_the_file_it_checked_and_refuses_what_leads_out_or_blocks(tmp_path):
    root = LocalRoot(tmp_path / "raw")
    root.mkdir()
    (root / "a.wav").write_bytes(b"RIFF audio")
    with (root / "a.wav").fetch(inside=root) as copy:
        assert copy.path.read_bytes() == b"RIFF audio" and copy.size == 10 and copy.name == "a.wav"
    (tmp_path / "outside.wav").write_bytes(b"x")
    (root / "link.wav").symlink_to(tmp_path / "outside.wav")
    with pytest.raises(OutsideRootError):
        (root / "link.wav").fetch(inside=root)
    os.mkfifo(root / "pipe.wav")
    with pytest.raises(NotARegularFileError, match="a FIFO"):
        (root / "pipe.wav").fetch(inside=root)  # returns at once: opened without blocking


def test_writes_replace_whole_files_and_reads_come_back(tmp_path):
    root = LocalRoot(tmp_path / "lake")
    marker = (root / "deep" / "m.json").write_atomic('{"a": 1}')
    assert marker.read_bytes() == b'{"a": 1}' and isinstance(marker, LocalRoot)
    marker.write_atomic(b'{"a": 2}')
    assert marker.read_text() == '{"a": 2}' and not [
        p for p in marker.parent.iterdir() if p.name.startswith(".")
    ]
    one = (root / "t" / "one.parquet").write_parquet(pa.table({"x": [1, 2]}))
    two = (root / "t" / "two.parquet").write_parquet(pa.table({"x": [3]}))
    assert one.read_parquet().column("x").to_pylist() == [1, 2]
    schema = pa.schema([("x", pa.int64())])
    assert read_parquet_files([one, two], schema).column("x").to_pylist() == [1, 2, 3]
    times = modification_times([one, root / "t" / "missing.parquet"])
    assert times[str(one)] == one.stat().st_mtime_ns and times[str(root / "t" / "missing.parquet")] is None
    assert sorted(rel for rel, *_ in root.list_files()) == ["deep/m.json", "t/one.parquet", "t/two.parquet"]
    one.remove()
    one.remove()  # a missing file is fine
    (root / "t").remove_tree()
    assert sorted(rel for rel, *_ in root.list_files()) == ["deep/m.json"]


def test_an_object_store_has_no_locks(tmp_path):
    with (LocalRoot(tmp_path) / ".lock").lock():
        pass
    with pytest.raises(StorageError, match="no file locks"):
        ObjectPath.parse("s3://bucket/lake").lock()


def test_a_fifo_swapped_in_after_planning_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "call.wav")
    done = threading.Event()
    caught: list[Exception] = []

    def read():
        try:
            LocalRoot(tmp_path / "call.wav").fetch(inside=tmp_path)
        except Exception as exc:  # noqa: BLE001 -- looked at below
            caught.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "fetch blocked on a FIFO"
    assert isinstance(caught[0], NotARegularFileError) and "not a regular file (a FIFO)" in str(caught[0])
