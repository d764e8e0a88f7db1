"""Where a lake's DuckLake catalog lives: a SQLite file (one host, the embedded default) or a PostgreSQL database
(every host of a deployment reaches it). ``catalog_database(setting, lake_root)`` reads ``SVP_CATALOG`` once; the rest
of the library asks the object it returns, never the setting.

What differs between the two, and only here:

- **the DuckLake URI** it is attached with (``ducklake:sqlite:<file>``, ``ducklake:postgres:<conninfo>``) and the
  DuckDB extension that reaches it;
- **the writer lock** that makes writers of one catalog take turns (DuckLake commits of the same date conflict
  otherwise): an flock beside the SQLite file, a PostgreSQL advisory lock for every host;
- **whether it exists** (a reader must not create an empty catalog by attaching it);
- **where the date leases live** (lease.py): beside the SQLite file, or in the catalog database itself, where a
  trigger checks the lease inside the commit's own transaction.

``SVP_CATALOG`` forms: a file path (or ``sqlite:<path>``); ``postgresql://user@host:5432/db`` (a libpq URI; the
password from the URI, ``PGPASSWORD`` or ``~/.pgpass``); DuckLake's own ``postgres:dbname=db host=h user=u`` form;
any of them after ``ducklake:``. Unset: ``<lake>/catalog.sqlite`` for a local lake; an ``s3://`` lake has no default
(each host would get a catalog of its own, and each would collect the others' files as garbage).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sensevoice_pipeline.errors import ConfigurationError, UnavailableError
from sensevoice_pipeline.lake.sqlite_wal import ensure_wal
from sensevoice_pipeline.lake.storage import LocalRoot, Root

log = logging.getLogger(__name__)

# One advisory-lock key for every lake writer of a PostgreSQL catalog (a database holds one catalog): any 64-bit
# number works, as long as every writer uses the same one.
WRITER_LOCK_KEY = 0x5356505F4C414B45  # "SVP_LAKE" (below 2**63, as the keys are signed)
CONNECT_TIMEOUT_S = 10
CONNECT_RETRY_PAUSES_S = (1.0, 2.0)


class CatalogError(ConfigurationError):
    """The catalog cannot be used as configured (unsupported kind, missing catalog for a reader, another catalog
    owns the lake, unreachable database)."""


class CatalogUnreachableError(UnavailableError, CatalogError):
    """The catalog database did not answer (down, failing over): exit code 69, retried by the task."""


class CatalogDatabase:
    """The database a lake's DuckLake catalog lives in."""

    kind: str
    extension: str  # the DuckDB extension that reaches it

    def ducklake_uri(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """For messages and logs: never a password."""
        raise NotImplementedError

    def shareable_uri(self) -> str:
        """The DuckLake URI without secrets, for a BI tool's ATTACH (a password comes from its own environment)."""
        return self.ducklake_uri()

    def exists(self) -> bool:
        raise NotImplementedError

    def writer_lock(self):
        """A context manager held by every writer of this catalog while it writes."""
        raise NotImplementedError

    def prepare_for_writers(self) -> None:
        """Whatever the database needs before the first writer attaches it (the SQLite file's WAL mode)."""


@dataclass(frozen=True)
class SqliteCatalog(CatalogDatabase):
    path: Path
    kind = "sqlite"
    extension = "sqlite_scanner"

    def ducklake_uri(self) -> str:
        return f"ducklake:sqlite:{self.path.resolve()}"

    def describe(self) -> str:
        return f"SQLite catalog {self.path}"

    def exists(self) -> bool:
        return self.path.is_file()

    def writer_lock(self):
        """Writers of one catalog take turns (an flock beside the file): commits never conflict, table creation is
        never raced, and a lease is never taken over while its holder commits (lease.py). Readers do not take it."""
        return LocalRoot(self.path.with_name(f".{self.path.name}.lock")).lock()

    def prepare_for_writers(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ensure_wal(self.path)

    @property
    def leases_path(self) -> Path:
        """The date leases of a SQLite catalog: a file of their own beside it (see lease.py)."""
        return self.path.with_name("leases.sqlite")


@dataclass(frozen=True)
class PostgresCatalog(CatalogDatabase):
    conninfo: str  # a libpq connection string: URI or key=value form
    kind = "postgres"
    extension = "postgres_scanner"

    def ducklake_uri(self) -> str:
        return f"ducklake:postgres:{self.conninfo}"

    def describe(self) -> str:
        return f"PostgreSQL catalog {redact(self.conninfo)}"

    def shareable_uri(self) -> str:
        """Without the password: libpq takes it from PGPASSWORD or ~/.pgpass on the reader's side."""
        return f"ducklake:postgres:{redact(self.conninfo, replacement=None)}"

    def connect(self, **kwargs):
        """A psycopg connection to the catalog database (autocommit unless told otherwise). A failed attempt is
        tried again after 1 and 2 s (a database failing over, a network blip, a process that was paused mid-connect)
        before it is a CatalogError."""
        import psycopg  # only deployments with a PostgreSQL catalog load it

        kwargs.setdefault("autocommit", True)
        for attempt, pause in enumerate(CONNECT_RETRY_PAUSES_S + (None,)):
            try:
                return psycopg.connect(self.conninfo, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)
            except psycopg.OperationalError as exc:
                if pause is None or "authentication failed" in str(exc) or "does not exist" in str(exc):
                    raise CatalogUnreachableError(
                        f"cannot reach the {self.describe()}: {_first_line(exc)}"
                    ) from exc
                log.warning(
                    "cannot reach the %s (attempt %d, retrying in %g s): %s",
                    self.describe(),
                    attempt + 1,
                    pause,
                    _first_line(exc),
                )
                time.sleep(pause)

    def exists(self) -> bool:
        with self.connect() as con:
            return con.execute("SELECT to_regclass('ducklake_metadata') IS NOT NULL").fetchone()[0]

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """A session advisory lock every host's writers share, held on a connection of its own for as long as the
        writer writes. Were that connection lost mid-commit, the lease trigger (lease.py) still refuses a commit of
        a run that lost its date, and DuckLake refuses a conflicting one."""
        with self.connect() as con:
            con.execute("SELECT pg_advisory_lock(%s)", [WRITER_LOCK_KEY])
            try:
                yield
            finally:
                con.execute("SELECT pg_advisory_unlock(%s)", [WRITER_LOCK_KEY])


def catalog_database(setting: str | Path | None, lake_root: Root) -> CatalogDatabase:
    """The catalog named by ``setting`` (``SVP_CATALOG``, see the module doc), or the lake's default."""
    text = str(setting).strip() if setting else ""
    if text.startswith("ducklake:"):
        text = text[len("ducklake:") :]
    if not text:
        if lake_root.local_path is None:  # an object store cannot hold the SQLite file
            raise CatalogError(
                f"the s3:// lake {lake_root} needs a catalog that every host writing it shares: set SVP_CATALOG to "
                "a PostgreSQL database (postgresql://user@host:5432/db), or, for one host only, to a local SQLite "
                "file (docs/deployment.md, 'The lake's catalog')"
            )
        return SqliteCatalog(lake_root.local_path / "catalog.sqlite")
    if text.startswith(("postgresql://", "postgres://")):
        _check_postgres_uri(text)
        return PostgresCatalog(text)
    if text.startswith("postgres:"):
        return PostgresCatalog(text[len("postgres:") :].strip())
    if text.startswith("sqlite:"):
        return SqliteCatalog(Path(text[len("sqlite:") :]))
    if "://" in text or re.match(r"^[a-z]+:(?!/)", text):
        raise CatalogError(
            f"unsupported catalog {redact(text)!r}: give a SQLite file path or a PostgreSQL database "
            "(postgresql://user@host:5432/db)"
        )
    return SqliteCatalog(Path(text))


def redact(conninfo: str, replacement: str | None = "***") -> str:
    """``conninfo`` with its password replaced (or, with ``replacement=None``, left out): URI or key=value form."""
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        if parts.password is not None:
            user = parts.username if replacement is None else f"{parts.username}:{replacement}"
            netloc = f"{user}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("password="))
        if replacement is not None:
            query = re.sub(r"(password=)[^&]*", rf"\g<1>{replacement}", parts.query)
        return urlunsplit(parts._replace(query=query))
    pattern = r"(password\s*=\s*)('[^']*'|\S+)"
    if replacement is None:
        return " ".join(re.sub(pattern, "", conninfo).split())
    return re.sub(pattern, rf"\g<1>{replacement}", conninfo)


def _check_postgres_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if not parts.path.strip("/"):
        raise CatalogError(
            f"the catalog {redact(uri)!r} names no database: postgresql://user@host:5432/<database>"
        )


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
