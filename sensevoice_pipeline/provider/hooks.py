"""The hook that turns an Airflow Connection into the Triton gRPC address the library's client uses, the helper
that turns an ``aws`` Connection into the S3 settings of ``s3://`` data roots, and ``airflow_settings``: the one way
DAG tasks and the plugin page build their :class:`~sensevoice_pipeline.settings.Settings`."""

from __future__ import annotations

import logging
from dataclasses import replace

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from sensevoice_pipeline.lake.storage import S3Options
from sensevoice_pipeline.serving.client import default_url
from sensevoice_pipeline.serving.fleet import with_default_port
from sensevoice_pipeline.settings import Settings, check_run_params

DEFAULT_CONN_ID = Settings.triton_conn_id  # the names are the configuration object's defaults
DEFAULT_AWS_CONN_ID = Settings.aws_conn_id

log = logging.getLogger(__name__)


class SenseVoiceTritonHook(BaseHook):
    """Connection ``sensevoice_triton`` (host and gRPC port of the Triton serving `sensevoice`), e.g.
    ``AIRFLOW_CONN_SENSEVOICE_TRITON='sensevoice-triton://triton.internal:8001'``. Without the connection the
    address falls back to $SVP_TRITON_URL, then 127.0.0.1:8001.

    A fleet: the host field lists the servers, comma-separated; the port field is the port of every entry that
    names none. ``sensevoice-triton://triton-0,triton-1:8001`` (one port for all), or in JSON form
    ``{"conn_type": "sensevoice_triton", "host": "gpu-a:8001,gpu-b:8002"}`` (a port each). The client balances
    across them and fails over (serving/fleet.py)."""

    conn_name_attr = "triton_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "sensevoice_triton"
    hook_name = "SenseVoice Triton"

    def __init__(self, triton_conn_id: str = DEFAULT_CONN_ID):
        super().__init__()
        self.triton_conn_id = triton_conn_id

    def get_url(self) -> str:
        try:
            conn = self.get_connection(self.triton_conn_id)
        except AirflowNotFoundException:
            url = default_url()
            self.log.info("no connection %r; using %s", self.triton_conn_id, url)
            return url
        if not conn.host:
            raise ValueError(f"connection {self.triton_conn_id!r} has no host")
        return with_default_port(conn.host, conn.port)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict:
        return {
            "hidden_fields": ["schema", "login", "password", "extra"],
            "relabeling": {"host": "Host(s), comma-separated", "port": "gRPC port"},
            "placeholders": {"host": "triton-0.internal,triton-1.internal", "port": "8001"},
        }


def with_aws_connection(settings, conn_id: str = DEFAULT_AWS_CONN_ID):
    """``settings`` with its ``s3://`` roots bound to the Airflow Connection ``conn_id`` (type ``aws``, as the Amazon
    provider defines it; the provider itself is not needed): login = access key id, password = secret access key,
    extra ``{"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}`` (``aws_session_token`` too). Fields the
    connection leaves empty, and every field when there is no such connection, come from the AWS_* environment.
    Local roots are left alone, and then the connection is not even looked up. For example::

        AIRFLOW_CONN_AWS_DEFAULT='{"conn_type": "aws", "login": "KEY_ID", "password": "SECRET",
                                   "extra": {"endpoint_url": "http://minio:9000"}}'
    """
    remote = {
        key: getattr(settings, key)
        for key in ("raw_root", "lake_root")
        if getattr(settings, key).needs_credentials
    }
    if not remote:
        return settings
    conn = optional_connection(conn_id)
    if conn is None:
        log.info("no connection %r; s3:// roots use the AWS_* environment", conn_id)
        return settings
    options = S3Options.from_connection(conn.login, conn.password, conn.extra_dejson, conn.host)
    log.info("s3:// roots use connection %r (endpoint %s)", conn_id, options.describe())
    return replace(settings, **{key: root.with_options(options) for key, root in remote.items()})


def optional_connection(conn_id: str):
    """The Airflow Connection ``conn_id``, or None where none is defined (a deployment without it)."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def airflow_settings(**overrides) -> Settings:
    """Settings for an Airflow task or the plugin page: the environment, then ``overrides`` (a DAG's Params; None and
    "" keep the environment's value), then what the Connections they name say: the Triton address from
    ``triton_conn_id`` and S3 credentials for ``s3://`` roots from ``aws_conn_id``."""
    check_run_params(
        Settings.from_env(), overrides
    )  # a Param may not reach beyond what the deployment allows
    settings = Settings.from_env(**overrides)
    settings = replace(settings, triton_url=SenseVoiceTritonHook(settings.triton_conn_id).get_url())
    return with_aws_connection(settings, settings.aws_conn_id)
