"""Several Triton servers behind one client: which server gets the next request, which servers are out, and when an
ejected server is probed again.

This module is the policy only: no gRPC, no sleeping, and a clock passed in (``time.monotonic`` by default), so that
its timing is tested with a fake clock. ``serving.client.SenseVoiceClient`` sends the requests and runs the probes.

- **Addresses.** ``"a:8001,b:8001"`` (``--url``, ``$SVP_TRITON_URL``, the ``sensevoice_triton`` Connection) is a
  fleet of two; one address is a fleet of one, which is never ejected (it may be a load-balanced Service address:
  ejecting the only way to the servers would only add a wait), so one address behaves exactly as before fleets.
- **Balancing.** Least outstanding requests among the healthy servers, ties broken round robin (so a client that
  sends one request at a time still alternates).
- **Ejection.** A server that cannot be reached or does not have the model ready (gRPC UNAVAILABLE, "model not
  ready", a crashed python stub) is out at once. Other serving faults (gRPC INTERNAL, ...) eject it after
  ``faults_to_eject`` in a row without an answer in between: one request whose audio makes the encoder fail gets
  INTERNAL from every server, and must not empty the fleet (Envoy's outlier detection counts consecutive 5xx for the
  same reason). A deadline ejects nothing: a slow answer is not a dead server.
- **Readmission.** An ejected server is probed ``probe_base_s`` after its ejection, then after each failed probe
  twice as long, up to ``probe_max_s``; the first probe that passes readmits it. Healthy servers are probed every
  ``check_every_s``, and one that fails is ejected.
- **Panic.** When every server is ejected, requests go to all of them anyway (Envoy's "panic threshold" idea): the
  client's own retries with backoff then decide, as with one server, and raise ServingUnavailableError in the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sensevoice_pipeline.errors import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 8001


def parse_addresses(spec: str, default_port: int = DEFAULT_GRPC_PORT) -> tuple[str, ...]:
    """``"a:8001, b"`` -> ``("a:8001", "b:8001")``: comma-separated, blanks around entries ignored, ``default_port``
    added to an entry that names none, duplicates dropped (order kept). An empty entry, or one written as a URL
    (``http://h:8000``: these are gRPC addresses, not HTTP ones), is a ConfigurationError naming the value."""
    entries = [entry.strip() for entry in str(spec).split(",")]
    if not all(entries):
        raise ConfigurationError(
            f"Triton address list {spec!r} has an empty entry: expected host:port[,host:port...]"
        )
    for entry in entries:
        if "://" in entry:
            bare = entry.split("://", 1)[1].rstrip("/")
            raise ConfigurationError(
                f"Triton address {entry!r} has a scheme: give the gRPC host:port alone, e.g. "
                f"{bare.rsplit(':', 1)[0] or 'localhost'}:{DEFAULT_GRPC_PORT} (the default port, not HTTP's 8000)"
            )
    return tuple(dict.fromkeys(entry if _has_port(entry) else f"{entry}:{default_port}" for entry in entries))


def with_default_port(spec: str, port: int | None = None) -> str:
    """The address list ``spec`` with ``port`` (default 8001) added to each entry that names none:
    ``("triton-0,triton-1:9001", 8001)`` -> ``"triton-0:8001,triton-1:9001"``. (An Airflow Connection keeps
    the hosts in its host field and one port in its port field.)"""
    return ",".join(parse_addresses(spec, port or DEFAULT_GRPC_PORT))


def _has_port(entry: str) -> bool:
    if entry.startswith("["):  # [::1]:8001
        return "]:" in entry
    host, sep, port = entry.rpartition(":")
    return bool(sep) and ":" not in host and port.isdigit()


@dataclass
class Endpoint:
    """One server of the fleet, as the client sees it."""

    address: str
    outstanding: int = 0  # requests sent and not yet answered
    ejected: bool = False
    ejected_at: float = 0.0
    probe_at: float = 0.0  # when the next health probe is due (clock seconds)
    failed_probes: int = 0  # in a row, while ejected: the exponent of the probe backoff
    faults_in_a_row: int = 0  # serving faults without an answer in between
    answered: int = 0  # requests this server answered


class Fleet:
    """The servers at ``addresses`` and their state; ``clock`` returns seconds (monotonic)."""

    def __init__(
        self,
        addresses: Iterable[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_base_s: float = 1.0,
        probe_max_s: float = 30.0,
        check_every_s: float = 10.0,
        faults_to_eject: int = 3,
    ):
        self.endpoints = [Endpoint(address) for address in dict.fromkeys(addresses)]
        if not self.endpoints:
            raise ConfigurationError("a Triton fleet needs at least one address")
        self.clock = clock
        self.probe_base_s = probe_base_s
        self.probe_max_s = probe_max_s
        self.check_every_s = check_every_s
        self.faults_to_eject = max(1, faults_to_eject)
        self._turn = 0  # round robin among equally loaded servers
        now = clock()
        for endpoint in self.endpoints:
            endpoint.probe_at = now + check_every_s

    @property
    def single(self) -> bool:
        return len(self.endpoints) == 1

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(e.address for e in self.endpoints)

    def endpoint(self, address: str) -> Endpoint:
        return next(e for e in self.endpoints if e.address == address)

    def healthy(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.ejected]

    # -- balancing ------------------------------------------------------------------------------------------------

    def pick(self, exclude: Iterable[str] = ()) -> Endpoint | None:
        """The server for the next attempt: the healthy one not in ``exclude`` (addresses already tried for this
        request) with the fewest requests in flight. When every server is ejected (panic), any server not in
        ``exclude``. None when the healthy servers have all been tried: the request's retry round is over."""
        tried = set(exclude)
        healthy = self.healthy()
        candidates = [e for e in (healthy or self.endpoints) if e.address not in tried]
        if not candidates:
            return None
        n = len(self.endpoints)
        order = {e.address: i for i, e in enumerate(self.endpoints)}
        chosen = min(candidates, key=lambda e: (e.outstanding, (order[e.address] - self._turn) % n))
        self._turn = (order[chosen.address] + 1) % n
        return chosen

    @staticmethod
    def sent(endpoint: Endpoint) -> None:
        endpoint.outstanding += 1

    @staticmethod
    def done(endpoint: Endpoint) -> None:
        endpoint.outstanding -= 1

    # -- what the answers say -------------------------------------------------------------------------------------

    @staticmethod
    def answered(endpoint: Endpoint) -> None:
        """The server answered (a refusal of bad input is an answer too): its run of faults ends."""
        endpoint.answered += 1
        endpoint.faults_in_a_row = 0

    def server_out(self, endpoint: Endpoint, reason: str) -> None:
        """The server cannot be reached or lacks the model: ejected now."""
        self.eject(endpoint, reason)

    def server_fault(self, endpoint: Endpoint, reason: str) -> None:
        """The server answered with a serving fault (INTERNAL, ...): ejected after ``faults_to_eject`` in a row."""
        endpoint.faults_in_a_row += 1
        if endpoint.faults_in_a_row >= self.faults_to_eject:
            self.eject(endpoint, f"{endpoint.faults_in_a_row} serving faults in a row, the last: {reason}")

    def eject(self, endpoint: Endpoint, reason: str) -> None:
        if self.single or endpoint.ejected:
            return  # the only address stays in use (the client's retries decide); an ejected one stays out
        now = self.clock()
        endpoint.ejected, endpoint.ejected_at, endpoint.failed_probes = True, now, 0
        endpoint.probe_at = now + self.probe_base_s
        left = len(self.healthy())
        log.warning(
            "Triton %s ejected (%s); %d of %d servers left; probing it again in %.1f s",
            endpoint.address,
            reason,
            left,
            len(self.endpoints),
            self.probe_base_s,
        )
        if not left:
            log.error(
                "every Triton server of %s is ejected: requests go to all of them until one recovers",
                ",".join(self.addresses),
            )

    # -- health probes --------------------------------------------------------------------------------------------

    def due_for_probe(self) -> list[Endpoint]:
        """Servers whose health probe is due now (none for a fleet of one: its requests are the probe)."""
        if self.single:
            return []
        now = self.clock()
        return [e for e in self.endpoints if e.probe_at <= now]

    def seconds_to_next_probe(self) -> float:
        return max(0.0, min(e.probe_at for e in self.endpoints) - self.clock())

    def probed(self, endpoint: Endpoint, healthy: bool, reason: str = "") -> None:
        """Record a health probe's outcome: a passing probe readmits an ejected server, a failing one ejects a
        healthy server or pushes the next probe of an ejected one back (doubling, up to ``probe_max_s``)."""
        now = self.clock()
        if healthy:
            if endpoint.ejected:
                log.warning(
                    "Triton %s readmitted: healthy again after %.1f s out",
                    endpoint.address,
                    now - endpoint.ejected_at,
                )
            endpoint.ejected, endpoint.failed_probes, endpoint.faults_in_a_row = False, 0, 0
            endpoint.probe_at = now + self.check_every_s
        elif not endpoint.ejected:
            self.eject(endpoint, f"health probe failed: {reason}")
        else:
            endpoint.failed_probes += 1
            wait = min(self.probe_base_s * 2**endpoint.failed_probes, self.probe_max_s)
            endpoint.probe_at = now + wait
            log.info("Triton %s still unhealthy (%s); next probe in %.1f s", endpoint.address, reason, wait)
