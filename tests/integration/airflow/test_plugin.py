"""The SenseVoice Airflow plugin in a real Airflow api-server over the small lake of tests/support/page.py: login,
validation, the page's values, the status of each kind of failure, and "Try a clip" against the fixture model's
Triton. The page's data and HTML alone: tests/integration/page/test_page_data.py; in a real browser:
tests/integration/page/test_page_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.fixture_model import expected_text
from tests.support.page import CORRUPT_WAV, assert_no_server_paths, esc
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.paths import ROOT as PROJECT_ROOT

pytestmark = pytest.mark.airflow

FIXTURE_DIR = FIXTURE_MODEL_DIR


# -- the plugin in a real api-server (tests/integration/conftest.py: api_server) ---------------------------------------


@pytest.mark.triton
def test_plugin_is_loaded(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        plugins = c.get("/api/v2/plugins").json()["plugins"]
        errors = c.get("/api/v2/plugins/importErrors").json()
    ours = [p for p in plugins if p["name"] == "sensevoice"]
    assert ours, plugins
    assert [a["url_prefix"] for a in ours[0]["fastapi_apps"]] == ["/sensevoice"]
    assert [(v["href"], v["url_route"], v["destination"]) for v in ours[0]["external_views"]] == [
        ("/sensevoice/", "sensevoice", "nav")
    ]
    assert errors["total_entries"] == 0, errors


@pytest.mark.triton
def test_page_needs_a_login(api_server):
    with api_server.client() as c:
        assert c.get("/sensevoice/", headers={"Accept": "application/json"}).status_code == 401
        browser = c.get("/sensevoice/?by=channel", headers={"Accept": "text/html"})
        assert browser.status_code == 307
        assert browser.headers["location"] == "/auth/login?next=%2Fsensevoice%2F%3Fby%3Dchannel"
        assert c.get("/sensevoice/", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
        # Validation never runs before the login check: nothing is said to a caller without one.
        assert c.get("/sensevoice/", params={"by": "evil"}).status_code == 401
        assert c.post("/auth/token", json={"username": "svp_admin", "password": "wrong"}).status_code == 401


@pytest.mark.triton
def test_page_with_a_login_shows_the_lake(api_server):
    token = api_server.token("svp_viewer")  # the weakest role is enough
    with api_server.client(cookies={"_token": token}) as c:  # the cookie the Airflow UI's login sets
        r = c.get("/sensevoice/", params={"from": "2026-03-01", "to": "2026-03-03"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert page.count("<svg") == 1 and "<script" not in page.lower()
    for text in (
        "language en — 9 utterances",
        "2026-03-02 language en angry: 2 utterances (66.7%)",
        "scheduled__2026-03-02T00:00:00+00:00",
        "iic/SenseVoiceSmall",
        "not in this repository",
    ):
        assert esc(text) in page, text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert '<a href="#failed">2 failed files</a>' in page and "model versions <b>1, 7</b>" in page
    served = [
        Path(p) for p in json.loads((api_server.home / "paths.json").read_text())
    ]  # the lake, the models
    assert_no_server_paths(page, api_server.home, *served)


@pytest.mark.triton
def test_page_by_channel_with_a_bearer_token(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        r = c.get("/sensevoice/", params={"from": "2026-03-01", "to": "2026-03-01", "by": "channel"})
        default = c.get("/sensevoice/")
    assert r.status_code == 200 and "channel 0 — 5 utterances" in r.text
    assert default.status_code == 200 and 'name="to" value="2026-03-03"' in default.text


@pytest.mark.triton
def test_page_filters_the_trend_on_emotion_confidence(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        r = c.get("/sensevoice/", params={"min_confidence": "0.8"})
    assert r.status_code == 200 and "emotion confidence ≥ 0.8</h2>" in r.text
    assert '<option value="0.8" selected>' in r.text


@pytest.mark.triton
@pytest.mark.parametrize(
    "params",
    [
        {"to": "2026-01-01'; DROP TABLE x;--"},
        {"from": "2026-02-30"},
        {"from": "03/01/2026"},
        {"by": "language) UNION SELECT 1--"},
        {"by": "emotion"},
        {"from": "2026-03-03", "to": "2026-03-01"},
        {"min_confidence": "0.85"},
        {"min_confidence": "1; DROP"},
    ],
)
def test_bad_parameters_give_422(api_server, params):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        r = c.get("/sensevoice/", params=params)
        assert r.status_code == 422, r.text
        assert c.get("/sensevoice/", params={"from": "2026-03-01"}).status_code == 200  # the lake is intact


# The page's own function in a fresh process, past the login (a dependency FastAPI runs, not the function): what a
# logged-in request gets when the server's settings cannot work.
PAGE_WITH_BAD_SETTINGS = textwrap.dedent("""
    import importlib.util, json, sys
    from fastapi import HTTPException
    spec = importlib.util.spec_from_file_location("sensevoice_plugin", sys.argv[1])
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    try:
        plugin.page(None, None, "language")
        print(json.dumps({"status": 200}))
    except HTTPException as exc:
        print(json.dumps({"status": exc.status_code, "detail": exc.detail}))
""")


def test_settings_that_cannot_work_answer_503_with_their_message(tmp_path):
    """SVP_LANGUAGE=xx is the server's fault, not the request's: 503 (errors.http_status) with the setting's own
    message, not a bare 500."""
    pytest.importorskip("airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SVP_")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow-home"), SVP_LANGUAGE="xx", SVP_LAKE_ROOT=str(tmp_path / "lake")
    )
    plugin = PROJECT_ROOT / "plugins" / "sensevoice_plugin.py"
    out = subprocess.run(
        [sys.executable, "-c", PAGE_WITH_BAD_SETTINGS, str(plugin)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503, answer
    assert answer["detail"].startswith(
        "the server's settings cannot work: SVP_LANGUAGE: unknown default language 'xx'"
    ), answer


# -- try a clip: the upload form, over HTTP against the real api-server and the fixture model's Triton ---------------


def post_clip(client, name: str, data: bytes, language: str = "auto", itn: str = "on", **kwargs):
    return client.post(
        "/sensevoice/clip",
        files={"clip": (name, data, "audio/wav")},
        data={"language": language, "itn": itn},
        **kwargs,
    )


@pytest.mark.triton
def test_clip_needs_a_login(api_server):
    data = (FIXTURE_DIR / "clips" / "en_refund_angry.wav").read_bytes()
    with api_server.client() as c:
        assert post_clip(c, "a.wav", data, headers={"Accept": "application/json"}).status_code == 401
        assert post_clip(c, "a.wav", data, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
        browser = c.get(
            "/sensevoice/clip", headers={"Accept": "text/html"}
        )  # the login comes back to the form
        assert browser.status_code == 307
        assert browser.headers["location"] == "/auth/login?next=%2Fsensevoice%2Fclip"
        # Nothing about the upload is said before the login check (an unsupported file is not judged).
        assert post_clip(c, "a.txt", b"x", headers={"Accept": "application/json"}).status_code == 401


@pytest.mark.triton
@pytest.mark.parametrize(
    "clip, language, use_itn",
    [
        ("clips/en_refund_angry.wav", "en", True),
        ("clips/zh_refund_angry.wav", "auto", False),
    ],
)
def test_clip_is_transcribed_by_the_serving_triton(api_server, clip, language, use_itn):
    from sensevoice_pipeline.speech.tags import render_emoji, render_plain

    expected = expected_text(Path(clip).stem, language, use_itn)
    data = (FIXTURE_DIR / clip).read_bytes()
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_viewer')}"}) as c:
        r = post_clip(
            c,
            Path(clip).name,
            data,
            language,
            "on" if use_itn else "off",
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["raw"] == expected
        assert (answer["plain"], answer["emoji"]) == (render_plain(expected), render_emoji(expected))
        assert (answer["language"], answer["use_itn"], answer["name"]) == (language, use_itn, Path(clip).name)
        assert answer["model_name"] == "sensevoice" and answer["model_version"] == "1"
        assert len(answer["segments"]) == 1 and answer["segments"][0]["start_s"] == 0.0
        page = post_clip(
            c, Path(clip).name, data, language, "on" if use_itn else "off"
        )  # what a browser gets
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert f'<code id="clip-raw">{esc(expected)}</code>' in page.text
    assert f'<dd id="clip-emoji">{esc(render_emoji(expected))}</dd>' in page.text
    assert f'<option value="{language}" selected>' in page.text and "<script" not in page.text.lower()


@pytest.mark.triton
def test_clip_form_is_on_the_page(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_viewer')}"}) as c:
        page = c.get("/sensevoice/").text
        empty = c.get("/sensevoice/clip")
    assert '<form method="post" action="clip" enctype="multipart/form-data" class="clip">' in page
    assert '<input type="file" name="clip"' in page and '<select name="itn">' in page
    assert empty.status_code == 200 and 'action="clip"' in empty.text and "clip-result" not in empty.text


@pytest.mark.triton
def test_clip_refuses_bad_uploads_with_a_reason(api_server, tmp_path):
    from sensevoice_pipeline.speech.audio import load_16k

    (tmp_path / "broken.wav").write_bytes(CORRUPT_WAV)
    with pytest.raises(ValueError) as decoder:  # what the decoder says about this file, in the daily job too
        load_16k(tmp_path / "broken.wav", False)
    good = (FIXTURE_DIR / "clips" / "en_refund_angry.wav").read_bytes()
    json_only = {"Accept": "application/json"}
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_viewer')}"}) as c:
        wrong_type = post_clip(c, "notes.txt", b"hello", headers=json_only)
        assert wrong_type.status_code == 415, wrong_type.text
        assert wrong_type.json()["detail"].startswith(
            "unsupported format '.txt' (notes.txt); supported formats: wav"
        )
        too_big = post_clip(c, "big.wav", good + bytes(21 * 1024 * 1024), headers=json_only)
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["detail"] == "the upload is larger than the limit of 20 MB"
        # Sent in chunks with no Content-Length: counted while it arrives, refused once past the limit.
        head = (
            b'--svp\r\nContent-Disposition: form-data; name="clip"; filename="big.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n"
        )
        chunks = (part for part in [head, good, *[bytes(1024 * 1024)] * 21, b"\r\n--svp--\r\n"])
        streamed = c.post(
            "/sensevoice/clip",
            content=chunks,
            headers={**json_only, "Content-Type": "multipart/form-data; boundary=svp"},
        )
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413 and streamed.json()["detail"] == too_big.json()["detail"]
        corrupt = post_clip(c, "broken.wav", CORRUPT_WAV, headers=json_only)
        assert corrupt.status_code == 422, corrupt.text
        assert corrupt.json()["detail"] == str(decoder.value)
        assert "Short 'fmt ' chunk" in str(decoder.value)
        shown = post_clip(c, "broken.wav", CORRUPT_WAV)  # the browser's page says it too
        assert (
            shown.status_code == 422
            and esc(str(decoder.value)) in shown.text
            and 'id="clip-error"' in shown.text
        )
        bad_hint = post_clip(c, "a.wav", good, language="fr", headers=json_only)
        assert (
            bad_hint.status_code == 422
            and "language: expected one of auto, zh, en" in bad_hint.json()["detail"]
        )
        no_file = c.post("/sensevoice/clip", data={"language": "en"}, headers=json_only)
        assert no_file.status_code == 422 and "no clip" in no_file.json()["detail"]
        assert post_clip(c, "a.wav", good, "en", headers=json_only).status_code == 200  # the server is fine
