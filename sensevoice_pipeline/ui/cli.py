"""`svp`: the command line of the SenseVoice pipeline. Run `svp --help` or `svp COMMAND --help`.

This module has the parser, the export / serve / transcribe / run / demo commands and ``main``; `svp query` lives in
``cli_query``, `svp bi` and `svp sql` in ``cli_bi``, `svp models` in ``cli_models``. A command's failure is an
:class:`~..errors.SvpError` (``CliError`` for what the command line itself refuses): one line on stderr (and, with
``--json``, an ``{error, kind, exit_code}`` object on stdout), and the exit code ``errors.exit_code`` gives its kind:
64 fix the command or settings, 65 bad input data, 69 a service is unavailable, 75 try again later, 1 the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sensevoice_pipeline import __version__
from sensevoice_pipeline.errors import EX_DATAERR, Interrupted, SvpError, exit_code
from sensevoice_pipeline.logs import LOG_FORMAT_ENV, LOG_FORMATS, configure_logging
from sensevoice_pipeline.serving.admin import KEY_FILE_ENV, configured_admin_key, new_admin_key
from sensevoice_pipeline.serving.repository import RepositoryError
from sensevoice_pipeline.serving.server import LocalTriton, ServerError, port_in_use
from sensevoice_pipeline.ui.cli_bi import add_bi_parser, add_sql_parser
from sensevoice_pipeline.ui.cli_common import (
    DEMO_WORKDIR,
    CliError,
    SvpParser,
    add_json,
    add_repository,
    add_url,
    emit,
    resolve_repository,
    settings_from_flags,
    to_json,
)
from sensevoice_pipeline.ui.cli_lease import add_lease_parser
from sensevoice_pipeline.ui.cli_models import add_models_parser
from sensevoice_pipeline.ui.cli_query import add_query_parser
from sensevoice_pipeline.ui.cli_rescore import add_rescore_parser


def build_parser() -> argparse.ArgumentParser:
    parser = SvpParser(
        prog="svp",
        description="SenseVoice speech analytics: export SenseVoiceSmall to ONNX, serve it with Triton, "
        "transcribe audio with language hints, publish daily tables and query them.",
        epilog="Exit codes: 0 done; 64 fix the command or the settings; 65 bad input data (a file; a day published "
        "over its failure budget); 69 a service is unavailable (Triton, the object store, the catalog database); 75 "
        "try again later (the date is busy, the day's audio has not arrived); 1 the run failed; 130/143 stopped by "
        "Ctrl-C / SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_logging_flags(parser, os.environ.get(LOG_FORMAT_ENV) or "text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_export_parser,
        _add_serve_parser,
        _add_transcribe_parser,
        _add_run_parser,
        add_rescore_parser,
        add_query_parser,
        add_bi_parser,
        add_sql_parser,
        add_models_parser,
        add_lease_parser,
        _add_demo_parser,
    ):  # the order `svp --help` lists them in
        add(sub)
    for command in _all_subparsers(
        parser
    ):  # `svp run ... --log-format json` as well as `svp --log-format json run`
        _add_logging_flags(command, argparse.SUPPRESS)
    return parser


def _add_logging_flags(parser: argparse.ArgumentParser, default) -> None:
    """-v and --log-format, on the top parser and again on every command (SUPPRESS there: given nowhere, the top
    parser's default stands)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if default is argparse.SUPPRESS else False,
        help="debug logging",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default,
        help=f"text, or json: one JSON object per log line on stderr (default: ${LOG_FORMAT_ENV}, then text)",
    )


def _all_subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # (aliases repeat a parser)
                yield child
                yield from _all_subparsers(child)


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="checkpoint -> verified ONNX -> next model version in the Triton repository",
        description="Load a SenseVoiceSmall checkpoint with funasr, export the encoder to ONNX, check it against "
        "PyTorch on a padded batch, and publish it as the next version of `sensevoice` and `sensevoice_encoder`. "
        "Nothing is written unless every check passes.",
    )
    p.add_argument(
        "--model", required=True, help="checkpoint dir (config.yaml, model.pt, am.mvn, *.bpe.model) or hub id"
    )
    add_repository(p, "Triton model repository")
    p.add_argument(
        "--precision",
        default="fp32",
        help="fp32 (any device), int8 (CPU serving), fp16 (GPU serving) or auto: fp32 or int8, whichever "
        "runs faster on this CPU, timed at export (int8 only if it passes its parity gate; the version's "
        "export_meta.json records the timings)",
    )
    p.add_argument(
        "--exporter", default="legacy", help="legacy (TorchScript, opset 17, fast) or dynamo (opset 18)"
    )
    p.add_argument(
        "--min-cosine",
        type=float,
        metavar="X",
        help="parity gate: worst-frame cosine floor (default per precision: fp32 0.99999, fp16 0.999, "
        "int8 0.95)",
    )
    p.add_argument(
        "--min-argmax-agreement",
        type=float,
        metavar="X",
        help="parity gate: share of frames whose best token must agree with PyTorch (default: fp32 1.0, "
        "fp16 0.98, int8 0.9); lower it only for random-weight checkpoints (benchmarks)",
    )
    p.set_defaults(func=cmd_export)


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run a local CPU Triton on the model repository until Ctrl-C",
        description="Lint the repository, start the PyPI tritonserver on 127.0.0.1 with the local (CPU) configs, "
        "load the models and stay in the foreground until Ctrl-C or SIGTERM. Model control (load, unload, model "
        "config, logging, trace) needs the admin key: $SVP_TRITON_ADMIN_KEY or the file $SVP_TRITON_ADMIN_KEY_FILE "
        "names; without either a new key is written to var/triton-admin.key.",
    )
    add_repository(p, "Triton model repository")
    p.add_argument("--http-port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="(default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="(default: %(default)s)")
    p.add_argument(
        "--config-name", default="local", help="configs/<name>.pbtxt to serve (default: %(default)s)"
    )
    p.set_defaults(func=cmd_serve)


def _add_transcribe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe audio files through Triton and print raw and clean text",
        description="Decode each file (wav, flac, mp3, ogg; any rate; stereo is mixed down), resample to 16 kHz, "
        "cut it into VAD speech segments when it is longer than 30 s (as the daily job does), send each segment to "
        "the `sensevoice` model and print FILE, the raw rich transcription and its clean text, tab-separated (a "
        "segmented file's texts joined with spaces, each raw one with its own tags). The texts are redacted "
        "under SVP_REDACT (off, mask, drop; default mask) as the daily job stores them.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument(
        "--language", default="auto", help="auto, zh, en, yue, ja, ko or nospeech (default: %(default)s)"
    )
    p.add_argument(
        "--itn",
        dest="use_itn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inverse text normalisation: punctuation and digits (default: on)",
    )
    add_url(p)
    add_json(p)
    p.set_defaults(func=cmd_transcribe)


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--itn",
        dest="use_itn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="inverse text normalisation (default: on)",
    )
    p.add_argument(
        "--channel-mode", choices=["mono", "split"], help="mix down, or one transcript per channel"
    )
    p.add_argument("--model-version", help="pin a sensevoice model version (default: what Triton serves)")
    p.add_argument(
        "--failure-budget",
        type=float,
        metavar="SHARE",
        help="share of the day's files that may fail before the run fails; the day is published either "
        "way (default: $SVP_FAILURE_BUDGET, then 0.2)",
    )
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="replace a published day even with far fewer recordings (default: refuse when the partition "
        "is empty or holds under $SVP_SHRINK_LIMIT, 0.5, of the published count)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="MINUTES",
        help="wait up to MINUTES for the day's partition to land (default: 0, fail at once if missing)",
    )
    p.add_argument(
        "--ready-marker",
        default="",
        metavar="FILE",
        help="with --wait: the file inside date=DATE/ that says the day is complete, e.g. _SUCCESS "
        "(default: any file)",
    )
    add_url(p)
    add_json(p)
    p.set_defaults(func=cmd_run)


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job end to end on one machine: model, local Triton, one DAG run, a DuckDB report",
        description="Export the bundled fixture model (or --model), write a sample day of calls, start a local CPU "
        "Triton, run the sensevoice_daily DAG for that day with `airflow dags test`, and print the emotion trend.",
    )
    p.add_argument("--model", help="checkpoint dir or hub id (default: the bundled trained fixture model)")
    p.add_argument(
        "--workdir", type=Path, default=DEMO_WORKDIR, help="where everything goes (default: %(default)s)"
    )
    p.add_argument("--date", help="the sample day (default: yesterday)")
    p.set_defaults(func=cmd_demo)


def cmd_export(args) -> int:
    # onnx, and torch / funasr once a checkpoint loads: seconds to import, so only for this command.
    from sensevoice_export.checkpoint import CheckpointError
    from sensevoice_export.parity import thresholds_for
    from sensevoice_export.pipeline import ExportError, run_export
    from sensevoice_export.precision import PrecisionError, check_precision

    try:
        thresholds = None
        if args.min_cosine is not None or args.min_argmax_agreement is not None:
            gated = "int8" if check_precision(args.precision, allow_auto=True) == "auto" else args.precision
            thresholds = thresholds_for(gated, args.min_cosine, args.min_argmax_agreement)
        result = run_export(args.model, args.repository, args.precision, args.exporter, thresholds=thresholds)
    except (CheckpointError, ExportError, PrecisionError, RepositoryError, ValueError) as exc:
        raise CliError(f"export failed: {exc}") from exc
    print(f"exported version {result.version} ({result.meta['precision']}) to {result.repository}")
    return 0


def cmd_serve(args) -> int:
    ports = {
        "--http-port": args.http_port,
        "--grpc-port": args.grpc_port,
        "--metrics-port": args.metrics_port,
    }
    for flag, port in ports.items():
        if port_in_use("127.0.0.1", port):
            raise CliError(
                f"port {port} ({flag}) is already in use on 127.0.0.1: stop what holds it "
                f"(`ss -ltnp 'sport = :{port}'` names it) or pick another with {flag}"
            )
    key = configured_admin_key()
    if key is None:
        key = _new_key_file(ADMIN_KEY_FILE)
        print(
            f"model control (load, unload, config) needs the admin key, written to {ADMIN_KEY_FILE}: "
            f"export {KEY_FILE_ENV}={ADMIN_KEY_FILE.resolve()} for `svp models`",
            flush=True,
        )
    server = LocalTriton(
        args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        config_name=args.config_name,
        admin_key=key,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except ServerError as exc:
        raise CliError(str(exc)) from exc
    try:
        print(
            f"Triton ready: gRPC {server.grpc_url}  HTTP http://{server.http_url}  "
            f"metrics http://{server.host}:{server.metrics_port}/metrics",
            flush=True,
        )
        print(f"log: {server.log_file}   (Ctrl-C to stop)", flush=True)
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                raise CliError(f"tritonserver exited unexpectedly:\n{server.log_tail()}")
    finally:
        print("stopping Triton...", flush=True)
        server.stop()
    return 0


ADMIN_KEY_FILE = Path("var/triton-admin.key")  # `svp serve`'s key when none is configured


def _new_key_file(path: Path) -> str:
    """A new admin key in ``path``, readable by its owner only."""
    key = new_admin_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(key + "\n")
    return key


def cmd_transcribe(args) -> int:
    # The recording path loads onnxruntime (the VAD) and soundfile: too slow to import for `svp --help`.
    from sensevoice_pipeline.errors import InputError
    from sensevoice_pipeline.serving.client import SenseVoiceClient
    from sensevoice_pipeline.serving.recordings import RecordingTranscriber
    from sensevoice_pipeline.settings import Settings
    from sensevoice_pipeline.speech.languages import UnknownLanguageError, language_id
    from sensevoice_pipeline.speech.redact import redact_raw
    from sensevoice_pipeline.speech.tags import parse

    try:
        language_id(args.language)
    except UnknownLanguageError as exc:
        raise CliError(str(exc)) from exc
    settings = Settings.from_env()

    async def run() -> int:
        failures = 0
        async with SenseVoiceClient(args.url) as client:
            version = await client.check_ready()
            print(f"# sensevoice version {version} at {client.url}", file=sys.stderr, flush=True)
            # the daily job's path and segmenting (SVP_MAX_SEGMENT_S, SVP_MERGE_SEGMENT_S): long files become VAD
            # segments
            transcriber = RecordingTranscriber(
                client,
                settings.max_segment_s,
                merge_segment_s=settings.merge_segment_s,
                max_recording_s=settings.max_recording_s,
            )
            for path in args.files:
                try:
                    transcript = await transcriber.transcribe_file(path, args.language, args.use_itn)
                except (InputError, FileNotFoundError) as exc:
                    print(f"{path}\terror: {exc}", file=sys.stderr)
                    if args.json:
                        print(to_json({"file": str(path), "error": str(exc)}, indent=None), flush=True)
                    failures += 1
                    continue
                # the same policy as the daily job (SVP_REDACT): what a terminal shows is what the lake would hold
                redacted = [redact_raw(text, settings.redact) for text in transcript.raw_texts]
                parsed = [parse(r.text) for r in redacted]
                raw, clean = " ".join(p.raw for p in parsed), " ".join(p.text for p in parsed)
                line = f"{path}\t{raw}\t{clean}"
                if args.json:  # one object per file (JSON Lines), as each file is done
                    line = to_json(_transcript_json(path, transcript, parsed, redacted), indent=None)
                print(line, flush=True)
        return EX_DATAERR if failures else 0

    return asyncio.run(run())


def _transcript_json(path: Path, transcript, parsed, redacted) -> dict:
    return {
        "file": str(path),
        "text": " ".join(p.text for p in parsed),
        "model_versions": transcript.model_versions,
        "segments": [
            {
                "channel": answer.segment.channel,
                "start_s": round(answer.segment.start_s, 3),
                "end_s": round(answer.segment.end_s, 3),
                "raw": tags.raw,
                "text": tags.text,
                "language": tags.language,
                "emotion": tags.emotion,
                "event": tags.event,
                "redactions": r.count,
            }
            for answer, tags, r in zip(transcript.segments, parsed, redacted)
        ],
    }


def cmd_run(args) -> int:
    # The lake and the warehouse (pyarrow, DuckDB): too slow to import for `svp --help`.
    import datetime as dt

    from sensevoice_pipeline.errors import FailureBudgetExceeded
    from sensevoice_pipeline.jobs.daily import new_run_id, run_date
    from sensevoice_pipeline.lake.arrival import check_date, wait_for_partition

    settings = settings_from_flags(
        raw_root=args.raw,
        lake_root=args.lake,
        triton_url=args.url,
        language=args.language,
        use_itn=args.use_itn,
        channel_mode=args.channel_mode,
        model_version=args.model_version,
        failure_budget=args.failure_budget,
        allow_shrink=args.allow_shrink or None,
    )
    date = check_date(args.date)
    run_id = new_run_id(dt.datetime.now(dt.UTC))
    with _termination_as_interrupt(), _interrupt_reported(settings, date, run_id):
        if args.wait > 0:
            arrival = wait_for_partition(
                settings.raw_root,
                date,
                args.ready_marker,
                timeout_s=60 * args.wait,
                poke_interval_s=max(1.0, min(30.0, 6 * args.wait)),
            )
            print(f"{arrival.partition}: {arrival.detail}", file=sys.stderr)
        try:
            result = run_date(settings, date, run_id=run_id, show_progress=_progress_wanted(args))
        except FailureBudgetExceeded as exc:  # published all the same: say what, then exit 65
            if exc.result is not None and not args.json:  # (--json: the error object carries the result)
                _report_day(args, settings, exc.result)
            raise
    _report_day(args, settings, result)
    return 0


def _progress_wanted(args) -> bool:
    """A progress bar only for a person watching: on a terminal, and not when the output is JSON for a program."""
    return sys.stderr.isatty() and not getattr(args, "json", False)


def _report_day(args, settings, result) -> None:
    emit(
        args,
        {**result.to_dict(), "lake": str(settings.lake_root), "warehouse": str(settings.warehouse_path)},
        f"{result.date}: {result.files} files ({result.files_failed} failed), "
        f"{result.utterances} utterances, {result.speech_seconds:.1f} s of speech, "
        f"model version {result.model_versions or '-'}"
        + (f", {result.seconds:.1f} s" if result.seconds is not None else "")
        + "\n"
        f"tables in {settings.lake_root}, warehouse {settings.warehouse_path}",
    )


@contextlib.contextmanager
def _interrupt_reported(settings, date: str, run_id: str):
    """Ctrl-C or SIGTERM anywhere in `svp run` (waiting, planning, transcribing, publishing): one line saying what
    the lake holds now. The run has given its lease back by then (run_date releases it on the way out)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        print(
            f"svp run: stopped by {_signal_name(exc)}: {_what_was_published(settings, date, run_id)}",
            file=sys.stderr,
        )
        raise


def _what_was_published(settings, date: str, run_id: str) -> str:
    from sensevoice_pipeline.jobs.daily import published_run

    try:
        published = published_run(settings, date)
    except SvpError:  # e.g. no lake yet: nothing was ever published there
        published = None
    if published == run_id:
        return f"{date} was published by this run; its lease was given back"
    before = f" (the lake still holds run {published}'s rows)" if published else ""
    return f"nothing of {date} was published by this run{before}; its lease was given back"


@contextlib.contextmanager
def _termination_as_interrupt():
    """SIGTERM (a container stop, `kill`) raises in the main thread as Ctrl-C does, so the run's cleanup runs."""

    def interrupt(signum, _frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_name(exc: KeyboardInterrupt) -> str:
    return signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "SIGINT"


def cmd_demo(args) -> int:
    from sensevoice_pipeline.demo.run import (  # the lake, the warehouse and Airflow's helpers
        DemoError,
        run_demo,
    )

    try:
        return run_demo(args.model, args.workdir, args.date)
    except DemoError as exc:
        raise CliError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.log_format)
    try:
        resolve_repository(args)
        return args.func(args)
    except SvpError as exc:  # raised on purpose (CliError included): its message, never a traceback
        return _failed(args, exc, _error_text(exc))
    except KeyboardInterrupt as exc:
        return _failed(args, exc, "") if getattr(args, "json", False) else exit_code(exc)
    except BrokenPipeError:  # `svp query ... | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _failed(args, exc: BaseException, message: str) -> int:
    """One line on stderr; with --json, the same as an object on stdout for the program reading it."""
    code = exit_code(exc)
    if message and args.log_format == "json":  # a log shipper reads stderr: the error is one of its lines
        logging.getLogger("sensevoice_pipeline.ui.cli").error("svp %s: %s", args.command, message)
    elif message:
        print(f"svp {args.command}: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        text = message or f"stopped by {_signal_name(exc)}"
        error = {"error": text, "kind": type(exc).__name__, "exit_code": code}
        if getattr(exc, "result", None) is not None:  # e.g. the day published over its failure budget
            error["result"] = exc.result
        print(to_json(error), flush=True)
    return code


def _error_text(exc: SvpError) -> str:
    """An error's message on one line; a CliError's as written (`svp serve` ends it with the server log's tail)."""
    return str(exc) if isinstance(exc, CliError) else " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
