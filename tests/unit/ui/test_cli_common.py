"""ui/cli_common.py: the --url and --repository flags several `svp` commands share, and how --repository is
resolved against $SVP_MODEL_REPOSITORY."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sensevoice_pipeline.serving.client import DEFAULT_URL, URL_ENV
from sensevoice_pipeline.ui.cli_common import add_repository, add_url, resolve_repository


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_url(p)
    add_repository(p, "Triton model repository")
    return p


def test_the_flags_parse_and_default_to_none_so_the_environment_can_decide():
    args = parser().parse_args([])
    assert (args.url, args.repository) == (None, None)
    args = parser().parse_args(["--url", "a:8001,b:8001", "--repository", "repos/one"])
    assert args.url == "a:8001,b:8001" and args.repository == Path("repos/one")


def test_the_help_names_the_variables_and_defaults_behind_the_flags():
    text = " ".join(parser().format_help().split())
    assert f"(default: ${URL_ENV}, then {DEFAULT_URL})" in text
    assert "Triton model repository (default: $SVP_MODEL_REPOSITORY, then model_repository)" in text


@pytest.mark.parametrize(
    "flag, variable, resolved",
    [
        ("from/flag", "from/env", Path("from/flag")),  # the flag wins
        (None, "from/env", Path("from/env")),
        (None, "", Path("model_repository")),  # an empty variable means unset
        (None, None, Path("model_repository")),
    ],
)
def test_the_repository_is_the_flag_then_the_variable_then_the_default(monkeypatch, flag, variable, resolved):
    if variable is None:
        monkeypatch.delenv("SVP_MODEL_REPOSITORY", raising=False)
    else:
        monkeypatch.setenv("SVP_MODEL_REPOSITORY", variable)
    args = parser().parse_args(["--repository", flag] if flag else [])
    resolve_repository(args)
    assert args.repository == resolved


def test_a_command_without_the_repository_flag_gets_no_repository(monkeypatch):
    monkeypatch.setenv("SVP_MODEL_REPOSITORY", "from/env")
    args = argparse.Namespace(url=None)
    resolve_repository(args)
    assert vars(args) == {"url": None}
