"""The lake's catalog (lake/catalog.py) in-process: a commit's garbage is collected past its grace period and a
failing collection never fails the commit (issue 13). Publishers of different dates at once:
tests/integration/lake/test_concurrent_publishers.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import CatalogError, Lake, LakeNotCreatedError

DAY = "2026-09-14"


# -- garbage collection ----------------------------------------------------------------------------------------------


def runs_row(run_id: str):
    return tables.to_table(
        [
            {
                "run_id": run_id,
                "files": 1,
                "files_ok": 1,
                "files_failed": 0,
                "utterances": 1,
                "speech_seconds": 1.0,
                "model_versions": "1",
            }
        ],
        tables.RUNS,
    )


def runs_files(lake: Lake) -> set[Path]:
    return set((Path(lake.data_path) / "main" / "runs").rglob("*.parquet"))


def test_garbage_is_collected_after_the_commit_past_its_grace_and_never_fails_the_commit(
    tmp_path, monkeypatch, caplog
):
    """Each commit replaces the date's runs row. A superseded file stays while its snapshot is inside the grace period
    (a reader may still be on it; DuckLake's own by-date comparison expired it at once), is scheduled once past it
    and deleted by a later collection; and a failing collection leaves the commit done."""
    lake = Lake(tmp_path / "lake")
    lake.commit_day(DAY, {"runs": runs_row("a")})
    (file_a,) = runs_files(lake)
    # A grace period reaching back to this UTC day's midnight: "a" is inside it, but on the cutoff's own day, which
    # DuckLake's comparison on a SQLite catalog counts as older (at any hour of the day).
    now = dt.datetime.now(dt.UTC)
    since_midnight = now - dt.datetime.combine(now.date(), dt.time(), dt.UTC)
    lake.commit_day(DAY, {"runs": runs_row("b")}, collect_garbage_older_than=since_midnight)
    assert (
        file_a in runs_files(lake) and len(runs_files(lake)) == 2
    )  # "a" superseded, inside the grace period
    lake.commit_day(DAY, {"runs": runs_row("c")}, collect_garbage_older_than=dt.timedelta(0))
    assert (
        len(runs_files(lake)) == 3
    )  # "a" and "b" expired: scheduled for deletion now, deleted past the grace
    assert lake.collect_garbage(dt.timedelta(0)) == 2
    assert len(runs_files(lake)) == 1 and file_a not in runs_files(lake)
    assert lake.read("runs", DAY).column("run_id").to_pylist() == ["c"]

    def failing(con, grace):
        raise OSError("disk gone")

    monkeypatch.setattr(Lake, "_collect_garbage", staticmethod(failing))
    snapshot = lake.commit_day(DAY, {"runs": runs_row("d")}, collect_garbage_older_than=dt.timedelta(0))
    assert snapshot == lake.snapshot_id()
    assert lake.read("runs", DAY).column("run_id").to_pylist() == ["d"]
    assert "lake garbage collection skipped: disk gone" in caplog.text


# -- a reader racing the lake's first commit --------------------------------------------------------------------------


def test_a_lake_its_first_writer_is_still_setting_up_reads_as_empty(tmp_path):
    """The states a reader can meet while the first commit runs (CI, 2026-12-07: a second `svp run` of the date
    checking what was published died with a traceback): the catalog file made but not yet a DuckLake, then a
    DuckLake without the tables. Each reads as a lake with no rows, as before the file existed; afterwards the
    commit's rows are read."""
    lake = Lake(tmp_path / "lake")
    lake.catalog.prepare_for_writers()  # the SQLite file, in WAL mode, before DuckLake has set it up
    assert lake.exists
    assert (
        lake.count("runs", DAY) == 0 and lake.read("runs", DAY).num_rows == 0 and lake.snapshot_id() is None
    )
    with pytest.raises(LakeNotCreatedError, match="run the daily job for a date first"):
        with lake.reader():
            pass

    con = duckdb.connect()
    lake.attach(con, read_only=False)  # DuckLake's metadata, none of the tables yet
    con.close()
    assert lake.count("runs", DAY) == 0 and lake.read("runs").num_rows == 0 and lake.snapshot_id() is not None

    lake.commit_day(DAY, {"runs": runs_row("first")})
    assert lake.count("runs", DAY) == 1 and lake.read("runs", DAY).column("run_id").to_pylist() == ["first"]


# -- kept snapshots ----------------------------------------------------------------------------------------------------


def test_a_kept_snapshot_outlives_garbage_collection_until_its_time_and_reads_as_it_was(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.commit_day(DAY, {"runs": runs_row("old")})
    kept = lake.keep_snapshot("before", "1", DAY, DAY, dt.timedelta(days=1), "a test")
    lake.commit_day(DAY, {"runs": runs_row("new")})
    lake.commit_day(DAY, {"runs": runs_row("newer")})
    lake.collect_garbage(dt.timedelta(0))

    def runs_at(snapshot: int) -> list[str]:
        con = duckdb.connect()
        try:
            alias = lake.attach(con, snapshot=snapshot)
            return [r[0] for r in con.execute(f"SELECT run_id FROM {alias}.runs").fetchall()]
        finally:
            con.close()

    assert runs_at(kept) == ["old"] and lake.read("runs", DAY).column("run_id").to_pylist() == ["newer"]
    (row,) = lake.kept_snapshots()
    assert (row["name"], row["snapshot_id"], row["model_versions"], str(row["from_date"])) == (
        "before",
        kept,
        "1",
        DAY,
    )
    with lake.writer() as con:  # "new"'s snapshot was not kept: expired
        snapshots = [r[0] for r in con.execute("SELECT snapshot_id FROM lake.snapshots()").fetchall()]
        assert kept in snapshots and len(snapshots) == 2  # the kept one and the current one
        con.execute("UPDATE lake.kept_snapshots SET kept_until = now() - INTERVAL 1 MINUTE")  # its time is up
    lake.collect_garbage(dt.timedelta(0))
    with pytest.raises(CatalogError):
        runs_at(kept)
