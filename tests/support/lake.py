"""Days of audio for the lake tests, and the lake's rows as a test compares them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa

from tests.conftest import FIXTURE_MODEL_DIR

CLIPS = FIXTURE_MODEL_DIR / "clips"
SPEECH_CLIPS = sorted(p.stem for p in CLIPS.glob("*.wav") if not p.stem.startswith("nospeech"))
RUN_COLUMNS = (
    "run_id",
    "processed_at",
    "started_at",
    "finished_at",
)  # differ between two runs of the same day


def write_clips(raw: Path, date: str, count: int) -> list[str]:
    """The first ``count`` speech clips of the fixture model as the day's partition; their source paths."""
    part = raw / f"date={date}"
    part.mkdir(parents=True, exist_ok=True)
    names = SPEECH_CLIPS[:count]
    for name in names:
        shutil.copy(CLIPS / f"{name}.wav", part / f"{name}.wav")
    return [f"date={date}/{n}.wav" for n in names]


def rows_without_run(table: pa.Table) -> list[dict]:
    """The rows, without the columns that name the run or its times."""
    return table.select([c for c in table.column_names if c not in RUN_COLUMNS]).to_pylist()
