"""Issue 16 at the level of a day's tables: the real daily job (`jobs.daily.run_date`, what `svp run` calls) on the
sample day, sent to a fleet of two real local Triton servers serving the trained fixture model (the session's
`fixture_triton` and a second one started here on the same repository).

- Across 2 servers the day's requests split between them (each server's own inference statistics) and the published
  tables equal the single-server run's, row for row.
- The second server SIGKILLed (its whole process group) once it has answered some of the day's requests, at a moment
  when requests wait in its queue if one comes within half a second: the run completes on the other with the same
  tables, and no `failed` row but the corrupt upload's (an input fault, failed in the single-server run too).
  Restarted on the same ports, it is readmitted: the next run through the same fleet address sends it its share.

tests/integration/fleet/test_fleet.py checks the same behaviour request by request; here the proof is the published
lake."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.jobs.daily import run_date
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.serving.repository import PIPELINE_MODEL
from sensevoice_pipeline.serving.server import LocalTriton
from sensevoice_pipeline.settings import Settings
from tests.support.lake import differences, table_rows
from tests.support.triton import counted, requests_answered

pytestmark = pytest.mark.triton

DAY = "2026-11-24"
BATCH_SIZE = (
    8  # the sample day's 24 files in 3 batches: each batch opens its own client, as a mapped task does
)
KILL_AFTER = 3  # requests of the day the victim has answered before it is killed


# -- what each server says about itself --------------------------------------------------------------------------------


def queue_and_answers(server: LocalTriton) -> tuple[int, int]:
    """One read of ``server``'s metrics endpoint: the `sensevoice` requests waiting in its queue right now (Triton's
    ``nv_inference_pending_request_count`` gauge; on this build, Triton 2.51, its HELP line reads "Instantaneous
    number of pending requests awaiting execution per-model") and those it has answered successfully
    (``nv_inference_request_success``, the counter behind the statistics' success count)."""
    with urllib.request.urlopen(f"http://{server.host}:{server.metrics_port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()

    def total(metric: str) -> int:
        prefix = f'{metric}{{model="{PIPELINE_MODEL}",'
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines if line.startswith(prefix))

    return total("nv_inference_pending_request_count"), total("nv_inference_request_success")


def served_since(url: str, before: int) -> int | None:
    try:
        return requests_answered(url) - before
    except InferenceServerException:  # a server killed during the run has no statistics left to read
        return None


# -- a day's run -------------------------------------------------------------------------------------------------------


@dataclass
class DayRun:
    tables: dict[str, list[dict]]  # every daily table's rows for DAY, without the columns that name the run
    served: list[
        int | None
    ]  # requests each server answered during the run, fleet order (None: down at the end)
    seconds: float  # run_date's own wall time


def run_day(root: Path, urls: list[str], before_run: Callable[[], None] = lambda: None) -> DayRun:
    """The sample day written under ``root``, then run by the daily job against the fleet ``urls``."""
    settings = Settings(
        raw_root=root / "raw", lake_root=root / "lake", triton_url=",".join(urls), batch_size=BATCH_SIZE
    )
    write_sample_day(settings.raw_root, DAY)
    before = [requests_answered(url) for url in urls]
    before_run()
    result = run_date(settings, DAY, show_progress=False)
    rows = {t: table_rows(settings.lake_root, t, DAY) for t in tables.SCHEMAS}
    served = counted(  # (a server killed during the run answers None: its count is gone, nothing to wait for)
        lambda: [served_since(url, b) for url, b in zip(urls, before)],
        lambda now: None in now or sum(now) >= len(rows["utterances"]),
    )
    return DayRun(rows, served, result.seconds)


def failed_rows(run: DayRun) -> list[tuple[str, str]]:
    return [(r["source_path"], r["error"]) for r in run.tables["recordings"] if r["status"] == "failed"]


@pytest.fixture(scope="module")
def second(fixture_repository):
    """A second Triton on the fixture repository; ``holder["server"]`` is replaced when a test restarts it."""
    holder = {"server": LocalTriton(fixture_repository).start()}
    yield holder
    holder["server"].stop()


@pytest.fixture(scope="module")
def single_server_day(tmp_path_factory, fixture_triton) -> DayRun:
    """The reference: the same day through the session's server alone (one address, no fleet)."""
    return run_day(tmp_path_factory.mktemp("single"), [fixture_triton.grpc_url])


@pytest.mark.timeout(300)
def test_a_day_across_two_servers_splits_the_requests_and_equals_the_single_server_tables(
    tmp_path, fixture_triton, second, single_server_day
):
    fleet = run_day(tmp_path, [fixture_triton.grpc_url, second["server"].grpc_url])
    print(
        f"\nrequests: one server {single_server_day.served} in {single_server_day.seconds} s; "
        f"fleet of two {fleet.served} in {fleet.seconds} s"
    )
    assert not differences(single_server_day.tables, fleet.tables)
    # one request per utterance row, each answered once, by one server or the other
    assert sum(fleet.served) == sum(single_server_day.served) == len(fleet.tables["utterances"])
    assert min(fleet.served) > 0, fleet.served
    assert failed_rows(fleet) == failed_rows(single_server_day) and len(failed_rows(fleet)) == 1


# -- a server killed mid-run -------------------------------------------------------------------------------------------


class KillWhenBusy(threading.Thread):
    """SIGKILLs ``victim``'s process group (tritonserver and its python stubs) once it has answered ``after``
    requests of the run, polling its metrics. From then it waits up to ``wait_for_queue_s`` more for a moment when
    requests wait in the victim's queue, so that some are lost with it (``caught_queued`` says whether it found one;
    on this loaded 2-core machine such moments are short and not guaranteed). Records what each server had answered
    in the run at the kill."""

    def __init__(self, victim: LocalTriton, survivor_url: str, after: int, wait_for_queue_s: float = 0.5):
        super().__init__(daemon=True, name="kill-when-busy")
        self.victim, self.survivor_url, self.after = victim, survivor_url, after
        self.wait_for_queue_s = wait_for_queue_s
        self.baseline = (queue_and_answers(victim)[1], requests_answered(survivor_url))
        self.run_over = threading.Event()
        self.at_kill: tuple[int, int] | None = (
            None  # (victim, survivor): requests answered in the run at the kill
        )
        self.killed_after_s: float | None = None  # since the run started
        self.caught_queued = False

    def run(self) -> None:
        started = time.monotonic()
        waiting, answered = queue_and_answers(self.victim)
        while answered - self.baseline[0] < self.after:
            if self.run_over.wait(0.02):
                return
            waiting, answered = queue_and_answers(self.victim)
        give_up = time.monotonic() + self.wait_for_queue_s
        while not waiting and time.monotonic() < give_up and not self.run_over.is_set():
            time.sleep(0.002)
            waiting, answered = queue_and_answers(self.victim)
        if self.run_over.is_set():
            return
        os.killpg(self.victim.process.pid, signal.SIGKILL)
        self.killed_after_s = time.monotonic() - started
        self.caught_queued = waiting > 0
        self.at_kill = (answered - self.baseline[0], requests_answered(self.survivor_url) - self.baseline[1])


@pytest.mark.timeout(300)
def test_a_server_killed_mid_day_leaves_the_tables_unchanged_and_is_readmitted_once_restarted(
    tmp_path, fixture_repository, fixture_triton, second, single_server_day, caplog
):
    caplog.set_level("INFO", logger="sensevoice_pipeline.serving")
    victim, survivor = second["server"], fixture_triton.grpc_url
    urls = [survivor, victim.grpc_url]
    ports = {
        "http_port": victim.http_port,
        "grpc_port": victim.grpc_port,
        "metrics_port": victim.metrics_port,
    }

    killer = KillWhenBusy(victim, survivor, after=KILL_AFTER)
    try:
        faulted = run_day(tmp_path / "killed", urls, before_run=killer.start)
    finally:
        killer.run_over.set()
        killer.join()
    assert killer.at_kill is not None, f"the run ended before the victim had answered {KILL_AFTER} requests"
    victim_at_kill, survivor_at_kill = killer.at_kill
    fleet_log = [r.getMessage() for r in caplog.records if victim.grpc_url in r.getMessage()]
    print(
        f"\nkilled {victim.grpc_url} {killer.killed_after_s:.2f} s into the run, when it had answered "
        f"{victim_at_kill} requests ({'some' if killer.caught_queued else 'none'} waiting in its queue) and the "
        f"survivor {survivor_at_kill}; the run: survivor {faulted.served[0]}, "
        f"{len(faulted.tables['utterances'])} utterances, {faulted.seconds} s\n" + "\n".join(fleet_log)
    )
    assert victim.process.poll() is not None  # really dead, and stayed dead to the end of the run
    assert (
        faulted.served[1] is None and faulted.served[0] > survivor_at_kill
    )  # the run went on, on the survivor
    assert any(line.startswith(f"Triton {victim.grpc_url} ejected") for line in fleet_log)
    if killer.caught_queued:  # the requests waiting in its queue were sent to the survivor
        assert any("sending the request to" in line for line in fleet_log)
    assert not differences(single_server_day.tables, faulted.tables)
    assert failed_rows(faulted) == failed_rows(
        single_server_day
    )  # the corrupt upload only: nothing from the kill

    victim.stop()  # reaps the killed process group
    restarted = LocalTriton(fixture_repository, **ports).start()
    second["server"] = restarted
    assert restarted.grpc_url == victim.grpc_url  # the fleet address is unchanged
    again = run_day(tmp_path / "restarted", urls)
    print(f"after the restart: requests {again.served} in {again.seconds} s")
    assert min(again.served) > 0, again.served  # readmitted: the restarted server takes its share again
    assert not differences(single_server_day.tables, again.tables)
