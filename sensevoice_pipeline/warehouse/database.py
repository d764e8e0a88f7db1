"""The DuckDB warehouse: the lake's tables in a DuckDB session; runs the canned queries (queries.py).

A session reads the DuckLake catalog attached as ``lake`` (catalog.py) with ``USE lake``, so every table answers by
its own name. DuckDB does not keep attachments in a file, so whoever opens a session attaches the catalog first:
:meth:`Warehouse.connect` does; any other DuckDB runs the setup SQL that `svp bi` prints (warehouse/bi.py). The
warehouse file (``warehouse.duckdb``) holds one view per table with the table's columns that fails with that
instruction when it is queried without the lake attached -- instead of DuckDB's bare "Catalog lake does not exist".
Publishing a day needs no write to this file. It is rebuilt (in a temp file, then renamed over the old one) only
when its views change, so BI tools holding it open are never blocked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from sensevoice_pipeline.atomic import replacing
from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.lake.catalog import CatalogError, Lake, table_columns
from sensevoice_pipeline.lake.duckdb_access import sql_value
from sensevoice_pipeline.lake.storage import LocalRoot, StorageError, default_warehouse
from sensevoice_pipeline.lake.tables import ALL_SCHEMAS
from sensevoice_pipeline.warehouse.queries import GROUP_BY, QUERIES


class WarehouseError(SvpError, RuntimeError):
    pass


class Warehouse:
    def __init__(
        self, lake_root: str | Path, db_path: str | Path | None = None, catalog: str | Path | None = None
    ):
        self.lake = Lake(lake_root, catalog)
        self.lake_root = (
            self.lake.root
        )  # a local dir or an s3:// ObjectPath; the database file is always local
        self.db_path = Path(db_path) if db_path else default_warehouse(self.lake_root)

    def not_attached_message(self) -> str:
        return (
            f"the lake is not attached to this DuckDB session: run the SQL that `svp bi --lake {self.lake_root}` "
            "prints first (docs/bi.md)"
        )

    def view_sql(self) -> dict[str, str]:
        """One view per table of the lake, with the table's columns, that fails saying what to run: a session that
        attached the lake (``USE lake``) reads the lake's own tables by these names instead."""
        con = duckdb.connect()
        try:
            views = {}
            for table in ALL_SCHEMAS:
                columns = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in table_columns(table, con))
                views[table] = (
                    f'CREATE OR REPLACE VIEW "{table}" AS SELECT {columns} FROM range(1) '
                    f"WHERE error({sql_value(self.not_attached_message())}) IS NULL"
                )
            return views
        finally:
            con.close()

    def refresh(self) -> bool:
        """(Re)build the database file if its views differ from the lake's tables; returns whether it did.

        Publishers of different dates refresh concurrently: without the lock, one that listed the lake before
        another published a new table could rename its older file over the newer one and lose that view."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._refresh_lock():
            return self._refresh()

    def _refresh_lock(self):
        """An exclusive flock on ``.<db>.lock`` beside the file. Readers never take it."""
        return LocalRoot(self.db_path.with_name(f".{self.db_path.name}.lock")).lock()

    def _refresh(self) -> bool:
        wanted = self.view_sql()
        if self.db_path.exists() and self._current_views() == wanted:
            return False
        with replacing(self.db_path) as tmp:
            try:
                con = duckdb.connect(str(tmp))
                con.execute("CREATE TABLE _svp_views (name VARCHAR, sql VARCHAR)")
                for name, sql in wanted.items():
                    con.execute(sql)
                    con.execute("INSERT INTO _svp_views VALUES (?, ?)", [name, sql])
                con.close()
            finally:
                tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        return True

    def _current_views(self) -> dict[str, str]:
        try:
            con = duckdb.connect(str(self.db_path), read_only=True)
            try:
                return dict(con.execute("SELECT name, sql FROM _svp_views").fetchall())
            finally:
                con.close()
        except duckdb.Error:
            return {}

    def connect(self, snapshot: int | None = None) -> duckdb.DuckDBPyConnection:
        """The warehouse file, read-only, with the lake attached and in use (``USE lake``): the tables answer by
        their own names. A host that never published (the api-server, a worker of a lake in S3) builds its own file
        the first time: the file is local and derived. ``snapshot``: the lake as of that snapshot instead (a kept
        one: Lake.keep_snapshot)."""
        if not self.db_path.exists():
            try:
                published = self.lake.exists
            except (StorageError, CatalogError) as exc:
                raise WarehouseError(" ".join(str(exc).split())[:300]) from exc
            if not published:
                raise WarehouseError(f"no warehouse at {self.db_path}: run the daily job for a date first")
            self.refresh()
        try:
            con = duckdb.connect(str(self.db_path), read_only=True)
        except duckdb.Error as exc:  # e.g. --warehouse names a file that is not a DuckDB database
            raise WarehouseError(
                f"cannot open the warehouse {self.db_path}: {' '.join(str(exc).split())[:200]}"
            ) from exc
        try:  # s3:// lake: httpfs and a TEMPORARY secret for this connection (never stored in the file)
            con.execute(f"USE {self.lake.attach(con, snapshot=snapshot)}")
        except (StorageError, CatalogError, duckdb.Error) as exc:
            con.close()
            raise WarehouseError(" ".join(str(exc).split())[:300]) from exc
        return con

    def query(
        self,
        name: str,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
        by: str = "language",
        min_confidence: float = 0.0,
        snapshot: int | None = None,
    ) -> pa.Table:
        """Run a canned query; ``by`` picks the grouping column of the trend (language or channel);
        ``min_confidence`` counts only emotions the model was at least that sure of (queries.MIN_CONFIDENCES);
        ``snapshot``: answer from that snapshot of the lake (versions.resolve_snapshot) instead of the current."""
        if name not in QUERIES:
            raise WarehouseError(f"unknown query {name!r}: expected one of {', '.join(QUERIES)}")
        if by not in GROUP_BY:
            raise WarehouseError(f"cannot group by {by!r}: expected one of {', '.join(GROUP_BY)}")
        if min_confidence and not QUERIES[name].filters_confidence:
            raise WarehouseError(
                f"{name} cannot filter on confidence: "
                f"{', '.join(q.name for q in QUERIES.values() if q.filters_confidence)} can"
            )
        try:
            sql = QUERIES[name].render(by, min_confidence)
        except ValueError as exc:
            raise WarehouseError(str(exc)) from None
        params = {"from_date": as_date(date_from, dt.date.min), "to_date": as_date(date_to, dt.date.max)}
        con = self.connect(snapshot)
        try:
            # execute, not sql: a relation materializes the whole result before Arrow reads it back (0.05 s of
            # the year-long emotion trend's 0.42 s; benchmarks/README.md, "BI at a year")
            return con.execute(sql, params).to_arrow_table()
        except duckdb.CatalogException as exc:
            raise WarehouseError(f"{name}: the tables it reads have no data yet ({exc})") from exc
        except duckdb.IOException as exc:  # e.g. an s3:// lake whose store is unreachable
            reason = " ".join(str(exc).split())[:300]
            raise WarehouseError(f"{name}: cannot read the lake at {self.lake_root}: {reason}") from exc
        finally:
            con.close()


def as_date(value, default: dt.date) -> dt.date:
    if value in (None, ""):
        return default
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise WarehouseError(f"not a date: {value!r} (expected YYYY-MM-DD)") from exc
