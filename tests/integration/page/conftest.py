"""The browser tests' browser: Debian's chromium (scripts/install-system-deps.sh installs it), driven by Playwright,
in a fresh profile under the test's tmp folder. The api-server it browses is tests/integration/conftest.py's."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:  # not a skip: CI runs scripts/install-system-deps.sh (make venv), which installs it
        pytest.fail(
            "no chromium on PATH: run scripts/install-system-deps.sh as root (apt-get install chromium)"
        )
    return path


@pytest.fixture
def browser(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="en-US",
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            context.close()
