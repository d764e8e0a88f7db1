"""What every `svp` command module shares: its one error class, its parser class, the flags several commands take
and the ``--json`` output."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from sensevoice_pipeline.errors import EX_USAGE, ConfigurationError, SvpError
from sensevoice_pipeline.serving.client import DEFAULT_URL, URL_ENV
from sensevoice_pipeline.settings import Settings


class CliError(ConfigurationError):
    """A problem the user fixes before running again (a flag, a path, a server to start): exit code 64, as for any
    ConfigurationError (``errors.exit_code``). Printed as written: it may end with a server log's tail."""


class SvpParser(argparse.ArgumentParser):
    """argparse with sysexits' usage code: a flag it cannot parse exits 64 (EX_USAGE), like every other mistake in
    the command line (argparse's own default is 2). Its sub-parsers are of this class too."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


DEMO_WORKDIR = Path("var/demo")  # `svp demo`'s default workdir: its lake is DEMO_WORKDIR / "lake"


def checked_lake(flag_value: str | None, settings) -> None:
    """One line (exit 64) unless ``settings.lake_root`` holds a lake: a file named as the lake, a lake never
    published (naming the demo's lake when the default was used and the demo has run here)."""
    from sensevoice_pipeline.lake.catalog import Lake

    root = settings.lake_root
    if root.is_file():
        raise CliError(f"--lake {root} is a file: name the lake's folder (it holds catalog.sqlite and data/)")
    if not Lake(root, settings.catalog).exists:
        raise missing_lake_error(flag_value, root)


def missing_lake_error(flag_value: str | None, lake_root) -> CliError:
    """What to do about a lake that does not exist yet, as pasteable commands."""
    demo_lake = DEMO_WORKDIR / "lake"
    if not flag_value and (demo_lake / "catalog.sqlite").is_file():
        return CliError(
            f"no lake at {lake_root} (the default): the demo wrote its lake to {demo_lake}: pass --lake {demo_lake}"
        )
    return CliError(
        f"no lake at {lake_root}: publish a day first (svp run --date YYYY-MM-DD --lake {lake_root}, or svp demo), "
        "or pass --lake with the lake's folder"
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (an error too: {error, kind, exit_code})",
    )


def emit(args: argparse.Namespace, result: Any, text: str) -> None:
    """``text`` for a person, or ``result`` as JSON when the command was given ``--json``."""
    print(to_json(result) if getattr(args, "json", False) else text, flush=True)


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON of a record, a dataclass, a dict or a list of them; dates, times and paths as ISO text."""
    return json.dumps(value, indent=indent, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta,)):
        return value.total_seconds()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)  # paths, storage roots, decimals


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


def settings_from_flags(**flags) -> Settings:
    """Settings from the environment and the flags (``Settings.from_env``); a value neither can hold that is not
    already one of the project's errors (a storage URI that cannot work) is a usage error: exit 64."""
    try:
        return Settings.from_env(**flags)
    except SvpError:
        raise
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def resolve_repository(args: argparse.Namespace) -> None:
    """``args.repository`` (only ``add_repository`` defines it) as the one configuration object resolves it: the
    flag, else $SVP_MODEL_REPOSITORY."""
    if hasattr(args, "repository"):
        args.repository = Settings.from_env(model_repository=args.repository).model_repository
