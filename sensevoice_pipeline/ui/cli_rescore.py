"""`svp rescore`: published days transcribed again with one model version (jobs/rescore.py)."""

from __future__ import annotations

import argparse

from sensevoice_pipeline.ui.cli_common import CliError, add_json, add_url, emit, settings_from_flags


def add_rescore_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rescore",
        help="transcribe a range of published days again with one model version (after a promote)",
        description="Keep the lake's current snapshot (named before-rescore-<time>, kept --keep-days past the "
        "garbage-collection grace), then run the daily job for every published date in --from..--to with "
        "--model-version pinned: a commit per day, as `svp run` makes. The old version's rows stay readable: "
        "`svp query NAME --model-version OLD` (or --as-of the kept name), and `svp query model-compare` shows "
        "each emotion's share per version over the same dates. A day whose audio is gone keeps its rows and "
        "is reported.",
    )
    p.add_argument("--from", dest="date_from", required=True, help="first date, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last date, YYYY-MM-DD")
    p.add_argument(
        "--model-version", help="the sensevoice version to score with (default: what Triton serves)"
    )
    p.add_argument(
        "--keep-days",
        type=float,
        default=90,
        metavar="DAYS",
        help="keep the snapshot before the re-score this many days (default: %(default)s)",
    )
    p.add_argument("--raw", help="raw audio root (default: $SVP_RAW_ROOT, then var/raw)")
    p.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    add_url(p)
    add_json(p)
    p.set_defaults(func=cmd_rescore)


def cmd_rescore(args) -> int:
    from sensevoice_pipeline.jobs.rescore import rescore

    if not args.keep_days > 0:
        raise CliError(f"--keep-days must be more than 0, not {args.keep_days:g}")
    settings = settings_from_flags(raw_root=args.raw, lake_root=args.lake, triton_url=args.url)
    result = rescore(
        settings,
        args.date_from,
        args.date_to,
        args.model_version,
        keep_days=args.keep_days,
        show_progress=not args.json,
    )
    failed = "".join(f"\n  {date}: not re-scored ({why})" for date, why in result.failed.items())
    emit(
        args,
        result,
        f"re-scored {len(result.days)} days with model version {result.model_version or 'serving'}; the lake "
        f"before it (versions {result.kept_versions}) is kept as snapshot {result.kept_snapshot} "
        f"({result.kept_name}): svp query NAME --as-of {result.kept_name}{failed}",
    )
    return 1 if result.failed else 0
