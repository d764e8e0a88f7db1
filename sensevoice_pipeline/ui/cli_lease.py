"""`svp lease ...`: the date leases of a lake (lake/lease.py): who holds which date, and freeing a date by hand."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from sensevoice_pipeline.ui.cli_common import CliError


def add_lease_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lease",
        help="the lake's date leases: list them, or break a dead run's lease",
        description="A run holds its date from plan to publish (one run per date). A lease expires "
        "$SVP_LEASE_TTL_S after its holder last renewed it, and an `svp run` found dead on the same host is taken "
        "over at once; a run on another host that died is only freed by expiry, or by `svp lease break DATE --yes`. "
        "The leases live beside a SQLite catalog or in the PostgreSQL catalog database ($SVP_CATALOG).",
    )
    lsub = p.add_subparsers(dest="lease_command", metavar="ACTION", required=True)
    listing = lsub.add_parser(
        "list",
        help="every lease: date, run, host, pid, since, until, state",
        description="Every lease of the lake: held, expired (a new run may take it) or dead "
        "(its `svp run` process is gone from this host; a new run takes it at once).",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    breaking = lsub.add_parser(
        "break",
        help="free DATE whoever holds it (asks for --yes)",
        description="Delete DATE's lease. The run that held it can no longer renew it or publish (its next renewal "
        "or its commit fails), so a new run of the date may start at once. Break only a lease whose run is dead or "
        "must be abandoned: this is what --yes confirms.",
    )
    breaking.add_argument("date", help="YYYY-MM-DD")
    breaking.add_argument(
        "--yes", action="store_true", help="confirm: the holder's work will not be published"
    )
    for parser in (listing, breaking):
        parser.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    p.set_defaults(func=cmd_lease)


def cmd_lease(args) -> int:
    from sensevoice_pipeline.jobs.daily import leases  # the lake (pyarrow, DuckDB): not for `svp --help`
    from sensevoice_pipeline.lake.partition import check_date
    from sensevoice_pipeline.settings import Settings

    date_leases = leases(Settings.from_env(lake_root=args.lake))
    if args.lease_command == "list":
        rows, now = date_leases.list()
        if args.json:
            print(json.dumps([{**_row(lease), "state": lease.state(now)} for lease in rows], indent=1))
        elif not rows:
            print("no leases")
        else:
            print(f"{'date':<10}  {'state':<7}  {'run':<40}  {'host':<20}  {'pid':>7}  {'since':<20}  until")
            for lease in rows:
                print(
                    f"{lease.date:<10}  {lease.state(now):<7}  {lease.holder:<40}  {lease.host:<20}  "
                    f"{lease.pid:>7}  {_time(lease.acquired_at):<20}  {_time(lease.expires_at)}"
                )
        return 0
    date = check_date(args.date)
    if not args.yes:
        raise CliError(
            f"breaking the lease on {date} lets another run publish it while its holder may still be "
            f"at work (its work would then never be published): run `svp lease list` to see who holds it, "
            f"then `svp lease break {date} --yes`"
        )
    broken = date_leases.break_lease(date)
    if broken is None:
        print(f"{date}: no lease to break")
    else:
        print(f"{date}: broke the lease of {broken.describe()}")
    return 0


def _row(lease) -> dict:
    return {
        "date": lease.date,
        "run": lease.holder,
        "host": lease.host,
        "pid": lease.pid,
        "bound_to_process": lease.bound_to_process,
        "since": _time(lease.acquired_at),
        "until": _time(lease.expires_at),
    }


def _time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
