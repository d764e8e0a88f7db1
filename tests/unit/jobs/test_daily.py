"""jobs/daily.py's pure steps: publish sorts only what is out of order, and plan refuses a day that shrank below the
shrink limit (issue 28) before anything is transcribed."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from tests.support.audio import write_clips

DAY = "2026-11-20"


def test_publish_sorts_only_what_is_out_of_order():
    """Staged batches arrive in the tables' order (plan sorts the files): no copy of the day is made then; rows
    out of order are sorted."""
    in_order = pa.table({"source_path": ["a", "a", "b"], "channel": [0, 1, 0], "segment_index": [0, 0, 0]})
    assert daily._sorted(in_order, "utterances") is in_order
    shuffled = in_order.take([2, 0, 1])
    assert daily._sorted(shuffled, "utterances").to_pylist() == in_order.to_pylist()
    assert daily._sorted(in_order.slice(0, 0), "utterances").num_rows == 0


def test_a_partly_lost_day_is_refused_under_the_shrink_limit(tmp_path):
    settings = Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake")
    write_clips(settings.raw_root, DAY, 1)
    rows = [
        {
            "recording_id": f"r{i}",
            "source_path": f"date={DAY}/{i}.wav",
            "status": "ok",
            "run_id": "old",
            "processed_at": dt.datetime.now(dt.UTC),
            "metadata": [],
        }
        for i in range(3)
    ]
    Lake(settings.lake_root).commit_day(DAY, {"recordings": tables.to_table(rows, tables.RECORDINGS)})
    with pytest.raises(daily.ShrinkRefused, match="holds 1 recordings, the published day 3"):
        daily.plan(settings, DAY, "run")
    daily.plan(settings.with_overrides(shrink_limit=0.3), DAY, "run")  # 1 of 3 is above 0.3 of them
