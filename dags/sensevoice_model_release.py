"""Release a new SenseVoice model version while Triton keeps serving: export (the parity gate refuses a bad export and
writes nothing) → stage the new version beside the serving one (`sensevoice_staged`) → canary: the golden set through
both, comparing transcripts, emotions and latency → promote when within the thresholds, otherwise unload the staged
version and leave serving untouched → a release report (JSON) and a row of the `model_releases` table.

Whatever fails, the last two tasks run (trigger rule `all_done`): `unstage_candidate` unloads `sensevoice_staged`
when the release did not conclude (a failed stage, canary or promotion; `svp models unstage` does the same by hand),
and `report` writes the report and the `model_releases` row, with outcome `failed` and the failed step's error as
the reason when a step raised. `report` then fails the run (ReleaseFailed), so a run whose stage or canary raised
still ends failed; a refused release fails it too unless `fail_on_refusal` is off.

Every task drives one step of a `releases.ReleaseRun`, the object `svp models release` (`releases.release()`) drives
in one process: each task rebuilds the run from the records earlier tasks left in XCom (their `to_dict()` form),
runs its step, and returns the step's record; a step that raises leaves its `StepFailure` in XCom for the report.
The export task imports the export step (`sensevoice_export`, the `[export]` extra) and hands it to the run.

Configuration: each task builds its Settings with `provider.hooks.airflow_settings` from the Params below (an empty
Param keeps the environment's value): `repository` over SVP_MODEL_REPOSITORY (default model_repository), `lake_root`
over SVP_LAKE_ROOT (default var/lake), `golden_dir` over SVP_GOLDEN_DIR (default the fixture model's clips), and the
Triton address from the Connection named by `triton_conn_id`; the `model_releases` row goes to the lake's catalog
(SVP_CATALOG). The export task needs the `[export]` extra (torch, funasr) on the worker that runs it.

Lineage: with Airflow's OpenLineage provider configured, `report`'s COMPLETE (or FAIL) event names the
`model_releases` table, with its schema, as its output (`provider/lineage.py`).

Where the tasks run: every task goes to the Celery queue named by $SVP_RELEASE_QUEUE (default `releases`), read
when this file is parsed (a task's queue is not templated, so no Param can choose it). In docker-compose.yml only
`airflow-release-worker` consumes it: the image with the `[export]` extra, the one container that mounts the model
repository read-write (Triton mounts it read-only). Executors without queues (`airflow dags test`, the
LocalExecutor of `svp demo`) ignore it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from sensevoice_pipeline import releases
from sensevoice_pipeline.provider import lineage
from sensevoice_pipeline.provider.decorators import lineage_task, report_lineage
from sensevoice_pipeline.provider.hooks import DEFAULT_CONN_ID, airflow_settings
from sensevoice_pipeline.records import Record
from sensevoice_pipeline.settings import Settings

# task id -> the release step it runs (releases.RELEASE_STEPS), in order.
STEP_TASKS = {"export_model": "export", "stage": "stage", "canary": "canary", "promote_or_discard": "promote"}
FAILURE_KEY = "failure"  # XCom key under which a failed step leaves its StepFailure for the report
RELEASE_QUEUE_ENV = "SVP_RELEASE_QUEUE"
DEFAULT_RELEASE_QUEUE = "releases"


def release_queue() -> str:
    """The Celery queue of every task of this DAG: the release worker's (see the module docstring)."""
    return os.environ.get(RELEASE_QUEUE_ENV, "").strip() or DEFAULT_RELEASE_QUEUE


def _settings(params: dict) -> Settings:
    return airflow_settings(
        model_repository=params["repository"],
        lake_root=params["lake_root"],
        triton_conn_id=params["triton_conn_id"],
        golden_dir=params["golden_dir"],
    )


def _thresholds(params: dict) -> dict:
    """The canary's gates from the run's Params (each CanaryThresholds field is a Param of the same name)."""
    gates = releases.CanaryThresholds()
    return {
        f.name: type(getattr(gates, f.name))(params[f.name])
        for f in dataclasses.fields(releases.CanaryThresholds)
    }


def _release_run(context) -> releases.ReleaseRun:
    """The run as the tasks before this one left it: their records, and the failures they reported."""
    ti = context["ti"]
    return releases.ReleaseRun.resume(
        _settings(context["params"]),
        context["run_id"],
        context["dag_run"].start_date.isoformat(),
        records={step: ti.xcom_pull(task_ids=task) for task, step in STEP_TASKS.items()},
        failures={step: ti.xcom_pull(task_ids=task, key=FAILURE_KEY) for task, step in STEP_TASKS.items()},
    )


def _run_step(step: Callable[[releases.ReleaseRun], Record]) -> dict:
    """One step of the run; when it raises, leave its StepFailure in XCom for the report task, then fail."""
    context = get_current_context()
    run = _release_run(context)
    try:
        return step(run).to_dict()
    except Exception:
        context["ti"].xcom_push(key=FAILURE_KEY, value=run.failure.to_dict() if run.failure else None)
        raise


@dag(
    dag_id="sensevoice_model_release",
    description="Export a SenseVoice checkpoint, canary it beside the serving version on Triton, promote or refuse",
    schedule=None,  # triggered by people (or a training pipeline) with a checkpoint
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one release at a time (releases also lock the repository)
    default_args={"retries": 0, "queue": release_queue()},
    params={
        "checkpoint": Param(
            "",
            type="string",
            minLength=1,
            description="Checkpoint dir (config.yaml, model.pt, am.mvn, *.bpe.model) or hub id",
        ),
        "precision": Param(
            "fp32",
            enum=["fp32", "int8", "fp16", "auto"],
            description="fp32, int8 (CPU), fp16 (GPU) or auto (fp32 or int8, whichever runs faster "
            "on the release worker's CPU, which should be the serving CPU's kind)",
        ),
        "exporter": Param("legacy", enum=["legacy", "dynamo"], description="ONNX exporter"),
        "repository": Param(
            "", type="string", description="Triton model repository (default $SVP_MODEL_REPOSITORY)"
        ),
        "golden_dir": Param(
            "",
            type="string",
            description="Golden set: clips + expected.jsonl (default "
            "$SVP_GOLDEN_DIR, else the fixture model's clips)",
        ),
        "min_transcript_agreement": Param(
            0.95,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of golden cases whose text must equal serving's",
        ),
        "min_emotion_agreement": Param(
            0.95,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of golden cases whose emotion must equal serving's",
        ),
        "max_latency_ratio": Param(
            1.5, type="number", exclusiveMinimum=0, description="Largest median latency of staged / serving"
        ),
        "shadow_sample_size": Param(
            releases.CanaryThresholds.shadow_sample_size,
            type="integer",
            minimum=0,
            description="Shadow canary: recent published recordings sent to the candidate, stratified by "
            "language hint and channel mode (0: off)",
        ),
        "shadow_look_back_days": Param(
            releases.CanaryThresholds.shadow_look_back_days,
            type="integer",
            minimum=1,
            description="Shadow canary: sample from the last this many published days",
        ),
        "max_angry_share_shift": Param(
            releases.CanaryThresholds.max_angry_share_shift,
            type="number",
            minimum=0,
            maximum=1,
            description="Shadow canary: largest change of the angry share of the sample's segments",
        ),
        "max_shadow_cer": Param(
            releases.CanaryThresholds.max_shadow_cer,
            type="number",
            minimum=0,
            description="Shadow canary: largest character error rate against the published texts",
        ),
        "fail_on_refusal": Param(
            True, type="boolean", description="Fail the run (after the report) when refused"
        ),
        "lake_root": Param("", type="string", description="Override $SVP_LAKE_ROOT (model_releases table)"),
        "report_dir": Param(
            "", type="string", description="Where the JSON report goes (default <lake>/release_reports)"
        ),
        "triton_conn_id": Param(
            DEFAULT_CONN_ID, type="string", description="Connection of the Triton server"
        ),
    },
    tags=["sensevoice", "model-release"],
    doc_md=__doc__,
)
def sensevoice_model_release():
    @task
    def export_model() -> dict:
        p = get_current_context()["params"]

        def export(run: releases.ReleaseRun) -> releases.Exported:
            from sensevoice_export.pipeline import run_export  # the [export] extra, on the release worker

            releases.check_report_root(run.settings.lake_root, run.settings.catalog)
            return run.export(p["checkpoint"], p["precision"], p["exporter"], run_export)

        return _run_step(export)

    @task
    def stage(exported: dict) -> dict:
        return _run_step(lambda run: run.stage())

    @task
    def canary(staged: dict) -> dict:
        return _run_step(lambda run: run.run_canary(_thresholds(get_current_context()["params"])))

    @task
    def promote_or_discard(verdict: dict) -> dict:
        return _run_step(lambda run: run.conclude())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def unstage_candidate() -> dict:
        """Runs whatever failed upstream: a release that did not conclude leaves no candidate loaded."""
        return _release_run(get_current_context()).clean_up().to_dict()

    @lineage_task(trigger_rule=TriggerRule.ALL_DONE)
    def report() -> dict:
        """Runs whatever failed upstream: the report and the model_releases row, then the run's verdict."""
        context = get_current_context()
        p, run = context["params"], _release_run(context)
        report_lineage(context, lambda: lineage.release_report_lineage(run.settings))  # for OpenLineage
        clean_up = releases.CleanUp.from_dict(context["ti"].xcom_pull(task_ids="unstage_candidate"))
        decision = run.decision or run.failed_decision(clean_up)
        summary = run.report(decision, report_dir=p["report_dir"] or None)
        return releases.check_outcome(summary, p["fail_on_refusal"]).to_dict()

    exported = export_model()
    decision = promote_or_discard(canary(stage(exported)))
    decision >> unstage_candidate() >> report()


sensevoice_model_release()
