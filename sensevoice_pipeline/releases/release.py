"""A whole release: export → stage → canary → promote (or, refused, unstage) → report; a step that raises
unstages the candidate and is reported as outcome ``failed`` before its error goes on.

:class:`ReleaseRun` owns the steps, what each returned (typed records, :mod:`.results`) and what happens when one
raises. :func:`release` drives it in one process (`svp models release`); the `sensevoice_model_release` DAG drives
the same object one step per task, rebuilding it in each task from the records earlier tasks left in XCom
(:meth:`ReleaseRun.resume`).

The export step needs torch and funasr (the ``[export]`` extra), which this library never imports: the caller
passes the export in, as a :data:`RunExport` callable (``sensevoice_export.pipeline.run_export``; the CLI and the
DAG's export task import it), so a process that only stages, canaries, promotes or lists versions needs neither.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from sensevoice_pipeline.releases.canary import CanaryThresholds, CanaryVerdict, run_canary, with_shadow
from sensevoice_pipeline.releases.errors import ReleaseError, ReleaseFailed, ReleaseRefused
from sensevoice_pipeline.releases.listing import source_checksum
from sensevoice_pipeline.releases.operations import Staged, promote, stage, unstage
from sensevoice_pipeline.releases.report import check_report_root, write_release_report
from sensevoice_pipeline.releases.results import (
    RELEASE_STEPS,
    CleanUp,
    Decision,
    Exported,
    ReleaseSummary,
    StepFailure,
)
from sensevoice_pipeline.releases.shadow import run_shadow_canary
from sensevoice_pipeline.releases.state import now_iso, read_state
from sensevoice_pipeline.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class ExportResultLike(Protocol):
    version: int
    repository: Path
    meta: dict


# (checkpoint, repository, precision, exporter) -> the export's result (version, repository, meta)
RunExport = Callable[[str, Path, str, str], ExportResultLike]


def export_version(
    checkpoint: str,
    repository: str | Path,
    precision: str = "fp32",
    exporter: str = "legacy",
    *,
    run_export: RunExport,
) -> Exported:
    """Export ``checkpoint`` as the next version (both models) with ``run_export``. The export refuses on a parity
    failure and then writes nothing."""
    _record_serving_state(repository)
    result = run_export(str(checkpoint), Path(repository), precision, exporter)
    meta = result.meta
    return Exported(
        version=result.version,
        repository=str(result.repository),
        precision=meta["precision"],
        exporter=meta["exporter"],
        source_model=(meta.get("source") or {}).get("model"),
        source_sha256=source_checksum(meta),
        exported_at=meta.get("exported_at"),
        parity=meta.get("parity") or {},
    )


def _record_serving_state(repository: str | Path) -> None:
    """Before the first release adds a version to a repository that only `svp export` wrote (no serving.json), pin
    what Triton serves now: otherwise the configs' default policy (the latest version) would make the new export
    look served already, refusing its stage, and a Triton restart would serve it uncanaried. (Found by the running
    stack, tests/integration/stack/test_stack.py: the first release after the initial export failed with "version 2 is already
    serving".)"""
    state = read_state(repository)
    if not state.recorded and state.serving is not None:
        log.info("recording version %s as serving before the release adds a version", state.serving)
        promote(repository, state.serving, url=None)


def conclude_release(repository: str | Path, url: str, canary: CanaryVerdict) -> Decision:
    """Promote the staged version when its canary passed; otherwise unload it and leave serving untouched."""
    version = canary.staged_version
    if canary.passed:
        result = promote(repository, version, url)
        return Decision(
            outcome="promoted",
            version=version,
            serving=result["serving"],
            previous=result["previous"],
            switch_seconds=result["switch_seconds"],
            reasons=[],
        )
    unstage(repository, url)
    state = read_state(repository)
    log.warning("release of version %s refused: %s", version, "; ".join(canary.reasons))
    return Decision(
        outcome="refused",
        version=version,
        serving=state.serving,
        previous=state.previous,
        switch_seconds=None,
        reasons=list(canary.reasons),
    )


def describe_error(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line for a report: its type and its first lines of message."""
    text = " ".join(str(exc).split()) or repr(exc)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


@dataclass
class ReleaseRun:
    """One release: the records its steps returned so far, the step that raised (if one did), and the methods that
    run the next step, clean up after a failure, and write the report."""

    settings: Settings
    release_id: str
    started_at: str
    exported: Exported | None = None
    staged: Staged | None = None
    canary: CanaryVerdict | None = None
    decision: Decision | None = None
    failure: StepFailure | None = None

    @classmethod
    def start(cls, settings: Settings, release_id: str | None = None) -> ReleaseRun:
        """A new release; refuses at once when its report could not be written (an s3:// lake without a catalog),
        so a release is never promoted and then left without its report."""
        check_report_root(settings.lake_root, settings.catalog)
        release_id = release_id or f"release-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
        return cls(settings, release_id, now_iso())

    @classmethod
    def resume(
        cls,
        settings: Settings,
        release_id: str,
        started_at: str,
        records: dict[str, dict | None],
        failures: dict[str, dict | None] | None = None,
    ) -> ReleaseRun:
        """The run as earlier steps left it in another process: ``records`` maps each step of RELEASE_STEPS to
        its serialised record (None: not run, or raised), ``failures`` each step to its StepFailure."""
        failed = [StepFailure.from_dict(f) for f in (failures or {}).values() if f]
        return cls(
            settings,
            release_id,
            started_at,
            exported=Exported.from_dict(records.get("export")),
            staged=Staged.from_dict(records.get("stage")),
            canary=CanaryVerdict.from_dict(records.get("canary")),
            decision=Decision.from_dict(records.get("promote")),
            failure=min(failed, key=lambda f: RELEASE_STEPS.index(f.step), default=None),
        )

    # -- the steps, in order ----------------------------------------------------------------------------------------

    def export(self, checkpoint: str, precision: str, exporter: str, run_export: RunExport) -> Exported:
        self.exported = self._step(
            "export",
            lambda: export_version(
                checkpoint, self.settings.model_repository, precision, exporter, run_export=run_export
            ),
        )
        return self.exported

    def stage(self) -> Staged:
        settings = self.settings
        self.staged = self._step(
            "stage",
            lambda: stage(settings.model_repository, self._needs(self.exported).version, settings.triton_url),
        )
        return self.staged

    def run_canary(self, thresholds: CanaryThresholds | dict | None = None) -> CanaryVerdict:
        """The golden set through both sides, then the shadow canary: recent published recordings through the
        candidate (a refusal of either refuses the release)."""
        settings, staged = self.settings, self._needs(self.staged)
        thresholds = CanaryThresholds.of(thresholds)

        def both() -> CanaryVerdict:
            golden = run_canary(
                settings.triton_url,
                staged.staged,
                settings.golden_dir,
                thresholds,
                serving_version=staged.serving,
                max_segment_s=settings.max_segment_s,
                merge_segment_s=settings.merge_segment_s,
            )
            return with_shadow(golden, run_shadow_canary(settings, staged.staged, thresholds.shadow()))

        self.canary = self._step("canary", both)
        return self.canary

    def conclude(self) -> Decision:
        settings = self.settings
        self.decision = self._step(
            "promote",
            lambda: conclude_release(
                settings.model_repository, settings.triton_url, self._needs(self.canary)
            ),
        )
        return self.decision

    def _step(self, name: str, body: Callable[[], T]) -> T:
        """Run one step; when it raises, remember which step and why (the report says so), then re-raise."""
        try:
            return body()
        except Exception as exc:
            self.failure = StepFailure(name, describe_error(exc))
            raise

    @staticmethod
    def _needs(record: T | None) -> T:
        if record is None:
            raise ReleaseError("a step ran before the step it builds on")
        return record

    # -- after a failure --------------------------------------------------------------------------------------------

    def failed_step(self) -> str:
        """The step that raised: the one recorded, else (a task that died without saying why) the first step that
        left no record."""
        if self.failure:
            return self.failure.step
        done = (self.exported, self.staged, self.canary, self.decision)
        return next((step for step, record in zip(RELEASE_STEPS, done) if record is None), RELEASE_STEPS[-1])

    def clean_up(self) -> CleanUp:
        """Unload whatever a release that did not conclude left staged. Never raises: a failed unstage is recorded
        (the report lists it among the reasons); the step's own error is what the caller raises."""
        if self.decision is not None:
            return CleanUp(skipped="the release concluded (promoted, or refused and unstaged)")
        if self.exported is None:
            return CleanUp(skipped="nothing was exported, so nothing was staged")
        try:
            return CleanUp(unstaged=unstage(self.settings.model_repository, self.settings.triton_url))
        except Exception as exc:  # noqa: BLE001 -- recorded in the report
            log.error("could not unstage after the failed %s: %s", self.failed_step(), describe_error(exc))
            return CleanUp(error=describe_error(exc))

    def failed_decision(self, clean_up: CleanUp | None = None) -> Decision:
        """The ``failed`` decision of a release that did not conclude. What serves now is read back from the
        repository (a failed export, stage or canary leaves it untouched)."""
        step = self.failed_step()
        error = self.failure.error if self.failure else f"{step} failed (see its task's log)"
        try:
            state = read_state(self.settings.model_repository)
            serving, previous = state.serving, state.previous
        except (ReleaseError, OSError):
            serving = previous = None
        serving_before = self.staged.serving if self.staged else None
        if serving_before is None and step in ("export", "stage", "canary"):
            serving_before = serving  # those steps never touch the serving version
        reasons = [f"{step} failed: {error}"]
        if clean_up and clean_up.error:
            reasons.append(f"unstage failed: {clean_up.error}")
        return Decision(
            outcome="failed",
            version=self.exported.version if self.exported else None,
            serving=serving,
            previous=previous,
            switch_seconds=None,
            reasons=reasons,
            failed_step=step,
            error=error,
            serving_before=serving_before,
            unstaged=clean_up.unstaged if clean_up else None,
        )

    # -- the report -------------------------------------------------------------------------------------------------

    def report(self, decision: Decision, report_dir: str | Path | None = None) -> ReleaseSummary:
        return write_release_report(
            self.settings.lake_root,
            self.release_id,
            self.exported,
            self.canary,
            decision,
            started_at=self.started_at,
            report_dir=report_dir,
            catalog=self.settings.catalog,
        )


def check_outcome(report: ReleaseSummary, fail_on_refusal: bool = True) -> ReleaseSummary:
    """After the report: raise ReleaseFailed for a failed release (always) and ReleaseRefused for a refused one
    when asked to, so that a DAG run shows it."""
    row = report.row
    if report.outcome == "failed":
        raise ReleaseFailed(
            f"release {row['release_id']} failed ({row.get('reasons') or 'a step failed'}); "
            f"serving version {row['serving_after']}; report {report.report}"
        )
    if report.outcome != "promoted" and fail_on_refusal:
        raise ReleaseRefused(
            f"release {row['release_id']} refused ({row.get('reasons') or 'canary failed'}); "
            f"serving version {row['serving_after']} untouched; report {report.report}"
        )
    return report


def release(
    checkpoint: str,
    settings: Settings,
    *,
    run_export: RunExport,
    precision: str = "fp32",
    exporter: str = "legacy",
    thresholds: CanaryThresholds | dict | None = None,
    release_id: str | None = None,
    report_dir: str | Path | None = None,
) -> ReleaseSummary:
    """The whole release in one process: export ``checkpoint`` (with ``run_export``) into
    ``settings.model_repository``, stage it on the Triton at ``settings.triton_url``, run the canary on
    ``settings.golden_dir`` (segments of at most ``settings.max_segment_s``), promote or discard, and write the
    report under ``settings.lake_root`` (row in ``settings.catalog``). When a step raises, the candidate is
    unstaged and the report written with outcome ``failed`` (and the step's reason) before the error goes on."""
    run = ReleaseRun.start(settings, release_id)
    try:
        run.export(checkpoint, precision, exporter, run_export)
        run.stage()
        run.run_canary(thresholds)
        decision = run.conclude()
    except Exception:
        decision = run.failed_decision(run.clean_up())
        try:
            run.report(decision, report_dir)
        except Exception:  # noqa: BLE001 -- the step's error is the one to raise
            log.exception("could not write the report of the failed release %s", run.release_id)
        raise
    return run.report(decision, report_dir)
