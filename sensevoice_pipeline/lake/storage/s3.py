"""An ``s3://bucket/prefix`` storage root (AWS S3, MinIO or any S3-compatible store): :class:`ObjectPath`, the part
of the ``Path`` interface the pipeline uses (``/``, ``name``, ``parent``, ``glob``) and the storage operations of a
root, with its I/O through ``pyarrow.fs.S3FileSystem``.

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
import fnmatch
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sensevoice_pipeline.lake.storage.errors import StorageError, StoreUnreachableError
from sensevoice_pipeline.lake.storage.local import NOT_DATA_PREFIXES, LocalCopy, ScannedFile

log = logging.getLogger(__name__)

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
DUCKDB_SECRET = "svp_lake"
DOWNLOAD_CHUNK = 8 << 20  # bytes per read while downloading audio


# -- connection settings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None  # http://minio:9000; None: AWS S3 itself
    access_key: str | None = (
        None  # None (with secret_key): the AWS SDK's own chain (~/.aws, instance role, ...)
    )
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> S3Options:
        env = os.environ if env is None else env
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    @classmethod
    def from_connection(
        cls,
        login: str | None,
        password: str | None,
        extra: dict | None,
        host: str | None = None,
        base: S3Options | None = None,
    ) -> S3Options:
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
        raise StorageError(
            "S3 credentials need both an access key id and a secret access key "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the aws connection's login / password)"
        )
    host, scheme = options.endpoint()
    kwargs = {}
    if options.access_key:
        kwargs.update(
            access_key=options.access_key, secret_key=options.secret_key, session_token=options.session_token
        )
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
    def parse(cls, uri: str, options: S3Options | None = None) -> ObjectPath:
        if not uri.startswith(SCHEME):
            raise StorageError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len(SCHEME) :].partition("/")
        if not bucket:
            raise StorageError(f"no bucket in {uri!r}: expected s3://bucket/prefix")
        root = cls(bucket, "", S3Options.from_env() if options is None else options)
        return root / key.strip("/") if key.strip("/") else root

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def __truediv__(self, other: str | os.PathLike) -> ObjectPath:
        text = os.fspath(other) if not isinstance(other, str) else other
        parts = [p for p in text.strip("/").split("/")]
        if not text.strip("/") or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"refusing the object key {text!r} below {self}: empty, '.' or '..' segment")
        return replace(self, key="/".join([self.key, *parts]) if self.key else "/".join(parts))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectPath:
        return replace(self, key=self.key.rpartition("/")[0])

    @property
    def parents(self) -> tuple[ObjectPath, ...]:
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

    def with_options(self, options: S3Options) -> ObjectPath:
        return replace(self, options=options)

    def as_posix(self) -> str:
        return str(self)

    def resolve(self) -> ObjectPath:
        return self

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to create: a key's "directories" exist as long as objects below them do."""

    def rmdir(self) -> None:
        """Object stores have no directories to remove: fails like a non-empty directory would, so a caller pruning
        empty parents (daily._remove_empty_parents) stops at once."""
        raise OSError(errno.ENOTEMPTY, "object stores have no directories to remove", str(self))

    def glob(self, pattern: str) -> list[ObjectPath]:
        """Objects below this prefix whose key relative to it matches ``pattern`` segment by segment (``*`` stays
        within a segment, as with pathlib), sorted. Directory markers are not objects here."""
        want = pattern.split("/")
        hits = [
            rel
            for rel, *_ in self.list_files()
            if len(rel.split("/")) == len(want)
            and all(fnmatch.fnmatchcase(p, w) for p, w in zip(rel.split("/"), want))
        ]
        return [self._child(rel) for rel in sorted(hits)]

    def list_files(self) -> list[tuple[str, int, int]]:
        """(key relative to this prefix, size, mtime in ns) of every object below it; [] when there is none."""
        selector = pafs.FileSelector(self.fs_path, recursive=True, allow_not_found=True)
        with storage_errors(self, "listing"):
            infos = self.filesystem.get_file_info(selector)
        base = self.fs_path + "/"
        return [
            (i.path[len(base) :], i.size, i.mtime_ns or 0)
            for i in infos
            if i.type == pafs.FileType.File and i.path.startswith(base)
        ]

    # -- a storage root ---------------------------------------------------------------------------------------------

    needs_credentials = True  # an aws Connection may supply them (provider.hooks.with_aws_connection)
    local_path = None  # an object store cannot hold a SQLite catalog or a DuckDB file

    @property
    def duckdb_uri(self) -> str:
        return str(self)

    def absolute(self) -> ObjectPath:
        return self

    def path_in_store(self, text: str) -> ObjectPath:
        """Another object of this store, as the store (or DuckDB) names it: ``s3://bucket/key``."""
        return ObjectPath.parse(text, self.options)

    def check_reachable(self) -> None:
        """A StorageError unless the bucket exists and the store answers (listings of a missing bucket may just
        come back empty)."""
        check_bucket(self)

    def prepare_duckdb(self, con) -> None:
        """Let ``con`` read below this root: load httpfs and create a TEMPORARY secret scoped to the bucket. A
        temporary secret lives in this connection's memory only: it is never written into the database file, so
        the file can be handed to BI users without credentials in it."""
        from sensevoice_pipeline.lake.duckdb_access import load_duckdb_extension

        load_duckdb_extension(con, "httpfs")
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {DUCKDB_SECRET} ({self.duckdb_secret_fields()})")

    def duckdb_secret_fields(self, placeholders: bool = False) -> str:
        """The body of DuckDB's ``CREATE SECRET`` for this bucket: scope, region, endpoint, and the credentials --
        or, with ``placeholders``, ``<...>`` where they go (what `svp bi` prints: secrets are never printed)."""
        from sensevoice_pipeline.lake.duckdb_access import sql_value

        host, scheme = self.options.endpoint()
        fields = {
            "TYPE": "s3",
            "SCOPE": f"{SCHEME}{self.bucket}",
            "REGION": self.options.region or DEFAULT_REGION,
        }
        if placeholders:
            fields.update(KEY_ID="<your access key id>", SECRET="<your secret access key>")
        elif self.options.access_key:
            fields.update(KEY_ID=self.options.access_key, SECRET=self.options.secret_key)
            if self.options.session_token:
                fields["SESSION_TOKEN"] = self.options.session_token
        if host:  # MinIO and other S3-compatible stores: path-style URLs on their own endpoint
            fields.update(ENDPOINT=host, URL_STYLE="path", USE_SSL=scheme == "https")
        return ", ".join(f"{k} {sql_value(v)}" for k, v in fields.items())

    def is_file(self) -> bool:
        with storage_errors(self, "checking"):
            return self.filesystem.get_file_info(self.fs_path).type == pafs.FileType.File

    def fetch(self, inside: ObjectPath | None = None) -> LocalCopy:
        """The object downloaded in 8 MiB chunks into a private temp dir, under its own name (decoder messages name
        the file), and hashed as it arrives: a two-hour call is never held in memory. (``inside``: an object key has
        no symlinks to leave its root by; its segments are checked when it is listed.) A missing object is a
        FileNotFoundError; a store that cannot be reached is a StorageError."""
        tmpdir = tempfile.mkdtemp(prefix="svp-audio-")
        local = Path(tmpdir) / self.name
        try:
            digest, size = hashlib.sha256(), 0
            with storage_errors(self, "downloading"):
                with (
                    self.filesystem.open_input_stream(self.fs_path, compression=None) as src,
                    open(local, "wb") as dst,
                ):
                    while block := src.read(DOWNLOAD_CHUNK):
                        digest.update(block)
                        dst.write(block)
                        size += len(block)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        return LocalCopy(local, size, digest.hexdigest(), self.name, _tmpdir=tmpdir)

    def read_bytes(self) -> bytes:
        with storage_errors(self, "reading"):
            with self.filesystem.open_input_stream(self.fs_path, compression=None) as f:
                return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def read_parquet(self) -> pa.Table:
        with storage_errors(self, "reading"):
            return pq.read_table(self.fs_path, filesystem=self.filesystem)

    def scan(self, inside: ObjectPath | None = None) -> dict[str, ScannedFile] | None:
        """Every data object below this prefix (hidden and ``_`` segments skipped, as in a local folder), key
        relative to it -> what is wrong with the key itself (an empty, '.' or '..' segment: the counterpart of a
        local symlink leading out); None when there is no object below it (object stores have no empty folders)."""
        objects = self.list_files()
        if not objects:
            return None
        files = {}
        for rel, size, mtime_ns in sorted(objects):
            segments = rel.split("/")
            if any(s.startswith(NOT_DATA_PREFIXES) for s in segments if s not in ("", ".", "..")):
                continue
            bad = any(s in ("", ".", "..") for s in segments)
            problem = "object key has an empty, '.' or '..' segment; refusing to read it" if bad else None
            files[rel] = ScannedFile(problem, size, mtime_ns)
        return files

    def write_atomic(self, data: bytes | str | pa.Buffer) -> ObjectPath:
        """``data`` as this object in one PUT: readers find the old object or the new one."""
        data = data.encode("utf-8") if isinstance(data, str) else data
        with storage_errors(self, "writing"):
            with self.filesystem.open_output_stream(self.fs_path, compression=None) as out:
                out.write(data)
        return self

    def write_parquet(self, table: pa.Table, **write_options) -> ObjectPath:
        """``table`` as one Parquet object, finished in memory and sent in one upload (one PUT below 5 MB, else one
        multipart upload that S3 makes visible only when it completes); nothing is deleted first."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **write_options)
        return self.write_atomic(sink.getvalue())  # the buffer itself: no second copy of the file in memory

    def remove(self) -> None:
        """Delete this object; a missing one is fine."""
        try:
            with storage_errors(self, "removing"):
                self.filesystem.delete_file(self.fs_path)
        except FileNotFoundError:
            pass

    def remove_tree(self) -> None:
        """Remove every object below this prefix; a missing one is fine, and so (logged) is a failure: cleanup."""
        try:
            with storage_errors(self, "removing"):
                self.filesystem.delete_dir(self.fs_path)
        except FileNotFoundError:
            pass
        except StorageError as exc:
            log.warning("could not remove %s: %s", self, exc)

    def lock(self):
        raise StorageError(
            f"{self}: an object store has no file locks; a lake several hosts write needs a PostgreSQL catalog"
        )

    def _child(self, rel: str) -> ObjectPath:
        """``self / rel`` without the segment checks: for keys the store itself listed."""
        return replace(self, key=f"{self.key}/{rel}" if self.key else rel)


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
        return StoreUnreachableError(
            f"cannot reach the object store at {where} ({action} {path}): {_reason(text)}"
        )
    if any(
        s in text for s in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
    ):
        return StorageError(
            f"access denied by {where} ({action} {path}); check the credentials: {_reason(text)}"
        )
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
