"""Without the [export] extra, importing the export step fails with one line saying what to install (not a
ModuleNotFoundError from deep inside funasr)."""

from __future__ import annotations

import importlib
import sys

import pytest

from sensevoice_pipeline.errors import ConfigurationError, SvpError


@pytest.mark.parametrize("missing", ["torch", "funasr"])
def test_importing_the_export_step_without_the_extra_says_what_to_install(monkeypatch, missing):
    for name in [n for n in sys.modules if n == "sensevoice_export" or n.startswith("sensevoice_export.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # what a blocked or absent module looks like to import
    with pytest.raises(SvpError) as refused:
        importlib.import_module("sensevoice_export.pipeline")
    assert isinstance(refused.value, ConfigurationError)  # svp: exit 64, fix the installation
    assert f"needs {missing}" in str(refused.value) and "[export]" in str(refused.value)
    assert "\n" not in str(refused.value)
