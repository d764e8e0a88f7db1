"""Storage roots: a local directory, or an ``s3://bucket/prefix`` URI (AWS S3, MinIO or any S3-compatible store).

The raw root and the lake root (with its ``_staging`` area) may each be either. A local root is a ``pathlib.Path``
and behaves exactly as before. An ``s3://`` root is an :class:`ObjectPath`: the small part of the ``Path`` interface
the pipeline uses (``/``, ``name``, ``parent``, ``glob``), with its I/O through ``pyarrow.fs.S3FileSystem``:

- **Listing a day** (:func:`list_remote_work`): one recursive listing of ``<raw>/date=D/``, then the same work items
  as for a local partition. Object stores have no symlinks; manifest paths that leave the partition (``..``,
  absolute) are refused by ``partition.read_manifest`` as before, and so are object keys with empty, ``.`` or ``..``
  segments.
- **Reading audio** (:func:`fetch`): the object is downloaded in 8 MiB chunks into a private temp file (size and
  sha256 computed on the way; the audio never sits in memory), decoded like a local file, and the temp file is
  removed as soon as it is decoded.
- **Writing Parquet** (:func:`write_parquet`, for staged batches and published partitions): the file is serialised
  in memory, then sent in one upload to its final key, ``<table>/date=D/data.parquet``. S3 replaces an object
  atomically for readers (a PUT, or a completed multipart upload, is all or nothing, and reads are strongly
  consistent), so a reader sees the old partition or the new one, never half of one, and nothing is deleted first.
  Staging lives in the lake (``<lake>/_staging/...``) because batches run on different workers.
- **DuckDB** (:func:`prepare_duckdb`): views read ``s3://.../date=*/data.parquet`` through the httpfs extension,
  loaded from the ``duckdb-extension-httpfs`` wheel (DuckDB cannot download it here); the credentials go into a
  TEMPORARY secret created on each connection, never into the database file. The warehouse file itself stays on
  local disk (:func:`default_warehouse`).

Connection settings (:class:`S3Options`) come from the standard AWS environment variables: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (MinIO: ``http://minio:9000``;
unset: AWS itself), AWS_REGION or AWS_DEFAULT_REGION (default us-east-1). In Airflow an ``aws`` Connection may
override them (``provider.hooks.with_aws_connection``).

pyarrow keeps emptied "directories" alive as zero-byte ``.../`` marker objects (after a staging area is removed,
``_staging/date=D/`` may remain as one): every listing here, and DuckDB's globs, ignore them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sensevoice_pipeline.errors import InputError

if TYPE_CHECKING:
    import duckdb

    from sensevoice_pipeline.lake.partition import WorkItem

log = logging.getLogger(__name__)

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
DOWNLOAD_CHUNK = 8 << 20  # bytes per read while downloading audio
HASH_BLOCK = 1 << 20  # bytes per read while hashing a local file
# Where the DuckDB file of an s3:// lake goes by default (SVP_WAREHOUSE overrides it): local disk, relative to the
# working directory, one file per lake: var/warehouse/<bucket>/<prefix>/warehouse.duckdb.
LOCAL_WAREHOUSE_DIR = Path("var/warehouse")
DUCKDB_SECRET = "svp_lake"


class OutsideRootError(InputError):
    """A raw file that resolves outside the raw root when it is opened."""


class StorageError(ValueError):
    """The object store cannot be used as configured (unreachable endpoint, missing bucket, access denied, bad URI):
    one readable line. Not an ``OSError`` on purpose: a store that is down fails the whole task (which retries),
    not the one file being read."""


# -- connection settings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None  # http://minio:9000; None: AWS S3 itself
    access_key: str | None = None  # None (with secret_key): the AWS SDK's own chain (~/.aws, instance role, ...)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "S3Options":
        env = os.environ if env is None else env
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    @classmethod
    def from_connection(cls, login: str | None, password: str | None, extra: dict | None, host: str | None = None,
                        base: "S3Options | None" = None) -> "S3Options":
        """An Airflow Connection of type ``aws``: login = access key id, password = secret access key, extra
        ``endpoint_url`` (as the Amazon provider spells it; also ``service_config.s3.endpoint_url``, or the
        connection's host), ``region_name`` and ``aws_session_token``. Fields it leaves empty keep ``base``'s value
        (default: the AWS_* environment)."""
        extra = extra or {}
        s3_config = (extra.get("service_config") or {}).get("s3") or {}
        given = {
            "endpoint_url": extra.get("endpoint_url") or s3_config.get("endpoint_url") or host,
            "access_key": login or extra.get("aws_access_key_id"),
            "secret_key": password or extra.get("aws_secret_access_key"),
            "session_token": extra.get("aws_session_token"),
            "region": extra.get("region_name") or extra.get("region"),
        }
        base = cls.from_env() if base is None else base
        return replace(base, **{k: v for k, v in given.items() if v})

    def endpoint(self) -> tuple[str | None, str]:
        """(host:port or None for AWS, scheme)."""
        if not self.endpoint_url:
            return None, "https"
        url = self.endpoint_url if "://" in self.endpoint_url else f"https://{self.endpoint_url}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StorageError(f"bad S3 endpoint {self.endpoint_url!r}: expected http(s)://host[:port]")
        return parts.netloc, parts.scheme

    def describe(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region or DEFAULT_REGION})"

    def filesystem(self) -> pafs.S3FileSystem:
        return _filesystem(self)


@functools.lru_cache(maxsize=16)
def _filesystem(options: S3Options) -> pafs.S3FileSystem:
    if bool(options.access_key) != bool(options.secret_key):
        raise StorageError("S3 credentials need both an access key id and a secret access key "
                           "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the aws connection's login / password)")
    host, scheme = options.endpoint()
    kwargs = {}
    if options.access_key:
        kwargs.update(access_key=options.access_key, secret_key=options.secret_key,
                      session_token=options.session_token)
    return pafs.S3FileSystem(
        region=options.region or DEFAULT_REGION,
        endpoint_override=host,
        scheme=scheme,
        connect_timeout=5,
        request_timeout=60,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        # Small objects (under 5 MB) go as one PUT instead of a one-part multipart upload.
        allow_delayed_open=True,
        **kwargs,
    )


# -- paths -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ObjectPath:
    """``s3://bucket/key``: the part of ``pathlib.Path`` the pipeline uses, for object keys. It carries the options
    of its store (not part of equality). It is deliberately not ``os.PathLike``: code that would open it as a local
    file fails at once instead of writing ``s3:/bucket/...`` on local disk."""

    bucket: str
    key: str = ""  # no leading or trailing slash; "" = the bucket itself
    options: S3Options = field(default_factory=S3Options, compare=False, repr=False)

    @classmethod
    def parse(cls, uri: str, options: S3Options | None = None) -> "ObjectPath":
        if not uri.startswith(SCHEME):
            raise StorageError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len(SCHEME):].partition("/")
        if not bucket:
            raise StorageError(f"no bucket in {uri!r}: expected s3://bucket/prefix")
        root = cls(bucket, "", S3Options.from_env() if options is None else options)
        return root / key.strip("/") if key.strip("/") else root

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def __truediv__(self, other: str | os.PathLike) -> "ObjectPath":
        text = os.fspath(other) if not isinstance(other, str) else other
        parts = [p for p in text.strip("/").split("/")]
        if not text.strip("/") or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"refusing the object key {text!r} below {self}: empty, '.' or '..' segment")
        return replace(self, key="/".join([self.key, *parts]) if self.key else "/".join(parts))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "ObjectPath":
        return replace(self, key=self.key.rpartition("/")[0])

    @property
    def parents(self) -> tuple["ObjectPath", ...]:
        out, path = [], self
        while path.key:
            path = path.parent
            out.append(path)
        return tuple(out)

    @property
    def fs_path(self) -> str:
        """The path pyarrow's S3FileSystem takes: ``bucket/key``."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    @property
    def filesystem(self) -> pafs.S3FileSystem:
        return self.options.filesystem()

    def with_options(self, options: S3Options) -> "ObjectPath":
        return replace(self, options=options)

    def as_posix(self) -> str:
        return str(self)

    def resolve(self) -> "ObjectPath":
        return self

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to create: a key's "directories" exist as long as objects below them do."""

    def rmdir(self) -> None:
        """Object stores have no directories to remove: fails like a non-empty directory would, so a caller pruning
        empty parents (daily._remove_empty_parents) stops at once."""
        raise OSError(errno.ENOTEMPTY, "object stores have no directories to remove", str(self))

    def glob(self, pattern: str) -> list["ObjectPath"]:
        """Objects below this prefix whose key relative to it matches ``pattern`` segment by segment (``*`` stays
        within a segment, as with pathlib), sorted. Directory markers are not objects here."""
        want = pattern.split("/")
        hits = [rel for rel, *_ in self.list_files()
                if len(rel.split("/")) == len(want)
                and all(fnmatch.fnmatchcase(p, w) for p, w in zip(rel.split("/"), want))]
        return [self._child(rel) for rel in sorted(hits)]

    def list_files(self) -> list[tuple[str, int, int]]:
        """(key relative to this prefix, size, mtime in ns) of every object below it; [] when there is none."""
        selector = pafs.FileSelector(self.fs_path, recursive=True, allow_not_found=True)
        with storage_errors(self, "listing"):
            infos = self.filesystem.get_file_info(selector)
        base = self.fs_path + "/"
        return [(i.path[len(base):], i.size, i.mtime_ns or 0) for i in infos
                if i.type == pafs.FileType.File and i.path.startswith(base)]

    def _child(self, rel: str) -> "ObjectPath":
        """``self / rel`` without the segment checks: for keys the store itself listed."""
        return replace(self, key=f"{self.key}/{rel}" if self.key else rel)


Root = Path | ObjectPath


def is_remote(path) -> bool:
    return isinstance(path, ObjectPath) or (isinstance(path, str) and path.startswith(SCHEME))


def as_root(value: str | os.PathLike | ObjectPath, options: S3Options | None = None) -> Root:
    """A root or path as given by a user (CLI flag, DAG Param, environment): ``s3://bucket/prefix`` becomes an
    :class:`ObjectPath` (options: ``options``, else the AWS_* environment), anything else a local ``Path``."""
    if isinstance(value, (Path, ObjectPath)):
        return value
    text = value if isinstance(value, str) else os.fspath(value)
    if text.startswith(SCHEME):
        return ObjectPath.parse(text, options)
    if "://" in text:
        raise StorageError(f"unsupported storage URI {text!r}: use a local path or s3://bucket/prefix")
    return Path(text)


def default_warehouse(lake_root: Root) -> Path:
    """The DuckDB file when SVP_WAREHOUSE is not set: ``<lake>/warehouse.duckdb`` for a local lake; for an s3://
    lake a local file, ``var/warehouse/<bucket>/<prefix>/warehouse.duckdb`` below the working directory (DuckDB
    cannot write its database into an object store, and BI tools open it from local disk)."""
    if is_remote(lake_root):
        return LOCAL_WAREHOUSE_DIR / lake_root.bucket / lake_root.key / "warehouse.duckdb"
    return Path(lake_root) / "warehouse.duckdb"


# -- errors ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def storage_errors(path: ObjectPath, action: str):
    """pyarrow's OSErrors as one readable line: a missing object stays a FileNotFoundError (the caller decides what
    it means); anything else (endpoint down, no bucket, access denied) becomes a StorageError."""
    try:
        yield
    except FileNotFoundError as exc:
        raise FileNotFoundError(errno.ENOENT, f"no such object: {path}") from exc
    except StorageError:
        raise
    except OSError as exc:
        raise _storage_error(exc, path, action) from exc


def _storage_error(exc: OSError, path: ObjectPath, action: str) -> StorageError:
    text = " ".join(str(exc).split())
    where = path.options.describe()
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return StorageError(f"bucket {path.bucket!r} does not exist at {where} ({action} {path})")
    if "NETWORK_CONNECTION" in text or "curlCode" in text or "Could not connect" in text:
        return StorageError(f"cannot reach the object store at {where} ({action} {path}): {_reason(text)}")
    if any(s in text for s in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")):
        return StorageError(f"access denied by {where} ({action} {path}); check the credentials: {_reason(text)}")
    return StorageError(f"{action} {path} at {where} failed: {text}")


def _reason(text: str) -> str:
    """The useful tail of an AWS SDK message ("... operation: <reason>")."""
    return text.split("operation: ", 1)[-1][:300]


def check_bucket(path: ObjectPath) -> None:
    """Raise a StorageError unless ``path``'s bucket exists (listings of a missing bucket may just come back
    empty)."""
    with storage_errors(path, "checking the bucket of"):
        info = path.filesystem.get_file_info(path.bucket)
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"bucket {path.bucket!r} does not exist at {path.options.describe()} ({path})")


# -- reading ---------------------------------------------------------------------------------------------------------


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

    def __enter__(self) -> "LocalCopy":
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
            with path.filesystem.open_input_stream(path.fs_path, compression=None) as src, open(local, "wb") as dst:
                while block := src.read(DOWNLOAD_CHUNK):
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return LocalCopy(local, size, digest.hexdigest(), path.name, _tmpdir=tmpdir)


def _open_local(path: Path, inside: Path | None) -> LocalCopy:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))  # what was opened, whatever the path says now
        if inside is not None and not opened.is_relative_to(inside.resolve()):
            raise OutsideRootError(f"{path.name} resolves outside the raw root when opened; refusing to read it")
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


def read_text(path: ObjectPath, encoding: str = "utf-8") -> str:
    with storage_errors(path, "reading"):
        with path.filesystem.open_input_stream(path.fs_path, compression=None) as f:
            return f.read().decode(encoding)


# -- writing ---------------------------------------------------------------------------------------------------------


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


# -- listing a day ---------------------------------------------------------------------------------------------------


def list_remote_work(part: ObjectPath, date: str, default_language: str,
                     default_channel_mode: str) -> list["WorkItem"]:
    """partition.list_work for ``s3://.../date=D``: the same work items (partition.work_items), from one listing of
    its keys."""
    from sensevoice_pipeline.lake.partition import MANIFEST, NOT_DATA_PREFIXES, FileEntry, PartitionError, stamp, work_items

    objects = {rel: stamp(size, mtime_ns) for rel, size, mtime_ns in part.list_files()}
    if not objects:
        check_bucket(part)
        raise PartitionError(f"no partition for {date}: {part} does not exist (no objects below it)")
    manifest = _read_remote_manifest(part / MANIFEST) if MANIFEST in objects else {}
    files = {}
    for rel in sorted(objects):
        if rel == MANIFEST or any(p.startswith(NOT_DATA_PREFIXES) for p in rel.split("/") if p not in ("", ".", "..")):
            continue  # hidden files and markers are not data, as in a local partition
        files[rel] = FileEntry(_key_problem(rel), objects[rel])
    return work_items(part.name, files, manifest, default_language, default_channel_mode)


def _key_problem(rel: str) -> str | None:
    """What is wrong with an object's key itself (the counterpart of a local file's symlink and format checks)."""
    from sensevoice_pipeline.speech.audio import unsupported_reason

    if any(p in ("", ".", "..") for p in rel.split("/")):
        return "object key has an empty, '.' or '..' segment; refusing to read it"
    return unsupported_reason(rel)


def _read_remote_manifest(path: ObjectPath) -> dict[str, dict]:
    """partition.read_manifest on a temp copy of the object; its messages name the object, not the copy."""
    from sensevoice_pipeline.lake.partition import PartitionError, read_manifest

    with fetch(path) as local:
        try:
            return read_manifest(local.path)
        except PartitionError as exc:
            raise PartitionError(str(exc).replace(str(local.path), str(path))) from exc


# -- DuckDB ----------------------------------------------------------------------------------------------------------


def prepare_duckdb(con: "duckdb.DuckDBPyConnection", lake_root: Root) -> None:
    """Let ``con`` read an s3:// lake: load httpfs and create a TEMPORARY secret scoped to the lake's bucket. A
    temporary secret lives in this connection's memory only: it is never written into the database file, so the
    file can be handed to BI users without credentials in it. A no-op for a local lake."""
    if not is_remote(lake_root):
        return
    load_duckdb_extension(con, "httpfs")
    options = lake_root.options
    host, scheme = options.endpoint()
    fields = {"TYPE": "s3", "SCOPE": f"{SCHEME}{lake_root.bucket}", "REGION": options.region or DEFAULT_REGION}
    if options.access_key:
        fields.update(KEY_ID=options.access_key, SECRET=options.secret_key)
        if options.session_token:
            fields["SESSION_TOKEN"] = options.session_token
    if host:  # MinIO and other S3-compatible stores: path-style URLs on their own endpoint
        fields.update(ENDPOINT=host, URL_STYLE="path", USE_SSL=scheme == "https")
    body = ", ".join(f"{k} {sql_value(v)}" for k, v in fields.items())
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {DUCKDB_SECRET} ({body})")


def duckdb_extension_path(name: str) -> Path | None:
    """The extension ``name`` shipped by the ``duckdb-extension-<name>`` wheel for this DuckDB version, if any."""
    import importlib

    import duckdb

    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        return None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    return path if path.is_file() else None


def load_duckdb_extension(con, name: str) -> None:
    """LOAD a DuckDB extension from its PyPI wheel (nothing is downloaded at run time); where no wheel exists for
    this platform, from DuckDB's own extension repository."""
    import duckdb

    path = duckdb_extension_path(name)
    try:
        if path:
            con.execute(f"LOAD {sql_value(str(path))}")
        else:
            con.execute(f"INSTALL {name}")
            con.execute(f"LOAD {name}")
    except duckdb.Error as exc:
        raise StorageError(
            f"DuckDB cannot load its {name} extension: {' '.join(str(exc).split())[:300]} "
            f"(install duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__})"
        ) from exc


def sql_value(value) -> str:
    """A SQL string (or boolean) literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"
