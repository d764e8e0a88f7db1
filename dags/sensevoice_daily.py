"""Daily speech analytics: yesterday's calls -> Triton (SenseVoiceSmall, with language hints) -> rich tags ->
Parquet tables (utterances, recordings, emotion_daily, runs) -> DuckDB views for BI.

Every task body is one call into the `sensevoice_pipeline` library (`svp run` calls the same functions).

Configuration: Params below (per run), the `sensevoice_triton` Connection (the Triton gRPC address), and the
environment: SVP_RAW_ROOT (default var/raw), SVP_LAKE_ROOT (default var/lake), SVP_WAREHOUSE. The roots may be
s3://bucket/prefix URIs: credentials and endpoint from the `aws` Connection named by `aws_conn_id` (default
aws_default) when it exists, else from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from sensevoice_pipeline import daily
from sensevoice_pipeline.languages import LANGUAGES
from sensevoice_pipeline.settings import CHANNEL_MODES, Settings

UTTERANCES_ASSET = Asset("sensevoice://lake/utterances", extra={"tables": "utterances,recordings,emotion_daily"})


def _settings(params: dict) -> Settings:
    from sensevoice_pipeline.provider.hooks import SenseVoiceTritonHook, with_aws_connection

    settings = Settings.from_env(
        raw_root=params.get("raw_root"),
        lake_root=params.get("lake_root"),
        triton_url=SenseVoiceTritonHook(params.get("triton_conn_id") or "sensevoice_triton").get_url(),
        language=params["language"],
        use_itn=params["use_itn"],
        channel_mode=params["channel_mode"],
        model_version=str(params.get("model_version") or ""),
        batch_size=params["batch_size"],
    )
    return with_aws_connection(settings, params.get("aws_conn_id") or "aws_default")


def _partition_date(context) -> str:
    """The day that just ended: the start of the run's data interval. A manual run may name a date in Params."""
    if context["params"].get("date"):
        return context["params"]["date"]
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:  # manual runs without a logical date
        start = context["dag_run"].run_after - dt.timedelta(days=1)
    return start.date().isoformat()


@dag(
    dag_id="sensevoice_daily",
    description="Transcribe yesterday's calls with SenseVoice on Triton and publish emotion tables for BI",
    # Data-interval timetable: the run after midnight covers the day that just ended ("@daily" in Airflow 3 is a
    # trigger timetable whose runs have zero-length intervals).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=True,  # backfills: one run per missing day
    max_active_runs=2,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2), "retry_exponential_backoff": True},
    params={
        "date": Param("", type="string", description="Process this date (YYYY-MM-DD) instead of the interval's"),
        "language": Param("auto", enum=list(LANGUAGES), description="Default language hint (manifest.csv overrides)"),
        "use_itn": Param(True, type="boolean", description="Inverse text normalisation: punctuation, digits"),
        "channel_mode": Param("mono", enum=list(CHANNEL_MODES), description="mono: mix down; split: per channel"),
        "model_version": Param("", type="string", description="Pin a `sensevoice` version for reproducible re-runs"),
        "batch_size": Param(16, type="integer", minimum=1, description="Files per mapped transcription task"),
        "raw_root": Param("", type="string", description="Override $SVP_RAW_ROOT (a path or s3://bucket/prefix)"),
        "lake_root": Param("", type="string", description="Override $SVP_LAKE_ROOT (a path or s3://bucket/prefix)"),
        "aws_conn_id": Param("aws_default", type="string",
                             description="`aws` Connection for s3:// roots (missing: the AWS_* environment)"),
        "triton_conn_id": Param("sensevoice_triton", type="string", description="Connection of the Triton server"),
    },
    tags=["sensevoice", "speech-analytics"],
    doc_md=__doc__,
)
def sensevoice_daily():
    @task
    def plan() -> list[dict]:
        context = get_current_context()
        return daily.plan(_settings(context["params"]), _partition_date(context), context["run_id"])

    @task(retries=3, max_active_tis_per_dagrun=4)
    def transcribe(batch: dict) -> dict:
        context = get_current_context()
        return daily.process_batch(_settings(context["params"]), batch, context["dag_run"].start_date)

    @task(outlets=[UTTERANCES_ASSET], trigger_rule="none_failed")  # an empty day still publishes
    def publish(summaries: list[dict]) -> dict:
        context = get_current_context()
        result = daily.publish(_settings(context["params"]), _partition_date(context), context["run_id"],
                               context["dag_run"].start_date)
        context["outlet_events"][UTTERANCES_ASSET].extra = {"date": result["date"], "files": result["files"]}
        return result

    publish(transcribe.expand(batch=plan()))


sensevoice_daily()
