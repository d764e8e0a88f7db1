"""Alerts (issue 32, item 3) under a real `airflow dags test`, delivered to real servers on loopback: an SMTP server
(aiosmtpd) and an HTTP server, reached through Airflow Connections by the SMTP and HTTP providers' own notifiers.

- sensevoice_alerts on a lake of ten ordinary days and a day whose English calls turn angry: exactly one e-mail and
  one webhook naming the figure, the day and the baseline; an ordinary day: nothing.
- a day whose audio never arrives: the partition sensor's timeout callback (the one sensevoice_daily's sensor has:
  test_dags.py checks it is wired) sends exactly one of each.

The band arithmetic on constructed histories: tests/unit/warehouse/test_alerts.py."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import threading
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from sensevoice_pipeline.demo.local_airflow import AirflowRunError, LocalAirflow
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.warehouse.database import Warehouse
from tests.support.airflow import free_port
from tests.support.page import recording_row, utterance_row

pytestmark = pytest.mark.airflow

FIRST = dt.date(2026, 5, 1)
DAYS = 11  # ten ordinary days, then the spike
SPIKE = FIRST + dt.timedelta(days=DAYS - 1)


class Mailbox:
    """aiosmtpd handler: every message the server accepted."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 -- http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.path, json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()


def connections(smtp_port: int, http_port: int) -> dict[str, str]:
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": smtp_port,
        "extra": {
            "disable_ssl": True,
            "disable_tls": True,
            "from_email": "svp@example.com",
            "to": "ops@example.com",
        },
    }
    http = {"conn_type": "http", "host": "127.0.0.1", "port": http_port, "schema": "http"}
    return {
        "AIRFLOW_CONN_SENSEVOICE_ALERTS_SMTP": json.dumps(smtp),
        "AIRFLOW_CONN_SENSEVOICE_ALERTS_WEBHOOK": json.dumps(http),
    }


def build_history(lake) -> None:
    """Eleven days of 40 English and 40 Chinese segments over 4 calls (queue billing); 10% of the English ones angry,
    except on the last day: 60%. Queue shares move too, so they are judged; everything else stays put."""
    for k in range(DAYS):
        date = (FIRST + dt.timedelta(days=k)).isoformat()
        run_id = f"run-{date}"
        angry_en = 24 if k == DAYS - 1 else 4
        utterances, recordings = [], []
        for language, angry in (("en", angry_en), ("zh", 4)):
            for call in range(2):
                rec = f"{date}-{language}-{call}"
                emotions = ["angry" if i < angry // 2 else "neutral" for i in range(20)]
                utterances += [
                    utterance_row(date, rec, i % 2, i, language, e, run_id) for i, e in enumerate(emotions)
                ]
                row = recording_row(date, rec, run_id, n=20)
                recordings.append({**row, "duration_s": 70.0, "metadata": [("queue", "billing")]})
        utt = tables.to_table(utterances, tables.UTTERANCES)
        recs = tables.to_table(recordings, tables.RECORDINGS)
        started = dt.datetime.fromisoformat(f"{date}T01:00:00+00:00")
        run = {
            "run_id": run_id,
            "started_at": started,
            "finished_at": started,
            "files": 4,
            "files_ok": 4,
            "files_failed": 0,
            "utterances": len(utterances),
            "speech_seconds": 2.5 * len(utterances),
            "model_versions": "1",
        }
        Lake(lake).commit_day(
            date,
            {
                "utterances": utt,
                "recordings": recs,
                **tables.rollups(utt, recs),
                "runs": tables.to_table([run], tables.RUNS),
            },
        )
    Warehouse(lake).refresh()


def test_a_spike_is_notified_once_by_mail_and_webhook_and_an_ordinary_day_not_at_all(
    local_airflow, tmp_path, mailbox, webhook
):
    (box, smtp_port), (posts, http_port) = mailbox, webhook
    lake = tmp_path / "lake"
    build_history(lake)
    env = {**connections(smtp_port, http_port), "SVP_LAKE_ROOT": str(lake)}

    ordinary = (SPIKE - dt.timedelta(days=1)).isoformat()
    local_airflow.dags_test(
        "sensevoice_alerts", f"{ordinary}T06:00:00+00:00", conf={"date": ordinary}, env=env
    )
    assert box.messages == [] and posts == []

    local_airflow.dags_test(
        "sensevoice_alerts", f"{SPIKE}T06:00:00+00:00", conf={"date": SPIKE.isoformat()}, env=env
    )
    (mail,) = box.messages
    assert mail["To"] == "ops@example.com" and mail["From"] == "svp@example.com"
    assert mail["Subject"].startswith(f"SenseVoice {SPIKE}: angry share (language en)")
    body = mail.get_body(("html",)).get_content()
    assert f"angry share (language en) on {SPIKE}: 60.0%, outside its band 5.0% to 15.0%" in body
    assert f"(baseline mean 10.0% over 10 days, {FIRST} to {SPIKE - dt.timedelta(days=1)})" in body
    assert "language zh" not in body  # it did not move
    ((path, payload),) = posts
    assert payload["kind"] == "figures" and payload["date"] == SPIKE.isoformat()
    by_group = {d["group"]: d for d in payload["details"]}
    assert by_group["language en"]["value"] == 0.6 and by_group["language en"]["baseline_mean"] == 0.1
    assert by_group["language en"]["baseline_days"] == 10 and "language zh" not in by_group


LATE_DAG = textwrap.dedent("""
    import pendulum
    from airflow.sdk import dag

    from sensevoice_pipeline.provider import notify
    from sensevoice_pipeline.provider.sensors import PartitionArrivalSensor


    @dag(dag_id="late_probe", schedule=None, start_date=pendulum.datetime(2026, 5, 1, tz="UTC"), catchup=False)
    def late_probe():
        # sensevoice_daily's sensor, with its callback (test_dags.py checks the DAG has it)
        PartitionArrivalSensor(task_id="wait_for_partition", raw_root="{RAW}", wait_timeout_minutes=0.05,
                               poke_interval_seconds=1, on_failure_callback=notify.partition_late)


    late_probe()
""")


def test_a_day_whose_audio_never_arrives_is_notified_once(tmp_path, mailbox, webhook):
    (box, smtp_port), (posts, http_port) = mailbox, webhook
    (tmp_path / "raw").mkdir()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "late_probe.py").write_text(LATE_DAG.replace("{RAW}", str(tmp_path / "raw")))
    airflow = LocalAirflow(home=tmp_path / "home", dags_folder=dags)
    airflow.migrate()
    with pytest.raises(AirflowRunError):
        airflow.dags_test("late_probe", "2026-05-12T00:00:00+00:00", env=connections(smtp_port, http_port))
    (mail,) = box.messages
    assert mail["Subject"] == "SenseVoice 2026-05-12: the day's audio did not arrive"
    assert "the raw partition of 2026-05-12 was not ready after 3 s" in mail.get_body(("html",)).get_content()
    ((_, payload),) = posts
    assert payload["kind"] == "partition_late" and payload["date"] == "2026-05-12"
