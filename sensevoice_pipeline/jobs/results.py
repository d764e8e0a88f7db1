"""What the daily job's steps hand each other and their callers (the DAG's tasks through XCom, `svp run`): typed,
frozen records (:class:`~sensevoice_pipeline.records.Record`) instead of dicts read by key."""

from __future__ import annotations

from dataclasses import dataclass

from sensevoice_pipeline.records import Record


@dataclass(frozen=True)
class Batch(Record):
    """A slice of a day's work items, planned under the date's lease (``lease_token``) for run ``run_id``."""

    date: str
    run_id: str
    lease_token: str
    index: int
    items: list[dict]  # WorkItem.to_dict() each


@dataclass(frozen=True)
class BatchResult(Record):
    """One batch transcribed and staged: how many files (``failed`` of them), and utterances."""

    batch: int
    files: int
    failed: int
    utterances: int


@dataclass(frozen=True)
class DayPublished(Record):
    """A day committed: the lake snapshot holding it and what it holds. ``seconds``: `svp run`'s wall time."""

    date: str
    snapshot: int | None
    run_id: str
    files: int
    files_ok: int
    files_failed: int
    utterances: int
    speech_seconds: float
    model_versions: str
    seconds: float | None = None
