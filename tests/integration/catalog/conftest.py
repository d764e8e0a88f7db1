"""The catalog tests' PostgreSQL: one cluster per test session (tests/support/services.py), a fresh database per
test; and the catalog kinds a test runs once each on (SQLite beside the lake, PostgreSQL). The PostgreSQL kind
carries the `postgres` marker, so `-m "not postgres"` keeps the SQLite run of each such test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of this test session (tests/support/services.py); each test asks it for a database."""
    from tests.support.services import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_kind(request) -> str:
    """Run a test once per kind of lake catalog (lake/catalog_db.py)."""
    return request.param


@pytest.fixture
def catalog_setting(request, catalog_kind, tmp_path) -> str:
    """SVP_CATALOG for ``catalog_kind``: a SQLite file in this test's folder, or a fresh PostgreSQL database."""
    if catalog_kind == "sqlite":
        return str(tmp_path / "catalog" / "catalog.sqlite")
    return request.getfixturevalue("postgres").new_database("lake")
