"""ui/page_text.py: how the page writes a value, and what of the server it never shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sensevoice_pipeline.ui.page_text import display_text, esc, for_viewer, redact


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, ""),
        (True, "yes"),  # a bool is an int too: it must not print as 1
        (False, "no"),
        (0, "0"),
        (1234567, "1,234,567"),
        (1234.56, "1,234.6"),
        (0.04, "0.0"),
        (
            dt.datetime(2026, 3, 14, 12, 0, 5, 999, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-03-14 10:00:05",
        ),
        (dt.datetime(2026, 3, 14, 12, 0, 5), "2026-03-14 12:00:05"),  # naive: taken as it is
        (dt.date(2026, 3, 14), "2026-03-14"),
        (Path("calls/a.wav"), "calls/a.wav"),
    ],
)
def test_display_text(value, shown):
    assert display_text(value) == shown


def test_esc_escapes_markup_and_both_quotes_after_formatting():
    assert (
        esc("<a href=\"x\" title='y'>&</a>")
        == "&lt;a href=&quot;x&quot; title=&#x27;y&#x27;&gt;&amp;&lt;/a&gt;"
    )
    assert esc(12345) == "12,345" and esc(None) == ""


@pytest.mark.parametrize(
    "text, shown",
    [
        ("decode failed: /srv/raw/date=2026-03-14/q/call 7.wav", "decode failed: …/call 7.wav"),
        ("in (/opt/app/model.py) and '/etc/svp/key'", "in (…/model.py) and '…/key'"),
        ("cache /var/cache/svp/ is full", "cache …/ is full"),
        ("a=/a/b/c;b=/d/e", "a=…/c;b=…/e"),
        # not server paths: a relative path, a fraction, a home-relative one, a URL's path, a lone root folder
        (
            "calls/a.wav 1/2 ~/x/y s3://b/k/v http://h/p/q /tmp",
            "calls/a.wav 1/2 ~/x/y s3://b/k/v http://h/p/q /tmp",
        ),
    ],
)
def test_redact_keeps_only_the_last_part_of_an_absolute_path(text, shown):
    assert redact(text) == shown


def test_a_known_root_becomes_its_name_in_any_of_its_spellings(tmp_path, monkeypatch):
    real = tmp_path / "disk" / "lake"
    real.mkdir(parents=True)
    (tmp_path / "lake-link").symlink_to(real)
    text = f"{real}/data/x.parquet, {tmp_path}/lake-link/warehouse.duckdb, {tmp_path}/elsewhere/y.csv"
    assert redact(text, {"lake": tmp_path / "lake-link"}) == (
        "[lake]/data/x.parquet, [lake]/warehouse.duckdb, …/y.csv"
    )
    monkeypatch.chdir(tmp_path / "disk")  # a relative root: its absolute form is what errors name
    assert (
        redact(f"open {real}/x: denied; see lake/x", {"lake": "lake"}) == "open [lake]/x: denied; see lake/x"
    )


def test_for_viewer_hides_server_addresses_and_paths_but_not_times_or_versions():
    error = ConnectionError(
        "cannot reach Triton at 10.0.0.5:8001 (also triton:8001, [fd00::7]:8001, 192.168.1.1) "
        "reading /srv/lake/warehouse.duckdb"
    )
    assert for_viewer(error) == (
        "cannot reach Triton at [server] (also [server], [server], [server]) reading …/warehouse.duckdb"
    )
    kept = "at 2026-03-14 10:15:30 with model 1.2.3 on s3://bucket/raw"
    assert for_viewer(kept) == kept
