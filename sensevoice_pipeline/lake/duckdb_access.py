"""DuckDB's extensions, loaded from their PyPI wheels: nothing is downloaded at run time. (An ``s3://`` root sets up
httpfs and its TEMPORARY secret on a connection itself: ``ObjectPath.prepare_duckdb``.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

from sensevoice_pipeline.lake.storage.errors import StorageError


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
