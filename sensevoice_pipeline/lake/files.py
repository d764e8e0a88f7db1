"""Reading and writing files under a storage root (local or s3://): audio fetched for decoding, Parquet written
atomically for readers, locks and cleanup.

- **Reading audio** (:func:`fetch`): a local file is opened once and checked, on the open descriptor, to lie inside
  the raw root; the decoder then reads that descriptor. An ``s3://`` object is downloaded in 8 MiB chunks into a
  private temp file (size and sha256 computed on the way; the audio never sits in memory), decoded like a local
  file, and the temp file is removed as soon as it is decoded.
- **Writing Parquet** (:func:`write_parquet`, for staged batches): the file is serialised, then renamed (local) or
  sent in one upload (s3://) to its final name, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sensevoice_pipeline.errors import InputError
from sensevoice_pipeline.lake.storage import ObjectPath, Root, StorageError, is_remote, storage_errors

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 8 << 20  # bytes per read while downloading audio
HASH_BLOCK = 1 << 20  # bytes per read while hashing a local file


class OutsideRootError(InputError):
    """A raw file that resolves outside the raw root when it is opened."""


@dataclass
class LocalCopy:
    """A local file to decode, with the size and sha256 of the original. For an s3:// object it is a temp copy; for
    a local file, a temp link to the descriptor opened (and checked) by :func:`fetch`, through ``/proc/self/fd``, so
    that the decoder reads exactly the file that was checked. ``release()`` removes the copy or link and closes the
    descriptor."""

    path: Path
    size: int
    sha256: str
    name: str = ""  # the original's file name, for messages
    _tmpdir: str | None = None
    _fd: int | None = None

    def release(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LocalCopy:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def fetch(path: Root, inside: Root | None = None) -> LocalCopy:
    """The file at ``path`` on local disk, with its size and sha256. A local file is read in place (hashed in
    1 MiB blocks); with ``inside``, it is read only if the file actually opened resolves inside that root (checked
    on the open descriptor, so a symlink swapped in after the day was planned cannot lead the read elsewhere). An
    s3:// object is downloaded in chunks into a private temp dir, under its own name (decoder messages name the
    file), and hashed as it arrives: a two-hour call is never held in memory. A missing object is a
    FileNotFoundError; a store that cannot be reached is a StorageError."""
    if not is_remote(path):
        return _open_local(Path(path), None if inside is None else Path(inside))
    tmpdir = tempfile.mkdtemp(prefix="svp-audio-")
    local = Path(tmpdir) / path.name
    try:
        digest, size = hashlib.sha256(), 0
        with storage_errors(path, "downloading"):
            with (
                path.filesystem.open_input_stream(path.fs_path, compression=None) as src,
                open(local, "wb") as dst,
            ):
                while block := src.read(DOWNLOAD_CHUNK):
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return LocalCopy(local, size, digest.hexdigest(), path.name, _tmpdir=tmpdir)


class NotARegularFileError(InputError):
    """A FIFO, socket or device where a recording was expected."""


def special_file_kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is (None: a regular file or a directory)."""
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), None)


def _open_local(path: Path, inside: Path | None) -> LocalCopy:
    # O_NONBLOCK: opening a FIFO (a symlink swapped to one after planning) must not wait for a writer; the descriptor
    # is checked to be a regular file before anything reads it, and reads of regular files ignore the flag.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        kind = special_file_kind(os.fstat(fd).st_mode)
        if kind:
            raise NotARegularFileError(f"{path.name} is not a regular file ({kind}); refusing to read it")
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))  # what was opened, whatever the path says now
        if inside is not None and not opened.is_relative_to(inside.resolve()):
            raise OutsideRootError(
                f"{path.name} resolves outside the raw root when opened; refusing to read it"
            )
        digest, size = hashlib.sha256(), 0
        while block := os.read(fd, HASH_BLOCK):
            digest.update(block)
            size += len(block)
        os.lseek(fd, 0, os.SEEK_SET)
        # The decoder opens a link under the file's own name (libsndfile falls back on the extension to pick a
        # format) that points at the descriptor: it reads the very file checked above, whatever the path says now.
        tmpdir = tempfile.mkdtemp(prefix="svp-audio-")
        os.symlink(f"/proc/self/fd/{fd}", Path(tmpdir) / path.name)
    except BaseException:
        os.close(fd)
        raise
    return LocalCopy(Path(tmpdir) / path.name, size, digest.hexdigest(), path.name, _tmpdir=tmpdir, _fd=fd)


def read_parquet(path: Root) -> pa.Table:
    if not is_remote(path):
        return pq.read_table(path)
    with storage_errors(path, "reading"):
        return pq.read_table(path.fs_path, filesystem=path.filesystem)


def read_parquet_files(
    paths: list[Root], schema: pa.Schema, memory_pool: pa.MemoryPool | None = None
) -> pa.Table:
    """Parquet files of one store (local, or one s3:// bucket), read as one table of ``schema``, in order."""
    if not paths:
        return schema.empty_table()
    if is_remote(paths[0]):
        with storage_errors(paths[0], "reading"):
            dataset = pads.dataset(
                [p.fs_path for p in paths], schema=schema, format="parquet", filesystem=paths[0].filesystem
            )
            return dataset.to_table(memory_pool=memory_pool)
    return pads.dataset([str(p) for p in paths], schema=schema, format="parquet").to_table(
        memory_pool=memory_pool
    )


def read_text(path: ObjectPath, encoding: str = "utf-8") -> str:
    with storage_errors(path, "reading"):
        with path.filesystem.open_input_stream(path.fs_path, compression=None) as f:
            return f.read().decode(encoding)


def write_parquet(table: pa.Table, path: Root, **write_options) -> Root:
    """Write ``table`` as one Parquet file at ``path``, replacing any file there atomically for readers, so that no
    reader ever finds it missing or half written.

    Local: a hidden temp file beside it (a dot-file with a non-parquet suffix, invisible to ``*.parquet`` globs),
    fsync, then a rename over the old one. (pyarrow's ``existing_data_behavior="delete_matching"`` deletes first and
    writes after: readers fail in between.) s3://: the file is finished in memory, then sent in one upload (one PUT
    below 5 MB, else one multipart upload that S3 makes visible only when it completes); nothing is deleted first."""
    if not is_remote(path):
        return _write_parquet_local(table, Path(path), **write_options)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **write_options)
    data = sink.getvalue()
    with storage_errors(path, "writing"):
        out = path.filesystem.open_output_stream(path.fs_path, compression=None)
        out.write(data)
        out.close()
    return path


def _write_parquet_local(table: pa.Table, path: Path, **write_options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp, **write_options)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """An exclusive flock on the local file ``path`` (created if missing): across processes, and across threads
    (each call opens its own file description). Released when the holder exits, or dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_tree(path: Root) -> None:
    """Remove a directory or a key prefix and everything below it; a missing one is fine, and so (logged) is a
    failure, as with ``shutil.rmtree(ignore_errors=True)``: this is cleanup."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        with storage_errors(path, "removing"):
            path.filesystem.delete_dir(path.fs_path)
    except FileNotFoundError:
        pass
    except StorageError as exc:
        log.warning("could not remove %s: %s", path, exc)


def write_bytes(data: bytes, path: Root) -> Root:
    """``data`` as the file at ``path``, whole or not at all for readers (a rename locally, one PUT on s3://)."""
    if not is_remote(path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    with storage_errors(path, "writing"):
        with path.filesystem.open_output_stream(path.fs_path, compression=None) as out:
            out.write(data)
    return path


def read_bytes(path: Root) -> bytes:
    if not is_remote(path):
        return Path(path).read_bytes()
    with storage_errors(path, "reading"):
        with path.filesystem.open_input_stream(path.fs_path, compression=None) as f:
            return f.read()


def list_files(folder: Root) -> list[tuple[str, int]]:
    """(name relative to ``folder``, modification time in ns) of every file below it, local or s3://; [] when the
    folder does not exist."""
    if is_remote(folder):
        return [(rel, mtime) for rel, _, mtime in folder.list_files()]
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [(str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()]


def modification_times(paths: list[Root]) -> dict[str, int | None]:
    """``str(path)`` -> modification time in ns (None: missing), for local paths and s3:// objects alike; the
    objects of one store are asked in one call."""
    times: dict[str, int | None] = {}
    remote = [p for p in paths if is_remote(p)]
    for path in paths:
        if not is_remote(path):
            try:
                times[str(path)] = Path(path).stat().st_mtime_ns
            except FileNotFoundError:
                times[str(path)] = None
    if remote:
        with storage_errors(remote[0], "listing"):
            infos = remote[0].filesystem.get_file_info([p.fs_path for p in remote])
        for path, info in zip(remote, infos):
            times[str(path)] = info.mtime_ns if info.type == pafs.FileType.File else None
    return times


def remove_file(path: Root) -> None:
    """Delete one file or object; a missing one is fine."""
    if not is_remote(path):
        Path(path).unlink(missing_ok=True)
        return
    try:
        with storage_errors(path, "removing"):
            path.filesystem.delete_file(path.fs_path)
    except FileNotFoundError:
        pass
