"""The storage error, apart so that both roots raise it without importing each other."""

from __future__ import annotations

from sensevoice_pipeline.errors import SvpError


class StorageError(SvpError, ValueError):
    """The object store cannot be used as configured (unreachable endpoint, missing bucket, access denied, bad URI):
    one readable line. Not an ``OSError`` on purpose: a store that is down fails the whole task (which retries),
    not the one file being read."""
