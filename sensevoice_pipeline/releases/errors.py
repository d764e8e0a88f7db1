"""The errors of a release: every one is a :class:`ReleaseError` whose message is one line saying what to do."""

from __future__ import annotations

from sensevoice_pipeline.errors import SvpError, UnavailableError


class ReleaseError(SvpError, RuntimeError):
    """A release operation was refused or failed; the message is one line and says what to do."""


class ReleaseRefused(ReleaseError):
    """The canary refused the candidate (serving was left untouched)."""


class ReleaseFailed(ReleaseError):
    """A step of the release raised (export, stage, canary or promote); the candidate was unstaged and the report
    written with outcome ``failed``."""


class TritonUnreachable(UnavailableError, ReleaseError):
    """The Triton server a release operation needs did not answer (or is not live): exit code 69, try again."""
