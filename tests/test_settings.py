"""The one configuration object: environment first, then explicit overrides, each value checked where it enters."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_pipeline.constants import DEFAULT_MERGE_SEGMENT_S
from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.settings import Settings


def test_the_environment_sets_what_every_part_reads(monkeypatch, tmp_path):
    monkeypatch.setenv("SVP_MODEL_REPOSITORY", str(tmp_path / "repo"))
    monkeypatch.setenv("SVP_GOLDEN_DIR", str(tmp_path / "golden"))
    monkeypatch.setenv("SVP_TRITON_CONN_ID", "triton_eu")
    monkeypatch.setenv("SVP_MAX_SEGMENT_S", "15")
    settings = Settings.from_env()
    assert settings.model_repository == tmp_path / "repo" and settings.golden_dir == tmp_path / "golden"
    assert settings.triton_conn_id == "triton_eu" and settings.aws_conn_id == "aws_default"
    assert settings.max_segment_s == 15.0
    assert Settings.from_env(max_segment_s=20, model_repository="other").max_segment_s == 20.0
    assert Settings.from_env(model_repository="other").model_repository == Path("other")


@pytest.mark.parametrize("value", ["0", "45", "soon"])
def test_a_segment_length_the_model_cannot_take_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("SVP_MAX_SEGMENT_S", value)
    with pytest.raises(
        ConfigurationError,
        match=f"SVP_MAX_SEGMENT_S: max segment length must be between 1 and 30 seconds, got '{value}'",
    ):
        Settings.from_env()
    assert Settings.from_env(max_segment_s=10).max_segment_s == 10.0  # a flag stands in for the bad variable


def test_defaults_without_an_environment(monkeypatch):
    for name in ("SVP_MODEL_REPOSITORY", "SVP_GOLDEN_DIR", "SVP_TRITON_CONN_ID", "SVP_MAX_SEGMENT_S"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert (
        settings.model_repository,
        settings.golden_dir,
        settings.triton_conn_id,
        settings.max_segment_s,
    ) == (Path("model_repository"), None, "sensevoice_triton", 30.0)


def test_the_merge_length_enters_checked_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SVP_MERGE_SEGMENT_S", "12.5")
    assert Settings.from_env().merge_segment_s == 12.5
    assert (
        Settings.from_env(merge_segment_s=0).merge_segment_s == 0.0
    )  # 0: off (a flag stands in for the variable)
    monkeypatch.delenv("SVP_MERGE_SEGMENT_S")
    assert Settings.from_env().merge_segment_s == DEFAULT_MERGE_SEGMENT_S
    for bad in ("0.5", "31", "-1", "soon"):
        monkeypatch.setenv("SVP_MERGE_SEGMENT_S", bad)
        with pytest.raises(
            ConfigurationError,
            match=f"SVP_MERGE_SEGMENT_S: merge segment length must be 0 "
            f"\\(off\\) or between 1 and 30 seconds, got '{bad}'",
        ):
            Settings.from_env()
