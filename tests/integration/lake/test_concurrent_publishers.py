"""Reliability (issue 9): two publishers of different dates commit to one fresh lake and refresh its warehouse at
once, ten times over, and both dates land. In-process (threads, DuckDB/DuckLake), no server: not in tests/unit only
because the ten rounds take a quarter of a minute."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.warehouse.database import Warehouse


@pytest.mark.timeout(120)
def test_concurrent_publishers_of_different_dates_both_land(tmp_path):
    """Two publishers of different dates commit to one fresh lake and refresh its warehouse at once, 10 times over:
    both dates land in every table (writers take turns on the catalog; table creation is not raced)."""
    runs = {
        d: tables.to_table([{"run_id": f"run-{d}", "files": 0}], tables.RUNS)
        for d in ("2026-10-01", "2026-10-02")
    }
    for i in range(10):
        lake = tmp_path / f"lake-{i}"
        barrier = threading.Barrier(2)

        def publisher(date: str, lake=lake, barrier=barrier):
            barrier.wait()
            Lake(lake).commit_day(date, {"runs": runs[date], "utterances": tables.UTTERANCES.empty_table()})
            Warehouse(lake).refresh()

        with ThreadPoolExecutor(2) as pool:
            [f.result() for f in [pool.submit(publisher, d) for d in runs]]
        con = Warehouse(lake).connect()
        try:
            got = con.execute("SELECT date::VARCHAR, run_id FROM runs ORDER BY date").fetchall()
        finally:
            con.close()
        assert got == [(d, f"run-{d}") for d in runs], f"attempt {i}"
