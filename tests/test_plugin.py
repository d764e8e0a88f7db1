"""The SenseVoice Airflow page: dashboard data and HTML over a small real lake (Parquet + DuckDB), then the plugin in a
real Airflow api-server (login, validation, the page's values)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sensevoice_pipeline.ui import dashboard
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.warehouse.database import Warehouse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc
DATES = ("2026-03-01", "2026-03-02", "2026-03-03")
EVIL_ERROR = "decode failed: <script>alert('x')</script> & more"
EVIL_PATH = "calls/<b>bad</b>&co.mp3"


def _utterance(date, rec, channel, index, language, emotion, run_id, version="1"):
    start = float(index * 3)
    return {"recording_id": rec, "source_path": f"calls/{rec}.wav", "channel": channel, "segment_index": index,
            "start_s": start, "end_s": start + 2.5, "language": language, "language_hint": "auto",
            "emotion": emotion, "event": "speech", "itn": True, "text": f"segment {index}",
            "raw_text": f"<|{language}|><|{emotion.upper()}|><|Speech|><|withitn|>segment {index}",
            "model_name": "sensevoice", "model_version": version, "run_id": run_id,
            "processed_at": dt.datetime.fromisoformat(f"{date}T01:00:00+00:00")}


def _recording(date, rec, run_id, status="ok", error=None, path=None, n=0):
    return {"recording_id": rec, "source_path": path or f"calls/{rec}.wav", "size_bytes": 48000, "sha256": "0" * 64,
            "format": "WAV" if status == "ok" else None, "sample_rate": 16000, "channels": 2, "duration_s": 12.0,
            "status": status, "error": error, "n_segments": n, "language_hint": "auto", "channel_mode": "split",
            "model_version": "1" if status == "ok" else None, "run_id": run_id,
            "processed_at": dt.datetime.fromisoformat(f"{date}T01:00:00+00:00"), "metadata": []}


def build_lake(lake: Path) -> dict:
    """Three days of two calls each (en and zh, two channels), one failed file a day from the second day on;
    the third day was transcribed by model version 7, which the test repository does not hold."""
    plan = {  # per date: (language, channel) -> emotions of its segments
        DATES[0]: {("en", 0): ["neutral", "neutral", "happy"], ("en", 1): ["angry", "neutral"],
                   ("zh", 0): ["neutral", "sad"]},
        DATES[1]: {("en", 0): ["neutral", "angry", "angry"], ("zh", 1): ["happy", "happy", "neutral", "sad"]},
        DATES[2]: {("en", 1): ["neutral"], ("zh", 0): ["neutral", "surprised"]},
    }
    for d, (date, groups) in enumerate(plan.items()):
        run_id = f"scheduled__{date}T00:00:00+00:00"
        version = "7" if date == DATES[2] else "1"
        utterances, recordings = [], []
        for language in ("en", "zh"):
            rec = f"{date}-{language}"
            segs = [(ch, e) for (lang, ch), emos in groups.items() if lang == language for e in emos]
            utterances += [_utterance(date, rec, ch, i, language, e, run_id, version) for i, (ch, e) in enumerate(segs)]
            recordings.append(_recording(date, rec, run_id, n=len(segs)))
        if d >= 1:
            recordings.append(_recording(date, f"{date}-bad", run_id, "failed", EVIL_ERROR, EVIL_PATH))
        utt = tables.to_table(utterances, tables.UTTERANCES)
        started = dt.datetime.fromisoformat(f"{date}T01:00:00+00:00") + dt.timedelta(days=1)
        run = {"run_id": run_id, "started_at": started, "finished_at": started + dt.timedelta(seconds=42),
               "files": len(recordings), "files_ok": 2, "files_failed": len(recordings) - 2,
               "utterances": len(utterances), "speech_seconds": 2.5 * len(utterances), "model_versions": version}
        Lake(lake).commit_day(date, {"utterances": utt, "recordings": tables.to_table(recordings, tables.RECORDINGS),
                                     "emotion_daily": tables.emotion_rollup(utt),
                                     "runs": tables.to_table([run], tables.RUNS)})
    Warehouse(lake).refresh()
    return plan


def build_model_repository(root: Path) -> Path:
    """Version 1 complete (with an export_meta.json like `svp export` writes), version 2 missing its encoder."""
    for model, files in (("sensevoice", ("model.py", "frontend.json", "am.mvn")),
                         ("sensevoice_encoder", ("model.onnx", "model.py"))):
        (root / model).mkdir(parents=True)
        (root / model / "config.pbtxt").write_text("")
        (root / model / "1").mkdir()
        for f in files:
            (root / model / "1" / f).write_text("")
    meta = {"version": 1, "precision": "int8", "target_device": "cpu", "exporter": "legacy", "opset": 17,
            "architecture": {"parameters": 234_000_000}, "source": {"model": "iic/SenseVoiceSmall"},
            "exported_at": "2026-02-27T10:00:00+00:00",
            "parity": {"max_abs": 0.01, "min_cosine": 0.991, "argmax_agreement": 0.985, "passed": True}}
    (root / "sensevoice" / "1" / "export_meta.json").write_text(json.dumps(meta))
    (root / "sensevoice" / "2").mkdir()
    (root / "sensevoice" / "2" / "export_meta.json").write_text(json.dumps({"version": 2, "precision": "fp16"}))
    return root


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    build_lake(root)
    return root


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory) -> Path:
    return build_model_repository(tmp_path_factory.mktemp("models") / "model_repository")


def load(lake, model_repo, **params):
    return dashboard.load_dashboard(Warehouse(lake), model_repo, dashboard.Params.parse(**params))


# -- parameters --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"date_to": "2026-01-01'; DROP TABLE x;--"}, {"date_from": "2026-13-01"}, {"date_from": "2026-02-30"},
    {"date_from": "20260301"}, {"date_from": "2026-03-01\n"}, {"date_from": "２０２６-03-01"},
    {"date_from": "2026-03-02", "date_to": "2026-03-01"}, {"date_from": "2020-01-01", "date_to": "2026-01-01"},
    {"by": "language; DROP TABLE runs"}, {"by": "emotion"},
])
def test_params_refuse_bad_values(kwargs):
    with pytest.raises(dashboard.DashboardParamError):
        dashboard.Params.parse(**kwargs)


def test_params_accept_dates_and_groupings():
    assert dashboard.Params.parse("2026-03-01", "2026-03-03", "channel") == dashboard.Params(
        dt.date(2026, 3, 1), dt.date(2026, 3, 3), "channel")
    assert dashboard.Params.parse("", None) == dashboard.Params(None, None, "language")


# -- data and HTML over a real lake ----------------------------------------------------------------------------------


def test_default_range_ends_on_the_latest_published_day(lake, model_repo):
    board = load(lake, model_repo)
    assert (board.date_from, board.date_to) == (dt.date(2026, 2, 2), dt.date(2026, 3, 3))
    assert board.notes == []
    only_from = load(lake, model_repo, date_from="2026-04-01")  # after the lake's last day: an empty range
    assert (only_from.date_from, only_from.date_to) == (dt.date(2026, 4, 1), dt.date(2026, 4, 1))


def test_a_one_day_lake_answers_the_page_and_every_canned_query(tmp_path, model_repo):
    """DuckDB 1.5.5 raised an internal error for max() of a hive partition column when the scan held one file (the
    demo's one-day lake answered 500). The catalog's tables carry the date as a real column: no such scan."""
    from sensevoice_pipeline.warehouse.database import QUERIES

    lake = tmp_path / "lake"
    utt = tables.to_table([_utterance(DATES[0], "r", 0, 0, "en", "angry", "one")], tables.UTTERANCES)
    Lake(lake).commit_day(DATES[0], {"utterances": utt, "emotion_daily": tables.emotion_rollup(utt),
                                     "recordings": tables.to_table([_recording(DATES[0], "r", "one", n=1)],
                                                                   tables.RECORDINGS),
                                     "runs": tables.to_table([{"run_id": "one", "files": 1}], tables.RUNS)})
    Warehouse(lake).refresh()
    board = load(lake, model_repo)
    assert board.date_to == dt.date.fromisoformat(DATES[0]) and board.notes == []
    for name in QUERIES:
        assert Warehouse(lake).query(name).num_rows == 1, name


def test_dashboard_data(lake, model_repo):
    board = load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03")
    trend = {(str(r["date"]), r["language"], r["emotion"]): r["utterances"] for r in board.trend}
    assert trend[("2026-03-01", "en", "neutral")] == 3 and trend[("2026-03-02", "en", "angry")] == 2
    assert sum(trend.values()) == 17
    assert [r["date"] for r in board.runs] == [dt.date(2026, 3, 3), dt.date(2026, 3, 2), dt.date(2026, 3, 1)]
    assert [r["files_failed"] for r in board.runs] == [1, 1, 0]
    assert board.failed_total == 2 and {r["error"] for r in board.failed} == {EVIL_ERROR}
    models = {m.version: m for m in board.models}
    assert models["1"].status == "complete" and models["1"].utterances == 14 and models["1"].precision == "int8"
    assert models["2"].status.startswith("incomplete") and models["2"].utterances is None
    assert models["7"].status == "not in this repository" and models["7"].utterances == 3
    by_channel = load(lake, model_repo, date_from="2026-03-02", date_to="2026-03-02", by="channel")
    assert {(r["channel"], r["emotion"]): r["utterances"] for r in by_channel.trend} == {
        (0, "angry"): 2, (0, "neutral"): 1, (1, "happy"): 2, (1, "neutral"): 1, (1, "sad"): 1}


def test_render_page_escapes_and_shows_every_section(lake, model_repo):
    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    assert page.count("<svg") == 1 and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "calls/&lt;b&gt;bad&lt;/b&gt;&amp;co.mp3" in page
    for text in ("Daily emotion trend by language", "language en — 9 utterances", "language zh — 8 utterances",
                 "2026-03-02 language en angry: 2 utterances (66.7%)", "scheduled__2026-03-03T00:00:00+00:00",
                 "2026-03-04 01:00:42", "42 s", "iic/SenseVoiceSmall", "2026-02-27 10:00:00", "234.0 M",
                 "max abs 1.0e-02",
                 "argmax 98.50%", "not in this repository", "incomplete: sensevoice/2/model.py is missing"):
        assert esc(text) in page, text
    assert re.search(r'<input type="date" name="from" value="2026-03-01">', page)
    assert '<option value="language" selected>' in page


def test_render_page_by_channel_and_empty_range(lake, model_repo):
    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-01", by="channel"))
    assert "channel 0 — 5 utterances" in page and "channel 1 — 2 utterances" in page
    empty = dashboard.render_page(load(lake, model_repo, date_from="2025-01-01", date_to="2025-01-31"))
    assert "<svg" not in empty and "No utterances in this date range." in empty
    assert "No runs for dates in this range." in empty and "No failed recordings in this range." in empty


def test_page_without_a_lake_or_a_repository(tmp_path):
    board = dashboard.load_dashboard(Warehouse(tmp_path / "lake"), tmp_path / "nothing", dashboard.Params(),
                                     today=dt.date(2026, 5, 1))
    assert board.date_to == dt.date(2026, 5, 1) and board.trend == board.runs == board.models == []
    page = dashboard.render_page(board)
    assert "No warehouse yet" in page and "No model repository at" in page


def test_serving_file_is_shown_when_present(lake, tmp_path):
    repo = build_model_repository(tmp_path / "repo")
    (repo / "serving.json").write_text(json.dumps({"serving": 1, "previous": None, "staged": 2, "retired": [],
                                                   "note": "<i>pinned</i>", "history": [{"at": "x"}, {"at": "y"}]}))
    board = load(lake, repo, date_from="2026-03-01", date_to="2026-03-03")
    assert {m.version: m.role for m in board.models} == {"1": "serving", "2": "staged", "7": ""}
    page = dashboard.render_page(board)
    for text in ("<dt>serving</dt><dd>1</dd>", "<dt>previous</dt><dd>none</dd>", "<dt>history</dt><dd>(2 entries)</dd>",
                 "&lt;i&gt;pinned&lt;/i&gt;"):
        assert text in page, text
    (repo / "serving.json").write_text("{not json")  # unreadable: the page goes on without it
    assert load(lake, repo).serving is None


# -- emotion colours: one mapping for the PNG charts and the page ------------------------------------------------------

MEANT = {"angry": "red", "happy": "green", "neutral": "grey", "sad": "blue", "fearful": "purple",
         "disgusted": "olive", "surprised": "orange", "unknown": "light grey"}


def _hue(hex_color: str) -> str:
    """A colour name for a hex value, coarse enough to check that each emotion's colour means what it should."""
    import colorsys

    r, g, b = (int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, lightness, sat = colorsys.rgb_to_hls(r, g, b)
    if sat < 0.25 or max(r, g, b) - min(r, g, b) < 0.12:
        return "light grey" if lightness > 0.78 else "grey"
    deg = h * 360
    for name, upto in (("red", 15), ("orange", 40), ("olive", 65), ("green", 160), ("blue", 250), ("purple", 330)):
        if deg < upto:
            return name
    return "red"


def test_emotion_colours_mean_something():
    from sensevoice_pipeline.warehouse.report import EMOTION_COLORS

    assert {e: _hue(c) for e, c in EMOTION_COLORS.items()} == MEANT
    assert len(set(EMOTION_COLORS.values())) == len(EMOTION_COLORS)


def test_png_chart_and_page_use_the_same_emotion_colours(lake, model_repo, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors as mcolors
    import matplotlib.image as mimage
    import matplotlib.pyplot as plt
    import pyarrow as pa

    from sensevoice_pipeline.warehouse.report import EMOTION_COLORS, write_chart

    table = Warehouse(lake).query("emotion-trend", dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    extra = pa.table({"date": [dt.date(2026, 3, 3)] * 3, "emotion": ["fearful", "disgusted", "unknown"],
                      "utterances": [1, 1, 1]})  # the emotions the small lake lacks
    table = pa.concat_tables([table.select(["date", "emotion", "utterances"]), extra])
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))  # keep the figure to read its bars
    png = tmp_path / "trend.png"
    write_chart("emotion-trend", table, png)
    (fig,) = figures
    bars = {c.get_label(): mcolors.to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers}
    assert bars == EMOTION_COLORS  # every emotion, each in its colour (angry red, neutral grey, ...)
    assert list(bars)[:2] == ["neutral", "happy"]  # stacked in the mapping's order: neutral at the bottom
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(bars)[::-1]  # read like the stack
    plt.close(fig)
    # The rendered pixels carry those colours too (each bar's inside is drawn in its exact colour).
    pixels = {mcolors.to_hex(tuple(p[:3])) for p in mimage.imread(png).reshape(-1, 4)}
    assert set(EMOTION_COLORS.values()) <= pixels
    assert "#1f77b4" not in pixels  # matplotlib's first default colour (which made angry blue) is not used

    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    legend = dict((e, c) for c, e in re.findall(r'<rect x="\d+" y="8" width="12" height="12" fill="(#[0-9a-f]{6})"/>'
                                                  r'<text [^>]*class="legend">([^<]+)</text>', page))
    assert legend == {e: EMOTION_COLORS[e] for e in ("neutral", "happy", "sad", "angry", "surprised")}
    for emotion, color in legend.items():  # every bar segment of an emotion has its colour
        fills = set(re.findall(rf'fill="(#[0-9a-f]{{6}})"><title>[^<]* {emotion}: ', page))
        assert fills == {color}, emotion


# -- what the page says it shows; no server paths ----------------------------------------------------------------------


def _no_server_paths(page: str, *paths: Path) -> None:
    for path in paths:
        for form in {str(path), str(path.resolve())}:
            assert form not in page, form
    assert not re.search(r"(?<![\w.:/~-])/(tmp|home|root|var|srv|data|opt|mnt|work)/", page), \
        re.search(r".{60}(?<![\w.:/~-])/(tmp|home|root|var|srv|data|opt|mnt|work)/.{60}", page)


def test_page_says_what_it_shows(lake, model_repo):
    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    summary = re.search(r'<p class="summary">(.*?)</p>', page).group(1)
    assert "Dates <b>2026-03-01 – 2026-03-03</b> (3 days)" in summary
    assert "model versions <b>1, 7</b>" in summary
    assert '<a href="#failed">2 failed files</a>' in summary
    assert '<section id="failed"><h2>Failed recordings (2)</h2>' in page
    one_day = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-01"))
    summary = re.search(r'<p class="summary">(.*?)</p>', one_day).group(1)
    assert "(1 day)" in summary and "model version <b>1</b>" in summary and "0 failed files" in summary
    assert "href" not in summary  # nothing to jump to


def test_chart_y_axis_labels_are_exact_counts(lake, model_repo):
    """The middle grid line is labelled with the count it stands at (a panel of 5 at most once read 0, 2, 5 with the
    2 on the line of 2.5): the top is twice a whole step."""
    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    labels = [int(x) for x in re.findall(r'class="ylab">(\d+)</text>', page)]
    assert labels == [0, 3, 6, 0, 2, 4]  # en: days of 5, 3, 1 utterances; zh: 2, 4, 2
    assert [dashboard._nice_step(p) for p in (0, 1, 5, 21, 617)] == [1, 1, 3, 12, 400]


def test_page_shows_no_server_paths(lake, model_repo, tmp_path):
    page = dashboard.render_page(load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03"))
    _no_server_paths(page, lake, model_repo, lake.parent)
    missing = dashboard.render_page(dashboard.load_dashboard(Warehouse(tmp_path / "lake"), tmp_path / "nothing",
                                                             dashboard.Params(), today=dt.date(2026, 5, 1)))
    assert "No model repository at" in missing
    _no_server_paths(missing, tmp_path)


def test_failure_reasons_lose_their_server_paths(lake, model_repo):
    board = load(lake, model_repo, date_from="2026-03-01", date_to="2026-03-03")
    board.failed[0]["error"] = f"decode failed: {lake}/staging/2026-03-02/calls/x.wav: Format not recognised"
    board.failed[1]["error"] = "fetch failed: /srv/raw/date=2026-03-03/q/call 1.wav (s3://bucket/raw/k.wav)"
    board.notes.append(f"No warehouse yet: {model_repo}/sensevoice is odd")
    page = dashboard.render_page(board)
    _no_server_paths(page, lake, model_repo)
    for text in ("decode failed: [lake]/staging/2026-03-02/calls/x.wav: Format not recognised",
                 "fetch failed: …/call 1.wav (s3://bucket/raw/k.wav)", "[model repository]/sensevoice is odd"):
        assert esc(text) in page, text
    assert dashboard.redact("ratio 1/2, calls/a.wav, http://h/p/q") == "ratio 1/2, calls/a.wav, http://h/p/q"
    from sensevoice_pipeline.lake.storage import ObjectPath

    s3_lake = {"lake": ObjectPath.parse("s3://bucket/lake"), "model repository": model_repo}  # a lake on S3
    assert dashboard.redact(f"{model_repo}/x and s3://bucket/lake/y", s3_lake) == \
        "[model repository]/x and s3://bucket/lake/y"


def esc(text: str) -> str:
    return dashboard.esc(text)


# -- the plugin in a real api-server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, url: str, home: Path, passwords: dict[str, str]):
        self.url, self.home, self.passwords = url, home, passwords

    def client(self, **kwargs):
        import httpx

        return httpx.Client(base_url=self.url, trust_env=False, timeout=30, **kwargs)

    def token(self, user: str) -> str:
        with self.client() as c:
            r = c.post("/auth/token", json={"username": user, "password": self.passwords[user]})
        assert r.status_code == 201, r.text
        return r.json()["access_token"]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, lake, model_repo, fixture_triton):
    """A real api-server with the plugin, over the small lake; its ``sensevoice_triton`` Connection (an
    AIRFLOW_CONN_ variable, as a deployment may set it) names the fixture model's Triton, and $SVP_TRITON_URL, the
    hook's fallback, a dead address: a clip answered right shows that the Connection was used."""
    pytest.importorskip("airflow")
    import httpx

    from sensevoice_pipeline.demo.local_airflow import triton_connection_env

    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    passwords = {"svp_admin": secrets.token_urlsafe(12), "svp_viewer": secrets.token_urlsafe(12)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    (home / "paths.json").write_text(json.dumps([str(lake), str(model_repo)]))  # what the page must not show
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="svp_admin:admin,svp_viewer:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
        SVP_LAKE_ROOT=str(lake),
        SVP_MODEL_REPOSITORY=str(model_repo),
        SVP_TRITON_URL=f"127.0.0.1:{_free_port()}",  # nobody listens: only the Connection leads to Triton
        **triton_connection_env(fixture_triton.grpc_url),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("SVP_WAREHOUSE", None)
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]
    port = _free_port()
    log_path = home / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api-server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not ready after 180 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield ApiServer(url, home, passwords)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:  # workers left behind by the server, if any
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def test_plugin_is_loaded(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        plugins = c.get("/api/v2/plugins").json()["plugins"]
        errors = c.get("/api/v2/plugins/importErrors").json()
    ours = [p for p in plugins if p["name"] == "sensevoice"]
    assert ours, plugins
    assert [a["url_prefix"] for a in ours[0]["fastapi_apps"]] == ["/sensevoice"]
    assert [(v["href"], v["url_route"], v["destination"]) for v in ours[0]["external_views"]] == [
        ("/sensevoice/", "sensevoice", "nav")]
    assert errors["total_entries"] == 0, errors


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


def test_page_with_a_login_shows_the_lake(api_server):
    token = api_server.token("svp_viewer")  # the weakest role is enough
    with api_server.client(cookies={"_token": token}) as c:  # the cookie the Airflow UI's login sets
        r = c.get("/sensevoice/", params={"from": "2026-03-01", "to": "2026-03-03"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert page.count("<svg") == 1 and "<script" not in page.lower()
    for text in ("language en — 9 utterances", "2026-03-02 language en angry: 2 utterances (66.7%)",
                 "scheduled__2026-03-02T00:00:00+00:00", "iic/SenseVoiceSmall", "not in this repository"):
        assert esc(text) in page, text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert '<a href="#failed">2 failed files</a>' in page and "model versions <b>1, 7</b>" in page
    served = [Path(p) for p in json.loads((api_server.home / "paths.json").read_text())]  # the lake, the models
    _no_server_paths(page, api_server.home, *served)


def test_page_by_channel_with_a_bearer_token(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        r = c.get("/sensevoice/", params={"from": "2026-03-01", "to": "2026-03-01", "by": "channel"})
        default = c.get("/sensevoice/")
    assert r.status_code == 200 and "channel 0 — 5 utterances" in r.text
    assert default.status_code == 200 and 'name="to" value="2026-03-03"' in default.text


@pytest.mark.parametrize("params", [
    {"to": "2026-01-01'; DROP TABLE x;--"}, {"from": "2026-02-30"}, {"from": "03/01/2026"},
    {"by": "language) UNION SELECT 1--"}, {"by": "emotion"}, {"from": "2026-03-03", "to": "2026-03-01"},
])
def test_bad_parameters_give_422(api_server, params):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_admin')}"}) as c:
        r = c.get("/sensevoice/", params=params)
        assert r.status_code == 422, r.text
        assert c.get("/sensevoice/", params={"from": "2026-03-01"}).status_code == 200  # the lake is intact


# -- try a clip: the upload form, over HTTP against the real api-server and the fixture model's Triton ---------------

FIXTURE_DIR = PROJECT_ROOT / "export" / "fixture_model"
CORRUPT_WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(7).bytes(2000)  # the sample day's broken upload


def expected_text(clip: str, language: str, use_itn: bool) -> str:
    from tests.conftest import fixture_cases

    (case,) = [c for c in fixture_cases() if (c["clip"], c["language"], c["use_itn"]) == (clip, language, use_itn)]
    return case["text"]


def post_clip(client, name: str, data: bytes, language: str = "auto", itn: str = "on", **kwargs):
    return client.post("/sensevoice/clip", files={"clip": (name, data, "audio/wav")},
                       data={"language": language, "itn": itn}, **kwargs)


def test_clip_needs_a_login(api_server):
    data = (FIXTURE_DIR / "clips" / "en_refund_angry.wav").read_bytes()
    with api_server.client() as c:
        assert post_clip(c, "a.wav", data, headers={"Accept": "application/json"}).status_code == 401
        assert post_clip(c, "a.wav", data, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
        browser = c.get("/sensevoice/clip", headers={"Accept": "text/html"})  # the login comes back to the form
        assert browser.status_code == 307
        assert browser.headers["location"] == "/auth/login?next=%2Fsensevoice%2Fclip"
        # Nothing about the upload is said before the login check (an unsupported file is not judged).
        assert post_clip(c, "a.txt", b"x", headers={"Accept": "application/json"}).status_code == 401


@pytest.mark.parametrize("clip, language, use_itn", [
    ("clips/en_refund_angry.wav", "en", True), ("clips/zh_refund_angry.wav", "auto", False),
])
def test_clip_is_transcribed_by_the_serving_triton(api_server, clip, language, use_itn):
    from sensevoice_pipeline.speech.tags import render_emoji, render_plain

    expected = expected_text(clip, language, use_itn)
    data = (FIXTURE_DIR / clip).read_bytes()
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_viewer')}"}) as c:
        r = post_clip(c, Path(clip).name, data, language, "on" if use_itn else "off",
                      headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["raw"] == expected
        assert (answer["plain"], answer["emoji"]) == (render_plain(expected), render_emoji(expected))
        assert (answer["language"], answer["use_itn"], answer["name"]) == (language, use_itn, Path(clip).name)
        assert answer["model_name"] == "sensevoice" and answer["model_version"] == "1"
        assert len(answer["segments"]) == 1 and answer["segments"][0]["start_s"] == 0.0
        page = post_clip(c, Path(clip).name, data, language, "on" if use_itn else "off")  # what a browser gets
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert f'<code id="clip-raw">{esc(expected)}</code>' in page.text
    assert f'<dd id="clip-emoji">{esc(render_emoji(expected))}</dd>' in page.text
    assert f'<option value="{language}" selected>' in page.text and "<script" not in page.text.lower()


def test_clip_form_is_on_the_page(api_server):
    with api_server.client(headers={"Authorization": f"Bearer {api_server.token('svp_viewer')}"}) as c:
        page = c.get("/sensevoice/").text
        empty = c.get("/sensevoice/clip")
    assert '<form method="post" action="clip" enctype="multipart/form-data" class="clip">' in page
    assert '<input type="file" name="clip"' in page and '<select name="itn">' in page
    assert empty.status_code == 200 and 'action="clip"' in empty.text and "clip-result" not in empty.text


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
        assert wrong_type.json()["detail"].startswith("unsupported format '.txt' (notes.txt); supported formats: wav")
        too_big = post_clip(c, "big.wav", good + bytes(21 * 1024 * 1024), headers=json_only)
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["detail"] == "the upload is larger than the limit of 20 MB"
        # Sent in chunks with no Content-Length: counted while it arrives, refused once past the limit.
        head = (b'--svp\r\nContent-Disposition: form-data; name="clip"; filename="big.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n")
        chunks = (part for part in [head, good, *[bytes(1024 * 1024)] * 21, b"\r\n--svp--\r\n"])
        streamed = c.post("/sensevoice/clip", content=chunks,
                          headers={**json_only, "Content-Type": "multipart/form-data; boundary=svp"})
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413 and streamed.json()["detail"] == too_big.json()["detail"]
        corrupt = post_clip(c, "broken.wav", CORRUPT_WAV, headers=json_only)
        assert corrupt.status_code == 422, corrupt.text
        assert corrupt.json()["detail"] == str(decoder.value)
        assert "Short 'fmt ' chunk" in str(decoder.value)
        shown = post_clip(c, "broken.wav", CORRUPT_WAV)  # the browser's page says it too
        assert shown.status_code == 422 and esc(str(decoder.value)) in shown.text and 'id="clip-error"' in shown.text
        bad_hint = post_clip(c, "a.wav", good, language="fr", headers=json_only)
        assert bad_hint.status_code == 422 and "language: expected one of auto, zh, en" in bad_hint.json()["detail"]
        no_file = c.post("/sensevoice/clip", data={"language": "en"}, headers=json_only)
        assert no_file.status_code == 422 and "no clip" in no_file.json()["detail"]
        assert post_clip(c, "a.wav", good, "en", headers=json_only).status_code == 200  # the server is fine


def test_clip_checks_fail_clearly_when_triton_is_down(tmp_path):
    """A serving fault is never blamed on the clip: the page answers 503 with the reason."""
    import asyncio

    from sensevoice_pipeline.ui import clip as clip_check
    from sensevoice_pipeline.errors import ServingError

    data = (FIXTURE_DIR / "clips" / "en_refund_angry.wav").read_bytes()
    url = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ServingError) as exc:
        asyncio.run(clip_check.check_clip(data, "a.wav", "en", True, url=url))
    assert clip_check.http_status(exc.value) == 503
    assert clip_check.message(exc.value).startswith(f"the transcription service failed, not the clip: cannot reach "
                                                    f"Triton at {url}")


def test_a_long_clip_is_cut_like_the_daily_job(fixture_triton):
    """Over 30 s: the daily job's VAD segments (vad.segment_for_asr), each one request, decoded from FLAC bytes."""
    import asyncio
    import io

    import soundfile as sf

    from sensevoice_pipeline.ui import clip as clip_check
    from sensevoice_pipeline.demo.run import sample_day
    from sensevoice_pipeline.speech.vad import segment_for_asr

    speech = sample_day._long_speech(repeats=1)
    buf = io.BytesIO()
    sf.write(buf, speech, 16000, format="FLAC")
    result = asyncio.run(clip_check.check_clip(buf.getvalue(), "call.flac", "auto", True, url=fixture_triton.grpc_url))
    assert result.duration_s > 30 and result.segmented
    _, decoded = clip_check.decode_in_memory(buf.getvalue(), "call.flac")
    bounds = [(round(s.start_s, 3), round(s.end_s, 3)) for s in segment_for_asr(decoded)]
    assert len(bounds) > 1 and [(s.start_s, s.end_s) for s in result.segments] == bounds
    assert all(s.raw.startswith("<|") and s.end_s - s.start_s <= 30 for s in result.segments)
    assert result.raw == "".join(s.raw for s in result.segments)
