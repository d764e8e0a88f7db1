"""A lake has exactly one catalog, enforced: the lake's data path records which catalog owns it, and a writer of
any other catalog refuses to write there.

Why: two catalogs over one data path (two hosts that each made their own) each see the other's Parquet files as
orphans, and each one's garbage collection deletes the other's published days. DuckLake itself records the data
path in the catalog, so one catalog cannot be pointed at two paths; this is the other direction.

How: every catalog has an id (a row of ``svp_catalog`` in the catalog database, created with it). The owner's id is
a file ``<data path>/_svp_catalog/<id>.json``. A writer attaching the catalog (under the catalog's writer lock)
proceeds when that folder holds exactly its own id; refuses when it holds another; and when it is empty, writes its
own and lists again: a second id there means another catalog claimed the lake at the same moment, and the claimant
withdraws its own file (the one it wrote) and refuses, so at most one of two racing claims survives and no
conditional write is needed (plain PUT and LIST, strongly consistent on S3). The marker file's modification time,
as the store reports it, is when the claim began: garbage collection deletes an unreferenced file only if it is
younger than that (catalog.py), so files another catalog wrote before this one claimed the lake are never touched.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass

import duckdb

from sensevoice_pipeline.lake.catalog_db import CatalogDatabase, CatalogError
from sensevoice_pipeline.lake.storage import Root

log = logging.getLogger(__name__)

OWNER_DIR = "_svp_catalog"
IDENTITY_TABLE = "svp_catalog"  # key/value rows in the catalog database, beside DuckLake's own tables


@dataclass(frozen=True)
class Claim:
    catalog_id: str
    claimed_ns: int  # the marker's modification time: files older than this were not written by this catalog


def catalog_id(con: duckdb.DuckDBPyConnection, metadata: str) -> str:
    """This catalog's id, created the first time a writer asks (callers hold the writer lock)."""
    table = f'{metadata}."{IDENTITY_TABLE}"'
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (key VARCHAR PRIMARY KEY, value VARCHAR)")
    row = con.execute(f"SELECT value FROM {table} WHERE key = 'catalog_id'").fetchone()
    if row:
        return row[0]
    new_id = uuid.uuid4().hex
    con.execute(f"INSERT INTO {table} VALUES ('catalog_id', ?)", [new_id])
    return new_id


def claim(data_path: Root, own_id: str, catalog: CatalogDatabase) -> Claim:
    """Check (or make) ``own_id`` the owner of ``data_path``; CatalogError when another catalog owns it."""
    folder = data_path / OWNER_DIR
    owners = _owners(folder)
    if not owners:
        _write_marker(folder / f"{own_id}.json", own_id, catalog)
        owners = _owners(folder)
        if set(owners) != {own_id}:
            (folder / f"{own_id}.json").remove()  # ours: withdraw it, let the other claim stand
            raise CatalogError(
                f"another catalog claimed the lake at {data_path} at the same moment as the "
                f"{catalog.describe()}; nothing was written. Check SVP_CATALOG on every host, then "
                "run again"
            )
        log.info("the %s now owns the lake's data path %s", catalog.describe(), data_path)
    others = sorted(set(owners) - {own_id})
    if others:
        raise CatalogError(
            f"the lake at {data_path} belongs to another catalog ({_describe_owner(folder, others[0])}),"
            f" not to the {catalog.describe()}: set SVP_CATALOG to that catalog on this host. A lake "
            "has exactly one catalog; a second one would delete the first one's files as garbage"
        )
    return Claim(own_id, owners[own_id])


def _owners(folder: Root) -> dict[str, int]:
    """catalog id -> marker modification time (ns), of every marker in ``folder``."""
    return {
        name[: -len(".json")]: mtime
        for name, _, mtime in folder.list_files()
        if name.endswith(".json") and "/" not in name
    }


def _write_marker(path: Root, own_id: str, catalog: CatalogDatabase) -> None:
    body = {"catalog_id": own_id, "catalog": catalog.describe(), "claimed_by_host": socket.gethostname()}
    path.write_atomic(json.dumps(body, indent=1))


def _describe_owner(folder: Root, owner: str) -> str:
    try:
        return json.loads((folder / f"{owner}.json").read_bytes())["catalog"]
    except (OSError, ValueError, KeyError):
        return f"catalog id {owner}"
