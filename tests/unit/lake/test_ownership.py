"""lake/ownership.py on a local data path and a local SQLite catalog database: one catalog per lake."""

from __future__ import annotations

import json

import duckdb
import pytest

from sensevoice_pipeline.lake import ownership
from sensevoice_pipeline.lake.catalog_db import CatalogError, SqliteCatalog
from sensevoice_pipeline.lake.duckdb_access import load_duckdb_extension, sql_value
from sensevoice_pipeline.lake.storage import LocalRoot


@pytest.fixture
def data_path(tmp_path):
    return LocalRoot(tmp_path / "lake" / "data")  # as Lake.data_root gives it


def catalog(tmp_path, name: str) -> SqliteCatalog:
    return SqliteCatalog(tmp_path / name / "catalog.sqlite")


def markers(data_path) -> list[str]:
    return sorted(p.name for p in (data_path / ownership.OWNER_DIR).iterdir())


def test_the_first_claim_writes_the_marker_and_a_repeat_claim_keeps_it(tmp_path, data_path):
    mine = catalog(tmp_path, "a")
    (data_path / ownership.OWNER_DIR).mkdir(parents=True)
    (data_path / ownership.OWNER_DIR / "README.txt").write_text("only *.json files are claims")
    claim = ownership.claim(data_path, "id-a", mine)
    marker = data_path / ownership.OWNER_DIR / "id-a.json"
    assert claim == ownership.Claim("id-a", marker.stat().st_mtime_ns)
    body = json.loads(marker.read_text())
    assert body["catalog_id"] == "id-a" and body["catalog"] == f"SQLite catalog {mine.path}"
    assert ownership.claim(data_path, "id-a", mine) == claim  # not rewritten: the claim's time stays
    assert markers(data_path) == ["README.txt", "id-a.json"]


def test_another_catalog_is_refused_naming_the_owner_and_writes_nothing(tmp_path, data_path):
    owner = catalog(tmp_path, "a")
    ownership.claim(data_path, "id-a", owner)
    with pytest.raises(CatalogError) as refused:
        ownership.claim(data_path, "id-b", catalog(tmp_path, "b"))
    message = str(refused.value)
    assert f"belongs to another catalog (SQLite catalog {owner.path})" in message
    assert f"not to the SQLite catalog {tmp_path / 'b' / 'catalog.sqlite'}" in message
    assert markers(data_path) == ["id-a.json"]


def test_an_unreadable_owner_marker_is_named_by_its_id(tmp_path, data_path):
    folder = data_path / ownership.OWNER_DIR
    folder.mkdir(parents=True)
    (folder / "id-a.json").write_text("{not json")
    with pytest.raises(CatalogError, match=r"belongs to another catalog \(catalog id id-a\)"):
        ownership.claim(data_path, "id-b", catalog(tmp_path, "b"))


def test_a_claim_racing_another_withdraws_its_own_marker_and_leaves_the_others(
    tmp_path, data_path, monkeypatch
):
    """Both folders were empty when looked at; the other catalog's marker lands while this one writes its own."""
    write_atomic = LocalRoot.write_atomic

    def racing_write(path, data):
        write_atomic(
            path.with_name("id-b.json"), json.dumps({"catalog_id": "id-b", "catalog": "the other one"})
        )
        return write_atomic(path, data)

    monkeypatch.setattr(LocalRoot, "write_atomic", racing_write)
    with pytest.raises(CatalogError, match="another catalog claimed the lake at .* at the same moment"):
        ownership.claim(data_path, "id-a", catalog(tmp_path, "a"))
    assert markers(data_path) == ["id-b.json"]
    monkeypatch.setattr(LocalRoot, "write_atomic", write_atomic)
    assert ownership.claim(data_path, "id-b", catalog(tmp_path, "b")).catalog_id == "id-b"


def attached(path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_duckdb_extension(con, "sqlite_scanner")
    con.execute(f"ATTACH {sql_value(str(path))} AS meta (TYPE sqlite)")
    return con


def test_a_catalogs_id_is_made_once_and_kept_in_its_database(tmp_path):
    path = tmp_path / "catalog.sqlite"
    con = attached(path)
    try:
        first = ownership.catalog_id(con, "meta")
        assert ownership.catalog_id(con, "meta") == first and len(first) == 32
    finally:
        con.close()
    con = attached(path)  # a later writer, another connection: the same id
    try:
        assert ownership.catalog_id(con, "meta") == first
        assert con.execute(f'SELECT * FROM meta."{ownership.IDENTITY_TABLE}"').fetchall() == [
            ("catalog_id", first)
        ]
    finally:
        con.close()
    other = attached(tmp_path / "other.sqlite")
    try:
        assert ownership.catalog_id(other, "meta") != first  # each catalog its own
    finally:
        other.close()
