"""`svp bi` (the lake from any DuckDB client: setup SQL and extensions) and `svp sql` (a DuckDB shell on the lake)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sensevoice_pipeline.ui.cli_common import CliError, add_json, checked_lake, emit, settings_from_flags

DUCKDB_SHELL = "duckdb"  # the DuckDB CLI (the duckdb-cli wheel, in the [bi] extra)


def _add_lake(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    p.add_argument("--catalog", help="catalog database (default: $SVP_CATALOG, then <lake>/catalog.sqlite)")


def add_bi_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bi",
        help="the SQL that opens the lake in any DuckDB (CLI, DBeaver, Superset, a notebook)",
        description="Print the setup SQL for a DuckDB session (or write it as an init file with --init): "
        "INSTALL/LOAD of every extension the lake needs, a CREATE SECRET template for an s3:// lake (credentials "
        "left for you to fill in), the read-only ATTACH of the catalog as `lake` and USE lake, after which every "
        "table answers by its name (SELECT * FROM emotion_daily). First it installs those extensions from this "
        "package's wheels into DuckDB's extension directory, so that INSTALL needs no download. See docs/bi.md.",
    )
    _add_lake(p)
    p.add_argument("--init", type=Path, metavar="FILE", help="write the SQL to FILE (for duckdb -init FILE)")
    p.add_argument(
        "--extension-directory",
        type=Path,
        metavar="DIR",
        help="DuckDB's extension directory to install into (default: DuckDB's own, ~/.duckdb/extensions)",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="only print the SQL (the DuckDB that runs it downloads the extensions itself)",
    )
    p.set_defaults(func=cmd_bi)


def add_sql_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql",
        help="a DuckDB shell on the lake, or one query (--query)",
        description="Open the DuckDB shell with the lake attached (read-only, USE lake), or run one query and print "
        "its result (--query; with --json as JSON, with --csv FILE also as CSV). The tables: utterances, "
        "recordings, the rollups (emotion_daily, ...), runs, model_releases.",
    )
    _add_lake(p)
    p.add_argument("--query", "-c", metavar="SQL", help="run SQL and print the result instead of the shell")
    p.add_argument("--csv", type=Path, metavar="FILE", help="with --query: also write the result as CSV")
    add_json(p)
    p.set_defaults(func=cmd_sql)


def _lake(args):
    """The lake the flags and environment name; it must exist (one line saying how to get one, else)."""
    from sensevoice_pipeline.lake.catalog import Lake

    settings = settings_from_flags(lake_root=args.lake, catalog=args.catalog)
    checked_lake(args.lake, settings)
    return Lake(settings.lake_root, settings.catalog)


def cmd_bi(args) -> int:
    from sensevoice_pipeline.warehouse.bi import install_extensions, setup_sql

    lake = _lake(args)
    if not args.no_install:
        for ext in install_extensions(lake, args.extension_directory):
            where = (
                f"from {ext.source.parent.parent.parent.name}"
                if ext.source
                else "(no wheel here: DuckDB downloads it)"
            )
            print(f"-- installed DuckDB extension {ext.name} {where}", file=sys.stderr)
    sql = setup_sql(lake)
    if args.init:
        args.init.parent.mkdir(parents=True, exist_ok=True)
        args.init.write_text(sql)
        print(f"wrote {args.init}: duckdb -init {args.init}", file=sys.stderr)
    else:
        print(sql, end="")
    return 0


def cmd_sql(args) -> int:
    lake = _lake(args)
    if args.query:
        return _run_query(args, lake)
    return _open_shell(lake)


def _run_query(args, lake) -> int:
    import duckdb

    from sensevoice_pipeline.lake.catalog import ALIAS
    from sensevoice_pipeline.ui.cli_query import write_csv
    from sensevoice_pipeline.warehouse.report import format_table

    with lake.reader() as con:
        con.execute(f"USE {ALIAS}")
        try:
            table = con.execute(args.query).to_arrow_table()
        except duckdb.Error as exc:
            raise CliError(f"--query failed: {' '.join(str(exc).split())[:300]}") from exc
    emit(args, table.to_pylist(), format_table(table))
    if args.csv:
        write_csv(table, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def _open_shell(lake) -> int:
    """Replace this process by the DuckDB shell, its session set up by the init file (in-memory database)."""
    from sensevoice_pipeline.warehouse.bi import install_extensions, setup_sql

    shell = shutil.which(DUCKDB_SHELL) or shutil.which(DUCKDB_SHELL, path=str(Path(sys.executable).parent))
    if shell is None:
        raise CliError(
            "the DuckDB shell is not installed: pip install 'sensevoice-pipeline[bi]' (or duckdb-cli), "
            "or run one query with --query"
        )
    install_extensions(lake)
    init = Path(tempfile.mkdtemp(prefix="svp-sql-")) / "init.sql"
    init.write_text(setup_sql(lake))
    sys.stdout.flush()
    os.execv(shell, [shell, "-init", str(init)])
    return 0  # not reached
