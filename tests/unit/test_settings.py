"""The one configuration object: environment first, then explicit overrides, each value checked where it enters
(issue 27's catalog, lease and budget settings too), and DAG run Params within what the deployment allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_pipeline.constants import DEFAULT_MERGE_SEGMENT_S
from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.settings import ParamNotAllowedError, Settings, check_run_params


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


# -- DAG run Params within what the deployment allows (issue 28) -------------------------------------------------------


def test_run_params_reach_only_what_the_deployment_allows(monkeypatch, tmp_path):
    for name in ("SVP_ALLOWED_ROOTS", "SVP_ALLOWED_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SVP_RAW_ROOT", "s3://calls/raw")
    monkeypatch.setenv("SVP_LAKE_ROOT", str(tmp_path / "lake"))
    base = Settings.from_env()
    check_run_params(
        base,
        {
            "raw_root": "s3://calls/raw/2026",
            "lake_root": str(tmp_path / "lake"),
            "triton_conn_id": "sensevoice_triton",
            "aws_conn_id": "",
            "model_repository": None,
        },
    )
    for params, message in (
        ({"raw_root": "s3://someone-else/raw"}, "raw_root='s3://someone-else/raw' is outside"),
        ({"raw_root": "s3://calls/rawer"}, "is outside"),
        ({"lake_root": "/etc"}, "lake_root='/etc' is outside what this deployment allows"),
        ({"triton_conn_id": "their_triton"}, "names a Connection this deployment does not allow"),
        ({"aws_conn_id": "admin_aws"}, "SVP_ALLOWED_CONNECTIONS=unset"),
    ):
        with pytest.raises(ParamNotAllowedError, match=message):
            check_run_params(base, params)
    monkeypatch.setenv("SVP_ALLOWED_ROOTS", "s3://backfill/")
    monkeypatch.setenv("SVP_ALLOWED_CONNECTIONS", "aws_backfill")
    check_run_params(
        Settings.from_env(), {"raw_root": "s3://backfill/2025/raw", "aws_conn_id": "aws_backfill"}
    )


# -- settings enter checked (issue 27) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("SVP_LEASE_TTL_S", "-5", "the lease lifetime \\(seconds\\) must be a number more than 0"),
        ("SVP_LEASE_TTL_S", "nan", "the lease lifetime"),
        (
            "SVP_GC_GRACE_S",
            "nan",
            "the garbage-collection grace period \\(seconds\\) must be a number at least 0",
        ),
        ("SVP_GC_GRACE_S", "-1", "the garbage-collection grace period"),
        (
            "SVP_FAILURE_BUDGET",
            "1.5",
            "the failure budget \\(a share of the day's files\\) must be a number at least 0 and at most 1",
        ),
        ("SVP_FAILURE_BUDGET", "lots", "the failure budget"),
        ("SVP_REQUEST_TIMEOUT_S", "0", "the request deadline \\(seconds\\) must be a number more than 0"),
        ("SVP_CATALOG", "mysql:host=db", "unsupported catalog 'mysql:host=db'"),
        (
            "SVP_CATALOG",
            "postgresql://u:secret@db:5432",
            "the catalog .postgresql://u:\\*\\*\\*@db:5432. names no database",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"^{variable}: {message}") as err:
        Settings.from_env()
    assert "secret" not in str(err.value)


@pytest.mark.parametrize(
    "variable",
    ["SVP_FAILURE_BUDGET", "SVP_LEASE_TTL_S", "SVP_GC_GRACE_S", "SVP_REQUEST_TIMEOUT_S", "SVP_CATALOG"],
)
def test_an_empty_variable_means_unset(monkeypatch, variable):
    monkeypatch.setenv(variable, " ")
    settings, defaults = Settings.from_env(), Settings()
    for field in ("failure_budget", "lease_ttl_s", "gc_grace_s", "request_timeout_s", "catalog"):
        assert getattr(settings, field) == getattr(defaults, field)


def test_good_values_enter_as_numbers(monkeypatch):
    monkeypatch.setenv("SVP_LEASE_TTL_S", "90")
    monkeypatch.setenv("SVP_GC_GRACE_S", "0")
    monkeypatch.setenv("SVP_FAILURE_BUDGET", "0.5")
    monkeypatch.setenv("SVP_CATALOG", "postgresql://svp@db:5432/lake")
    settings = Settings.from_env()
    assert (settings.lease_ttl_s, settings.gc_grace_s, settings.failure_budget, settings.catalog) == (
        90.0,
        0.0,
        0.5,
        "postgresql://svp@db:5432/lake",
    )


def test_the_redaction_policy_enters_checked_naming_the_variable(monkeypatch):
    assert Settings().redact == "mask" and Settings.from_env().redact == "mask"  # the default: mask
    monkeypatch.setenv("SVP_REDACT", " DROP ")
    assert Settings.from_env().redact == "drop"
    assert Settings.from_env(redact="off").redact == "off"  # an explicit argument wins
    monkeypatch.setenv("SVP_REDACT", "hide")
    with pytest.raises(
        ConfigurationError, match="^SVP_REDACT: unknown redaction policy 'hide': expected one of"
    ):
        Settings.from_env()
    with pytest.raises(ConfigurationError, match="unknown redaction policy 'none'"):
        Settings().with_overrides(redact="none")
