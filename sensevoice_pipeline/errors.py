"""The project's errors: one base, a few kinds, each handled in one way everywhere.

- :class:`InputError` -- something is wrong with one input file (cannot decode, too short, bad language hint,
  outside the raw root, unsupported format, refused by the model as invalid). The daily job records the file as a
  ``failed`` row with the message as its reason and goes on with the rest of the day.
- :class:`ServingError` -- the serving side failed (unreachable, model not ready, deadline exceeded, internal
  error, anything the server says about itself). Never data: the request is retried with backoff, then the batch
  task fails, nothing of the run is published, and the previously published day stays as it was.
- :class:`UnavailableError` -- another service the command needs cannot be used now (the object store, the catalog
  database): like a serving fault, the task fails and retries.
- :class:`RetryLaterError` -- nothing is wrong, but not now: the date is being processed by another run, the day's
  audio has not (fully) arrived.
- :class:`ConfigurationError` -- the settings, flags or Params cannot work (unknown language, bad URL scheme, a
  catalog that belongs to another lake). One line for the user, who fixes them and runs again.
- :class:`FailureBudgetExceeded` -- the day was published, but more of its files failed than the run allows.

Everything else (:class:`SvpError` subclasses such as :class:`PublishError`) fails the run with its message.

What each kind answers is decided here and nowhere else: :func:`exit_code` for ``svp`` (the sysexits.h codes that
cron wrappers, systemd and Kubernetes jobs know), :func:`http_status` for the plugin page (its dashboard and its
"Try a clip" form). An error is answered as its most specific kind (the first class of its MRO the table names):

===================================================  ==============  ==========================================
kind                                                 exit code       HTTP status
===================================================  ==============  ==========================================
ConfigurationError (settings, flags, Params;         64 EX_USAGE     503: the server's settings cannot work
``svp``'s CliError; argparse's usage errors);
StorageError (no such bucket, access denied)
InputError (a file, the clip, a request parameter)   65 EX_DATAERR   422; the clip's own 413 (too large) and
                                                                     415 (unsupported format) are kept
FailureBudgetExceeded (published; too many failed)   65 EX_DATAERR   500
ServingError: unreachable, model not ready           69              503
ServingError: deadline exceeded                      69              504
ServingError: any other fault of the serving side    69              502
UnavailableError (object store, catalog database)    69              503
RetryLaterError (date busy, audio not arrived)       75 EX_TEMPFAIL  503
any other SvpError (PublishError, ReleaseError,      1               500
...): the run itself failed
KeyboardInterrupt (Ctrl-C); SIGTERM (``Interrupted``) 130; 143       --
anything else (a bug: ``svp`` shows its traceback)   1               500
===================================================  ==============  ==========================================

64: fix the command or the settings; 65: look at the data (the failed rows say why); 69: a service is down, run
again once it is back; 75: run again later as it is; 1: the run failed.
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


class UnavailableError(SvpError):
    """A service other than Triton cannot be used now (the object store, the catalog database): retried like a
    serving fault; exit code 69."""


class RetryLaterError(SvpError):
    """Nothing to fix, but not now: the date is being processed by another run, the day's audio has not arrived.
    Exit code 75: run the same command again later."""


class ConfigurationError(SvpError, ValueError):
    """Settings, flags or Params that cannot work; the user fixes them and runs again."""


class StorageError(SvpError, ValueError):
    """The object store cannot be used as configured (unreachable endpoint, missing bucket, access denied, bad URI):
    one readable line (exit code 64; :class:`~.lake.storage.errors.StoreUnreachableError` when it did not answer:
    69). Not an ``OSError`` on purpose: a store that is down fails the whole task (which retries), not the one file
    being read; not a ConfigurationError either, for the same reason (a sensor fails at once on those)."""


class PublishError(SvpError):
    """A day could not be committed (the partition changed during the run, the date's lease was lost, ...)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) asked ``svp`` to stop: raised in the main thread like Ctrl-C, so that the same cleanup
    runs (a run gives its date's lease back)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class FailureBudgetExceeded(SvpError):
    """A day was published (its rows are real) but more of its files failed than the run allows. ``result``: what
    was published (the daily job's DayPublished), for a caller that reports it all the same."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


# sysexits.h
EX_USAGE = 64  # the command line or the settings cannot work
EX_DATAERR = 65  # the input data is bad
EX_UNAVAILABLE = 69  # a service it needs is unavailable
EX_TEMPFAIL = 75  # temporary: run again later
RUN_FAILED = 1
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

EXIT_CODES: dict[type[BaseException], int] = {
    ConfigurationError: EX_USAGE,
    StorageError: EX_USAGE,
    InputError: EX_DATAERR,
    FailureBudgetExceeded: EX_DATAERR,
    ServingError: EX_UNAVAILABLE,
    UnavailableError: EX_UNAVAILABLE,
    RetryLaterError: EX_TEMPFAIL,
    SvpError: RUN_FAILED,
    KeyboardInterrupt: INTERRUPTED,
}

HTTP_STATUSES: dict[type[BaseException], int] = {
    InputError: 422,
    ServingUnavailableError: 503,
    ServingTimeoutError: 504,
    ConfigurationError: 503,  # not the request's fault, and nothing the page can do until the settings are fixed
    UnavailableError: 503,
    RetryLaterError: 503,
    StorageError: 503,
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
