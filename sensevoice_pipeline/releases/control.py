"""Triton's model-control API (explicit mode) for one server: which versions are ready, load and unload models, the
loaded config. Every failure is one :class:`ReleaseError` line naming the server."""

from __future__ import annotations

import contextlib
from typing import Iterator

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.releases.errors import ReleaseError

# The staged candidate is loaded under its own model name, never as a version of `sensevoice`: as the highest
# ready version of `sensevoice` it would take the unpinned traffic at once.
STAGED_MODEL = "sensevoice_staged"


class TritonControl:
    """Triton's repository API (explicit model-control mode) for one server."""

    def __init__(self, url: str, timeout_s: float = 600.0):
        self.url = url
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url)

    def check_live(self) -> None:
        try:
            live = self.client.is_server_live(client_timeout=5)
        except InferenceServerException as exc:
            raise ReleaseError(f"cannot reach Triton at {self.url}: {_message(exc)}") from exc
        if not live:
            raise ReleaseError(f"Triton at {self.url} is not live")

    def ready_versions(self, model: str) -> set[int]:
        """Versions of ``model`` in READY state (the staged model, loaded by override, is asked directly)."""
        if model == STAGED_MODEL:
            return self._staged_ready_versions()
        index = self.client.get_model_repository_index(client_timeout=10)
        return {int(m.version) for m in index.models if m.name == model and m.state == "READY" and m.version}

    def _staged_ready_versions(self) -> set[int]:
        try:
            meta = self.client.get_model_metadata(STAGED_MODEL, client_timeout=10)
        except InferenceServerException:  # not loaded
            return set()
        return {int(v) for v in meta.versions if self.client.is_model_ready(STAGED_MODEL, v, client_timeout=10)}

    def load(self, model: str, config: str | None = None, files: dict[str, bytes] | None = None) -> None:
        try:
            self.client.load_model(model, config=config, files=files, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not load {model}: {_message(exc)}") from exc

    def unload(self, model: str) -> None:
        try:
            self.client.unload_model(model, client_timeout=60)
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not unload {model}: {_message(exc)}") from exc

    def loaded_config(self, model: str) -> dict:
        try:
            return self.client.get_model_config(model, as_json=True, client_timeout=10)["config"]
        except InferenceServerException as exc:
            raise ReleaseError(
                f"{model} is not loaded on Triton at {self.url} ({_message(exc)}): promote a version first"
            ) from exc

    def close(self) -> None:
        self.client.close()


def _message(exc: InferenceServerException) -> str:
    """Triton's message on one line."""
    text = exc.message() if hasattr(exc, "message") else str(exc)
    return " ".join((text or str(exc)).split())


@contextlib.contextmanager
def open_control(url: str | None) -> Iterator[TritonControl | None]:
    """A live server's control for the block, or None without ``url`` (an operation on the repository only)."""
    if url is None:
        yield None
        return
    control = TritonControl(url)
    try:
        control.check_live()
        yield control
    finally:
        control.close()
