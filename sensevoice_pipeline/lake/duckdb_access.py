"""DuckDB's access to the lake: extensions loaded from their PyPI wheels (nothing downloaded at run time) and, for an
``s3://`` lake, httpfs with a TEMPORARY secret created on each connection (never stored in a database file)."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

from sensevoice_pipeline.lake.storage import DEFAULT_REGION, SCHEME, Root, StorageError, is_remote

DUCKDB_SECRET = "svp_lake"


def prepare_duckdb(con: duckdb.DuckDBPyConnection, lake_root: Root) -> None:
    """Let ``con`` read an s3:// lake: load httpfs and create a TEMPORARY secret scoped to the lake's bucket. A
    temporary secret lives in this connection's memory only: it is never written into the database file, so the
    file can be handed to BI users without credentials in it. A no-op for a local lake."""
    if not is_remote(lake_root):
        return
    load_duckdb_extension(con, "httpfs")
    options = lake_root.options
    host, scheme = options.endpoint()
    fields = {
        "TYPE": "s3",
        "SCOPE": f"{SCHEME}{lake_root.bucket}",
        "REGION": options.region or DEFAULT_REGION,
    }
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
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        return None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    return path if path.is_file() else None


def load_duckdb_extension(con, name: str) -> None:
    """LOAD a DuckDB extension from its PyPI wheel (nothing is downloaded at run time); where no wheel exists for
    this platform, from DuckDB's own extension repository."""
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
