"""The deployment files as the deployment tests read them, once per module: docker-compose.yml (PyYAML resolves its
anchors and `<<` merges the way compose does), its services, and pyproject.toml."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from tests.support.compose import COMPOSE_FILE, ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())
