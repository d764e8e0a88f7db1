"""Fixtures of the Airflow tests: one real run of the daily DAG observed from outside, through what Airflow emits,
with the OpenLineage provider's file transport writing its events to a file and StatsD metrics going to a UDP
socket this process listens on (test_lineage.py, test_metrics.py)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensevoice_pipeline.demo.local_airflow import triton_connection_env
from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.settings import Settings

OBSERVED_DAY = "2026-11-12"  # its own logical date: the session's Airflow home is shared


class StatsdListener:
    """A StatsD server as far as a client can tell: a UDP socket on a free loopback port, keeping every packet."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.packets.extend(data.decode("utf-8", "replace").splitlines())  # a client may batch lines

    def __enter__(self) -> StatsdListener:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.setblocking(False)
        while True:  # what arrived after the thread's last read: the sender has exited, the kernel holds it
            try:
                self.packets.extend(self.sock.recv(65535).decode("utf-8", "replace").splitlines())
            except BlockingIOError:
                break
        self.sock.close()

    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }


@dataclass
class ObservedDay:
    settings: Settings
    files: int  # raw files written for the day
    events: list[dict]  # every OpenLineage event of the run, as the file transport wrote them
    packets: list[str]  # every StatsD line received during the run
    output: str


@pytest.fixture(scope="session")
def observed_day(tmp_path_factory, fixture_triton, local_airflow) -> ObservedDay:
    """The sample day (with its corrupt upload) through the real daily DAG under `airflow dags test`, on the fixture
    model's Triton, with OpenLineage's file transport and StatsD on."""
    root = tmp_path_factory.mktemp("observed")
    settings = Settings(raw_root=root / "raw", lake_root=root / "lake")
    calls = write_sample_day(settings.raw_root, OBSERVED_DAY)
    events_file = root / "openlineage.jsonl"
    conf = {"date": OBSERVED_DAY, "raw_root": str(settings.raw_root), "lake_root": str(settings.lake_root)}
    with StatsdListener() as statsd:
        env = {
            **triton_connection_env(fixture_triton.grpc_url),
            **statsd.env(),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "sensevoice-test",
        }
        output = local_airflow.dags_test(
            "sensevoice_daily", f"{OBSERVED_DAY}T00:00:00+00:00", conf=conf, env=env
        )
    return ObservedDay(settings, len(calls), _events(events_file), list(statsd.packets), output)


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
