"""serving/fleet.py's balancing policy on a fake clock: the address list, least outstanding requests with
round-robin ties, ejection and probing with a doubling backoff. With real servers: tests/integration/fleet/."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.serving.fleet import Fleet, parse_addresses, with_default_port


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fleet_of(n: int, **kwargs) -> tuple[Fleet, FakeClock]:
    clock = FakeClock()
    return Fleet([f"t{i}:8001" for i in range(n)], clock=clock, **kwargs), clock


# -- the policy, on a fake clock ---------------------------------------------------------------------------------------


def test_addresses_are_comma_separated_and_a_connection_port_fills_the_entries_without_one():
    assert parse_addresses(" a:8001, b:8001 ,a:8001") == ("a:8001", "b:8001")
    assert parse_addresses("triton.internal:8001") == ("triton.internal:8001",)
    assert with_default_port("triton-0,triton-1:9001", None) == "triton-0:8001,triton-1:9001"
    assert with_default_port("gpu-a,[::1]:7001,[::2]", 8500) == "gpu-a:8500,[::1]:7001,[::2]:8500"
    with pytest.raises(ConfigurationError, match="empty entry"):
        parse_addresses("a:8001,,b:8001")


def test_an_address_without_a_port_takes_grpcs_8001_and_one_with_a_scheme_is_refused_in_one_line():
    assert parse_addresses("localhost") == ("localhost:8001",)  # was grpc's default, port 443
    assert parse_addresses("localhost,b:9001,[::1]") == ("localhost:8001", "b:9001", "[::1]:8001")
    for url in ("http://triton:8000", "grpc://triton:8001/"):
        with pytest.raises(
            ConfigurationError, match="has a scheme: give the gRPC host:port alone, e.g. triton:8001"
        ):
            parse_addresses(url)


def test_least_outstanding_requests_win_and_ties_go_round_robin():
    fleet, _ = fleet_of(3)
    assert [fleet.pick().address for _ in range(6)] == ["t0:8001", "t1:8001", "t2:8001"] * 2
    busy = fleet.endpoint("t0:8001")
    fleet.sent(busy), fleet.sent(busy), fleet.sent(fleet.endpoint("t1:8001"))
    assert fleet.pick().address == "t2:8001"
    assert fleet.pick(exclude={"t2:8001"}).address == "t1:8001"
    assert (
        fleet.pick(exclude={"t0:8001", "t1:8001", "t2:8001"}) is None
    )  # every server tried: the round is over


def test_an_unreachable_server_is_ejected_at_once_and_an_internal_error_only_after_three_in_a_row():
    fleet, _ = fleet_of(2)
    a, b = fleet.endpoints
    fleet.server_fault(a, "INTERNAL"), fleet.server_fault(a, "INTERNAL")
    fleet.answered(a)  # an answer ends the run of faults
    fleet.server_fault(a, "INTERNAL"), fleet.server_fault(a, "INTERNAL")
    assert not a.ejected
    fleet.server_fault(a, "INTERNAL")
    assert a.ejected
    fleet.server_out(b, "UNAVAILABLE")
    assert b.ejected
    # Panic: with every server out, requests still go somewhere (the client's backoff then decides, as with one).
    assert fleet.pick().address in fleet.addresses


def test_ejected_servers_are_skipped_and_probed_with_a_doubling_backoff_until_one_passes():
    fleet, clock = fleet_of(2, probe_base_s=1.0, probe_max_s=5.0, check_every_s=60.0)
    a, b = fleet.endpoints
    fleet.server_out(a, "UNAVAILABLE")
    assert [fleet.pick().address for _ in range(3)] == ["t1:8001"] * 3
    assert fleet.due_for_probe() == []
    waits = []
    for _ in range(4):  # each failed probe doubles the wait: 2, 4, then the 5 s cap
        clock.now += fleet.seconds_to_next_probe()
        assert fleet.due_for_probe() == [a]
        fleet.probed(a, healthy=False, reason="connection refused")
        waits.append(a.probe_at - clock.now)
    assert waits == [2.0, 4.0, 5.0, 5.0]
    clock.now += 5.0
    fleet.probed(a, healthy=True)
    assert not a.ejected and {fleet.pick().address for _ in range(2)} == {"t0:8001", "t1:8001"}
    # Healthy servers are checked every check_every_s; one failing its check is ejected.
    clock.now += 60.0
    assert set(map(id, fleet.due_for_probe())) == {id(a), id(b)}
    fleet.probed(b, healthy=False, reason="model not ready")
    assert b.ejected and b.probe_at == clock.now + 1.0


def test_one_address_is_never_ejected_nor_probed():
    fleet, clock = fleet_of(1)
    (only,) = fleet.endpoints
    fleet.server_out(only, "UNAVAILABLE")
    clock.now += 3600
    assert not only.ejected and fleet.due_for_probe() == [] and fleet.pick() is only
