"""The hook that turns an Airflow Connection into the Triton gRPC address the library's client uses."""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from ..client import default_url

DEFAULT_CONN_ID = "sensevoice_triton"


class SenseVoiceTritonHook(BaseHook):
    """Connection ``sensevoice_triton`` (host and gRPC port of the Triton serving `sensevoice`), e.g.
    ``AIRFLOW_CONN_SENSEVOICE_TRITON='sensevoice-triton://triton.internal:8001'``. Without the connection the
    address falls back to $SVP_TRITON_URL, then 127.0.0.1:8001."""

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
        return f"{conn.host}:{conn.port or 8001}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict:
        return {
            "hidden_fields": ["schema", "login", "password", "extra"],
            "relabeling": {"port": "gRPC port"},
            "placeholders": {"host": "triton.internal", "port": "8001"},
        }
