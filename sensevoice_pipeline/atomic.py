"""Atomic file replacement on local disk, the one way this project writes a file that someone may be reading:
serving.json and the model configs (Triton, other operations), staged Parquet batches and markers (the daily job's
other tasks), the warehouse file (BI tools). A reader finds the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` for the caller to write; when the block ends without an error the temp file is
    fsynced and renamed over ``path`` (an existing file keeps its permissions, a new one gets 0644); on an error it
    is removed and ``path`` is untouched. The temp name is a dot-file ending in ``.tmp``: no ``*.parquet`` or
    ``*.json`` glob of a reader picks it up."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """``data`` (text is written as UTF-8) as the file at ``path``, replaced atomically for readers."""
    with replacing(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
