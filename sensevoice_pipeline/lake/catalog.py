"""The lake's tables in a DuckLake catalog: a date is published to all of its tables in one transaction.

Why DuckLake: the design asks that a reader sees a date's four tables all from one run or all from the previous one,
across crashes and concurrent runs, on local disk and on S3. Per-file atomic renames cannot give that across four
tables, and Delta Lake / Iceberg commit per table. DuckLake keeps the data as ordinary Parquet files (hive-style
``date=YYYY-MM-DD`` folders under ``<lake>/data/``) and the list of live files in a SQL catalog, so one
``BEGIN … COMMIT`` replaces a date in every table at once, readers read a snapshot, and a crashed writer leaves
only unreferenced files behind (garbage-collected after a grace period, :meth:`Lake.collect_garbage`).

The catalog is a SQLite file (``Settings.catalog``; default ``<lake>/catalog.sqlite``, or for an s3:// lake a local
file under ``var/warehouse/``): every process that writes the lake must reach the same file, i.e. run on one host
or share it through a local volume. Writers of one catalog take turns through a file lock, so their commits never
conflict; readers never wait for it.

Readers other than this package: DuckDB with the ducklake extension ``ATTACH 'ducklake:sqlite:<catalog>' AS lake
(READ_ONLY)`` (the warehouse file's views do exactly that), or any engine that speaks DuckLake. Globbing the Parquet
files directly is wrong: superseded files stay on disk until the grace period has passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow as pa

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake.duckdb_access import load_duckdb_extension, prepare_duckdb, sql_value
from sensevoice_pipeline.lake.files import exclusive_lock
from sensevoice_pipeline.lake.storage import LOCAL_WAREHOUSE_DIR, Root, as_root, check_bucket, is_remote
from sensevoice_pipeline.lake.tables import ALL_SCHEMAS, ROLLUP_SCHEMAS, SORT_KEYS, rollup_sql

log = logging.getLogger(__name__)

ALIAS = "lake"  # the name the catalog is attached under, in our connections and in the warehouse's views
DATA_DIR = "data"  # <lake>/data/main/<table>/date=YYYY-MM-DD/ducklake-<uuid>.parquet


def default_catalog(lake_root: Root) -> Path:
    """``<lake>/catalog.sqlite`` for a local lake; for an s3:// lake a local file beside its warehouse file
    (``var/warehouse/<bucket>/<prefix>/catalog.sqlite``): SQLite cannot live in an object store."""
    if is_remote(lake_root):
        return LOCAL_WAREHOUSE_DIR / lake_root.bucket / lake_root.key / "catalog.sqlite"
    return Path(lake_root) / "catalog.sqlite"


class CatalogError(ConfigurationError):
    """The catalog cannot be used as configured (unsupported kind, missing file for a reader)."""


class Lake:
    """``Lake(lake_root).commit_day(date, {"utterances": table, ...})``; ``Lake(lake_root).read("runs", date)``."""

    def __init__(self, lake_root: str | Path | Root, catalog: str | Path | None = None):
        self.root = as_root(lake_root)
        text = str(catalog) if catalog else ""
        if "://" in text or text.startswith(("postgres:", "mysql:")):
            raise CatalogError(f"unsupported catalog {text!r}: give the path of a local SQLite file")
        self.catalog_path = Path(text) if text else default_catalog(self.root)

    @property
    def data_path(self) -> str:
        if is_remote(self.root):
            return f"{self.root}/{DATA_DIR}/"
        return f"{Path(self.root).resolve() / DATA_DIR}/"

    @property
    def exists(self) -> bool:
        return self.catalog_path.is_file()

    # -- connections -------------------------------------------------------------------------------------------------

    def attach(self, con: duckdb.DuckDBPyConnection, read_only: bool = True) -> None:
        """Attach the catalog to ``con`` as ``lake`` (and, for an s3:// lake, give ``con`` a temporary secret)."""
        load_duckdb_extension(con, "ducklake")
        load_duckdb_extension(con, "sqlite_scanner")
        prepare_duckdb(con, self.root)
        target = sql_value(f"ducklake:sqlite:{self.catalog_path.resolve()}")
        # IF NOT EXISTS: DuckDB shares one instance between the connections of a process to the same file (the
        # warehouse), and attachments belong to the instance.
        if read_only:
            if not self.exists:
                raise CatalogError(f"no lake catalog at {self.catalog_path}: run the daily job for a date first")
            con.execute(f"ATTACH IF NOT EXISTS {target} AS {ALIAS} (READ_ONLY)")
            return
        if is_remote(self.root):
            check_bucket(self.root)  # one clear line now, not an HTTP error in the middle of a commit
        self.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        _ensure_wal(self.catalog_path)
        # Rows go to Parquet files, never into the catalog (DuckLake inlines small inserts by default).
        con.execute(f"ATTACH {target} AS {ALIAS} (DATA_PATH {sql_value(self.data_path)}, DATA_INLINING_ROW_LIMIT 0)")

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that may write, holding the catalog's writer lock, with every table created."""
        with self._writer_lock():
            con = duckdb.connect()
            try:
                self.attach(con, read_only=False)
                self._create_tables(con)
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect()
        try:
            self.attach(con, read_only=True)
            yield con
        finally:
            con.close()

    def _writer_lock(self):
        """Writers of one catalog take turns (an flock beside the file): commits never conflict, and table creation
        is never raced. Readers do not take it."""
        return exclusive_lock(self.catalog_path.with_name(f".{self.catalog_path.name}.lock"))

    @staticmethod
    def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
        """Create the tables this version of the code knows and the catalog lacks, and add the columns it knows to
        tables that lack them (schema evolution: ``ALTER TABLE ... ADD COLUMN``; existing rows read null there,
        e.g. the confidences of utterances transcribed before them). A rollup table added to a lake that already
        holds utterances is filled from them for every date, and one that gained columns is computed again from
        them, in the same transaction, so the canned queries never read a rollup that lacks published days."""
        existing = _table_columns(con)
        missing = [name for name in ALL_SCHEMAS if name not in existing]
        lacking = {name: columns for name in ALL_SCHEMAS if name in existing
                   if (columns := [c for c in ALL_SCHEMAS[name].names if c not in existing[name]])}
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

    def commit_day(self, date: str, tables: dict[str, pa.Table], before_commit: Callable[[], None] | None = None,
                   collect_garbage_older_than: dt.timedelta | None = None) -> int:
        """Replace ``date`` in every table of ``tables`` in one transaction; returns the new snapshot id.
        ``before_commit`` runs inside the transaction, just before COMMIT (e.g. to check that the run still holds
        the date): raising there rolls everything back. With ``collect_garbage_older_than``, ``collect_garbage``
        follows the commit on the same connection (one attach instead of two: a tenth of a second); its failure is
        logged, never raised, for the day is committed."""
        with self.writer() as con:
            with _transaction(con):
                for name, data in tables.items():
                    con.execute(f'DELETE FROM {ALIAS}."{name}" WHERE date = ?::DATE', [date])
                    self._insert(con, name, date, data)
                if before_commit:
                    before_commit()
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
                    con.execute(f'DELETE FROM {ALIAS}."{table}" WHERE date = ?::DATE AND "{key}" = ?', [date, value])
                self._insert(con, table, date, data)

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, name: str, date: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        schema = ALL_SCHEMAS[name]
        columns = ", ".join(f'"{c}"' for c in schema.names)
        con.register("_svp_rows", data.cast(schema))
        try:
            con.execute(f'INSERT INTO {ALIAS}."{name}" (date, {columns}) SELECT ?::DATE, {columns} FROM _svp_rows',
                        [date])
        finally:
            con.unregister("_svp_rows")

    # -- reading -----------------------------------------------------------------------------------------------------

    def read(self, table: str, date: str | None = None) -> pa.Table:
        """``table``'s rows (for ``date``, without the date column; else all, with it) in a stable order."""
        if not self.exists:
            return ALL_SCHEMAS[table].empty_table()
        order = ", ".join(f'"{c}"' for c in SORT_KEYS[table])
        with self.reader() as con:
            if date is None:
                return con.sql(f'SELECT * FROM {ALIAS}."{table}" ORDER BY date, {order}').to_arrow_table()
            rows = con.execute(f'SELECT * EXCLUDE (date) FROM {ALIAS}."{table}" WHERE date = ?::DATE ORDER BY {order}',
                               [date]).to_arrow_table()
        return rows.cast(ALL_SCHEMAS[table])

    def snapshot_id(self) -> int | None:
        if not self.exists:
            return None
        with self.reader() as con:
            return self._snapshot(con)

    @staticmethod
    def _snapshot(con: duckdb.DuckDBPyConnection) -> int:
        return int(con.execute(f"SELECT max(snapshot_id) FROM {ALIAS}.snapshots()").fetchone()[0])

    # -- garbage -----------------------------------------------------------------------------------------------------

    def collect_garbage(self, grace: dt.timedelta) -> int:
        """Forget snapshots older than ``grace`` and delete the files only they referenced, and files no snapshot
        ever committed (a crashed writer's) older than ``grace``. Returns how many files were deleted. The grace
        period lets a reader that started on an old snapshot finish."""
        with self.writer() as con:
            return self._collect_garbage(con, grace)

    @staticmethod
    def _collect_garbage(con: duckdb.DuckDBPyConnection, grace: dt.timedelta) -> int:
        cutoff = dt.datetime.now(dt.timezone.utc) - grace
        _expire_snapshots(con, cutoff)
        old = _cleanup_old_files(con, cutoff)
        orphans = con.execute(f"CALL ducklake_delete_orphaned_files('{ALIAS}', older_than => ?::TIMESTAMPTZ)",
                              [cutoff]).fetchall()
        if old or orphans:
            log.info("lake garbage collection: %d superseded and %d orphaned files deleted", len(old), len(orphans))
        return len(old) + len(orphans)


# DuckLake 1.5.5 on a SQLite catalog compares its stored snapshot and scheduling times (text) with an ``older_than``
# cutoff by date only: everything from the cutoff's UTC day counts as older, so a grace period of an hour expired
# snapshots committed a second earlier (measured; the SQLite timestamp comparison of duckdb/ducklake#109). The
# times are compared here, in DuckDB, instead.
_METADATA = f"__ducklake_metadata_{ALIAS}"


def _expire_snapshots(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> None:
    """Expire the snapshots committed before ``cutoff``, never the current one."""
    versions = [row[0] for row in con.execute(
        f"SELECT snapshot_id FROM {ALIAS}.snapshots() WHERE snapshot_time < ?::TIMESTAMPTZ "
        f"AND snapshot_id < (SELECT max(snapshot_id) FROM {ALIAS}.snapshots())", [cutoff]).fetchall()]
    if versions:
        con.execute(f"CALL ducklake_expire_snapshots('{ALIAS}', versions => ?::BIGINT[])", [versions])


def _cleanup_old_files(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> list:
    """Delete the files of expired snapshots scheduled for deletion before ``cutoff``. DuckLake can only be told
    "all" or "older than": when some were scheduled after the cutoff, the cutoff is moved back to the end of the
    day before its own, which the by-date comparison then honours (a file may stay up to a day longer)."""
    after = con.execute(f"SELECT count(*) FROM {_METADATA}.ducklake_files_scheduled_for_deletion "
                        "WHERE CAST(schedule_start AS TIMESTAMPTZ) >= ?::TIMESTAMPTZ", [cutoff]).fetchone()[0]
    if not after:
        return con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)").fetchall()
    day_before = dt.datetime.combine(cutoff.date(), dt.time(), dt.timezone.utc) - dt.timedelta(microseconds=1)
    return con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => ?::TIMESTAMPTZ)",
                       [day_before]).fetchall()


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
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ?", [ALIAS]).fetchall():
        tables[table].add(column)
    return dict(tables)


def _create_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    schema = ALL_SCHEMAS[name]
    columns = ", ".join(f'"{c}" {t}' for c, t in zip(schema.names, _duckdb_types(con, schema)))
    con.execute(f'CREATE TABLE {ALIAS}."{name}" (date DATE, {columns})')
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
    """``name`` computed again from every published utterance (its old rows, if any, replaced)."""
    columns = ", ".join(f'"{c}"' for c in ALL_SCHEMAS[name].names)
    con.execute(f'DELETE FROM {ALIAS}."{name}"')
    con.execute(f'INSERT INTO {ALIAS}."{name}" (date, {columns}) '
                f'WITH u AS (SELECT * FROM {ALIAS}.utterances) {rollup_sql(name, every_date=True)}')
    rows = con.execute(f'SELECT count(*) FROM {ALIAS}."{name}"').fetchone()[0]
    log.info("filled the rollup %s from the published utterances: %d rows", name, rows)


def _ensure_wal(path: Path) -> None:
    """:func:`_use_wal`, once per catalog file in this process: the mode is a property of the file, so only a file
    this process has not switched yet (a new path, or a catalog recreated under the same one) costs the child
    process. ``stat`` opens no descriptor, so it cannot drop DuckDB's locks the way reading the file would."""
    identity = (path.resolve(), path.stat().st_ino) if path.exists() else None
    if identity is not None and identity in _WAL_FILES:
        return
    _use_wal(path)
    _WAL_FILES.add((path.resolve(), path.stat().st_ino))


_WAL_FILES: set[tuple[Path, int]] = set()  # catalogs this process has put in WAL mode


def _use_wal(path: Path) -> None:
    """Put the SQLite catalog in WAL mode (a property of the file: set once, kept). In SQLite's default rollback
    journal mode a reader's shared lock makes a COMMIT fail at once with "database is locked" (DuckDB's SQLite
    scanner sets no busy timeout), and a commit in progress fails readers the same way: a BI tool polling the lake
    would fail the daily publish. In WAL mode readers and the one writer never block each other. WAL needs the
    file on a local file system (shared memory beside it), which the catalog always is.

    The switch runs in a child process: DuckDB carries its own copy of SQLite, and a second copy in this process
    (Python's sqlite3) closing the file would drop the POSIX locks DuckDB's connections hold on it (SQLite's
    "multiple copies" hazard: the last-closer then truncates the shared memory others still map)."""
    out = subprocess.run([sys.executable, "-c", _WAL_SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
    mode = out.stdout.strip()
    if out.returncode != 0 or mode != "wal":
        reason = " ".join((out.stderr or mode).split())[-300:]
        raise CatalogError(f"cannot put the lake catalog {path} in WAL mode ({reason}): readers would make commits "
                           "fail; is it on a network file system?")


# waits up to a minute for readers of a catalog still in rollback mode (the switch needs the file to itself)
_WAL_SCRIPT = ("import contextlib, sqlite3, sys\n"
               "with contextlib.closing(sqlite3.connect(sys.argv[1], timeout=60)) as db:\n"
               "    print(db.execute('PRAGMA journal_mode=WAL').fetchone()[0])\n")
