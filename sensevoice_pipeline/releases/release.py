"""A whole release: export → stage → canary → promote (or, refused, unstage) → report; a step that raises
unstages the candidate and is reported as outcome ``failed`` before its error goes on.

:func:`release` runs the steps in one process (`svp models release`). The `sensevoice_model_release` DAG runs the
same steps as its tasks (``export_version``, ``operations.stage``, ``canary.run_canary``, ``conclude_release``,
then ``operations.unstage`` and ``write_release_report`` whatever failed) and ends with ``check_outcome``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sensevoice_pipeline.releases.canary import CanaryThresholds, run_canary
from sensevoice_pipeline.releases.errors import ReleaseError, ReleaseFailed, ReleaseRefused
from sensevoice_pipeline.releases.listing import source_checksum
from sensevoice_pipeline.releases.operations import promote, stage, unstage
from sensevoice_pipeline.releases.report import check_report_root, write_release_report
from sensevoice_pipeline.releases.state import now_iso, read_state
from sensevoice_pipeline.settings import Settings

log = logging.getLogger(__name__)

# The steps of a release, in order (the DAG's tasks are export_model, stage, canary, promote_or_discard).
RELEASE_STEPS = ("export", "stage", "canary", "promote")


def export_version(
    checkpoint: str, repository: str | Path, precision: str = "fp32", exporter: str = "legacy"
) -> dict:
    """Export ``checkpoint`` as the next version (both models). The export refuses on a parity failure and then
    writes nothing. Needs the [export] extra (torch, funasr) where it runs."""
    try:
        # Imported here: the export needs torch and funasr (the [export] extra), which a process that only stages,
        # canaries, promotes or lists versions does not need to have.
        from export.pipeline import run_export
    except ImportError as exc:
        raise ReleaseError(
            f"the export step needs torch and funasr here (pip install -e '.[export]'): {exc}"
        ) from exc
    _record_serving_state(repository)
    result = run_export(str(checkpoint), repository, precision, exporter)
    meta = result.meta
    return {
        "version": result.version,
        "repository": str(result.repository),
        "precision": meta["precision"],
        "exporter": meta["exporter"],
        "source_model": (meta.get("source") or {}).get("model"),
        "source_sha256": source_checksum(meta),
        "exported_at": meta.get("exported_at"),
        "parity": meta.get("parity") or {},
    }


def _record_serving_state(repository: str | Path) -> None:
    """Before the first release adds a version to a repository that only `svp export` wrote (no serving.json), pin
    what Triton serves now: otherwise the configs' default policy (the latest version) would make the new export
    look served already, refusing its stage, and a Triton restart would serve it uncanaried. (Found by the running
    stack, tests/test_stack.py: the first release after the initial export failed with "version 2 is already
    serving".)"""
    state = read_state(repository)
    if not state.recorded and state.serving is not None:
        log.info("recording version %s as serving before the release adds a version", state.serving)
        promote(repository, state.serving, url=None)


def conclude_release(repository: str | Path, url: str, canary: dict) -> dict:
    """Promote the staged version when its canary passed; otherwise unload it and leave serving untouched."""
    version = canary["staged_version"]
    if canary["passed"]:
        result = promote(repository, version, url)
        return {
            "outcome": "promoted",
            "version": version,
            "serving": result["serving"],
            "previous": result["previous"],
            "switch_seconds": result["switch_seconds"],
            "reasons": [],
        }
    unstage(repository, url)
    state = read_state(repository)
    log.warning("release of version %s refused: %s", version, "; ".join(canary["reasons"]))
    return {
        "outcome": "refused",
        "version": version,
        "serving": state.serving,
        "previous": state.previous,
        "switch_seconds": None,
        "reasons": canary["reasons"],
    }


def describe_error(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line for a report: its type and its first lines of message."""
    text = " ".join(str(exc).split()) or repr(exc)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def failed_decision(
    repository: str | Path,
    step: str,
    error: str,
    candidate: int | None = None,
    serving_before: int | None = None,
    unstaged: dict | None = None,
    cleanup_error: str | None = None,
) -> dict:
    """The decision of a release that did not conclude: ``step`` raised ``error``. What serves now is read back
    from the repository (a failed stage or canary leaves it untouched)."""
    try:
        state = read_state(repository)
        serving, previous = state.serving, state.previous
    except (ReleaseError, OSError):
        serving = previous = None
    if serving_before is None and step in ("export", "stage", "canary"):
        serving_before = serving  # those steps never touch the serving version
    reasons = [f"{step} failed: {error}"]
    if cleanup_error:
        reasons.append(f"unstage failed: {cleanup_error}")
    return {
        "outcome": "failed",
        "version": candidate,
        "serving": serving,
        "previous": previous,
        "switch_seconds": None,
        "reasons": reasons,
        "failed_step": step,
        "error": error,
        "serving_before": serving_before,
        "unstaged": unstaged,
    }


def abandon_release(
    repository: str | Path,
    url: str | None,
    step: str,
    error: str,
    candidate: int | None = None,
    serving_before: int | None = None,
) -> dict:
    """After a failed step: unload whatever is staged (nothing was staged when the export failed), then the
    ``failed`` decision. Never raises for the clean-up: a failed unstage becomes one of the reasons."""
    unstaged, cleanup_error = None, None
    if step != "export":
        try:
            unstaged = unstage(repository, url)
        except Exception as exc:  # noqa: BLE001 -- recorded in the report; the step's own error is what is raised
            cleanup_error = describe_error(exc)
            log.error("could not unstage after the failed %s: %s", step, cleanup_error)
    return failed_decision(repository, step, error, candidate, serving_before, unstaged, cleanup_error)


def check_outcome(report: dict, fail_on_refusal: bool = True) -> dict:
    """After the report: raise ReleaseFailed for a failed release (always) and ReleaseRefused for a refused one
    when asked to, so that a DAG run shows it."""
    row = report["row"]
    if report["outcome"] == "failed":
        raise ReleaseFailed(
            f"release {row['release_id']} failed ({row.get('reasons') or 'a step failed'}); "
            f"serving version {row['serving_after']}; report {report['report']}"
        )
    if report["outcome"] != "promoted" and fail_on_refusal:
        raise ReleaseRefused(
            f"release {row['release_id']} refused ({row.get('reasons') or 'canary failed'}); "
            f"serving version {row['serving_after']} untouched; report {report['report']}"
        )
    return report


@dataclass
class _Progress:
    """How far a release got: the step running, and what the steps before it returned."""

    step: str = RELEASE_STEPS[0]
    exported: dict = field(default_factory=dict)
    staged: dict = field(default_factory=dict)
    canary: dict | None = None


def release(
    checkpoint: str,
    settings: Settings,
    *,
    precision: str = "fp32",
    exporter: str = "legacy",
    thresholds: CanaryThresholds | dict | None = None,
    release_id: str | None = None,
    report_dir: str | Path | None = None,
) -> dict:
    """The whole release in one process: export ``checkpoint`` into ``settings.model_repository``, stage it on the
    Triton at ``settings.triton_url``, run the canary on ``settings.golden_dir`` (segments of at most
    ``settings.max_segment_s``), promote or discard, and write the report under ``settings.lake_root`` (row in
    ``settings.catalog``). Returns the report summary (see ``write_release_report``). When a step raises, the
    candidate is unstaged and the report written with outcome ``failed`` (and the step's reason) before the error
    goes on."""
    check_report_root(settings.lake_root, settings.catalog)
    started = now_iso()
    release_id = release_id or f"release-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    progress = _Progress()
    try:
        decision = _run_steps(checkpoint, settings, precision, exporter, thresholds, progress)
    except Exception as exc:
        decision = abandon_release(
            settings.model_repository,
            settings.triton_url,
            progress.step,
            describe_error(exc),
            progress.exported.get("version"),
            progress.staged.get("serving"),
        )
        try:
            _report(settings, release_id, progress, decision, started, report_dir)
        except Exception:  # noqa: BLE001 -- the step's error is the one to raise
            log.exception("could not write the report of the failed release %s", release_id)
        raise
    return _report(settings, release_id, progress, decision, started, report_dir)


def _run_steps(
    checkpoint: str,
    settings: Settings,
    precision: str,
    exporter: str,
    thresholds: CanaryThresholds | dict | None,
    progress: _Progress,
) -> dict:
    repository, url = settings.model_repository, settings.triton_url
    progress.exported = export_version(checkpoint, repository, precision, exporter)
    progress.step = "stage"
    progress.staged = stage(repository, progress.exported["version"], url)
    progress.step = "canary"
    progress.canary = run_canary(
        url,
        progress.staged["staged"],
        settings.golden_dir,
        thresholds,
        serving_version=progress.staged["serving"],
        max_segment_s=settings.max_segment_s,
        merge_segment_s=settings.merge_segment_s,
    )
    progress.step = "promote"
    return conclude_release(repository, url, progress.canary)


def _report(
    settings: Settings,
    release_id: str,
    progress: _Progress,
    decision: dict,
    started: str,
    report_dir: str | Path | None,
) -> dict:
    return write_release_report(
        settings.lake_root,
        release_id,
        progress.exported,
        progress.canary,
        decision,
        started_at=started,
        report_dir=report_dir,
        catalog=settings.catalog,
    )
