"""`svp`: the command line of the SenseVoice pipeline. Run `svp --help` or `svp COMMAND --help`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path

from . import __version__

DEFAULT_REPOSITORY = "model_repository"


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _add_url(parser: argparse.ArgumentParser) -> None:
    from .client import DEFAULT_URL, URL_ENV

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
    return parser


def cmd_export(args) -> int:
    from export.checkpoint import CheckpointError
    from export.pipeline import ExportError, run_export
    from export.precision import PrecisionError

    from .repository import RepositoryError

    try:
        result = run_export(args.model, args.repository, args.precision, args.exporter)
    except (CheckpointError, ExportError, PrecisionError, RepositoryError, ValueError) as exc:
        raise CliError(f"export failed: {exc}") from exc
    print(f"exported version {result.version} ({result.meta['precision']}) to {result.repository}")
    return 0


def cmd_serve(args) -> int:
    from .server import LocalTriton, ServerError

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
    from .audio import AudioDecodeError, load_mono_16k
    from .client import SenseVoiceClient, TritonClientError
    from .languages import UnknownLanguageError, language_id
    from .tags import parse

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except CliError as exc:
        print(f"svp {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
