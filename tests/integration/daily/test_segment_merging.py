"""The daily job with adjacent VAD segments joined (speech.vad.merge_adjacent, issue 18), against the real local
Triton: fewer requests (the server's own count), and each joined row spans whole rows of the unjoined run, true
times kept. The rule on its own: tests/unit/speech/test_vad_merging.py."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from tests.support.audio import turn_taking_call
from tests.support.triton import counted, requests_answered

pytestmark = pytest.mark.triton

DAY = "2026-11-25"


# -- the daily job against the real server -----------------------------------------------------------------------------


def daily_run(tmp_path, url: str, call: np.ndarray, merge_s: float) -> tuple[list[dict], int]:
    """One `svp run` of a day holding the stereo call (split channels): its utterance rows, and the requests the
    server answered meanwhile."""
    root = tmp_path / f"merge-{merge_s:g}"
    settings = Settings(
        raw_root=root / "raw",
        lake_root=root / "lake",
        triton_url=url,
        channel_mode="split",
        merge_segment_s=merge_s,
    )
    part = root / "raw" / f"date={DAY}"
    part.mkdir(parents=True)
    sf.write(part / "call.wav", call.T, SAMPLE_RATE, subtype="PCM_16")
    before = requests_answered(url)
    run_date(settings, DAY, show_progress=False)
    rows = Lake(settings.lake_root).read("utterances", DAY).to_pylist()
    answered = counted(lambda: requests_answered(url) - before, lambda n: n >= len(rows))
    return sorted(rows, key=lambda r: (r["channel"], r["segment_index"])), answered


def test_daily_job_sends_fewer_requests_and_rows_keep_true_times(tmp_path, fixture_triton, sentences):
    call = turn_taking_call(sentences)
    url = fixture_triton.grpc_url
    separate, separate_requests = daily_run(tmp_path, url, call, 0.0)
    joined, joined_requests = daily_run(tmp_path, url, call, 15.0)
    assert separate_requests == len(separate) and joined_requests == len(joined)  # one request per row
    assert joined_requests < separate_requests
    # Each joined row spans whole rows of the unjoined run of the same channel: first start to last end.
    for channel in (0, 1):
        runs = [r for r in separate if r["channel"] == channel]
        rows = [r for r in joined if r["channel"] == channel]
        assert len(rows) < len(runs)
        i = 0
        for row in rows:
            first = i
            while i < len(runs) and runs[i]["end_s"] <= row["end_s"]:
                i += 1
            assert i > first and (row["start_s"], row["end_s"]) == (
                runs[first]["start_s"],
                runs[i - 1]["end_s"],
            )
            assert row["end_s"] - row["start_s"] <= 15.0 + 1e-3
        assert i == len(runs)
