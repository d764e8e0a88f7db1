"""sensevoice_alerts: each published day against its trailing baseline; a figure outside its band is notified.

Scheduled on the lake's Asset (`sensevoice://lake/utterances`): every day `sensevoice_daily` publishes triggers a
run, whose `check` task reads the day's figures from the rollups (angry share per language and per queue, the
unknown-emotion share, the failed-file share, the volume; `sensevoice_pipeline/warehouse/alerts.py` defines each
and its band) and sends one notification for all of that day's figures outside their band, through the SMTP and
webhook Connections that exist (`sensevoice_pipeline/provider/notify.py`). A manual run checks the `date` Param.

A day whose audio never arrives is told by `sensevoice_daily` itself: its partition sensor's timeout callback.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

from sensevoice_pipeline.provider import lineage, notify
from sensevoice_pipeline.provider.hooks import airflow_settings
from sensevoice_pipeline.warehouse import alerts
from sensevoice_pipeline.warehouse.database import Warehouse

LAKE_ASSET = Asset(lineage.LAKE_ASSET_URI)
DEFAULTS = alerts.AlertRules()


def _dates(context) -> list[str]:
    """The `date` Param, else the dates the triggering publishes name (one run may carry several: a backfill)."""
    if context["params"].get("date"):
        return [str(context["params"]["date"])]
    events = context.get("triggering_asset_events") or {}
    return sorted({str(e.extra["date"]) for stream in events.values() for e in stream if e.extra.get("date")})


@dag(
    dag_id="sensevoice_alerts",
    description="Compare each published day with its baseline and notify figures outside their band",
    schedule=[LAKE_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "date": Param(
            "", type="string", description="Check this date (YYYY-MM-DD) instead of the published ones"
        ),
        "lake_root": Param("", type="string", description="The lake (empty: $SVP_LAKE_ROOT)"),
        "baseline_days": Param(
            DEFAULTS.baseline_days, type="integer", minimum=3, description="Days of baseline"
        ),
        "sigmas": Param(
            DEFAULTS.sigmas, type="number", minimum=0.5, description="Band: mean +- sigmas x std"
        ),
        "min_support": Param(
            DEFAULTS.min_support,
            type="integer",
            minimum=1,
            description="Segments / calls / files to judge a group",
        ),
    },
    tags=["sensevoice", "alerts"],
    doc_md=__doc__,
)
def sensevoice_alerts():
    @task
    def check() -> list[dict]:
        context = get_current_context()
        params = context["params"]
        settings = airflow_settings(lake_root=params.get("lake_root"))
        rules = alerts.AlertRules(
            baseline_days=int(params["baseline_days"]),
            sigmas=float(params["sigmas"]),
            min_support=int(params["min_support"]),
        )
        warehouse = Warehouse(settings.lake_root)
        found = []
        for date in _dates(context):
            breaches = alerts.check_day(warehouse, dt.date.fromisoformat(date), rules)
            if breaches:
                subject, text = alerts.message(breaches)
                notify.send_alert(context, "figures", subject, text, date, [b.to_dict() for b in breaches])
            found += [b.to_dict() for b in breaches]
        return found

    check()


sensevoice_alerts()
