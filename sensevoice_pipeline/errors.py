"""The project's errors: one base, three kinds, each handled in one way everywhere.

- :class:`InputError` -- something is wrong with one input file (cannot decode, too short, bad language hint,
  outside the raw root, unsupported format, refused by the model as invalid). The daily job records the file as a
  ``failed`` row with the message as its reason and goes on with the rest of the day.
- :class:`ServingError` -- the serving side failed (unreachable, model not ready, deadline exceeded, internal
  error, anything the server says about itself). Never data: the request is retried with backoff, then the batch
  task fails, nothing of the run is published, and the previously published day stays as it was.
- :class:`ConfigurationError` -- the settings, flags or Params cannot work (unknown language, bad URL scheme,
  missing partition, a date being processed by another run). One line for the user: exit code 2 on the command
  line, a failed task with that message in Airflow.

Everything else (:class:`SvpError` subclasses such as :class:`PublishError`) fails the run with its message.
"""

from __future__ import annotations


class SvpError(Exception):
    """Base of every error this project raises on purpose; its message is one readable line."""


class InputError(SvpError):
    """One input file cannot be processed: recorded as a ``failed`` row with this reason."""


class ServingError(SvpError):
    """The serving side failed, not the file: retried, then the task fails; never recorded as data."""


class ConfigurationError(SvpError, ValueError):
    """Settings, flags or Params that cannot work; the user fixes them and runs again."""


class PublishError(SvpError):
    """A day could not be committed (the partition changed during the run, the date's lease was lost, ...)."""


class FailureBudgetExceeded(SvpError):
    """A day was published (its rows are real) but more of its files failed than the run allows."""
