"""The lake's tables in a DuckLake catalog: a date is published to all of its tables in one transaction.

Why DuckLake: the design asks that a reader sees a date's four tables all from one run or all from the previous one,
across crashes and concurrent runs, on local disk and on S3. Per-file atomic renames cannot give that across four
tables, and Delta Lake / Iceberg commit per table. DuckLake keeps the data as ordinary Parquet files (hive-style
``date=YYYY-MM-DD`` folders under ``<lake>/data/``) and the list of live files in a SQL catalog, so one
``BEGIN … COMMIT`` replaces a date in every table at once, readers read a snapshot, and a crashed writer leaves
only unreferenced files behind (garbage-collected after a grace period, :meth:`Lake.collect_garbage`).

The catalog lives in a SQLite file (one host; the default for a local lake) or a PostgreSQL database (every host
reaches it): catalog_db.py. Writers of one catalog take turns through its writer lock, so their commits never
conflict; readers never wait for it. A lake has exactly one catalog: ownership.py.

Readers other than this package: DuckDB with the ducklake extension ``ATTACH 'ducklake:<catalog>' AS lake
(READ_ONLY)`` (the warehouse file's views do exactly that), or any engine that speaks DuckLake. Globbing the Parquet
files directly is wrong: superseded files stay on disk until the grace period has passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from sensevoice_pipeline.lake import ownership
from sensevoice_pipeline.lake.catalog_db import (
    CatalogDatabase,
    CatalogError,
    PostgresCatalog,
    catalog_database,
)
from sensevoice_pipeline.lake.duckdb_access import load_duckdb_extension, sql_value
from sensevoice_pipeline.lake.lease import install_commit_check, lost_lease_error
from sensevoice_pipeline.lake.storage import Root, as_root, modification_times
from sensevoice_pipeline.lake.tables import (
    ALL_SCHEMAS,
    KEPT_SNAPSHOTS,
    ROLLUP_SCHEMAS,
    SORT_KEYS,
    rollup_sql,
)

__all__ = ["ALIAS", "CatalogError", "Lake", "LakeNotCreatedError"]

log = logging.getLogger(__name__)

ALIAS = "lake"  # the name the catalog is attached under, in our connections and in the warehouse's views
DATA_DIR = "data"  # <lake>/data/main/<table>/date=YYYY-MM-DD/ducklake-<uuid>.parquet
SCHEMA = "main"  # DuckLake's default schema: it writes each table's files under <data path>/main/<table>/
_METADATA = f"__ducklake_metadata_{ALIAS}"  # DuckLake attaches the catalog database itself under this name

T = TypeVar("T")


class LakeNotCreatedError(CatalogError):
    """A reader found no lake: no catalog yet, or one that its first writer has not yet set up."""


# What this process has already checked, per (catalog, data path): the ownership claim, the PostgreSQL lease check.
_CLAIMS: dict[tuple[str, str], ownership.Claim] = {}
_COMMIT_CHECKS: set[str] = set()


class Lake:
    """``Lake(lake_root).commit_day(date, {"utterances": table, ...})``; ``Lake(lake_root).read("runs", date)``."""

    def __init__(self, lake_root: str | Path | Root, catalog: str | Path | CatalogDatabase | None = None):
        self.root = as_root(lake_root)
        self.catalog = (
            catalog if isinstance(catalog, CatalogDatabase) else catalog_database(catalog, self.root)
        )

    @property
    def data_path(self) -> str:
        return f"{self.data_root.duckdb_uri}/"

    @property
    def data_root(self) -> Root:
        return self.root.resolve() / DATA_DIR

    def table_root(self, name: str) -> Root:
        """The folder that holds table ``name``'s Parquet files (its ``date=`` partitions): where lineage names it."""
        return self.data_root / SCHEMA / name

    @property
    def exists(self) -> bool:
        return self.catalog.exists()

    # -- connections -------------------------------------------------------------------------------------------------

    def attach(
        self, con: duckdb.DuckDBPyConnection, read_only: bool = True, snapshot: int | None = None
    ) -> str:
        """Attach the catalog to ``con`` as ``lake`` (and, for an s3:// lake, give ``con`` a temporary secret);
        ``snapshot``: read-only as of that snapshot, as ``lake_at_<snapshot>``. Returns the name attached."""
        load_duckdb_extension(con, "ducklake")
        load_duckdb_extension(con, self.catalog.extension)
        self.root.prepare_duckdb(con)
        target = sql_value(self.catalog.ducklake_uri())
        # IF NOT EXISTS: DuckDB shares one instance between the connections of a process to the same file (the
        # warehouse), and attachments belong to the instance: an older snapshot gets a name of its own.
        if read_only:
            if not self.exists:
                raise self._not_created()
            if snapshot is not None:
                alias = snapshot_alias(snapshot)
                self._attach_sql(
                    con,
                    f"ATTACH IF NOT EXISTS {target} AS {alias} (READ_ONLY, SNAPSHOT_VERSION {int(snapshot)})",
                )
                return alias
            self._attach_sql(con, f"ATTACH IF NOT EXISTS {target} AS {ALIAS} (READ_ONLY)")
            return ALIAS
        self.root.check_reachable()  # one clear line now, not an HTTP error in the middle of a commit
        self.catalog.prepare_for_writers()
        # Rows go to Parquet files, never into the catalog (DuckLake inlines small inserts by default).
        self._attach_sql(
            con,
            f"ATTACH {target} AS {ALIAS} (DATA_PATH {sql_value(self.data_path)}, DATA_INLINING_ROW_LIMIT 0)",
        )
        return ALIAS

    def _not_created(self) -> LakeNotCreatedError:
        return LakeNotCreatedError(
            f"no lake at {self.root} in the {self.catalog.describe()}: run the daily job for a date first"
        )

    def _attach_sql(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            text = " ".join(str(exc).split())
            if "creating a new DuckLake is explicitly disabled" in text:  # its first writer is setting it up
                raise self._not_created() from exc
            if "does not match existing data path" in text:
                raise CatalogError(
                    f"the {self.catalog.describe()} belongs to another lake, not {self.root}: {text[:300]}"
                ) from exc
            raise CatalogError(f"cannot attach the {self.catalog.describe()}: {text[:300]}") from exc

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that may write, holding the catalog's writer lock, with every table created, on a lake this
        catalog owns (ownership.py)."""
        with self.catalog.writer_lock():
            con = duckdb.connect()
            try:
                self.attach(con, read_only=False)
                self.claim = self._claim(con)
                self._create_tables(con)
                self._install_commit_check()
                yield con
            finally:
                con.close()

    def _claim(self, con: duckdb.DuckDBPyConnection) -> ownership.Claim:
        key = (self.catalog.describe(), self.data_path)
        if key not in _CLAIMS:
            own_id = ownership.catalog_id(con, _METADATA)
            _CLAIMS[key] = ownership.claim(self.data_root, own_id, self.catalog)
        return _CLAIMS[key]

    def _install_commit_check(self) -> None:
        """PostgreSQL: the trigger that checks a publish's lease inside its commit (lease.py)."""
        if isinstance(self.catalog, PostgresCatalog) and self.catalog.conninfo not in _COMMIT_CHECKS:
            install_commit_check(self.catalog)
            _COMMIT_CHECKS.add(self.catalog.conninfo)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect()
        try:
            self.attach(con, read_only=True)
            yield con
        finally:
            con.close()

    @staticmethod
    def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
        """Create the tables this version of the code knows and the catalog lacks, and add the columns it knows to
        tables that lack them (schema evolution: ``ALTER TABLE ... ADD COLUMN``; existing rows read null there,
        e.g. the confidences of utterances transcribed before them). A rollup table added to a lake that already
        holds utterances is filled from them for every date, and one that gained columns is computed again from
        them, in the same transaction, so the canned queries never read a rollup that lacks published days."""
        existing = _table_columns(con)
        missing = [name for name in ALL_SCHEMAS if name not in existing]
        lacking = {
            name: columns
            for name in ALL_SCHEMAS
            if name in existing
            if (columns := [c for c in ALL_SCHEMAS[name].names if c not in existing[name]])
        }
        if not missing and not lacking:
            return
        with _transaction(con):
            for name in missing:
                _create_table(con, name)
            for name, columns in lacking.items():
                _add_columns(con, name, columns)
            if "utterances" in existing:
                for name in ROLLUP_SCHEMAS:
                    if name in missing or name in lacking:
                        _fill_rollup(con, name)

    # -- writing -----------------------------------------------------------------------------------------------------

    def commit_day(
        self,
        date: str,
        tables: dict[str, pa.Table],
        before_commit: Callable[[], None] | None = None,
        collect_garbage_older_than: dt.timedelta | None = None,
        commit_info: str | None = None,
    ) -> int:
        """Replace ``date`` in every table of ``tables`` in one transaction; returns the new snapshot id.
        ``before_commit`` runs inside the transaction, just before COMMIT (e.g. to check that the run still holds
        the date): raising there rolls everything back. ``commit_info`` is recorded with the commit (the run's lease:
        a PostgreSQL catalog checks it inside the commit, lease.py). With ``collect_garbage_older_than``,
        ``collect_garbage`` follows the commit on the same connection (one attach instead of two: a tenth of a
        second); its failure is logged, never raised, for the day is committed."""
        with self.writer() as con:
            try:
                with _transaction(con):
                    for name, data in tables.items():
                        con.execute(f'DELETE FROM {ALIAS}."{name}" WHERE date = ?::DATE', [date])
                        self._insert(con, name, date, data)
                    con.execute(
                        f"CALL {ALIAS}.set_commit_message('svp', ?, extra_info => ?)",
                        [f"publish {date}", commit_info],
                    )
                    if before_commit:
                        before_commit()
            except duckdb.TransactionException as exc:
                lost = lost_lease_error(exc)
                if lost is None:
                    raise
                raise lost from exc
            snapshot = self._snapshot(con)
            if collect_garbage_older_than is not None:
                try:
                    self._collect_garbage(con, collect_garbage_older_than)
                except Exception as exc:  # noqa: BLE001 -- logged; the next publish tries again
                    log.warning("lake garbage collection skipped: %s", exc)
            return snapshot

    def replace_rows(self, table: str, date: str, key: str, data: pa.Table) -> None:
        """Insert ``data`` into ``date`` of ``table``, replacing rows with the same ``key`` (one transaction)."""
        with self.writer() as con:
            with _transaction(con):
                for value in set(data.column(key).to_pylist()):
                    con.execute(
                        f'DELETE FROM {ALIAS}."{table}" WHERE date = ?::DATE AND "{key}" = ?', [date, value]
                    )
                self._insert(con, table, date, data)

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, name: str, date: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        schema = ALL_SCHEMAS[name]
        columns = ", ".join(f'"{c}"' for c in schema.names)
        con.register("_svp_rows", data.cast(schema))
        try:
            con.execute(
                f'INSERT INTO {ALIAS}."{name}" (date, {columns}) SELECT ?::DATE, {columns} FROM _svp_rows',
                [date],
            )
        finally:
            con.unregister("_svp_rows")

    # -- reading -----------------------------------------------------------------------------------------------------

    def read(self, table: str, date: str | None = None) -> pa.Table:
        """``table``'s rows (for ``date``, without the date column; else all, with it) in a stable order."""
        order = ", ".join(f'"{c}"' for c in SORT_KEYS[table])

        def rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
            if date is None:
                return con.sql(f'SELECT * FROM {ALIAS}."{table}" ORDER BY date, {order}').to_arrow_table()
            return con.execute(
                f'SELECT * EXCLUDE (date) FROM {ALIAS}."{table}" WHERE date = ?::DATE ORDER BY {order}',
                [date],
            ).to_arrow_table()

        found = self._read_table(table, rows, ALL_SCHEMAS[table].empty_table())
        return found if date is None else found.cast(ALL_SCHEMAS[table])

    def count(self, table: str, date: str) -> int:
        """How many rows ``table`` holds for ``date`` (0 before the lake exists)."""
        return self._read_table(
            table,
            lambda con: con.execute(
                f'SELECT count(*) FROM {ALIAS}."{table}" WHERE date = ?::DATE', [date]
            ).fetchone()[0],
            0,
        )

    def _read_table(self, table: str, query: Callable[[duckdb.DuckDBPyConnection], T], empty: T) -> T:
        """``query`` on a reader, or ``empty`` while the lake holds no ``table`` yet. A reader may race the lake's
        first commit (a second `svp run` of the date checking what was published): the catalog file can exist
        before DuckLake has set it up, and DuckLake's metadata before the first writer has created the tables."""
        if not self.exists:
            return empty
        try:
            with self.reader() as con:
                return query(con) if _has_table(con, table) else empty
        except LakeNotCreatedError:
            return empty

    def snapshot_id(self) -> int | None:
        if not self.exists:
            return None
        try:
            with self.reader() as con:
                return self._snapshot(con)
        except LakeNotCreatedError:  # its first writer is setting it up (see _read_table)
            return None

    @staticmethod
    def _snapshot(con: duckdb.DuckDBPyConnection) -> int:
        return int(con.execute(f"SELECT max(snapshot_id) FROM {ALIAS}.snapshots()").fetchone()[0])

    # -- kept snapshots ----------------------------------------------------------------------------------------------

    def keep_snapshot(
        self,
        name: str,
        model_versions: str,
        from_date: str,
        to_date: str,
        keep_for: dt.timedelta,
        reason: str,
    ) -> int:
        """Name the current snapshot and keep it (its files too) for ``keep_for`` past the garbage-collection grace;
        returns its id. The row goes in the kept_snapshots table, in a commit of its own (after the kept one). A
        name already kept is not kept again: its snapshot's id is returned (under the writer lock, so of the runs of
        a backfill that all name one snapshot, only the first keeps, before any of them has published)."""
        with self.writer() as con:
            kept = con.execute(
                f"SELECT snapshot_id FROM {ALIAS}.kept_snapshots WHERE name = ? ORDER BY created_at LIMIT 1",
                [name],
            ).fetchone()
            if kept:
                return int(kept[0])
            snapshot = self._snapshot(con)
            now = dt.datetime.now(dt.UTC)
            row = {
                "name": name,
                "snapshot_id": snapshot,
                "model_versions": model_versions,
                "from_date": dt.date.fromisoformat(from_date),
                "to_date": dt.date.fromisoformat(to_date),
                "created_at": now,
                "kept_until": now + keep_for,
                "reason": reason,
            }
            with _transaction(con):
                self._insert(
                    con, "kept_snapshots", now.date().isoformat(), pa.Table.from_pylist([row], KEPT_SNAPSHOTS)
                )
        log.info("kept snapshot %d as %r (versions %s, %s..%s) until %s", snapshot, name, model_versions,
                 from_date, to_date, row["kept_until"].isoformat(timespec="seconds"))  # fmt: skip
        return snapshot

    def kept_snapshots(self) -> list[dict]:
        """The kept snapshots, newest first (expired ones included: their ``kept_until`` says so)."""
        rows = self.read("kept_snapshots").to_pylist()
        return sorted(rows, key=lambda r: (r["created_at"], r["snapshot_id"]), reverse=True)

    # -- garbage -----------------------------------------------------------------------------------------------------

    def collect_garbage(self, grace: dt.timedelta) -> int:
        """Forget snapshots older than ``grace`` and delete the files only they referenced, and files no snapshot
        ever committed (a crashed writer's) older than ``grace``. Returns how many files were deleted. The grace
        period lets a reader that started on an old snapshot finish."""
        with self.writer() as con:
            return self._collect_garbage(con, grace)

    def _collect_garbage(self, con: duckdb.DuckDBPyConnection, grace: dt.timedelta) -> int:
        """What this catalog wrote and no longer needs: the files of snapshots expired by this catalog, and files
        no snapshot ever committed (a crashed writer's) that were written after this catalog claimed the lake.
        A file it cannot attribute is left where it is, and said so."""
        cutoff = dt.datetime.now(dt.UTC) - grace
        _expire_snapshots(con, cutoff)
        old = _cleanup_old_files(con, cutoff)
        orphans, unattributed = self._orphans(con, cutoff)
        for path in orphans:
            path.remove()
        if old or orphans:
            log.info(
                "lake garbage collection: %d superseded and %d orphaned files deleted", len(old), len(orphans)
            )
        if unattributed:
            log.warning(
                "lake garbage collection: %d unreferenced files under %s are older than this catalog's claim "
                "on the lake (another catalog's?): left alone, e.g. %s",
                len(unattributed),
                self.data_path,
                unattributed[0],
            )
        return len(old) + len(orphans)

    def _orphans(self, con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> tuple[list[Root], list[str]]:
        """(files DuckLake finds unreferenced, older than ``cutoff``, that this catalog wrote; those it cannot
        attribute). Only DuckLake's own data files qualify, written after the claim (ownership.py)."""
        listed = [
            row[0]
            for row in con.execute(
                f"CALL ducklake_delete_orphaned_files('{ALIAS}', older_than => ?::TIMESTAMPTZ, dry_run => true)",
                [cutoff],
            ).fetchall()
        ]
        candidates = [
            self.root.path_in_store(p) for p in listed if p.rsplit("/", 1)[-1].startswith("ducklake-")
        ]
        times = {path: mtime for path, mtime in modification_times(candidates).items() if mtime is not None}
        ours = [p for p in candidates if times.get(str(p), -1) >= self.claim.claimed_ns]
        return ours, [str(p) for p in candidates if str(p) in times and p not in ours]


# DuckLake 1.5.5 on a SQLite catalog compares its stored snapshot and scheduling times (text) with an ``older_than``
# cutoff by date only: everything from the cutoff's UTC day counts as older, so a grace period of an hour expired
# snapshots committed a second earlier (measured; the SQLite timestamp comparison of duckdb/ducklake#109). The
# times are compared here, in DuckDB, instead.


def _expire_snapshots(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> None:
    """Expire the snapshots committed before ``cutoff``, never the current one nor one kept (keep_snapshot)."""
    versions = [
        row[0]
        for row in con.execute(
            f"SELECT snapshot_id FROM {ALIAS}.snapshots() WHERE snapshot_time < ?::TIMESTAMPTZ "
            f"AND snapshot_id < (SELECT max(snapshot_id) FROM {ALIAS}.snapshots()) "
            f"AND snapshot_id NOT IN (SELECT snapshot_id FROM {ALIAS}.kept_snapshots WHERE kept_until > now())",
            [cutoff],
        ).fetchall()
    ]
    if versions:
        con.execute(f"CALL ducklake_expire_snapshots('{ALIAS}', versions => ?::BIGINT[])", [versions])


def _cleanup_old_files(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> list:
    """Delete the files of expired snapshots scheduled for deletion before ``cutoff``. DuckLake can only be told
    "all" or "older than": when some were scheduled after the cutoff, the cutoff is moved back to the end of the
    day before its own, which the by-date comparison then honours (a file may stay up to a day longer)."""
    after = con.execute(
        f"SELECT count(*) FROM {_METADATA}.ducklake_files_scheduled_for_deletion "
        "WHERE CAST(schedule_start AS TIMESTAMPTZ) >= ?::TIMESTAMPTZ",
        [cutoff],
    ).fetchone()[0]
    if not after:
        return con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)").fetchall()
    day_before = dt.datetime.combine(cutoff.date(), dt.time(), dt.UTC) - dt.timedelta(microseconds=1)
    return con.execute(
        f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => ?::TIMESTAMPTZ)", [day_before]
    ).fetchall()


def snapshot_alias(snapshot: int) -> str:
    """The name a snapshot of the lake is attached under (Lake.attach)."""
    return f"{ALIAS}_at_{int(snapshot)}"


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [ALIAS, table]
        ).fetchone()[0]
    )


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection):
    """BEGIN ... COMMIT; anything raised before the COMMIT rolls the transaction back. A COMMIT that fails has
    already ended it (DuckDB aborts it), so its error is raised as it is."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _table_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Every table of the lake and its columns, in one query: each catalog query costs a few milliseconds, and one
    per table made the check a tenth of a second of every publish."""
    tables: dict[str, set[str]] = defaultdict(set)
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ?", [ALIAS]
    ).fetchall():
        tables[table].add(column)
    return dict(tables)


def table_columns(name: str, con: duckdb.DuckDBPyConnection | None = None) -> list[tuple[str, str]]:
    """The lake table ``name``'s columns and their DuckDB types, as it is created: the partition column ``date``
    first, then its schema's (tables.ALL_SCHEMAS). ``con``: a connection to ask DuckDB on (else a new one)."""
    schema = ALL_SCHEMAS[name]
    if con is None:
        with duckdb.connect() as own:
            return table_columns(name, own)
    return [("date", "DATE"), *zip(schema.names, _duckdb_types(con, schema))]


def _create_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    columns = ", ".join(f'"{c}" {t}' for c, t in table_columns(name, con))
    con.execute(f'CREATE TABLE {ALIAS}."{name}" ({columns})')
    con.execute(f'ALTER TABLE {ALIAS}."{name}" SET PARTITIONED BY (date)')
    log.info("created table %s in the lake catalog", name)


def _add_columns(con: duckdb.DuckDBPyConnection, name: str, columns: list[str]) -> None:
    """Appended in the schema's order: new columns are always last in ALL_SCHEMAS, so an evolved table has the
    same column order as a new one."""
    schema = ALL_SCHEMAS[name]
    fields = pa.schema([schema.field(c) for c in columns])
    for column, column_type in zip(columns, _duckdb_types(con, fields)):
        con.execute(f'ALTER TABLE {ALIAS}."{name}" ADD COLUMN "{column}" {column_type}')
    log.info("added %s to table %s in the lake catalog", ", ".join(columns), name)


def _duckdb_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> list[str]:
    """DuckDB's column types for an Arrow schema (what DuckDB itself maps them to)."""
    return [str(t) for t in con.from_arrow(schema.empty_table()).types]


def _fill_rollup(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """``name`` computed again from every published utterance and recording (its old rows, if any, replaced).
    calls_daily sums the lake's calls table instead (filled first where it was missing too): at a year a few
    seconds against half an hour for the calls of 18 M recordings computed again."""
    columns = ", ".join(f'"{c}"' for c in ALL_SCHEMAS[name].names)
    con.execute(f'DELETE FROM {ALIAS}."{name}"')
    con.execute(
        f'INSERT INTO {ALIAS}."{name}" (date, {columns}) '
        f"WITH u AS (SELECT * FROM {ALIAS}.utterances), r AS (SELECT * FROM {ALIAS}.recordings) "
        # a rollup's SQL may have its own WITH
        f"SELECT * FROM ({rollup_sql(name, every_date=True, calls=f'{ALIAS}.calls')})"
    )
    rows = con.execute(f'SELECT count(*) FROM {ALIAS}."{name}"').fetchone()[0]
    log.info("filled the rollup %s from the published utterances: %d rows", name, rows)
