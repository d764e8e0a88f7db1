"""Airflow plugin: the SenseVoice page (daily emotion trend, recent runs, failed recordings, model versions) served by
the api-server under /sensevoice/, with an entry in the UI's nav (Browse menu) that shows it in Airflow's frame.

Thin wiring only: the data and the HTML live in ``sensevoice_pipeline.dashboard``. Every request needs an Airflow
login (the ``_token`` cookie the UI sets, or an ``Authorization: Bearer`` JWT from ``POST /auth/token``) and a role
that may see the Airflow website; a browser without one is sent to the login page, anything else gets 401.
Query parameters are checked before use (dates as YYYY-MM-DD, ``by`` one of language / channel: otherwise 422) and
reach DuckDB only as bound parameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from sensevoice_pipeline import dashboard
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse import Warehouse

URL_PREFIX = "/sensevoice"

app = FastAPI(title="SenseVoice speech analytics", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(HTTPException)
async def _login_or_error(request: Request, exc: HTTPException):
    """A browser with no (or an expired) login goes to Airflow's login page, then comes back here."""
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(get_auth_manager().get_url_login(next_url=here), status_code=307)
    return await http_exception_handler(request, exc)


def _date(alias: str):
    return Query(alias=alias, pattern=dashboard.DATE_PATTERN, max_length=10, description="YYYY-MM-DD")


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])
def page(
    date_from: Annotated[str | None, _date("from")] = None,
    date_to: Annotated[str | None, _date("to")] = None,
    by: Annotated[Literal["language", "channel"], Query()] = "language",
) -> HTMLResponse:
    try:
        params = dashboard.Params.parse(date_from, date_to, by)
        settings = Settings.from_env()
        board = dashboard.load_dashboard(Warehouse(settings.lake_root, settings.warehouse_path),
                                         dashboard.model_repository_path(), params)
    except dashboard.DashboardParamError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return HTMLResponse(dashboard.render_page(board), headers=dashboard.SECURITY_HEADERS)


class SenseVoicePlugin(AirflowPlugin):
    name = "sensevoice"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "SenseVoice speech analytics"}]
    external_views = [
        {
            "name": "SenseVoice",
            "href": f"{URL_PREFIX}/",
            "url_route": "sensevoice",  # shown inside the Airflow UI at /plugin/sensevoice
            "destination": "nav",
            "category": "browse",
        }
    ]
