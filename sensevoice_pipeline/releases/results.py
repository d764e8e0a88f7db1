"""What a release's steps return, beside the canary's :class:`~.canary.CanaryVerdict` and the stage's
:class:`~.operations.Staged`: the export, the decision, a failed step, and the report's summary. Each is a
:class:`~sensevoice_pipeline.records.Record`: XCom carries its ``to_dict()``, the release report embeds it."""

from __future__ import annotations

from dataclasses import dataclass

from sensevoice_pipeline.records import Record

# The steps of a release, in order (the DAG's tasks are export_model, stage, canary, promote_or_discard).
RELEASE_STEPS = ("export", "stage", "canary", "promote")


@dataclass(frozen=True)
class Exported(Record):
    """A checkpoint exported as ``version`` of the repository (both models), its parity gate passed."""

    version: int
    repository: str
    precision: str
    exporter: str
    source_model: str | None
    source_sha256: str | None
    exported_at: str | None
    parity: dict


@dataclass(frozen=True)
class Decision(Record):
    """How the release ended: ``promoted``, ``refused`` (the canary's reasons) or ``failed`` (a step raised), and
    which version serves afterwards."""

    outcome: str
    version: int | None
    serving: int | None
    previous: int | None
    switch_seconds: float | None
    reasons: list[str]
    failed_step: str | None = None
    error: str | None = None
    serving_before: int | None = None
    unstaged: dict | None = None


@dataclass(frozen=True)
class StepFailure(Record):
    """A step that raised: its name (one of RELEASE_STEPS) and its error as one line."""

    step: str
    error: str


@dataclass(frozen=True)
class CleanUp(Record):
    """What the clean-up after a failed step did: ``unstaged`` (operations.unstage's answer), or ``error`` when the
    unstage itself failed, or ``skipped`` with why nothing needed doing."""

    unstaged: dict | None = None
    error: str | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class ReleaseSummary(Record):
    """The written report: its outcome, where the JSON went, the catalog and day of its ``model_releases`` row."""

    outcome: str
    report: str
    table: str
    date: str
    row: dict
