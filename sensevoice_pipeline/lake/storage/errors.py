"""The storage errors, apart so that both roots raise them without importing each other. ``StorageError`` itself is
one of the project's error kinds (errors.py)."""

from __future__ import annotations

from sensevoice_pipeline.errors import StorageError, UnavailableError

__all__ = ["StorageError", "StoreUnreachableError"]


class StoreUnreachableError(UnavailableError, StorageError):
    """The object store did not answer (network, endpoint down): retried like any unavailable service."""
