"""The SenseVoice page in a real browser: Debian's chromium (``scripts/install-system-deps.sh`` installs it), driven by
Playwright (the ``dev`` extra; no browser download), on the page a real Airflow api-server serves after a login.

Checks what an HTTP test cannot: the page renders with no console error and no Content-Security-Policy violation,
the chart's SVG is visible and drawn in the emotion colours, the "failed files" link jumps to the failed recordings,
a link of the angriest calls opens that call's timeline. A full-page screenshot is saved under the test's tmp folder
(its path is printed: ``pytest -s`` shows it); the timeline's is copied to /tmp/charts/call_timeline.png.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sensevoice_pipeline.warehouse.report import EMOTION_COLORS
from tests.support.fixture_model import expected_text
from tests.support.page import CORRUPT_WAV, EVIL_ERROR
from tests.support.paths import FIXTURE_MODEL_DIR as FIXTURE_DIR

pytestmark = pytest.mark.browser

# Runs before the page's own content (through the DevTools protocol, so the page's CSP does not apply to it): keeps
# every CSP violation the page raises, for the test to read.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample}));
"""


def sign_in_as_viewer(api_server, browser) -> None:
    """The viewer's session cookie for the api-server's host, and the CSP violation recorder on every page."""
    host = api_server.url.split("//", 1)[1].split(":")[0]
    browser.add_cookies(
        [{"name": "_token", "value": api_server.token("svp_viewer"), "domain": host, "path": "/"}]
    )
    browser.add_init_script(RECORD_VIOLATIONS)


def watched_page(browser):
    """The browser's page, and the lists its console messages and uncaught errors are collected in."""
    page = browser.pages[0] if browser.pages else browser.new_page()
    console, errors = [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, console, errors


def _hex(css_color: str) -> str:
    """``rgb(214, 69, 65)`` (a computed style) as ``#d64541``."""
    parts = css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")
    return "#" + "".join(f"{int(float(x)):02x}" for x in parts[:3])


@pytest.mark.airflow
@pytest.mark.triton
def test_page_in_a_real_browser(api_server, browser, tmp_path):
    from playwright.sync_api import expect

    sign_in_as_viewer(api_server, browser)
    page, console, errors = watched_page(browser)
    failed_requests = []
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


CHARTS_DIR = Path("/tmp/charts")  # where the lead looks at the screenshots of the page's charts


@pytest.mark.airflow
@pytest.mark.triton
def test_call_timeline_in_a_real_browser(api_server, browser, tmp_path):
    """From the angriest calls to a call's timeline (issue 31, item 2): a lane per speaker, a bar per segment where
    its times put it and in its emotion's colour; the failed files' link shows the reason; an unknown call a 404
    page that says so. The screenshot is copied to /tmp/charts/call_timeline.png."""
    from playwright.sync_api import expect

    sign_in_as_viewer(api_server, browser)
    page, console, errors = watched_page(browser)
    dashboard = f"{api_server.url}/sensevoice/?from=2026-03-01&to=2026-03-03"
    assert page.goto(dashboard, wait_until="load").status == 200

    with page.expect_navigation(wait_until="load") as navigation:
        page.locator("#angry").get_by_role("link", name="calls/2026-03-01-en.wav").click()
    assert navigation.value.status == 200
    assert page.url == f"{api_server.url}/sensevoice/call?date=2026-03-01&recording=2026-03-01-en"
    svg = page.locator("svg.timeline")
    expect(svg).to_be_visible()
    expect(page.locator("svg.timeline .lane-label")).to_have_text(["agent", "customer"])
    svg_box = svg.bounding_box()
    assert svg_box and svg_box["width"] > 600, svg_box
    # The five segments of the small lake's call: 2.5 s each, 3 s apart (agent 0-8.5 s, customer 9-14.5 s).
    bars = page.locator("svg.timeline rect.seg")
    expect(bars).to_have_count(5)
    boxes = [bars.nth(i).bounding_box() for i in range(5)]
    widths = [b["width"] for b in boxes]
    assert widths[0] > 20 and max(widths) - min(widths) < 0.5, boxes  # equal lengths, equal widths
    starts = [b["x"] for b in boxes]
    assert starts == sorted(starts) and all(
        svg_box["x"] < x < svg_box["x"] + svg_box["width"] for x in starts
    )
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert max(gaps) - min(gaps) < 0.5, gaps  # 3 s apart: the same distance each time
    assert boxes[3]["y"] > boxes[2]["y"]  # the customer's lane is below the agent's
    customer = page.locator("svg.timeline g.lane-row[data-channel='1'] rect.seg")
    assert [_hex(customer.nth(i).evaluate("e => getComputedStyle(e).fill")) for i in range(2)] == [
        EMOTION_COLORS["angry"],
        EMOTION_COLORS["neutral"],
    ]
    expect(customer.first.locator("title")).to_have_text("customer 0:09.0–0:11.5 angry: segment 3")
    expect(page.locator("#metrics")).to_contain_text("customer 0:09.0")
    screenshot = tmp_path / "call-timeline.png"
    page.screenshot(path=str(screenshot), full_page=True)
    CHARTS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, CHARTS_DIR / "call_timeline.png")
    print(f"\nscreenshot: {screenshot} (and {CHARTS_DIR / 'call_timeline.png'})")
    assert page.evaluate("window.__cspViolations") == []

    # A failed file's link: its reason, no timeline.
    page.goto(dashboard, wait_until="load")
    with page.expect_navigation(wait_until="load") as navigation:
        page.locator("#failed a").first.click()
    assert navigation.value.status == 200 and "recording=2026-03-03-bad" in page.url
    expect(page.locator("#timeline-failed")).to_have_text(f"This file failed: {EVIL_ERROR}")
    expect(page.locator("svg")).to_have_count(0)

    # An unknown call and a bad date: the reason on a page, with the form to ask again.
    unknown = page.goto(f"{api_server.url}/sensevoice/call?date=2026-03-01&recording=nope", wait_until="load")
    assert unknown.status == 404
    expect(page.locator("#timeline-error")).to_contain_text("No recording 'nope' on 2026-03-01")
    bad = page.goto(f"{api_server.url}/sensevoice/call?date=2026-02-30&recording=x", wait_until="load")
    assert bad.status == 422
    expect(page.locator("#timeline-error")).to_contain_text("date: not a calendar date")

    # Without a login: the login page for a browser, 401 for anything else (before the parameters are looked at).
    with api_server.client() as c:
        call = "/sensevoice/call?date=2026-03-01&recording=2026-03-01-en"
        assert (
            c.get(call, headers={"Accept": "text/html"}).headers["location"].startswith("/auth/login?next=")
        )
        assert c.get(call, headers={"Accept": "application/json"}).status_code == 401
        assert c.get("/sensevoice/call?date=bad", headers={"Accept": "application/json"}).status_code == 401

    assert page.evaluate("window.__cspViolations") == []
    problems = [
        (t, m) for t, m in console if t in ("error", "warning") and not re.search(r"\b(404|422)\b", m)
    ]
    assert problems == [] and errors == [], (problems, errors)


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

    sign_in_as_viewer(api_server, browser)
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
    sign_in_as_viewer(api_server, browser)
    page, console, errors = watched_page(browser)

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
