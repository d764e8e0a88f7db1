"""Release a new SenseVoice model version while Triton keeps serving: export (the parity gate refuses a bad export and
writes nothing) → stage the new version beside the serving one (`sensevoice_staged`) → canary: the golden set through
both, comparing transcripts, emotions and latency → promote when within the thresholds, otherwise unload the staged
version and leave serving untouched → a release report (JSON) and a row of the `model_releases` table.

Every task body is one call into `sensevoice_pipeline.releases` (`svp models ...` calls the same functions).

Configuration: Params below (per run), the `sensevoice_triton` Connection (the Triton gRPC address), and the
environment: SVP_LAKE_ROOT (default var/lake), SVP_MODEL_REPOSITORY (default model_repository). The export task needs
the `[export]` extra (torch, funasr) on the worker that runs it.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from sensevoice_pipeline import releases


def _repository(params: dict) -> str:
    return params.get("repository") or os.environ.get("SVP_MODEL_REPOSITORY") or "model_repository"


def _lake_root(params: dict) -> str:
    return params.get("lake_root") or os.environ.get("SVP_LAKE_ROOT") or "var/lake"


def _url(params: dict) -> str:
    from sensevoice_pipeline.provider.hooks import SenseVoiceTritonHook

    return SenseVoiceTritonHook(params.get("triton_conn_id") or "sensevoice_triton").get_url()


def _thresholds(params: dict) -> dict:
    return {k: float(params[k]) for k in ("min_transcript_agreement", "min_emotion_agreement", "max_latency_ratio")}


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
        return releases.export_version(p["checkpoint"], _repository(p), p["precision"], p["exporter"])

    @task
    def stage(exported: dict) -> dict:
        p = get_current_context()["params"]
        return releases.stage(_repository(p), exported["version"], _url(p))

    @task
    def canary(staged: dict) -> dict:
        p = get_current_context()["params"]
        return releases.run_canary(_url(p), staged["staged"], p["golden_dir"] or None, _thresholds(p),
                                   serving_version=staged["serving"])

    @task
    def promote_or_discard(result: dict) -> dict:
        p = get_current_context()["params"]
        return releases.conclude_release(_repository(p), _url(p), result)

    @task
    def report(exported: dict, result: dict, decision: dict) -> dict:
        context = get_current_context()
        p = context["params"]
        summary = releases.write_release_report(
            _lake_root(p), context["run_id"], exported, result, decision,
            started_at=context["dag_run"].start_date.isoformat(), report_dir=p["report_dir"] or None,
        )
        return releases.check_outcome(summary, p["fail_on_refusal"])

    exported = export_model()
    result = canary(stage(exported))
    report(exported, result, promote_or_discard(result))


sensevoice_model_release()
