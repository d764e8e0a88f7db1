"""What every test of the suite shares: the environment defaults of a test session, and the one fixture both tiers
use (the example clips as speech). The integration tests' shared fixtures (exported models, servers, the plugin
page's small lake) are tests/integration/conftest.py's; helpers are in tests/support/."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.support.triton import TEST_ADMIN_KEY

# Keep onnxruntime inside Triton's python models from fighting the test process for the two cores.
os.environ.setdefault("SVP_ORT_THREADS", "1")
# Every Triton of the session locks its control plane with this key, and every release call sends it
# (serving/admin.py); tests of the lock itself start servers with keys of their own.
os.environ.setdefault("SVP_TRITON_ADMIN_KEY", TEST_ADMIN_KEY)
# DAG runs of the tests point their Params at the tests' own folders and buckets (settings.check_run_params refuses
# what the deployment does not allow; tests/unit/test_settings.py checks that with its own settings).
os.environ.setdefault("SVP_ALLOWED_ROOTS", "/,s3://")
os.environ.setdefault("SVP_ALLOWED_CONNECTIONS", "svp_s3")


# -- real speech -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences() -> list[np.ndarray]:
    """The five example clips (real speech, 4.6-7.2 s, one or two sentences each)."""
    from sensevoice_pipeline.speech.audio import load_mono_16k
    from tests.support.paths import EXAMPLE_AUDIO

    return [load_mono_16k(p) for p in EXAMPLE_AUDIO]


# -- logging -----------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _svp_logging_left_as_found():
    """`svp`'s main, run in-process, puts its stderr handler on the root logger (logs.configure_logging), as a
    command should; the tests after it must not inherit it (their stderr would carry every INFO line)."""
    import logging

    from sensevoice_pipeline.logs import StderrHandler

    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
