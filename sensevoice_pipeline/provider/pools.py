"""Does the Airflow pool of the daily DAG's transcription tasks exist? A scheduler never starts a task whose pool does
not exist and says so only in its own log ("Tasks using non-existent pool ... will not be scheduled"): the run sits
in ``running`` forever. The daily DAG's first task asks, and fails at once naming the command that creates it.

How a task can ask, in Airflow 3: tasks have no metadata-database access (the Task SDK replaces the ORM session
with one that raises), and the Task Execution API that workers talk to has no pool route (connections, variables,
XComs, asset events, DAG runs and task states only). What remains is the public REST API of the api-server,
``GET /api/v2/pools/{name}``, which needs a user: the Connection ``sensevoice_airflow_api`` (type ``http``) names
the api-server and a user allowed to read pools (FAB's Viewer role is enough; with the simple auth manager, any
user), e.g.::

    AIRFLOW_CONN_SENSEVOICE_AIRFLOW_API='{"conn_type": "http", "host": "http://airflow-apiserver:8080",
                                          "login": "pool-check", "password": "..."}'

The task logs in through ``POST /auth/token`` (the route both the simple and the FAB auth manager serve) and asks.
Without the Connection nothing can be asked: the task logs a warning saying so and lets the run go on.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from sensevoice_pipeline.errors import ConfigurationError

__all__ = ["DEFAULT_API_CONN_ID", "PoolMissingError", "check_pool", "create_command"]

log = logging.getLogger(__name__)

DEFAULT_API_CONN_ID = "sensevoice_airflow_api"
TIMEOUT_S = 30.0


class PoolMissingError(ConfigurationError):
    """The pool does not exist, or has no slots: the scheduler would never start the tasks that take it."""


def create_command(pool: str) -> str:
    """The command that creates (or resizes) ``pool``, as docs/deployment.md sizes it."""
    return f'airflow pools set {pool} <slots> "Triton fleet: servers x per-server concurrency"'


def check_pool(pool: str, conn_id: str = DEFAULT_API_CONN_ID) -> int | None:
    """The number of slots of ``pool``, asked of the api-server that Connection ``conn_id`` names; None when there
    is no such Connection (not checked). Raises :class:`PoolMissingError` when the pool does not exist or has no
    slots, :class:`~sensevoice_pipeline.errors.ConfigurationError` when the Connection cannot log in or read
    pools; ``httpx.HTTPError`` when the api-server cannot be reached (worth a retry)."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning(
            "cannot check that the pool %r exists: no connection %r naming the Airflow api-server and a user "
            "allowed to read pools (a missing pool leaves the transcription tasks unscheduled, forever; create "
            "it with: %s)",
            pool,
            conn_id,
            create_command(pool),
        )
        return None
    base = _base_url(conn.host, conn.port, conn.schema, conn_id)
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as client:
        headers = {}
        if conn.login:
            headers["Authorization"] = f"Bearer {_token(client, conn.login, conn.password or '', conn_id)}"
        answer = client.get(f"/api/v2/pools/{quote(pool, safe='')}", headers=headers)
    if answer.status_code == 404:
        raise PoolMissingError(
            f"the Airflow pool {pool!r} does not exist, so the scheduler would never start the transcription "
            f"tasks (the run would sit in 'running'): create it with `{create_command(pool)}` "
            "(slots = Triton servers x per-server concurrency, docs/deployment.md), then clear this run"
        )
    if answer.status_code in (401, 403):
        raise ConfigurationError(
            f"connection {conn_id!r} may not read the Airflow pool {pool!r} (HTTP {answer.status_code} from "
            f"{base}): give it a user allowed to read pools"
        )
    answer.raise_for_status()
    slots = answer.json().get("slots")
    if slots == 0:
        raise PoolMissingError(
            f"the Airflow pool {pool!r} has 0 slots, so the scheduler would never start the transcription tasks: "
            f"resize it with `{create_command(pool)}`, then clear this run"
        )
    log.info("the Airflow pool %r exists (%s slots; asked %s)", pool, slots, base)
    return slots


def _base_url(host: str | None, port: int | None, schema: str | None, conn_id: str) -> str:
    """The api-server's address from the Connection: ``host`` may carry the scheme (and a path prefix)."""
    if not host:
        raise ConfigurationError(f"connection {conn_id!r} has no host: give the Airflow api-server's address")
    if "://" not in host:
        host = f"{schema or 'http'}://{host}"
    parts = urlsplit(host)
    if port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{port}")
    return parts.geturl().rstrip("/")


def _token(client: httpx.Client, login: str, password: str, conn_id: str) -> str:
    answer = client.post("/auth/token", json={"username": login, "password": password})
    if answer.status_code in (400, 401, 403, 422):
        raise ConfigurationError(
            f"connection {conn_id!r} cannot log in to the Airflow api-server (HTTP {answer.status_code} from "
            f"{client.base_url}/auth/token): check its login and password"
        )
    answer.raise_for_status()
    return answer.json()["access_token"]
