"""The lake from any DuckDB: the setup SQL a BI tool, a notebook or the DuckDB shell runs once per session
(`svp bi`), and the extensions it needs, installed from this package's wheels so that nothing is downloaded.

The SQL is plain DuckDB: ``INSTALL``/``LOAD`` of every extension (DuckLake, the catalog database's scanner, httpfs
for an ``s3://`` lake), for ``s3://`` a ``CREATE SECRET`` whose credentials are left as placeholders, the read-only
``ATTACH`` of the catalog as ``lake``, and ``USE lake``: the tables then answer by their own names, as the
warehouse file's views do (``FROM utterances``). ``INSTALL`` of an extension already in DuckDB's extension directory
is a no-op, so once :func:`install_extensions` has put the wheels' copies there the SQL works offline; with
internet, any DuckDB of the same version installs them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from sensevoice_pipeline.lake.catalog import ALIAS, Lake
from sensevoice_pipeline.lake.duckdb_access import duckdb_extension_path, sql_value
from sensevoice_pipeline.lake.storage import StorageError

HTTPFS = "httpfs"


def needed_extensions(lake: Lake) -> list[str]:
    """The DuckDB extensions a session needs to read ``lake``, in load order."""
    return ["ducklake", lake.catalog.extension, *([HTTPFS] if lake.root.needs_credentials else [])]


def setup_sql(lake: Lake) -> str:
    """The statements that attach ``lake`` read-only to any DuckDB session of this DuckDB version."""
    lines = [
        f"-- SenseVoice lake {lake.root} ({lake.catalog.describe()}), for DuckDB {duckdb.__version__}.",
        "-- Run once per session: DuckDB CLI (duckdb -init FILE), DBeaver, Superset/Metabase, a notebook (docs/bi.md).",
    ]
    for name in needed_extensions(lake):
        lines += [f"INSTALL {name};", f"LOAD {name};"]
    if lake.root.needs_credentials:
        lines += [
            "-- Fill in your credentials (svp never prints them), or use CREATE SECRET (TYPE s3, PROVIDER "
            "credential_chain, ...).",
            f"CREATE OR REPLACE SECRET svp_lake ({lake.root.duckdb_secret_fields(placeholders=True)});",
        ]
    lines += [
        f"ATTACH IF NOT EXISTS {sql_value(lake.catalog.shareable_uri())} AS {ALIAS} (READ_ONLY);",
        f"USE {ALIAS};",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class InstalledExtension:
    name: str
    source: Path | None  # the wheel's file; None: no wheel for this platform, DuckDB downloads it itself


def install_extensions(lake: Lake, extension_directory: Path | None = None) -> list[InstalledExtension]:
    """Install the extensions ``lake`` needs into DuckDB's extension directory (``extension_directory``, else
    DuckDB's default, ``~/.duckdb/extensions``) from this package's wheels, so that the setup SQL's ``INSTALL``
    finds them there without a download. Extensions without a wheel here are left to DuckDB's own ``INSTALL``."""
    config = {"extension_directory": str(extension_directory)} if extension_directory else {}
    con = duckdb.connect(config=config)
    try:
        installed = []
        for name in needed_extensions(lake):
            source = duckdb_extension_path(name)
            if source is not None:
                try:
                    con.execute(f"FORCE INSTALL {sql_value(str(source))}")
                except duckdb.Error as exc:
                    raise StorageError(
                        f"cannot install DuckDB's {name} extension into "
                        f"{extension_directory or 'its default extension directory'}: {' '.join(str(exc).split())}"
                    ) from exc
            installed.append(InstalledExtension(name, source))
        return installed
    finally:
        con.close()
