"""The one table of what each kind of error answers (errors.py): svp's exit code and the plugin page's HTTP status."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sensevoice_export
import sensevoice_pipeline
from sensevoice_pipeline import errors
from sensevoice_pipeline.errors import Interrupted, SvpError, exit_code, http_status
from sensevoice_pipeline.lake.arrival import ArrivalTimeout
from sensevoice_pipeline.lake.catalog_db import CatalogError, CatalogUnreachableError
from sensevoice_pipeline.lake.lease import DateBusyError, LeaseLostError
from sensevoice_pipeline.lake.partition import PartitionError, PartitionMissingError
from sensevoice_pipeline.lake.storage.errors import StoreUnreachableError
from sensevoice_pipeline.serving.client import (
    ModelNotReadyError,
    RequestRejectedError,
    TritonClientError,
    TritonDeadlineError,
    TritonUnavailableError,
)
from sensevoice_pipeline.speech.audio import AudioDecodeError
from sensevoice_pipeline.ui.cli_common import CliError
from sensevoice_pipeline.ui.clip import ClipRefused, TritonAddressError, UploadTooLarge
from sensevoice_pipeline.ui.page_data import DashboardParamError


@pytest.mark.parametrize(
    "error,code,status",
    [
        # input faults: a file, the clip, a request parameter -- 65 EX_DATAERR
        (errors.InputError("call.wav: cannot decode"), 65, 422),
        (AudioDecodeError("call.wav: Format not recognised"), 65, 422),
        (RequestRejectedError("the model refused the audio"), 65, 422),
        (DashboardParamError("from: expected a date YYYY-MM-DD"), 65, 422),
        (ClipRefused("no clip"), 65, 422),
        (ClipRefused("unsupported format '.txt'", 415), 65, 415),
        (UploadTooLarge(), 65, 413),
        # a day published with more failed files than allowed: look at the data -- 65
        (errors.FailureBudgetExceeded("published 2026-01-01, but 3 of 4 files failed"), 65, 500),
        # settings, flags: the user (or the operator of the page) fixes them -- 64 EX_USAGE
        (errors.ConfigurationError("SVP_LANGUAGE: unknown default language 'xx'"), 64, 503),
        (CliError("--from 2026-02-01 is after --to 2026-01-31"), 64, 503),
        (CatalogError("the SQLite catalog belongs to another lake"), 64, 503),
        (PartitionError("manifest.csv: no header"), 64, 503),
        # the serving side, and the other services a run needs -- 69 EX_UNAVAILABLE
        (TritonUnavailableError("cannot reach Triton at 127.0.0.1:1"), 69, 503),
        (ModelNotReadyError("sensevoice is not ready"), 69, 503),
        (TritonAddressError("no Triton address: the Connection has no host"), 69, 503),
        (TritonDeadlineError("deadline exceeded"), 69, 504),
        (TritonClientError("internal error"), 69, 502),
        (errors.ServingError("the server said no"), 69, 502),
        (CatalogUnreachableError("cannot reach the PostgreSQL catalog"), 69, 503),
        (StoreUnreachableError("cannot reach the object store at http://127.0.0.1:1"), 69, 503),
        # nothing wrong, but not now: the same command later -- 75 EX_TEMPFAIL
        (DateBusyError("date 2026-01-01 is being processed by run r1"), 75, 503),
        (PartitionMissingError("no partition for 2026-01-01"), 75, 503),
        (ArrivalTimeout("date=2026-01-01 did not arrive within 60 s"), 75, 503),
        # the run itself failed -- 1
        (errors.PublishError("the partition changed during the run"), 1, 500),
        (LeaseLostError("the lease was lost"), 1, 500),
        (errors.SvpError("anything else raised on purpose"), 1, 500),
        # not raised on purpose
        (RuntimeError("a bug"), 1, 500),
    ],
)
def test_each_kind_has_its_exit_code_and_http_status(error, code, status):
    assert (exit_code(error), http_status(error)) == (code, status)


def test_ctrl_c_exits_130():
    assert exit_code(KeyboardInterrupt()) == 130


# -- every error of the project is an SvpError ---------------------------------------------------------------------

NOT_ERRORS = {Interrupted}  # a KeyboardInterrupt: the same cleanup as Ctrl-C


def project_modules():
    for package in (sensevoice_pipeline, sensevoice_export):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(".sensevoice_plugin"):
                continue
            yield importlib.import_module(info.name)


def test_every_exception_defined_here_is_an_svp_error():
    defined = {
        cls
        for module in project_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    assert len(defined) > 30  # the walk found the project's errors
    outside = sorted(c.__qualname__ for c in defined - NOT_ERRORS if not issubclass(c, SvpError))
    assert outside == []
