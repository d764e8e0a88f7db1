"""The SenseVoice page in a real browser: Debian's chromium (``scripts/install-system-deps.sh`` installs it), driven by
Playwright (the ``dev`` extra; no browser download), on the page a real Airflow api-server serves after a login.

Checks what an HTTP test cannot: the page renders with no console error and no Content-Security-Policy violation,
the chart's SVG is visible and drawn in the emotion colours, the "failed files" link jumps to the failed recordings.
A full-page screenshot is saved under the test's tmp folder (its path is printed: ``pytest -s`` shows it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_pipeline.warehouse.report import EMOTION_COLORS
from tests.support.fixture_model import expected_text
from tests.support.page import CORRUPT_WAV
from tests.support.paths import FIXTURE_MODEL_DIR as FIXTURE_DIR

pytestmark = pytest.mark.browser

# Runs before the page's own content (through the DevTools protocol, so the page's CSP does not apply to it): keeps
# every CSP violation the page raises, for the test to read.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample}));
"""


def _hex(css_color: str) -> str:
    """``rgb(214, 69, 65)`` (a computed style) as ``#d64541``."""
    parts = css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")
    return "#" + "".join(f"{int(float(x)):02x}" for x in parts[:3])


@pytest.mark.airflow
@pytest.mark.triton
def test_page_in_a_real_browser(api_server, browser, tmp_path):
    from playwright.sync_api import expect

    host = api_server.url.split("//", 1)[1].split(":")[0]
    browser.add_cookies(
        [{"name": "_token", "value": api_server.token("svp_viewer"), "domain": host, "path": "/"}]
    )
    browser.add_init_script(RECORD_VIOLATIONS)
    page = browser.pages[0] if browser.pages else browser.new_page()
    console, errors, failed_requests = [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed_requests.append((r.url, r.failure)))

    response = page.goto(f"{api_server.url}/sensevoice/?from=2026-03-01&to=2026-03-03", wait_until="load")
    assert response is not None and response.status == 200, response and response.status
    assert page.url.endswith(
        "/sensevoice/?from=2026-03-01&to=2026-03-03"
    )  # logged in: no detour to the login page
    assert "default-src 'none'" in response.headers["content-security-policy"]

    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 200, box
    expect(page.locator("h1")).to_have_text("SenseVoice speech analytics")
    expect(page.locator("p.summary")).to_contain_text("2026-03-01 – 2026-03-03")

    # The legend's squares are drawn in the shared emotion colours (the computed fill, not just the attribute).
    legend = page.locator("svg.chart text.legend")
    squares = page.locator("svg.chart rect[y='8']")
    assert legend.count() == squares.count() == 5
    for i in range(legend.count()):
        emotion = legend.nth(i).text_content()
        assert _hex(squares.nth(i).evaluate("e => getComputedStyle(e).fill")) == EMOTION_COLORS[emotion], (
            emotion
        )

    # A bar segment is visible (not clipped away): its box lies inside the chart's.
    bar = page.locator("svg.chart rect title", has_text="2026-03-02 language en angry").locator("..")
    bar_box = bar.bounding_box()
    assert bar_box and bar_box["height"] > 10 and box["x"] <= bar_box["x"] <= box["x"] + box["width"]

    # Nothing is wider than the window (a wide table scrolls in its own box), and no cell breaks inside a word.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    date_cell = page.locator("#models td", has_text="2026-03-01 – 2026-03-02")
    lines = "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }"
    assert date_cell.evaluate(lines) == 1

    screenshot = tmp_path / "sensevoice-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"\nscreenshot: {screenshot}")

    # The "2 failed files" link jumps to the failed recordings and their reasons.
    page.get_by_role("link", name="2 failed files").click()
    page.wait_for_function("location.hash === '#failed'")
    expect(page.locator("#failed")).to_be_in_viewport()
    expect(page.locator("#failed td", has_text="decode failed:").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "sensevoice-page-failed.png"))
    print(f"screenshot: {tmp_path / 'sensevoice-page-failed.png'}")

    violations = page.evaluate("window.__cspViolations")
    assert violations == [], violations
    problems = [(t, m) for t, m in console if t in ("error", "warning")]
    assert problems == [], problems
    assert errors == [] and failed_requests == [], (errors, failed_requests)
    assert not list(Path(tmp_path).glob("profile/**/Crashpad/pending/*.dmp"))


def test_the_csp_violation_recorder_works(browser):
    """The check above means something only if the recorder sees violations: on a page whose CSP blocks an image
    (served by the browser itself, no network), it does, and the console reports it as an error too."""
    browser.add_init_script(RECORD_VIOLATIONS)
    page = browser.new_page()
    console = []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.route(
        "http://svp.test/",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
            body='<!doctype html><title>x</title><img src="http://svp.test/blocked.png">',
        ),
    )
    page.goto("http://svp.test/")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__cspViolations")[0]["directive"].startswith("img-src")
    assert any(t == "error" and "Content Security Policy" in m for t, m in console), console


@pytest.mark.airflow
@pytest.mark.triton
def test_page_inside_the_airflow_ui(api_server, browser, tmp_path):
    """Browse → SenseVoice shows the page in Airflow's own frame: the CSP's frame-ancestors lets it, the chart draws."""
    from playwright.sync_api import expect

    host = api_server.url.split("//", 1)[1].split(":")[0]
    browser.add_cookies(
        [{"name": "_token", "value": api_server.token("svp_viewer"), "domain": host, "path": "/"}]
    )
    browser.add_init_script(RECORD_VIOLATIONS)
    page = browser.new_page()
    console = []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.goto(f"{api_server.url}/plugin/sensevoice", wait_until="load")
    frame = page.frame_locator("iframe")
    expect(frame.locator("svg.chart")).to_be_visible(timeout=30_000)
    expect(frame.locator("p.summary")).to_contain_text("model versions 1, 7")
    screenshot = tmp_path / "sensevoice-in-airflow.png"
    page.screenshot(path=str(screenshot))
    print(f"\nscreenshot: {screenshot}")
    inner = next(f for f in page.frames if f.url.startswith(f"{api_server.url}/sensevoice/"))
    assert inner.evaluate("window.__cspViolations") == []
    ours = [
        (t, m)
        for t, m in console
        if t == "error" and ("sensevoice" in m.lower() or "security policy" in m.lower())
    ]
    assert ours == [], ours


@pytest.mark.airflow
@pytest.mark.triton
def test_try_a_clip_in_a_real_browser(api_server, browser, tmp_path):
    """The page's "Try a clip" form, used as an analyst would (no script: a plain multipart POST): choose the fixture
    clip, a hint and ITN, press Transcribe; the answer page shows the serving model's exact raw text and its
    renderings, with no console error and no CSP violation."""
    from playwright.sync_api import expect

    from sensevoice_pipeline.speech.tags import render_emoji, render_plain

    expected = expected_text("en_refund_angry", "en", True)
    host = api_server.url.split("//", 1)[1].split(":")[0]
    browser.add_cookies(
        [{"name": "_token", "value": api_server.token("svp_viewer"), "domain": host, "path": "/"}]
    )
    browser.add_init_script(RECORD_VIOLATIONS)
    page = browser.pages[0] if browser.pages else browser.new_page()
    console, errors = [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))

    assert page.goto(f"{api_server.url}/sensevoice/", wait_until="load").status == 200
    assert page.evaluate("window.__cspViolations") == []
    form = page.locator("#clip form")
    form.locator("input[name=clip]").set_input_files(str(FIXTURE_DIR / "clips" / "en_refund_angry.wav"))
    form.locator("select[name=language]").select_option("en")
    form.locator("select[name=itn]").select_option("on")
    with page.expect_navigation(wait_until="load") as navigation:
        form.get_by_role("button", name="Transcribe").click()
    assert navigation.value.status == 200 and page.url == f"{api_server.url}/sensevoice/clip"

    expect(page.locator("#clip-raw")).to_have_text(expected)
    expect(page.locator("#clip-plain")).to_have_text(render_plain(expected))
    expect(page.locator("#clip-emoji")).to_have_text(render_emoji(expected))
    expect(page.locator("#clip-result")).to_contain_text("sensevoice version 1")
    expect(page.locator("#clip select[name=language]")).to_have_value(
        "en"
    )  # the choices stay for the next clip
    screenshot = tmp_path / "sensevoice-try-a-clip.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"\nscreenshot: {screenshot}")

    # A file the decoder cannot read: the same page says why, with the form to try again.
    broken = tmp_path / "broken.wav"
    broken.write_bytes(CORRUPT_WAV)
    page.locator("#clip input[name=clip]").set_input_files(str(broken))
    with page.expect_navigation(wait_until="load") as navigation:
        page.locator("#clip").get_by_role("button", name="Transcribe").click()
    assert navigation.value.status == 422
    expect(page.locator("#clip-error")).to_contain_text(
        "cannot decode broken.wav: Error in WAV/W64/RF64 file."
    )

    assert page.evaluate("window.__cspViolations") == []
    problems = [(t, m) for t, m in console if t in ("error", "warning") and "422" not in m]
    assert problems == [] and errors == [], (problems, errors)
