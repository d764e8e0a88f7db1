"""Airflow plugin: the SenseVoice page (daily emotion trend, recent runs, failed recordings, model versions) served by
the api-server under /sensevoice/, with an entry in the UI's nav (Browse menu) that shows it in Airflow's frame.

Thin wiring only: the data lives in ``sensevoice_pipeline.ui.page_data``, the HTML in ``ui.page_html`` and
``ui.clip_html``. Every request needs an Airflow login (the ``_token`` cookie the UI sets, or an
``Authorization: Bearer`` JWT from ``POST /auth/token``) and a role that may see the Airflow website; a browser
without one is sent to the login page, anything else gets 401. Query parameters are checked before use (dates as
YYYY-MM-DD, ``by`` one of language / channel: otherwise 422) and reach DuckDB only as bound parameters. Settings
that cannot work (``SVP_LANGUAGE=xx``, ...) answer 503 with their message.

``POST /sensevoice/clip`` ("Try a clip", the page's multipart form): the same login, then ``clip_check`` does the
work -- size limit while the body arrives, format, decoding in memory, the daily job's segmentation, the Triton at
the ``sensevoice_triton`` Connection (``SenseVoiceTritonHook``; $SVP_TRITON_URL without one). It answers an HTML page
(JSON for a client that asks for ``application/json`` only) with 200, or 413 / 415 / 422 for the clip or the form,
503 / 504 / 502 when the serving side fails. ``GET /sensevoice/clip`` shows the empty form (where a login comes back).

``GET /sensevoice/call?date=YYYY-MM-DD&recording=ID`` (a call's timeline, linked from the page's angriest calls and
failed files): the same login; ``ui.timeline`` checks the parameters and reads the rows, ``ui.timeline_html`` draws
them. A bad parameter (422) or an unknown recording (404) gets an HTML page with the reason and the form to ask again.

Every failure's status is ``errors.http_status`` (the one table of what each kind of error answers).
"""

from __future__ import annotations

from typing import Annotated, Literal

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sensevoice_pipeline.errors import ConfigurationError, SvpError, http_status
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.ui import clip as clip_check
from sensevoice_pipeline.ui.clip_html import render_clip_page
from sensevoice_pipeline.ui.html_parts import SECURITY_HEADERS
from sensevoice_pipeline.ui.page_data import DATE_PATTERN, Params, load_dashboard
from sensevoice_pipeline.ui.page_html import render_page
from sensevoice_pipeline.ui.page_text import for_viewer, redact
from sensevoice_pipeline.ui.timeline import MAX_RECORDING_CHARS, TimelineParams, load_timeline
from sensevoice_pipeline.ui.timeline_html import render_timeline, render_timeline_error
from sensevoice_pipeline.warehouse.database import Warehouse

URL_PREFIX = "/sensevoice"

app = FastAPI(title="SenseVoice speech analytics", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(HTTPException)
async def _login_or_error(request: Request, exc: HTTPException):
    """A browser with no (or an expired) login goes to Airflow's login page, then comes back here."""
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # 303 after a form's POST (the login page is fetched with GET); the form itself lives at GET .../clip
        code = 307 if request.method in ("GET", "HEAD") else 303
        return RedirectResponse(get_auth_manager().get_url_login(next_url=here), status_code=code)
    return await http_exception_handler(request, exc)


def _date(alias: str):
    return Query(alias=alias, pattern=DATE_PATTERN, max_length=10, description="YYYY-MM-DD")


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])
def page(
    date_from: Annotated[str | None, _date("from")] = None,
    date_to: Annotated[str | None, _date("to")] = None,
    by: Annotated[Literal["language", "channel"], Query()] = "language",
    min_confidence: Annotated[str | None, Query(max_length=8, description="emotion confidence floor")] = None,
) -> HTMLResponse:
    try:
        params = Params.parse(date_from, date_to, by, min_confidence)
        settings = Settings.from_env()
        board = load_dashboard(
            Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog),
            settings.model_repository,
            params,
        )
    except SvpError as exc:  # a parameter refused (422), settings that cannot work (503), ...
        raise HTTPException(status_code=http_status(exc), detail=_page_error(exc)) from None
    return HTMLResponse(render_page(board), headers=SECURITY_HEADERS)


@app.get(
    "/call", response_class=HTMLResponse, dependencies=[Depends(requires_access_view(AccessView.WEBSITE))]
)
def call_timeline(
    date: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")] = None,
    recording: Annotated[
        str | None, Query(max_length=MAX_RECORDING_CHARS, description="recording id or source path")
    ] = None,
) -> HTMLResponse:
    """Checked by ``TimelineParams`` (not a Query pattern), so a person who followed a bad link reads why in HTML."""
    try:
        params = TimelineParams.parse(date, recording)
        settings = Settings.from_env()
        timeline = load_timeline(
            Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog), params
        )
    except SvpError as exc:  # 422 bad parameter, 404 no such recording, 503 settings that cannot work
        page = render_timeline_error(_page_error(exc), date or "", recording or "")
        return HTMLResponse(page, status_code=http_status(exc), headers=SECURITY_HEADERS)
    return HTMLResponse(render_timeline(timeline), headers=SECURITY_HEADERS)


def _page_error(exc: SvpError) -> str:
    """What the page says about a failure: whose fault it is when it is not the request's; no server path."""
    if isinstance(exc, ConfigurationError):
        return redact(f"the server's settings cannot work: {exc}")
    return redact(str(exc))


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _clip_answer(
    request: Request,
    status: int = 200,
    result=None,
    error: str | None = None,
    language: str = "auto",
    itn: bool = True,
):
    error = for_viewer(error) if error else error  # the same words in JSON as in HTML: no path, no address
    if _wants_json(request):
        body = result.to_dict() if result is not None else {"detail": error}
        return JSONResponse(body, status_code=status, headers=SECURITY_HEADERS)
    page = render_clip_page(result, error, status, language, itn)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


@app.get(
    "/clip", response_class=HTMLResponse, dependencies=[Depends(requires_access_view(AccessView.WEBSITE))]
)
def clip_page(request: Request):
    return _clip_answer(request)


@app.post("/clip", dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])
async def check_clip(request: Request):
    """The body is read only after the login check, and never past ``clip_check.MAX_BODY_BYTES``."""
    from sensevoice_pipeline.provider.hooks import SenseVoiceTritonHook

    limited = Request(request.scope, clip_check.limit_body(request.receive))
    language, itn = "auto", True
    try:
        if int(request.headers.get("content-length") or 0) > clip_check.MAX_BODY_BYTES:
            raise clip_check.UploadTooLarge()
        form = await limited.form(max_files=1, max_fields=4)
        try:
            language = clip_check.parse_language(form.get("language"))
            itn = clip_check.parse_itn(form.get("itn"))
            upload = form.get("clip")
            if upload is None or isinstance(upload, str):
                raise clip_check.ClipRefused("no clip: the form needs a file in the field `clip`")
            data = await upload.read(clip_check.MAX_UPLOAD_BYTES + 1)
            settings = Settings.from_env()  # the daily job's segmenting, so a clip is cut as its calls are
            result = await clip_check.check_clip(
                data,
                upload.filename,
                language,
                itn,
                url=SenseVoiceTritonHook().get_url,
                max_segment_s=settings.max_segment_s,
                merge_segment_s=settings.merge_segment_s,
                redact=settings.redact,  # shown as the daily job would store it (SVP_REDACT)
            )
        finally:
            await form.close()
    except StarletteHTTPException as exc:  # a malformed multipart body (400)
        return _clip_answer(request, exc.status_code, error=str(exc.detail), language=language, itn=itn)
    except clip_check.UploadTooLarge as exc:
        await clip_check.drain(request.receive)  # the client gets this answer, not a reset connection
        return _clip_answer(request, http_status(exc), error=str(exc), language=language, itn=itn)
    except SvpError as exc:
        return _clip_answer(
            request, http_status(exc), error=clip_check.message(exc), language=language, itn=itn
        )
    return _clip_answer(request, result=result, language=language, itn=itn)


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
