"""`svp models ...`: the versions of `sensevoice` + `sensevoice_encoder` in a model repository and on its Triton."""

from __future__ import annotations

import argparse
import dataclasses

from sensevoice_pipeline import releases
from sensevoice_pipeline.errors import UnavailableError
from sensevoice_pipeline.serving.client import default_url
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.ui.cli_common import CliError, add_json, add_repository, add_url, emit

ACTIONS = [
    ("list", "every version: role, server state, precision, source checksum, export time, parity, files"),
    ("show", "one version in full (export_meta.json included)"),
    ("stage", "load VERSION beside the serving version as `sensevoice_staged` (serving untouched)"),
    ("unstage", "unload `sensevoice_staged`, e.g. after a failed canary (serving untouched)"),
    ("promote", "make VERSION (default: the staged one) the serving version"),
    ("rollback", "serve the previous version again"),
    ("retire", "unload VERSION and take it out of every role (files are kept)"),
    (
        "mirror",
        "publish the repository to TARGET (s3://bucket/prefix), which Triton servers then read "
        "(--model-repository=s3://...); every later export and release keeps it in step",
    ),
    (
        "release",
        "the whole release of CHECKPOINT: export, stage, canary on the golden set, then promote or "
        "discard; writes the release report and its model_releases row (what the release DAG runs)",
    ),
]


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="model versions: list, show, stage, unstage, promote, rollback, retire, mirror, release (on a running "
        "Triton, or a fleet: --url a:8001,b:8001, the first server is the canary)",
        description="Manage the versions of `sensevoice` + `sensevoice_encoder` in a model repository and on the "
        "Triton serving it. The serving version (recorded in <repository>/serving.json and the configs' "
        "version_policy) is the one requests without a version reach. `stage` loads a candidate beside it as "
        "`sensevoice_staged` (`unstage` unloads it); `promote` switches to it without failed requests; `rollback` "
        "switches back; `release` runs all of it for a new checkpoint (export, stage, canary, promote or discard).",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, help_text in ACTIONS:
        m = msub.add_parser(name, help=help_text, description=help_text)
        if name in ("show", "stage", "retire"):
            m.add_argument("version", type=int)
        elif name == "mirror":
            m.add_argument(
                "target", help="s3://bucket/prefix (credentials and endpoint: the AWS_* variables)"
            )
        elif name == "promote":
            m.add_argument("version", type=int, nargs="?")
        add_repository(m)
        add_url(m)
        add_json(m)
        if name == "release":
            _add_release_arguments(m)
        if name in ("unstage", "promote", "rollback", "retire"):
            m.add_argument(
                "--offline",
                action="store_true",
                help="edit the repository only, for a stopped Triton (takes effect when it starts)",
            )
    p.set_defaults(func=cmd_models)


def _add_release_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument(
        "checkpoint", help="model dir or hub id to export (model.pt, config.yaml, am.mvn, tokenizer)"
    )
    m.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8", "auto"),
        default="fp32",
        help="auto: fp32 or int8, whichever runs faster on this CPU (see `svp export --help`); "
        "default: %(default)s",
    )
    m.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy", help="default: %(default)s")
    m.add_argument(
        "--lake-root",
        default=None,
        help="where the report and model_releases row go (default: $SVP_LAKE_ROOT, then var/lake)",
    )
    m.add_argument(
        "--golden-dir",
        default=None,
        help="the canary's clips + expected.jsonl (default: $SVP_GOLDEN_DIR, then the fixture model's clips)",
    )
    gates = releases.CanaryThresholds()
    for flag, kind, what in (
        ("--min-transcript-agreement", float, "share of golden cases with the same text"),
        ("--min-emotion-agreement", float, "share of golden cases with the same emotion"),
        ("--max-latency-ratio", float, "median latency staged / serving"),
        (
            "--shadow-sample-size",
            int,
            "shadow canary: recent published recordings sent to the candidate (0: off)",
        ),
        ("--shadow-look-back-days", int, "shadow canary: sample from the last this many published days"),
        ("--max-angry-share-shift", float, "shadow canary: largest change of the angry share of segments"),
        ("--max-shadow-cer", float, "shadow canary: character error rate against the published texts"),
    ):
        default = getattr(gates, flag.removeprefix("--").replace("-", "_"))
        m.add_argument(flag, type=kind, default=default, help=f"canary gate: {what} (default: %(default)s)")
    m.add_argument(
        "--allow-refusal",
        action="store_true",
        help="exit 0 when the canary refuses the candidate (the report says so)",
    )


def cmd_models(args) -> int:
    action = args.models_command
    if action == "release":
        return _release(args)
    try:
        _run_action(args, action)
    except UnavailableError:  # Triton did not answer: exit 69, not a mistake in the command
        raise
    except releases.ReleaseError as exc:
        raise CliError(str(exc)) from exc
    return 0


def _run_action(args, action: str) -> None:
    if action == "list":  # the server's view only when asked for
        rows, state, server = releases.list_versions(args.repository, args.url)
        result = {"versions": rows, "serving": state, "server": server}
        emit(args, result, releases.format_versions(rows, state, server))
    elif action == "show":
        shown = releases.show_version(args.repository, args.version, args.url)
        emit(args, shown, releases.format_show(shown))
    elif action == "mirror":
        r = releases.set_mirror(args.repository, args.target)
        emit(
            args,
            r,
            f"published versions {', '.join(map(str, r['versions'])) or 'none'} to {r['mirror']}; start Triton "
            f"with --model-repository={r['triton_uri']}",
        )
    else:
        _switch(args, action, None if getattr(args, "offline", False) else (args.url or default_url()))


def _switch(args, action: str, url: str | None) -> None:
    """stage, unstage, promote, rollback, retire: on the server at ``url`` (None: the repository only)."""
    if action == "stage":
        r = releases.stage(args.repository, args.version, url)
        text = f"staged version {r.staged} as {r.model} beside serving version {r.serving} ({r.seconds} s)"
    elif action == "unstage":
        r = releases.unstage(args.repository, url)
        text = releases.format_unstaged(r)
    elif action in ("promote", "rollback"):
        r = (
            releases.promote(args.repository, args.version, url)
            if action == "promote"
            else releases.rollback(args.repository, url)
        )
        where = f"switched in {r['switch_seconds']} s" if url else "repository only (--offline)"
        text = (
            f"serving version {r['serving']} (previous {r['previous']}); {where}"
            if r["changed"]
            else f"version {r['serving']} is already serving"
        )
    else:
        r = releases.retire(args.repository, args.version, url)
        text = f"retired version {r['retired']}; serving version {r['serving']}"
    emit(args, r, text)


def _run_export() -> releases.RunExport:
    """The export step (``sensevoice_export``, the [export] extra), imported only when a release runs."""
    from sensevoice_export.pipeline import run_export

    return run_export


def _release(args) -> int:
    """A refused or failed release is the run's outcome, not a usage error: it exits 1 (errors.exit_code)."""
    settings = Settings.from_env(
        model_repository=args.repository,
        lake_root=args.lake_root,
        triton_url=args.url,
        golden_dir=args.golden_dir,
    )
    thresholds = releases.CanaryThresholds(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(releases.CanaryThresholds)}
    )
    report = releases.release(
        args.checkpoint,
        settings,
        run_export=_run_export(),
        precision=args.precision,
        exporter=args.exporter,
        thresholds=thresholds,
    )
    emit(
        args,
        report,
        f"release {report.row['release_id']}: {report.outcome}; serving version "
        f"{report.row['serving_after']}; report {report.report}",
    )
    releases.check_outcome(report, fail_on_refusal=not args.allow_refusal)
    return 0
