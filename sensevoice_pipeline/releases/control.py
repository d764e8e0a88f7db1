"""Triton's model-control API (explicit mode): one server (:class:`TritonControl`: which versions are ready or still
draining, load and unload models, the loaded config) and a fleet (:func:`open_fleet`: every server named in a
comma-separated ``--url``; the first is the canary server). Every failure is one :class:`ReleaseError` line naming
the server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sensevoice_pipeline.releases.errors import ReleaseError, TritonUnreachable
from sensevoice_pipeline.serving.admin import (
    KEY_ENV,
    KEY_FILE_ENV,
    configured_admin_key,
    grpc_admin_headers,
    is_refused_for_key,
)
from sensevoice_pipeline.serving.client import grpc_channel_args

# The staged candidate is loaded under its own model name, never as a version of `sensevoice`: as the highest
# ready version of `sensevoice` it would take the unpinned traffic at once.
STAGED_MODEL = "sensevoice_staged"

# Repository-index states of a version that still runs requests (or is about to): Triton lets in-flight requests of
# a version it is removing complete ("Triton will allow in-flight requests to complete even if they are using a
# removed version", server docs/user_guide/model_management.md), and the index shows it UNLOADING meanwhile.
LIVE_STATES = frozenset({"READY", "LOADING", "UNLOADING"})


def control_urls(url: str | None) -> list[str]:
    """The servers of ``url``: one address, or several comma-separated (``a:8001,b:8001``), duplicates dropped,
    order kept (the first is where a candidate is staged and the canary runs)."""
    if url is None:
        return []
    urls = list(dict.fromkeys(u.strip() for u in str(url).split(",") if u.strip()))
    if not urls:
        raise ReleaseError(f"no Triton address in {url!r}")
    return urls


def canary_url(url: str) -> str:
    """The server a candidate is staged on and the canary talks to: the first of ``url``'s servers."""
    return control_urls(url)[0]


class TritonControl:
    """Triton's repository API (explicit model-control mode) for one server. Every call that Triton restricts
    (serving/admin.py) carries the admin key: ``admin_key``, else $SVP_TRITON_ADMIN_KEY (or its file)."""

    def __init__(self, url: str, timeout_s: float = 600.0, admin_key: str | None = None):
        self.url = url
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url, channel_args=grpc_channel_args())
        self._admin_key = admin_key or configured_admin_key()
        self._headers = grpc_admin_headers(self._admin_key)

    def _restricted(self, what: str, call, *args, **kwargs):
        """A restricted API call with the key; Triton's refusal of a missing or wrong key as one clear line."""
        try:
            return call(*args, headers=self._headers, **kwargs)
        except InferenceServerException as exc:
            if is_refused_for_key(_message(exc)):
                which = "no admin key was given" if self._admin_key is None else "the admin key was refused"
                raise ReleaseError(
                    f"Triton at {self.url} refused to {what}: {which}; set {KEY_ENV} (or "
                    f"{KEY_FILE_ENV}) to the key the server was started with"
                ) from exc
            raise

    def check_live(self) -> None:
        try:
            live = self.client.is_server_live(client_timeout=5)
        except InferenceServerException as exc:
            raise TritonUnreachable(f"cannot reach Triton at {self.url}: {_message(exc)}") from exc
        if not live:
            raise TritonUnreachable(f"Triton at {self.url} is not live")

    def ready_versions(self, model: str) -> set[int]:
        """Versions of ``model`` in READY state (the staged model, loaded by override, is asked directly)."""
        if model == STAGED_MODEL:
            return self._staged_ready_versions()
        index = self._index()
        return {int(m.version) for m in index.models if m.name == model and m.state == "READY" and m.version}

    def live_versions(self, model: str) -> set[int]:
        """Versions of ``model`` that are loaded, loading, or unloading (still finishing requests they took)."""
        index = self._index()
        return {
            int(m.version) for m in index.models if m.name == model and m.state in LIVE_STATES and m.version
        }

    def _index(self):
        try:
            return self._restricted(
                "list its models", self.client.get_model_repository_index, client_timeout=10
            )
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not list its models: {_message(exc)}") from exc

    def wait_until_gone(self, model: str, keep: set[int], timeout_s: float = 300.0) -> None:
        """Until no version of ``model`` outside ``keep`` is live on this server: a version the last load removed
        stays UNLOADING while it finishes the requests it holds, and those still call their encoder version."""
        deadline = time.monotonic() + timeout_s
        while left := self.live_versions(model) - set(keep):
            if time.monotonic() > deadline:
                raise ReleaseError(
                    f"Triton at {self.url} still runs {model} versions {sorted(left)} after "
                    f"{timeout_s:.0f} s; see the server log"
                )
            time.sleep(0.05)

    def _staged_ready_versions(self) -> set[int]:
        try:
            meta = self.client.get_model_metadata(STAGED_MODEL, client_timeout=10)
        except InferenceServerException:  # not loaded
            return set()
        return {
            int(v) for v in meta.versions if self.client.is_model_ready(STAGED_MODEL, v, client_timeout=10)
        }

    def load(self, model: str, config: str | None = None, files: dict[str, bytes] | None = None) -> None:
        try:
            self._restricted(
                f"load {model}",
                self.client.load_model,
                model,
                config=config,
                files=files,
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not load {model}: {_message(exc)}") from exc

    def unload(self, model: str) -> None:
        try:
            self._restricted(f"unload {model}", self.client.unload_model, model, client_timeout=60)
        except InferenceServerException as exc:
            raise ReleaseError(f"Triton at {self.url} could not unload {model}: {_message(exc)}") from exc

    def loaded_config(self, model: str) -> dict:
        try:
            return self._restricted(
                f"show {model}'s config", self.client.get_model_config, model, as_json=True, client_timeout=10
            )["config"]
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
def open_fleet(url: str | None) -> Iterator[list[TritonControl]]:
    """Every server of ``url`` (comma-separated), each checked live, for the block; [] without ``url`` (an operation
    on the repository only). One unreachable server refuses the whole operation before anything changes."""
    controls: list[TritonControl] = []
    try:
        for address in control_urls(url):
            controls.append(TritonControl(address))
            controls[-1].check_live()
        yield controls
    finally:
        for control in controls:
            control.close()


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
