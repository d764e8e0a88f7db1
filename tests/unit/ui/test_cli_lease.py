"""ui/cli_lease.py: `svp lease list` and `svp lease break`, called in this process over a lake's SQLite catalog."""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

import pytest

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake.catalog_db import SqliteCatalog
from sensevoice_pipeline.lake.lease import Lease, LeaseLostError, date_leases, process_start
from sensevoice_pipeline.ui.cli_common import CliError
from sensevoice_pipeline.ui.cli_lease import add_lease_parser, cmd_lease

DAY = "2026-03-14"


@pytest.fixture
def lake(tmp_path, monkeypatch):
    for variable in ("SVP_CATALOG", "SVP_LAKE_ROOT", "SVP_LEASE_TTL_S"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("TZ", "XYZ-3")  # a local time 3 h off UTC (a POSIX rule: no tz database needed)
        time.tzset()
        yield tmp_path / "lake"
    time.tzset()


def leases(lake, ttl_s: float = 600):
    return date_leases(SqliteCatalog(lake / "catalog.sqlite"), ttl_s)


def svp_lease(lake, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="svp")
    add_lease_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lease", *argv, "--lake", str(lake)])
    assert args.func is cmd_lease
    return args.func(args)


def test_an_action_is_required_and_break_needs_a_date():
    parser = argparse.ArgumentParser(prog="svp")
    add_lease_parser(parser.add_subparsers(dest="command"))
    for argv in (["lease"], ["lease", "break"], ["lease", "list", "extra"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    args = parser.parse_args(["lease", "break", DAY, "--yes"])
    assert (args.lease_command, args.date, args.yes, args.lake) == ("break", DAY, True, None)


def test_list_says_so_when_there_is_no_lease(lake, capsys):
    assert svp_lease(lake, "list") == 0
    assert capsys.readouterr().out == "no leases\n"
    assert svp_lease(lake, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_shows_each_lease_with_its_state_in_utc(lake, capsys):
    held = leases(lake).acquire("2026-03-15", "scheduled__2026-03-16", bound_to_process=True)
    with leases(lake).store.transaction() as tx:  # an old lease nobody renewed: epoch seconds 0 to 60
        tx.put(Lease(DAY, "manual-run", "t" * 32, "host-b", 4242, None, False, 0.0, 60.0))
    assert svp_lease(lake, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0] == {
        "date": DAY,
        "run": "manual-run",
        "host": "host-b",
        "pid": 4242,
        "bound_to_process": False,
        "since": "1970-01-01 00:00:00",
        "until": "1970-01-01 00:01:00",
        "state": "expired",
    }
    assert {k: listed[1][k] for k in ("date", "run", "host", "pid", "bound_to_process", "state")} == {
        "date": "2026-03-15",
        "run": held.holder,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "bound_to_process": True,
        "state": "held",
    }
    assert svp_lease(lake, "list") == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["date", "state", "run", "host", "pid", "since", "until"]
    assert first.split() == [DAY, "expired", "manual-run", "host-b", "4242", "1970-01-01", "00:00:00"] + [
        "1970-01-01",
        "00:01:00",
    ]
    assert second.split()[:3] == ["2026-03-15", "held", held.holder]


def test_a_dead_holder_is_listed_as_dead(lake, capsys):
    with leases(lake).store.transaction() as tx:  # this pid, another process start: the holder died
        start = process_start(os.getpid()) + 1
        tx.put(
            Lease(
                DAY,
                "svp-run",
                "t" * 32,
                socket.gethostname(),
                os.getpid(),
                start,
                True,
                0.0,
                time.time() + 3600,
            )
        )
    svp_lease(lake, "list", "--json")
    assert json.loads(capsys.readouterr().out)[0]["state"] == "dead"


def test_break_without_yes_is_refused_and_leaves_the_lease(lake, capsys):
    lease = leases(lake).acquire(DAY, "run-a")
    with pytest.raises(CliError, match=f"run `svp lease list` .* then `svp lease break {DAY} --yes`"):
        svp_lease(lake, "break", DAY)
    assert leases(lake).holder(DAY) == "run-a" and leases(lake).renew(DAY, "run-a", lease.token)
    assert capsys.readouterr().out == ""


def test_break_with_yes_frees_the_date_and_fences_its_holder(lake, capsys):
    lease = leases(lake).acquire(DAY, "run-a")
    assert svp_lease(lake, "break", DAY, "--yes") == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"{DAY}: broke the lease of run 'run-a' (host {socket.gethostname()}, pid {os.getpid()}"
    )
    assert leases(lake).holder(DAY) is None
    with pytest.raises(LeaseLostError):
        leases(lake).renew(DAY, "run-a", lease.token)
    assert svp_lease(lake, "break", DAY, "--yes") == 0
    assert capsys.readouterr().out == f"{DAY}: no lease to break\n"


def test_break_refuses_what_is_not_a_date_before_touching_anything(lake):
    leases(lake).acquire(DAY, "run-a")
    with pytest.raises(ConfigurationError, match="not a date: '14.03.2026'"):
        svp_lease(lake, "break", "14.03.2026", "--yes")
    assert leases(lake).holder(DAY) == "run-a"
