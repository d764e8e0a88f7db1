"""`svp query ...`: a canned BI query over the DuckDB warehouse, printed, and written to CSV or drawn as a PNG."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from sensevoice_pipeline.ui.cli_common import CliError, add_json, checked_lake, emit, settings_from_flags

# warehouse.queries.QUERIES's names, spelled out so that `svp --help` needs neither pyarrow nor DuckDB (a test keeps
# the two equal)
QUERY_NAMES = [
    "emotion-trend",
    "events",
    "angry-calls",
    "angry-share",
    "model-usage",
    "ended-angry",
    "escalations",
    "talk-by-agent",
    "talk-by-queue",
    "silence-trend",
]
# Not a canned query over one snapshot: each emotion's share per model version, over the current lake and the kept
# snapshots (warehouse/versions.py)
MODEL_COMPARE = "model-compare"
MODEL_COMPARE_TITLE = "Each emotion's share per model version, over the dates every version scored"


def add_query_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="canned BI queries over the DuckDB warehouse",
        description="Print a canned query as a table; --csv writes it to a file, --png draws it.",
    )
    p.add_argument("name", choices=[*QUERY_NAMES, MODEL_COMPARE])
    p.add_argument("--from", dest="date_from", help="first date, YYYY-MM-DD (default: all)")
    p.add_argument("--to", dest="date_to", help="last date, YYYY-MM-DD (default: all)")
    p.add_argument("--by", default="language", choices=["language", "channel"], help="trend grouping")
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="P",
        help="count only emotions the model gave at least this probability: 0.5, 0.6, 0.7, 0.8 or 0.9 "
        "(emotion-trend, angry-share; default: all)",
    )
    p.add_argument(
        "--as-of",
        metavar="SNAPSHOT",
        help="answer from an older snapshot of the lake: its id, or the name `svp rescore` kept it under",
    )
    p.add_argument(
        "--model-version",
        metavar="N",
        help="answer from the lake as model version N scored it (a snapshot kept by `svp rescore`, else the "
        "current lake)",
    )
    p.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    p.add_argument("--warehouse", help="DuckDB file (default: <lake>/warehouse.duckdb)")
    p.add_argument("--csv", type=Path, help="also write the result as CSV")
    p.add_argument("--png", type=Path, help="also draw the result as a chart")
    add_json(p)
    p.set_defaults(func=cmd_query)


def cmd_query(args) -> int:
    # pyarrow and DuckDB take longer to import than `svp --help` takes to answer: only when a query runs.
    from sensevoice_pipeline.warehouse.database import Warehouse, WarehouseError
    from sensevoice_pipeline.warehouse.queries import QUERIES
    from sensevoice_pipeline.warehouse.report import print_table, write_chart
    from sensevoice_pipeline.warehouse.versions import model_compare, resolve_snapshot

    # Everything the user typed is checked before the warehouse is opened (a slow s3:// lake included).
    date_from, date_to = _date_flag("--from", args.date_from), _date_flag("--to", args.date_to)
    if date_from and date_to and date_from > date_to:
        raise CliError(f"--from {date_from} is after --to {date_to}: no date can match")
    compare = args.name == MODEL_COMPARE
    if args.png and (compare or QUERIES[args.name].chart is None):
        raise CliError(f"{args.name} has no chart (its rows are not per date): use --csv")
    if compare and (args.as_of or args.model_version):
        raise CliError(
            "model-compare reads every kept snapshot itself: leave out --as-of and --model-version"
        )
    outputs = [(flag, path) for flag, path in (("--csv", args.csv), ("--png", args.png)) if path]
    for flag, path in outputs:
        _check_output(flag, path)
    settings = settings_from_flags(lake_root=args.lake, warehouse=args.warehouse)
    checked_lake(args.lake, settings)
    try:
        warehouse = Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog)
        if compare:
            table = model_compare(warehouse, date_from, date_to)
        else:
            snapshot = resolve_snapshot(warehouse, args.as_of, args.model_version)
            table = warehouse.query(args.name, date_from, date_to, args.by, args.min_confidence, snapshot)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        emit(args, table.to_pylist(), "")
    else:
        print(f"# {MODEL_COMPARE_TITLE if compare else QUERIES[args.name].title}")
        print_table(table)
    for flag, path in outputs:
        if flag == "--csv":
            _write_output(flag, path, lambda target: write_csv(table, target))
        else:
            _write_output(
                flag,
                path,
                lambda target: write_chart(
                    args.name,
                    table,
                    target,
                    by=args.by,
                    date_from=date_from,
                    date_to=date_to,
                    min_confidence=args.min_confidence,
                ),
            )
        print(f"wrote {path}", file=sys.stderr)
    return 0


def write_csv(table, target: Path) -> None:
    """``table`` as CSV, every cell a spreadsheet would run as a formula defused (spreadsheet_safe)."""
    import pyarrow.csv as pacsv  # pyarrow: see cmd_query

    pacsv.write_csv(spreadsheet_safe(table), target)


# A cell a spreadsheet would read as a formula (OWASP, "CSV Injection"): a transcript is whatever a caller said.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table):
    """``table`` with every text cell that starts like a formula prefixed with a single quote, which spreadsheets
    show but do not execute (OWASP's advice); numbers and everything else as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.starts_with(column, FORMULA_STARTS[0])
            for prefix in FORMULA_STARTS[1:]:
                risky = pc.or_(risky, pc.starts_with(column, prefix))
            column = pc.if_else(
                pc.fill_null(risky, False), pc.binary_join_element_wise("'", column, ""), column
            )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _date_flag(flag: str, value: str | None) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{flag}: not a date: {value!r} (expected YYYY-MM-DD)") from None


def _check_output(flag: str, path: Path) -> None:
    """Refuse, before the query runs, an output file that cannot be written. Missing folders are fine: they are
    created when the file is written, as `--csv reports/today.csv` asks for."""
    if path.is_dir():
        raise CliError(f"{flag} {path} is a folder: name the file to write")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"cannot write {flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {flag} {path}: {existing} is not writable")


def _write_output(flag: str, path: Path, write) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as exc:
        raise CliError(f"cannot write {flag} {path}: {exc.strerror or exc}") from exc
