"""`svp`: the command line of the SenseVoice pipeline. Run `svp --help` or `svp COMMAND --help`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sensevoice_pipeline import __version__
from sensevoice_pipeline.errors import ConfigurationError, InputError, ServingError, SvpError

DEFAULT_REPOSITORY = "model_repository"


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _add_url(parser: argparse.ArgumentParser) -> None:
    from sensevoice_pipeline.serving.client import DEFAULT_URL, URL_ENV

    parser.add_argument(
        "--url",
        default=None,
        help=f"Triton gRPC address (default: ${URL_ENV}, then {DEFAULT_URL})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svp",
        description="SenseVoice speech analytics: export SenseVoiceSmall to ONNX, serve it with Triton, "
        "transcribe audio with language hints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "export",
        help="checkpoint -> verified ONNX -> next model version in the Triton repository",
        description="Load a SenseVoiceSmall checkpoint with funasr, export the encoder to ONNX, check it against "
        "PyTorch on a padded batch, and publish it as the next version of `sensevoice` and `sensevoice_encoder`. "
        "Nothing is written unless every check passes.",
    )
    p.add_argument("--model", required=True, help="checkpoint dir (config.yaml, model.pt, am.mvn, *.bpe.model) or hub id")
    p.add_argument("--repository", default=DEFAULT_REPOSITORY, help="Triton model repository (default: %(default)s)")
    p.add_argument("--precision", default="fp32", help="fp32 (any device), int8 (CPU serving) or fp16 (GPU serving)")
    p.add_argument("--exporter", default="legacy", help="legacy (TorchScript, opset 17, fast) or dynamo (opset 18)")
    p.add_argument("--min-cosine", type=float, metavar="X",
                   help="parity gate: worst-frame cosine floor (default per precision: fp32 0.99999, fp16 0.999, "
                   "int8 0.95)")
    p.add_argument("--min-argmax-agreement", type=float, metavar="X",
                   help="parity gate: share of frames whose best token must agree with PyTorch (default: fp32 1.0, "
                   "fp16 0.98, int8 0.9); lower it only for random-weight checkpoints (benchmarks)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "serve",
        help="run a local CPU Triton on the model repository until Ctrl-C",
        description="Lint the repository, start the PyPI tritonserver on 127.0.0.1 with the local (CPU) configs, "
        "load the models and stay in the foreground until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--repository", default=DEFAULT_REPOSITORY, help="Triton model repository (default: %(default)s)")
    p.add_argument("--http-port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="(default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="(default: %(default)s)")
    p.add_argument("--config-name", default="local", help="configs/<name>.pbtxt to serve (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "transcribe",
        help="transcribe audio files through Triton and print raw and clean text",
        description="Decode each file (wav, flac, mp3, ogg; any rate; stereo is mixed down), resample to 16 kHz, "
        "send it to the `sensevoice` model and print the raw rich transcription and its clean text.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--language", default="auto", help="auto, zh, en, yue, ja, ko or nospeech (default: %(default)s)")
    p.add_argument("--itn", dest="use_itn", action=argparse.BooleanOptionalAction, default=True,
                   help="inverse text normalisation: punctuation and digits (default: on)")
    _add_url(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser(
        "run",
        help="the daily job for one date, without Airflow",
        description="Transcribe every file under <raw>/date=DATE/ through Triton (manifest.csv hints applied), "
        "publish the date's utterances, recordings, emotion_daily and runs partitions atomically, and refresh the "
        "DuckDB warehouse. The same library functions as the sensevoice_daily DAG.",
    )
    p.add_argument("--date", required=True, help="YYYY-MM-DD")
    p.add_argument("--raw", help="raw audio root (default: $SVP_RAW_ROOT, then var/raw)")
    p.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    p.add_argument("--language", help="default language hint when the manifest has none (default: auto)")
    p.add_argument("--itn", dest="use_itn", action=argparse.BooleanOptionalAction, default=None,
                   help="inverse text normalisation (default: on)")
    p.add_argument("--channel-mode", choices=["mono", "split"], help="mix down, or one transcript per channel")
    p.add_argument("--model-version", help="pin a sensevoice model version (default: what Triton serves)")
    p.add_argument("--failure-budget", type=float, metavar="SHARE",
                   help="share of the day's files that may fail before the run fails; the day is published either "
                   "way (default: $SVP_FAILURE_BUDGET, then 0.2)")
    p.add_argument("--wait", type=float, default=0, metavar="MINUTES",
                   help="wait up to MINUTES for the day's partition to land (default: 0, fail at once if missing)")
    p.add_argument("--ready-marker", default="", metavar="FILE",
                   help="with --wait: the file inside date=DATE/ that says the day is complete, e.g. _SUCCESS "
                   "(default: any file)")
    _add_url(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "query",
        help="canned BI queries over the DuckDB warehouse",
        description="Print a canned query as a table; --csv writes it to a file, --png draws it.",
    )
    p.add_argument("name", choices=["emotion-trend", "events", "angry-calls", "angry-share"])
    p.add_argument("--from", dest="date_from", help="first date, YYYY-MM-DD (default: all)")
    p.add_argument("--to", dest="date_to", help="last date, YYYY-MM-DD (default: all)")
    p.add_argument("--by", default="language", choices=["language", "channel"], help="trend grouping")
    p.add_argument("--lake", help="table root (default: $SVP_LAKE_ROOT, then var/lake)")
    p.add_argument("--warehouse", help="DuckDB file (default: <lake>/warehouse.duckdb)")
    p.add_argument("--csv", type=Path, help="also write the result as CSV")
    p.add_argument("--png", type=Path, help="also draw the result as a chart")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser(
        "models",
        help="model versions: list, show, stage, unstage, promote, rollback, retire (on a running Triton)",
        description="Manage the versions of `sensevoice` + `sensevoice_encoder` in a model repository and on the "
        "Triton serving it. The serving version (recorded in <repository>/serving.json and the configs' "
        "version_policy) is the one requests without a version reach. `stage` loads a candidate beside it as "
        "`sensevoice_staged` (`unstage` unloads it); `promote` switches to it without failed requests; `rollback` "
        "switches back.",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, help_text in [
        ("list", "every version: role, server state, precision, source checksum, export time, parity, files"),
        ("show", "one version in full (export_meta.json included)"),
        ("stage", "load VERSION beside the serving version as `sensevoice_staged` (serving untouched)"),
        ("unstage", "unload `sensevoice_staged`, e.g. after a failed canary (serving untouched)"),
        ("promote", "make VERSION (default: the staged one) the serving version"),
        ("rollback", "serve the previous version again"),
        ("retire", "unload VERSION and take it out of every role (files are kept)"),
    ]:
        m = msub.add_parser(name, help=help_text, description=help_text)
        if name in ("show", "stage", "retire"):
            m.add_argument("version", type=int)
        elif name == "promote":
            m.add_argument("version", type=int, nargs="?")
        m.add_argument("--repository", default=DEFAULT_REPOSITORY, help="model repository (default: %(default)s)")
        _add_url(m)
        if name in ("list", "show"):
            m.add_argument("--json", action="store_true", help="print JSON")
        if name in ("unstage", "promote", "rollback", "retire"):
            m.add_argument("--offline", action="store_true",
                           help="edit the repository only, for a stopped Triton (takes effect when it starts)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "demo",
        help="the main job end to end on one machine: model, local Triton, one DAG run, a DuckDB report",
        description="Export the bundled fixture model (or --model), write a sample day of calls, start a local CPU "
        "Triton, run the sensevoice_daily DAG for that day with `airflow dags test`, and print the emotion trend.",
    )
    p.add_argument("--model", help="checkpoint dir or hub id (default: the bundled trained fixture model)")
    p.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where everything goes (default: %(default)s)")
    p.add_argument("--date", help="the sample day (default: yesterday)")
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_export(args) -> int:
    from export.checkpoint import CheckpointError
    from export.pipeline import ExportError, run_export
    from export.precision import PrecisionError, check_precision

    from sensevoice_pipeline.serving.repository import RepositoryError

    try:
        thresholds = None
        if args.min_cosine is not None or args.min_argmax_agreement is not None:
            from export.parity import thresholds_for

            thresholds = thresholds_for(check_precision(args.precision), args.min_cosine, args.min_argmax_agreement)
        result = run_export(args.model, args.repository, args.precision, args.exporter, thresholds=thresholds)
    except (CheckpointError, ExportError, PrecisionError, RepositoryError, ValueError) as exc:
        raise CliError(f"export failed: {exc}") from exc
    print(f"exported version {result.version} ({result.meta['precision']}) to {result.repository}")
    return 0


def cmd_serve(args) -> int:
    from sensevoice_pipeline.serving.server import LocalTriton, ServerError

    server = LocalTriton(
        args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        config_name=args.config_name,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except ServerError as exc:
        raise CliError(str(exc)) from exc
    try:
        print(f"Triton ready: gRPC {server.grpc_url}  HTTP http://{server.http_url}  "
              f"metrics http://{server.host}:{server.metrics_port}/metrics", flush=True)
        print(f"log: {server.log_file}   (Ctrl-C to stop)", flush=True)
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                raise CliError(f"tritonserver exited unexpectedly:\n{server.log_tail()}")
    finally:
        print("stopping Triton...", flush=True)
        server.stop()
    return 0


def cmd_transcribe(args) -> int:
    from sensevoice_pipeline.speech.audio import AudioDecodeError, load_mono_16k
    from sensevoice_pipeline.serving.client import SenseVoiceClient, TritonClientError
    from sensevoice_pipeline.speech.languages import UnknownLanguageError, language_id
    from sensevoice_pipeline.speech.tags import parse

    try:
        language_id(args.language)
    except UnknownLanguageError as exc:
        raise CliError(str(exc)) from exc

    async def run() -> int:
        failures = 0
        async with SenseVoiceClient(args.url) as client:
            version = await client.check_ready()
            print(f"# sensevoice version {version} at {client.url}", file=sys.stderr)
            for path in args.files:
                try:
                    audio = load_mono_16k(path)
                except (AudioDecodeError, FileNotFoundError) as exc:
                    print(f"{path}\terror: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                result = await client.transcribe(audio, args.language, args.use_itn)
                print(f"{path}\t{result.text}\t{parse(result.text).text}")
        return 1 if failures else 0

    try:
        return asyncio.run(run())
    except TritonClientError as exc:
        raise CliError(str(exc)) from exc


def cmd_run(args) -> int:
    from sensevoice_pipeline.lake.arrival import wait_for_partition
    from sensevoice_pipeline.serving.client import TritonClientError
    from sensevoice_pipeline.lake.daily import run_date
    from sensevoice_pipeline.lake.partition import PartitionError
    from sensevoice_pipeline.settings import Settings

    try:
        settings = Settings.from_env(
            raw_root=args.raw, lake_root=args.lake, triton_url=args.url, language=args.language,
            use_itn=args.use_itn, channel_mode=args.channel_mode, model_version=args.model_version,
            failure_budget=args.failure_budget,
        )
        if args.wait > 0:
            arrival = wait_for_partition(settings.raw_root, args.date, args.ready_marker, timeout_s=60 * args.wait,
                                         poke_interval_s=max(1.0, min(30.0, 6 * args.wait)))
            print(f"{arrival.partition}: {arrival.detail}", file=sys.stderr)
        result = run_date(settings, args.date)
    except (PartitionError, TritonClientError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(
        f"{result['date']}: {result['files']} files ({result['files_failed']} failed), "
        f"{result['utterances']} utterances, {result['speech_seconds']:.1f} s of speech, "
        f"model version {result['model_versions'] or '-'}, {result['seconds']:.1f} s"
    )
    print(f"tables in {settings.lake_root}, warehouse {settings.warehouse_path}")
    return 0


def cmd_query(args) -> int:
    from sensevoice_pipeline.warehouse.report import print_table, write_chart
    from sensevoice_pipeline.settings import Settings
    from sensevoice_pipeline.warehouse.database import QUERIES, Warehouse, WarehouseError

    # Everything the user typed is checked before the warehouse is opened (a slow s3:// lake included).
    date_from, date_to = _date_flag("--from", args.date_from), _date_flag("--to", args.date_to)
    if date_from and date_to and date_from > date_to:
        raise CliError(f"--from {date_from} is after --to {date_to}: no date can match")
    outputs = [(flag, path) for flag, path in (("--csv", args.csv), ("--png", args.png)) if path]
    for flag, path in outputs:
        _check_output(flag, path)
    try:
        settings = Settings.from_env(lake_root=args.lake, warehouse=args.warehouse)
    except ValueError as exc:  # ConfigurationError, or a storage URI that cannot work
        raise CliError(str(exc)) from exc
    try:
        table = Warehouse(settings.lake_root, settings.warehouse_path).query(args.name, date_from, date_to, args.by)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    print(f"# {QUERIES[args.name].title}")
    print_table(table)
    for flag, path in outputs:
        if flag == "--csv":
            import pyarrow.csv as pacsv

            _write_output(flag, path, lambda target: pacsv.write_csv(table, target))
        else:
            _write_output(flag, path, lambda target: write_chart(args.name, table, target, by=args.by))
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _date_flag(flag: str, value: str | None):
    import datetime as dt

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


def cmd_models(args) -> int:
    import json

    from sensevoice_pipeline.releases import operations as releases
    from sensevoice_pipeline.serving.client import default_url

    action = args.models_command
    try:
        if action in ("list", "show"):  # the server's view only when asked for
            if action == "list":
                rows, state, server = releases.list_versions(args.repository, args.url)
                print(json.dumps({"versions": [r.to_dict() for r in rows], "serving": state.to_dict(),
                                  "server": server}, indent=2) if args.json
                      else releases.format_versions(rows, state, server))
            else:
                shown = releases.show_version(args.repository, args.version, args.url)
                print(json.dumps(shown, indent=2) if args.json else releases.format_show(shown))
            return 0
        url = None if getattr(args, "offline", False) else (args.url or default_url())
        if action == "stage":
            r = releases.stage(args.repository, args.version, url)
            print(f"staged version {r['staged']} as {r['model']} beside serving version {r['serving']} "
                  f"({r['seconds']} s)")
        elif action == "unstage":
            print(releases.format_unstaged(releases.unstage(args.repository, url)))
        elif action in ("promote", "rollback"):
            r = (releases.promote(args.repository, args.version, url) if action == "promote"
                 else releases.rollback(args.repository, url))
            where = f"switched in {r['switch_seconds']} s" if url else "repository only (--offline)"
            print(f"serving version {r['serving']} (previous {r['previous']}); {where}"
                  if r["changed"] else f"version {r['serving']} is already serving")
        elif action == "retire":
            r = releases.retire(args.repository, args.version, url)
            print(f"retired version {r['retired']}; serving version {r['serving']}")
    except releases.ReleaseError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_demo(args) -> int:
    from sensevoice_pipeline.demo.run import DemoError, run_demo

    try:
        return run_demo(args.model, args.workdir, args.date)
    except DemoError as exc:
        raise CliError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"svp {args.command}: {exc}", file=sys.stderr)
        return 2
    except SvpError as exc:  # raised on purpose (errors.py): its message, on one line, never a traceback
        print(f"svp {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        # 2 as for CliError when the user fixes the settings, an input or the server and runs again; 1 when the run
        # itself failed (PublishError, FailureBudgetExceeded, ...)
        return 2 if isinstance(exc, (ConfigurationError, InputError, ServingError)) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `svp query ... | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
