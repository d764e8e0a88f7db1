"""The export step's errors, all under the project's ``SvpError`` (``svp`` answers them with one line)."""

from __future__ import annotations

from sensevoice_pipeline.errors import ConfigurationError, SvpError


class ExportError(SvpError):
    """The export was refused; the repository was left as it was."""


class PrecisionError(ExportError, ValueError):
    """An unknown precision was asked for."""


class ExportExtraMissing(ExportError, ConfigurationError):
    """torch or funasr is not installed here: the export step needs the ``[export]`` extra."""
