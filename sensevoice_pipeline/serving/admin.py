"""Triton's control plane behind a key: the model-control, model-config, shared-memory, logging and trace APIs answer
only requests carrying the header ``svp-admin-key: <key>``, on HTTP and on gRPC; inference, health, metadata and
statistics stay open to whoever serves traffic.

Why: whoever reaches an unlocked Triton can unload the serving model, or load a python model whose config and
``model.py`` travel in the request, which runs that code inside the server (Triton's secure-deployment guide). Every
Triton this project starts is locked: ``svp serve`` and ``LocalTriton`` pass :func:`restricted_api_args`, and
docker-compose.yml gives the production server the same flags. Only the release path holds the key
(``releases.control.TritonControl`` sends it); daily workers need none.

The key: ``SVP_TRITON_ADMIN_KEY``, or the first line of the file named by ``SVP_TRITON_ADMIN_KEY_FILE`` (a mounted
secret). Refused when empty, shorter than 16 characters, or still a ``change-me`` placeholder. A server started
without one gets a random key of its own: its control plane is then closed to everybody.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sensevoice_pipeline.errors import ConfigurationError

ADMIN_HEADER = "svp-admin-key"  # the HTTP header (gRPC metadata keys are lower case)
# Triton checks a restricted gRPC call for the metadata key prefixed with this (its grpc_server "restricted" check)
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"
RESTRICTED_APIS = ("model-repository", "model-config", "shared-memory", "logging", "trace")
KEY_ENV = "SVP_TRITON_ADMIN_KEY"
KEY_FILE_ENV = "SVP_TRITON_ADMIN_KEY_FILE"
MIN_KEY_LENGTH = 16
PLACEHOLDER_MARKER = "change-me"  # as docker/check-secrets.sh


class AdminKeyError(ConfigurationError):
    """The Triton admin key is missing, unreadable, or not a real secret."""


def configured_admin_key(env: dict[str, str] | None = None) -> str | None:
    """The key from ``SVP_TRITON_ADMIN_KEY`` or ``SVP_TRITON_ADMIN_KEY_FILE`` (checked), None when neither is set."""
    env = os.environ if env is None else env
    value, source = (env.get(KEY_ENV) or "").strip(), KEY_ENV
    if not value and (env.get(KEY_FILE_ENV) or "").strip():
        source = KEY_FILE_ENV
        path = Path(env[KEY_FILE_ENV].strip())
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise AdminKeyError(
                f"{KEY_FILE_ENV}: cannot read the Triton admin key from {path}: {exc.strerror}"
            ) from exc
        value = text.splitlines()[0].strip() if text else ""
        if not value:
            raise AdminKeyError(f"{KEY_FILE_ENV}: {path} is empty; it must hold the Triton admin key")
    return check_admin_key(value, source) if value else None


def check_admin_key(value: str, source: str = KEY_ENV) -> str:
    if PLACEHOLDER_MARKER in value:
        raise AdminKeyError(
            f"{source}: the Triton admin key is still the .env.example placeholder; generate one "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if len(value) < MIN_KEY_LENGTH or any(c.isspace() or c in ":=," for c in value):
        raise AdminKeyError(
            f"{source}: the Triton admin key must be at least {MIN_KEY_LENGTH} characters without "
            "spaces, ':', '=' or ','"
        )
    return value


def new_admin_key() -> str:
    return secrets.token_urlsafe(32)


def restricted_api_args(key: str) -> list[str]:
    """tritonserver flags that put :data:`RESTRICTED_APIS` behind ``key`` on HTTP and on gRPC."""
    apis = ",".join(RESTRICTED_APIS)
    return [
        f"--http-restricted-api={apis}:{ADMIN_HEADER}={key}",
        f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={key}",
    ]


def grpc_admin_headers(key: str | None) -> dict[str, str] | None:
    """The metadata a gRPC control request carries (None: no key known; the request goes without and is refused)."""
    return {GRPC_ADMIN_HEADER: key} if key else None


def http_admin_headers(key: str | None) -> dict[str, str]:
    return {ADMIN_HEADER: key} if key else {}


def is_refused_for_key(message: str) -> bool:
    """Whether Triton's error says a restricted API was called without the right key."""
    text = message.lower()
    return "restricted" in text or ADMIN_HEADER in text or "permission" in text or "unauthenticated" in text
