"""Daily speech analytics: yesterday's calls -> Triton (SenseVoiceSmall, with language hints) -> rich tags ->
Parquet tables (utterances, recordings, emotion_daily, runs) -> DuckDB views for BI.

Every task body is one call into the `sensevoice_pipeline` library (`svp run` calls the same functions).

Tasks: `check_pool` -> `wait_for_partition` -> `plan` -> `transcribe` (mapped, one task per batch of files) ->
`publish`, and the teardown `release`.

- **Late data.** `wait_for_partition` is a deferrable sensor: until the day's partition
  `<raw_root>/date=YYYY-MM-DD/` is ready it waits in the triggerer, holding no worker slot. Ready means: the file
  named by the `ready_marker` Param exists inside it (`_SUCCESS`, `manifest.csv` when the export writes it last, or
  a hidden `.ready`; files starting with `_` or `.` are never recordings), or, with an empty marker, the folder
  holds at least one non-hidden file. It checks every
  `poke_interval_seconds` and fails after `wait_timeout_minutes` with a message naming the partition and what is
  missing (a timeout is not retried). `svp` shares the check (`sensevoice_pipeline.lake.arrival`).
- **One run per date.** `plan` takes the date's lease (`daily.plan`); while another run holds it (a manual re-run of
  a day the scheduled run is still processing), `plan` fails with DateBusyError and its retries are the wait:
  70-90 minutes in all, longer than a lease lives without heartbeats ($SVP_LEASE_TTL_S, default 1 h).
  `max_active_runs=2` lets a backfill process two *different* dates at once; two runs of one date are serialised by
  the lease, never by Airflow. The teardown `release` (`daily.release`) gives the lease back and removes the run's
  staging whatever happened upstream, so a failed run does not hold its date until the lease expires.
- **Failure budget.** `publish` commits the day, then fails the run when more than `failure_budget` of the day's
  files failed (bad input): the day's rows are published, the run is red, and `publish` is not retried (nor when
  it refuses to publish a partition that changed during the run: re-run the date). Other configuration errors in
  `plan` fail at once too; only a busy date is retried.

- **Capacity.** Each mapped `transcribe` task takes one slot of the Airflow pool named by $SVP_TRITON_POOL
  (default `sensevoice_triton`; read when this file is parsed: a task's pool is not templated, so no Param can
  choose it) and keeps up to 8 requests in flight (`Settings.concurrency`), balanced across the fleet's servers.
  The pool is shared by every run (a backfill's dates and a re-run together), so size it from the fleet:
  **slots = servers x per-server concurrency**, where per-server concurrency is how many transcription tasks one
  server keeps busy (e.g. 2: 16 requests in flight, from which its dynamic batcher forms batches; measure on
  your GPUs). Create it before the
  first run: `airflow pools set sensevoice_triton <slots> "Triton fleet: servers x per-server concurrency"`. A
  scheduler never starts a task whose pool does not exist (it logs "Tasks using non-existent pool ... will not be
  scheduled"); `airflow dags test` runs tasks without looking at pools. So the first task, `check_pool`, asks the
  api-server whether the pool exists (and has slots) and fails at once, naming that command, when it does not. Tasks
  cannot read pools in Airflow 3 other than through the public REST API, so it needs the `sensevoice_airflow_api`
  Connection (the api-server's address and a user allowed to read pools); without it, it logs a warning and
  lets the run go on (`provider/pools.py`).

- **Lineage and metrics.** With Airflow's OpenLineage provider configured (`[openlineage] transport`), `publish`'s
  COMPLETE event names the raw partition as input and every table of the lake, with its schema, as outputs
  (`provider/lineage.py`). `plan`, `transcribe` and `publish` send their timings, and `publish` the day's counters
  (files, failed files, utterances, speech seconds), through Airflow's metrics (`[metrics] statsd_on`;
  `provider/metrics.py`, docs/deployment.md).

- **Re-scoring history after a promote.** A backfill with the version pinned and a snapshot name, e.g.
  `airflow backfill create --dag-id sensevoice_daily --from-date 2026-11-01 --to-date 2026-11-30
  --reprocess-behavior completed --dag-run-conf '{"model_version": "2", "keep_snapshot_as": "before-v2"}'`:
  each run's `plan` first keeps the lake as it was under that name (only the first run keeps it; the others find it
  kept: `jobs/rescore.keep_before_rescore`), then re-publishes its day with version 2. `svp query NAME --as-of
  before-v2` and `svp query model-compare` read the old version's rows. `svp rescore` does the same in one process.

Configuration: Params below (per run), the `sensevoice_triton` Connection (the Triton gRPC address, or several
comma-separated: balanced, with failover), $SVP_TRITON_POOL, and the
environment: SVP_RAW_ROOT (default var/raw), SVP_LAKE_ROOT (default var/lake), SVP_WAREHOUSE, SVP_LEASE_TTL_S,
SVP_REQUEST_TIMEOUT_S, SVP_CATALOG (required for s3:// lakes: a PostgreSQL database every worker reaches),
SVP_DAILY_START_DATE (the first day, read when this file is parsed; catchup runs every day from there). The roots may be s3://bucket/prefix URIs: credentials and endpoint from the `aws`
Connection named by `aws_conn_id` (default aws_default) when it exists, else from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL (in the triggerer as well as in the workers).
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, teardown
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

from sensevoice_pipeline.constants import CHANNEL_MODES
from sensevoice_pipeline.errors import ConfigurationError, FailureBudgetExceeded, PublishError
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.jobs.rescore import DEFAULT_KEEP_DAYS, keep_before_rescore
from sensevoice_pipeline.lake.arrival import DEFAULT_POKE_INTERVAL_S, DEFAULT_TIMEOUT_S
from sensevoice_pipeline.lake.lease import DateBusyError, LeaseLostError
from sensevoice_pipeline.provider import lineage, metrics, notify, pools
from sensevoice_pipeline.provider.decorators import lineage_task, report_lineage
from sensevoice_pipeline.provider.hooks import DEFAULT_AWS_CONN_ID, DEFAULT_CONN_ID, airflow_settings
from sensevoice_pipeline.provider.sensors import PartitionArrivalSensor, partition_date
from sensevoice_pipeline.settings import Settings, batch_timeout_s, daily_start_date, triton_pool
from sensevoice_pipeline.speech.languages import LANGUAGES

# Updated when a day is published (downstream DAGs schedule on it); its extra lists every table of the day's commit.
UTTERANCES_ASSET = Asset(lineage.LAKE_ASSET_URI, extra=lineage.lake_asset_extra())


def _settings(params: dict) -> Settings:
    return airflow_settings(
        raw_root=params.get("raw_root"),
        lake_root=params.get("lake_root"),
        triton_conn_id=params.get("triton_conn_id"),
        aws_conn_id=params.get("aws_conn_id"),
        language=params["language"],
        use_itn=params["use_itn"],
        channel_mode=params["channel_mode"],
        model_version=str(params.get("model_version") or ""),
        batch_size=params["batch_size"],
        failure_budget=params["failure_budget"],
        allow_shrink=bool(params.get("allow_shrink")) or None,
    )


def _partition_date(context) -> str:
    """The day that just ended: the start of the run's data interval. A manual run may name a date in Params.
    (The sensor's own rule: one function for every task of the run.)"""
    return partition_date(context)


def _run_start(context):
    """The run's own start (not the logical date `airflow dags test` gives it): daily.airflow_run_start."""
    return daily.airflow_run_start(context["dag_run"].start_date, context["dag_run"].run_after)


# plan's retries double as the wait for the date's lease (see the doc above): pauses of about 2, 4, 8 and 16 minutes
# (exponential, with jitter), then 20: 70-90 minutes in all.
LEASE_WAIT = {
    "retries": 6,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
}


@dag(
    dag_id="sensevoice_daily",
    description="Transcribe yesterday's calls with SenseVoice on Triton and publish emotion tables for BI",
    # Data-interval timetable: the run after midnight covers the day that just ended ("@daily" in Airflow 3 is a
    # trigger timetable whose runs have zero-length intervals).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.parse(daily_start_date(), tz="UTC"),  # $SVP_DAILY_START_DATE
    catchup=True,  # backfills: one run per missing day
    max_active_runs=2,
    # The first retry waits Airflow's [core] default_task_retry_delay (docker-compose.yml: 2 minutes), doubling after.
    default_args={"retries": 2, "retry_exponential_backoff": True},
    params={
        "date": Param(
            "", type="string", description="Process this date (YYYY-MM-DD) instead of the interval's"
        ),
        "language": Param(
            "auto", enum=list(LANGUAGES), description="Default language hint (manifest.csv overrides)"
        ),
        "use_itn": Param(True, type="boolean", description="Inverse text normalisation: punctuation, digits"),
        "channel_mode": Param(
            "mono", enum=list(CHANNEL_MODES), description="mono: mix down; split: per channel"
        ),
        "model_version": Param(
            "", type="string", description="Pin a `sensevoice` version for reproducible re-runs"
        ),
        "keep_snapshot_as": Param(
            "",
            type="string",
            pattern=r"^[A-Za-z0-9._-]{0,100}$",
            description="Re-scoring a range (a backfill with model_version pinned): keep the lake as it was "
            "before, under this name (give every run of the backfill the same one: only the first keeps it), "
            "for svp query --as-of NAME and model-compare",
        ),
        "keep_snapshot_days": Param(
            DEFAULT_KEEP_DAYS,
            type="number",
            exclusiveMinimum=0,
            description="How long the snapshot named by keep_snapshot_as is kept (days)",
        ),
        "batch_size": Param(16, type="integer", minimum=1, description="Files per mapped transcription task"),
        "failure_budget": Param(
            0.2,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of the day's files that may fail (bad input) before the run fails; "
            "the day is published either way",
        ),
        "allow_shrink": Param(
            False,
            type="boolean",
            description="Replace a published day even with far fewer recordings (an emptied "
            "partition is refused otherwise)",
        ),
        "ready_marker": Param(
            "",
            type="string",
            description="File inside date=YYYY-MM-DD/ that says the day is complete (e.g. "
            "manifest.csv, .ready); empty: the folder exists and holds a file",
        ),
        "wait_timeout_minutes": Param(
            int(DEFAULT_TIMEOUT_S // 60),
            type="number",
            minimum=0,
            description="How long to wait for the day's partition before failing",
        ),
        "poke_interval_seconds": Param(
            int(DEFAULT_POKE_INTERVAL_S),
            type="number",
            minimum=1,
            description="Seconds between two checks of the day's partition",
        ),
        "raw_root": Param(
            "", type="string", description="Override $SVP_RAW_ROOT (a path or s3://bucket/prefix)"
        ),
        "lake_root": Param(
            "", type="string", description="Override $SVP_LAKE_ROOT (a path or s3://bucket/prefix)"
        ),
        "aws_conn_id": Param(
            DEFAULT_AWS_CONN_ID,
            type="string",
            description="`aws` Connection for s3:// roots (missing: the AWS_* environment)",
        ),
        "triton_conn_id": Param(
            DEFAULT_CONN_ID,
            type="string",
            description="Connection of the Triton server(s): several comma-separated hosts "
            "are balanced, with failover",
        ),
    },
    tags=["sensevoice", "speech-analytics"],
    doc_md=__doc__,
)
def sensevoice_daily():
    @task
    def check_pool() -> None:
        """A missing pool would leave the transcription tasks unscheduled and the run running forever."""
        try:
            pools.check_pool(triton_pool())
        except ConfigurationError as exc:
            raise AirflowFailException(str(exc)) from exc  # a retry would not create it

    wait_for_partition = PartitionArrivalSensor(
        task_id="wait_for_partition",
        raw_root="{{ params.raw_root }}",  # empty: $SVP_RAW_ROOT
        # date: empty = _partition_date of the run (the `date` Param, else the day that just ended)
        ready_marker="{{ params.ready_marker }}",
        wait_timeout_minutes="{{ params.wait_timeout_minutes }}",
        poke_interval_seconds="{{ params.poke_interval_seconds }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        on_failure_callback=notify.partition_late,  # a day whose audio never came is told (docs/alerts.md)
    )

    @task(**LEASE_WAIT)
    def plan() -> list[dict]:
        context = get_current_context()
        params = context["params"]
        try:
            if params.get(
                "keep_snapshot_as"
            ):  # a re-score: the lake as it was, kept before anything publishes
                keep_before_rescore(
                    _settings(params),
                    params["keep_snapshot_as"],
                    float(params["keep_snapshot_days"]),
                    f"re-score by backfill with model version {params.get('model_version') or 'serving'}",
                )
            with metrics.stage("plan"):
                batches = daily.plan(_settings(params), _partition_date(context), context["run_id"])
            return [batch.to_dict() for batch in batches]
        except DateBusyError:
            raise  # another run holds the date: the retries are the wait
        except ConfigurationError as exc:
            raise AirflowFailException(str(exc)) from exc  # waiting would not fix it: fail now, not in 90 min

    # The fleet's capacity caps requests in flight, across runs: one pool slot per mapped task (see Capacity above).
    # A batch that runs past its timeout (a hung decode, a server that never answers) is failed and retried.
    @task(retries=3, pool=triton_pool(), execution_timeout=dt.timedelta(seconds=batch_timeout_s()))
    def transcribe(batch: dict) -> dict:
        context = get_current_context()
        try:
            settings, started = _settings(context["params"]), _run_start(context)
            with metrics.stage("transcribe"):
                return daily.process_batch(settings, batch, started).to_dict()
        except LeaseLostError as exc:
            raise AirflowFailException(
                str(exc)
            ) from exc  # another run has the date now: retrying cannot help

    @lineage_task(outlets=[UTTERANCES_ASSET], trigger_rule="none_failed")  # an empty day still publishes
    def publish(summaries: list[dict]) -> dict:
        context = get_current_context()
        settings, date = _settings(context["params"]), _partition_date(context)
        report_lineage(context, lambda: lineage.daily_publish_lineage(settings, date))  # for OpenLineage
        try:
            with metrics.stage("publish"):
                result = daily.publish(
                    settings,
                    date,
                    context["run_id"],
                    _run_start(context),
                    on_published=metrics.day_published,
                )
        except (FailureBudgetExceeded, PublishError) as exc:
            # Final either way: the day was published but too many files failed (a retry would only find the
            # staging gone), or the partition changed / the lease was lost (re-run the date from plan).
            raise AirflowFailException(str(exc)) from exc
        context["outlet_events"][UTTERANCES_ASSET].extra = {"date": result.date, "files": result.files}
        return result.to_dict()

    # A teardown without a setup runs once everything upstream is done, whatever its state: also after plan failed
    # having taken the lease. (Were plan its setup, a failed plan would skip it.) It does not decide the run's state.
    @teardown
    def release() -> None:
        context = get_current_context()
        daily.release(_settings(context["params"]), _partition_date(context), context["run_id"])

    planned = plan()
    published = publish(transcribe.expand(batch=planned))
    check_pool() >> wait_for_partition >> planned
    [planned, published] >> release()


sensevoice_daily()
