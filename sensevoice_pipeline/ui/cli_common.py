"""What every `svp` command module shares: its one error class and the flags several commands take."""

from __future__ import annotations

import argparse
from pathlib import Path

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.serving.client import DEFAULT_URL, URL_ENV
from sensevoice_pipeline.settings import Settings


class CliError(ConfigurationError):
    """A problem the user fixes before running again (a flag, a path, a server to start): exit code 2, as for any
    ConfigurationError (``errors.exit_code``). Printed as written: it may end with a server log's tail."""


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help=f"Triton gRPC address, or several comma-separated (a:8001,b:8001): balanced, with failover "
        f"(default: ${URL_ENV}, then {DEFAULT_URL})",
    )


def add_repository(parser: argparse.ArgumentParser, what: str = "model repository") -> None:
    parser.add_argument(
        "--repository",
        type=Path,
        default=None,
        help=f"{what} (default: $SVP_MODEL_REPOSITORY, then model_repository)",
    )


def resolve_repository(args: argparse.Namespace) -> None:
    """``args.repository`` (only ``add_repository`` defines it) as the one configuration object resolves it: the
    flag, else $SVP_MODEL_REPOSITORY."""
    if hasattr(args, "repository"):
        args.repository = Settings.from_env(model_repository=args.repository).model_repository
