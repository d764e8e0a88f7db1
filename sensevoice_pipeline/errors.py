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

What each kind answers is decided here and nowhere else: :func:`exit_code` for ``svp``, :func:`http_status` for the
plugin page (its dashboard and its "Try a clip" form). An error is answered as its most specific kind (the first
class of its MRO that the table names):

=========================================================  =========  ==========================================
kind                                                       exit code  HTTP status
=========================================================  =========  ==========================================
InputError (a file, the clip, a request parameter)         2          422; the clip's own 413 (too large) and
                                                                      415 (unsupported format) are kept
ConfigurationError (settings, flags; ``svp``'s CliError)   2          503: the server's settings cannot work
ServingError: unreachable, model not ready, no address     2          503
ServingError: deadline exceeded                            2          504
ServingError: any other fault of the serving side          2          502
any other SvpError (PublishError, FailureBudgetExceeded,   1          500
ReleaseError, ...): the run itself failed
KeyboardInterrupt (Ctrl-C); SIGTERM (``Interrupted``)     130; 143   --
anything else (a bug: ``svp`` shows its traceback)         1          500
=========================================================  =========  ==========================================

Exit code 2: the user fixes an input, the settings or the server and runs again; 1: the run failed.
"""

from __future__ import annotations


class SvpError(Exception):
    """Base of every error this project raises on purpose; its message is one readable line."""


class InputError(SvpError):
    """One input file cannot be processed: recorded as a ``failed`` row with this reason."""


class ServingError(SvpError):
    """The serving side failed, not the file: retried, then the task fails; never recorded as data."""


class ServingUnavailableError(ServingError):
    """The serving side cannot take requests now: unreachable, the model (version) not loaded, no address known."""


class ServingTimeoutError(ServingError):
    """The serving side did not answer within the deadline."""


class ConfigurationError(SvpError, ValueError):
    """Settings, flags or Params that cannot work; the user fixes them and runs again."""


class PublishError(SvpError):
    """A day could not be committed (the partition changed during the run, the date's lease was lost, ...)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) asked ``svp`` to stop: raised in the main thread like Ctrl-C, so that the same cleanup
    runs (a run gives its date's lease back)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class FailureBudgetExceeded(SvpError):
    """A day was published (its rows are real) but more of its files failed than the run allows."""


FIX_AND_RUN_AGAIN = 2
RUN_FAILED = 1
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

EXIT_CODES: dict[type[BaseException], int] = {
    InputError: FIX_AND_RUN_AGAIN,
    ConfigurationError: FIX_AND_RUN_AGAIN,
    ServingError: FIX_AND_RUN_AGAIN,
    SvpError: RUN_FAILED,
    KeyboardInterrupt: INTERRUPTED,
}

HTTP_STATUSES: dict[type[BaseException], int] = {
    InputError: 422,
    ServingUnavailableError: 503,
    ServingTimeoutError: 504,
    ConfigurationError: 503,  # not the request's fault, and nothing the page can do until the settings are fixed
    ServingError: 502,
    SvpError: 500,
}


def exit_code(exc: BaseException) -> int:
    """The exit status ``svp`` ends with after ``exc``."""
    if isinstance(exc, Interrupted):
        return 128 + exc.signum  # what a shell reports for a process ended by that signal
    return _by_kind(exc, EXIT_CODES, RUN_FAILED)


def http_status(exc: BaseException) -> int:
    """The HTTP status the plugin page answers ``exc`` with."""
    status = getattr(exc, "status", None)
    if isinstance(exc, InputError) and isinstance(status, int):
        return status  # the clip form's ClipRefused: 413 too large, 415 unsupported format, 422 anything else
    return _by_kind(exc, HTTP_STATUSES, 500)


def _by_kind(exc: BaseException, table: dict[type[BaseException], int], default: int) -> int:
    return next((table[kind] for kind in type(exc).__mro__ if kind in table), default)
