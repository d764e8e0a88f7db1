"""Model versions for platform teams: list them, stage a candidate beside the serving version, run a canary, promote,
roll back and retire, on a running Triton, without failed requests. Callers import the package::

    from sensevoice_pipeline import releases
    releases.stage(repository, 2, url)

Where things live (each module imports only modules above it in this list, so there are no cycles):
  errors.py      ReleaseError (one-line messages), ReleaseRefused, ReleaseFailed
  policy.py      version_policy in config.pbtxt: read through protobuf's ModelConfig, edited keeping comments
  state.py       serving.json (ServingState: serving / previous / staged / retired), its lock, repository checks
  remote.py      an s3:// mirror of the repository that Triton servers read (`svp models mirror`)
  control.py     TritonControl: Triton's model-control client; STAGED_MODEL
  listing.py     list / show versions, and their text (`svp models list|show`)
  operations.py  stage, unstage, promote, rollback, retire; what "serving" means (its docstring)
  golden.py      the canary's golden set (expected.jsonl); DEFAULT_GOLDEN_DIR
  canary.py      the canary: golden set through staged and serving the daily job's way, and the verdict
  results.py     the records a release's steps return (Exported, Decision, StepFailure, CleanUp, ReleaseSummary)
  report.py      the release report (JSON) and its `model_releases` row
  release.py     ReleaseRun: export → stage → canary → promote / clean up → report (`release()`, the DAG)
"""

from sensevoice_pipeline.releases.canary import CanaryThresholds, CanaryVerdict, CaseAnswer, judge, run_canary
from sensevoice_pipeline.releases.control import STAGED_MODEL, TritonControl
from sensevoice_pipeline.releases.errors import ReleaseError, ReleaseFailed, ReleaseRefused
from sensevoice_pipeline.releases.golden import DEFAULT_GOLDEN_DIR, GoldenCase, load_golden_set
from sensevoice_pipeline.releases.listing import (
    VersionRow,
    format_parity,
    format_show,
    format_versions,
    list_versions,
    show_version,
    source_checksum,
)
from sensevoice_pipeline.releases.operations import (
    Staged,
    format_unstaged,
    promote,
    retire,
    rollback,
    stage,
    unstage,
)
from sensevoice_pipeline.releases.policy import (
    config_files,
    parse_config,
    policy_versions,
    replace_version_policy,
    restore_configs,
    set_version_policy,
)
from sensevoice_pipeline.releases.release import (
    ReleaseRun,
    RunExport,
    check_outcome,
    conclude_release,
    describe_error,
    export_version,
    release,
)
from sensevoice_pipeline.releases.remote import publish_version, set_mirror, triton_repository_uri
from sensevoice_pipeline.releases.report import check_report_root, write_release_report
from sensevoice_pipeline.releases.results import (
    RELEASE_STEPS,
    CleanUp,
    Decision,
    Exported,
    ReleaseSummary,
    StepFailure,
)
from sensevoice_pipeline.releases.shadow import ShadowThresholds, ShadowVerdict, run_shadow_canary
from sensevoice_pipeline.releases.state import ServingState, locked, read_state, write_state

__all__ = [
    # errors
    "ReleaseError",
    "ReleaseRefused",
    "ReleaseFailed",
    # the repository's record and its configs
    "ServingState",
    "read_state",
    "write_state",
    "locked",
    "config_files",
    "parse_config",
    "policy_versions",
    "replace_version_policy",
    "set_version_policy",
    "restore_configs",
    # the server
    "STAGED_MODEL",
    "TritonControl",
    # list / show
    "VersionRow",
    "list_versions",
    "show_version",
    "format_versions",
    "format_show",
    "format_parity",
    "source_checksum",
    # moving versions
    "stage",
    "Staged",
    "unstage",
    "format_unstaged",
    "promote",
    "rollback",
    "retire",
    # an s3:// mirror
    "set_mirror",
    "publish_version",
    "triton_repository_uri",
    # the canary
    "DEFAULT_GOLDEN_DIR",
    "GoldenCase",
    "load_golden_set",
    "CanaryThresholds",
    "ShadowThresholds",
    "ShadowVerdict",
    "run_shadow_canary",
    "run_canary",
    "CanaryVerdict",
    "CaseAnswer",
    "judge",
    # a whole release
    "RELEASE_STEPS",
    "ReleaseRun",
    "RunExport",
    "Exported",
    "Decision",
    "StepFailure",
    "CleanUp",
    "ReleaseSummary",
    "export_version",
    "conclude_release",
    "describe_error",
    "check_report_root",
    "write_release_report",
    "check_outcome",
    "release",
]
