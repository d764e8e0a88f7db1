"""Storage roots: where raw audio, the lake's files and staging live. A root is a local directory
(:class:`~.local.LocalRoot`, a ``pathlib.Path``) or an ``s3://bucket/prefix`` URI (:class:`~.s3.ObjectPath`); both
offer the same operations (:class:`Root`), each done its own way, so callers never ask which one they hold. The
kind is chosen once, by :func:`as_root`, where settings are built (``Settings``, ``Lake``); paths derived from a
root with ``/`` keep its kind (and, for s3://, its connection options).

The warehouse file itself always stays on local disk (:func:`default_warehouse`): DuckDB cannot write its database
into an object store, and BI tools open it from local disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from sensevoice_pipeline.lake.storage.errors import StorageError
from sensevoice_pipeline.lake.storage.local import (
    NOT_DATA_PREFIXES,
    LocalCopy,
    LocalRoot,
    NotARegularFileError,
    OutsideRootError,
    ScannedFile,
    special_file_kind,
)
from sensevoice_pipeline.lake.storage.s3 import (
    DEFAULT_REGION,
    DUCKDB_SECRET,
    SCHEME,
    ObjectPath,
    S3Options,
    check_bucket,
    storage_errors,
)

# Where the DuckDB file of an s3:// lake goes by default (SVP_WAREHOUSE overrides it): local disk, relative to the
# working directory, one file per lake: var/warehouse/<bucket>/<prefix>/warehouse.duckdb.
LOCAL_WAREHOUSE_DIR = Path("var/warehouse")


class Root(Protocol):
    """What the pipeline does with a storage root, and with every path below one."""

    name: str
    needs_credentials: bool  # an Airflow aws Connection may supply them
    local_path: Path | None  # None: no local directory (it cannot hold a SQLite catalog or a DuckDB file)

    def __truediv__(self, other: str) -> Root: ...
    @property
    def parent(self) -> Root: ...
    @property
    def duckdb_uri(self) -> str: ...
    @property
    def filesystem(self) -> pafs.FileSystem: ...
    @property
    def fs_path(self) -> str: ...
    def with_options(self, options: S3Options) -> Root: ...
    def absolute(self) -> Root: ...
    def resolve(self) -> Root: ...
    def path_in_store(self, text: str) -> Root: ...
    def check_reachable(self) -> None: ...
    def prepare_duckdb(self, con) -> None: ...
    def is_file(self) -> bool: ...
    def fetch(self, inside: Root | None = None) -> LocalCopy: ...
    def read_bytes(self) -> bytes: ...
    def read_text(self, encoding: str = "utf-8") -> str: ...
    def read_parquet(self) -> pa.Table: ...
    def list_files(self) -> list[tuple[str, int, int]]: ...
    def scan(self, inside: Root) -> dict[str, ScannedFile] | None: ...
    def write_atomic(self, data: bytes | str) -> Root: ...
    def write_parquet(self, table: pa.Table, **write_options) -> Root: ...
    def remove(self) -> None: ...
    def remove_tree(self) -> None: ...
    def lock(self) -> contextlib.AbstractContextManager[None]: ...


def _is_uri(text: str) -> bool:
    return text.startswith(SCHEME)


def as_root(value: str | os.PathLike | Root, options: S3Options | None = None) -> Root:
    """A root or path as given by a user (CLI flag, DAG Param, environment): ``s3://bucket/prefix`` becomes an
    :class:`ObjectPath` (options: ``options``, else the AWS_* environment), anything else a :class:`LocalRoot`."""
    if isinstance(value, (LocalRoot, ObjectPath)):
        return value
    text = value if isinstance(value, str) else os.fspath(value)
    if _is_uri(text):
        return ObjectPath.parse(text, options)
    if "://" in text:
        raise StorageError(f"unsupported storage URI {text!r}: use a local path or s3://bucket/prefix")
    return LocalRoot(text)


def local_only(value: str | os.PathLike, what: str) -> Path:
    """``value`` as a local path, or a StorageError naming ``what`` when it is an object store URI."""
    if as_root(value).local_path is None:
        raise StorageError(f"{what} must be a local path, not {value}")
    return Path(value)


def root_text(value: str | os.PathLike | Root) -> str:
    """A root as written for comparisons (allow-lists): an s3:// URI as written, a local path made absolute."""
    text = str(value)
    if _is_uri(text):  # as written: an allow-list may name a whole scheme ("s3://") or bucket
        return text.rstrip("/")
    return str(Path(text).absolute()).rstrip("/") or "/"


def default_warehouse(lake_root: Root) -> Path:
    """The DuckDB file when SVP_WAREHOUSE is not set: ``<lake>/warehouse.duckdb`` for a local lake; for an s3://
    lake a local file, ``var/warehouse/<bucket>/<prefix>/warehouse.duckdb`` below the working directory."""
    if lake_root.local_path is not None:
        return lake_root.local_path / "warehouse.duckdb"
    return LOCAL_WAREHOUSE_DIR / lake_root.bucket / lake_root.key / "warehouse.duckdb"


def read_parquet_files(
    paths: list[Root], schema: pa.Schema, memory_pool: pa.MemoryPool | None = None
) -> pa.Table:
    """Parquet files of one store (local, or one s3:// bucket), read as one table of ``schema``, in order."""
    if not paths:
        return schema.empty_table()
    with _errors_of(paths[0], "reading"):
        dataset = pads.dataset(
            [p.fs_path for p in paths], schema=schema, format="parquet", filesystem=paths[0].filesystem
        )
        return dataset.to_table(memory_pool=memory_pool)


def modification_times(paths: list[Root]) -> dict[str, int | None]:
    """``str(path)`` -> modification time in ns (None: missing), the paths of each store asked in one call."""
    by_store: dict[int, list[Root]] = {}
    for path in paths:
        by_store.setdefault(id(path.filesystem) if path.local_path is None else 0, []).append(path)
    times: dict[str, int | None] = {}
    for group in by_store.values():
        with _errors_of(group[0], "listing"):
            infos = group[0].filesystem.get_file_info([p.fs_path for p in group])
        for path, info in zip(group, infos):
            times[str(path)] = info.mtime_ns if info.type == pafs.FileType.File else None
    return times


@contextlib.contextmanager
def _errors_of(path: Root, action: str) -> Iterator[None]:
    if isinstance(path, ObjectPath):
        with storage_errors(path, action):
            yield
    else:
        yield


__all__ = [
    "DEFAULT_REGION",
    "DUCKDB_SECRET",
    "LOCAL_WAREHOUSE_DIR",
    "NOT_DATA_PREFIXES",
    "SCHEME",
    "LocalCopy",
    "LocalRoot",
    "NotARegularFileError",
    "ObjectPath",
    "OutsideRootError",
    "Root",
    "S3Options",
    "ScannedFile",
    "StorageError",
    "as_root",
    "check_bucket",
    "default_warehouse",
    "local_only",
    "modification_times",
    "read_parquet_files",
    "root_text",
    "special_file_kind",
    "storage_errors",
]
