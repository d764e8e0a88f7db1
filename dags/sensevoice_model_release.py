"""Release a new SenseVoice model version while Triton keeps serving: export (the parity gate refuses a bad export and
writes nothing) → stage the new version beside the serving one (`sensevoice_staged`) → canary: the golden set through
both, comparing transcripts, emotions and latency → promote when within the thresholds, otherwise unload the staged
version and leave serving untouched → a release report (JSON) and a row of the `model_releases` table.

Whatever fails, the last two tasks run (trigger rule `all_done`): `unstage_candidate` unloads `sensevoice_staged`
when the release did not conclude (a failed stage, canary or promotion; `svp models unstage` does the same by hand),
and `report` writes the report and the `model_releases` row, with outcome `failed` and the failed step's error as
the reason when a step raised. `report` then fails the run (ReleaseFailed), so a run whose stage or canary raised
still ends failed; a refused release fails it too unless `fail_on_refusal` is off.

Every task body is one call into `sensevoice_pipeline.releases.operations` (`svp models ...` calls the same functions).

Configuration: Params below (per run), the `sensevoice_triton` Connection (the Triton gRPC address), and the
environment: SVP_LAKE_ROOT (default var/lake), SVP_MODEL_REPOSITORY (default model_repository). The export task needs
the `[export]` extra (torch, funasr) on the worker that runs it.
"""

from __future__ import annotations

import os
from typing import Callable

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from sensevoice_pipeline.releases import operations as releases

# task id -> the release step it runs (releases.RELEASE_STEPS), in order.
STEP_TASKS = {"export_model": "export", "stage": "stage", "canary": "canary", "promote_or_discard": "promote"}
ERROR_KEY = "error"  # XCom key under which a failed step leaves its one-line error for the report


def _repository(params: dict) -> str:
    return params.get("repository") or os.environ.get("SVP_MODEL_REPOSITORY") or "model_repository"


def _lake_root(params: dict) -> str:
    return params.get("lake_root") or os.environ.get("SVP_LAKE_ROOT") or "var/lake"


def _url(params: dict) -> str:
    from sensevoice_pipeline.provider.hooks import SenseVoiceTritonHook

    return SenseVoiceTritonHook(params.get("triton_conn_id") or "sensevoice_triton").get_url()


def _thresholds(params: dict) -> dict:
    return {k: float(params[k]) for k in ("min_transcript_agreement", "min_emotion_agreement", "max_latency_ratio")}


def _step(body: Callable[[], dict]) -> dict:
    """Run a task body; when it raises, leave its error (one line) in XCom for the report task, then fail."""
    try:
        return body()
    except Exception as exc:
        get_current_context()["ti"].xcom_push(key=ERROR_KEY, value=releases.describe_error(exc))
        raise


@dag(
    dag_id="sensevoice_model_release",
    description="Export a SenseVoice checkpoint, canary it beside the serving version on Triton, promote or refuse",
    schedule=None,  # triggered by people (or a training pipeline) with a checkpoint
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one release at a time (releases also lock the repository)
    default_args={"retries": 0},
    params={
        "checkpoint": Param("", type="string", minLength=1,
                            description="Checkpoint dir (config.yaml, model.pt, am.mvn, *.bpe.model) or hub id"),
        "precision": Param("fp32", enum=["fp32", "int8", "fp16"], description="fp32, int8 (CPU) or fp16 (GPU)"),
        "exporter": Param("legacy", enum=["legacy", "dynamo"], description="ONNX exporter"),
        "repository": Param("", type="string", description="Triton model repository (default $SVP_MODEL_REPOSITORY)"),
        "golden_dir": Param("", type="string",
                            description="Golden set: clips + expected.jsonl (default: the fixture model's clips)"),
        "min_transcript_agreement": Param(0.95, type="number", minimum=0, maximum=1,
                                          description="Share of golden cases whose text must equal serving's"),
        "min_emotion_agreement": Param(0.95, type="number", minimum=0, maximum=1,
                                       description="Share of golden cases whose emotion must equal serving's"),
        "max_latency_ratio": Param(1.5, type="number", exclusiveMinimum=0,
                                   description="Largest median latency of staged / serving"),
        "fail_on_refusal": Param(True, type="boolean", description="Fail the run (after the report) when refused"),
        "lake_root": Param("", type="string", description="Override $SVP_LAKE_ROOT (model_releases table)"),
        "report_dir": Param("", type="string", description="Where the JSON report goes (default <lake>/release_reports)"),
        "triton_conn_id": Param("sensevoice_triton", type="string", description="Connection of the Triton server"),
    },
    tags=["sensevoice", "model-release"],
    doc_md=__doc__,
)
def sensevoice_model_release():
    @task
    def export_model() -> dict:
        p = get_current_context()["params"]
        releases.check_report_root(_lake_root(p))
        return _step(lambda: releases.export_version(p["checkpoint"], _repository(p), p["precision"], p["exporter"]))

    @task
    def stage(exported: dict) -> dict:
        p = get_current_context()["params"]
        return _step(lambda: releases.stage(_repository(p), exported["version"], _url(p)))

    @task
    def canary(staged: dict) -> dict:
        p = get_current_context()["params"]
        return _step(lambda: releases.run_canary(_url(p), staged["staged"], p["golden_dir"] or None, _thresholds(p),
                                                 serving_version=staged["serving"]))

    @task
    def promote_or_discard(result: dict) -> dict:
        p = get_current_context()["params"]
        return _step(lambda: releases.conclude_release(_repository(p), _url(p), result))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def unstage_candidate() -> dict:
        """Runs whatever failed upstream: a release that did not conclude leaves no candidate loaded."""
        context = get_current_context()
        p, ti = context["params"], context["ti"]
        if ti.xcom_pull(task_ids="promote_or_discard") is not None:
            return {"skipped": "the release concluded (promoted, or refused and unstaged)"}
        if ti.xcom_pull(task_ids="export_model") is None:
            return {"skipped": "nothing was exported, so nothing was staged"}
        return _step(lambda: releases.unstage(_repository(p), _url(p)))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report() -> dict:
        """Runs whatever failed upstream: the report and the model_releases row, then the run's verdict."""
        context = get_current_context()
        p, ti = context["params"], context["ti"]
        results = {t: ti.xcom_pull(task_ids=t) for t in (*STEP_TASKS, "unstage_candidate")}
        exported, staged, result, decision = (results[t] for t in STEP_TASKS)
        if decision is None:  # a step raised (or never ran because one before it raised)
            errors = {t: ti.xcom_pull(task_ids=t, key=ERROR_KEY) for t in (*STEP_TASKS, "unstage_candidate")}
            failed = next((t for t in STEP_TASKS if errors[t]), None) \
                or next(t for t in STEP_TASKS if results[t] is None)
            decision = releases.failed_decision(
                _repository(p), STEP_TASKS[failed], errors[failed] or f"task {failed} failed (see its log)",
                candidate=(exported or {}).get("version"), serving_before=(staged or {}).get("serving"),
                unstaged=results["unstage_candidate"], cleanup_error=errors["unstage_candidate"],
            )
        summary = releases.write_release_report(
            _lake_root(p), context["run_id"], exported or {}, result, decision,
            started_at=context["dag_run"].start_date.isoformat(), report_dir=p["report_dir"] or None,
        )
        return releases.check_outcome(summary, p["fail_on_refusal"])

    exported = export_model()
    decision = promote_or_discard(canary(stage(exported)))
    decision >> unstage_candidate() >> report()


sensevoice_model_release()
