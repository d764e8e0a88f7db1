"""releases/release.py: what a release refuses before it exports anything, and the release run's bookkeeping without
a server (which step failed, the failed decision, the clean-up, the records' round trip through XCom's form)."""

from __future__ import annotations

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.settings import Settings
from tests.support.releases import release_settings


def test_a_release_refuses_an_object_store_lake_without_a_catalog_before_it_exports(tmp_path):
    with pytest.raises(releases.ReleaseError, match="s3://bucket/lake needs a catalog that every host"):
        releases.release(
            "no-such-checkpoint",
            release_settings(tmp_path / "repo", "127.0.0.1:1", "s3://bucket/lake"),
            run_export=lambda *_: pytest.fail("the export ran"),
        )
    assert not (tmp_path / "repo").exists()


EXPORTED = releases.Exported(2, "repo", "fp32", "legacy", "ckpt", "abc", "2026-01-01T00:00:00+00:00", {})
STAGED = releases.Staged(staged=2, serving=1, model="sensevoice_staged", seconds=0.5)


def run_with(tmp_path, **records) -> releases.ReleaseRun:
    settings = Settings(model_repository=tmp_path / "no-repository")
    return releases.ReleaseRun(settings, "release-1", "2026-01-01T00:00:00+00:00", **records)


def test_a_step_that_raises_is_recorded_with_its_error_and_re_raised(tmp_path):
    run = run_with(tmp_path)
    with pytest.raises(ValueError, match="bad checkpoint"):
        run._step("export", lambda: (_ for _ in ()).throw(ValueError("bad checkpoint")))
    assert run.failure == releases.StepFailure("export", "ValueError: bad checkpoint")
    assert run._step("stage", lambda: 42) == 42 and run.failure.step == "export"


def test_without_a_recorded_failure_the_first_step_without_a_record_is_the_failed_one(tmp_path):
    assert run_with(tmp_path).failed_step() == "export"
    assert run_with(tmp_path, exported=EXPORTED).failed_step() == "stage"
    assert run_with(tmp_path, exported=EXPORTED, staged=STAGED).failed_step() == "canary"


def test_the_failed_decision_names_the_step_its_error_and_what_served_before(tmp_path):
    run = run_with(
        tmp_path, exported=EXPORTED, staged=STAGED, failure=releases.StepFailure("canary", "E: boom")
    )
    decision = run.failed_decision(releases.CleanUp(error="ReleaseError: unload refused"))
    assert (decision.outcome, decision.version, decision.failed_step, decision.error) == (
        "failed",
        2,
        "canary",
        "E: boom",
    )
    assert decision.serving_before == 1  # the stage said what served when the candidate went in
    assert decision.reasons == ["canary failed: E: boom", "unstage failed: ReleaseError: unload refused"]
    died = run_with(tmp_path, exported=EXPORTED).failed_decision()  # a task that died without saying why
    assert died.reasons == ["stage failed: stage failed (see its task's log)"]


def test_the_clean_up_skips_what_needs_no_undoing(tmp_path):
    assert "nothing was exported" in run_with(tmp_path).clean_up().skipped
    concluded = releases.Decision("promoted", 2, 2, 1, 0.1, [])
    assert "concluded" in run_with(tmp_path, exported=EXPORTED, decision=concluded).clean_up().skipped


def test_a_run_resumed_from_xcom_has_the_records_and_the_earliest_failure(tmp_path):
    settings = Settings(model_repository=tmp_path)
    records = {"export": EXPORTED.to_dict(), "stage": STAGED.to_dict(), "canary": None, "promote": None}
    failures = {
        "promote": releases.StepFailure("promote", "late").to_dict(),
        "canary": releases.StepFailure("canary", "first").to_dict(),
    }
    run = releases.ReleaseRun.resume(settings, "run-1", "t0", records, failures)
    assert (run.exported, run.staged, run.canary, run.decision) == (EXPORTED, STAGED, None, None)
    assert run.failure.step == "canary" and run.failed_step() == "canary"
    assert releases.Exported.from_dict({**EXPORTED.to_dict(), "added_later": 1}) == EXPORTED
