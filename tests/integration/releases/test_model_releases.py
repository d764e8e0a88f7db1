"""Whole releases on a running Triton (issue 6): `svp models release` of a candidate that disagrees is refused with
serving untouched, the sensevoice_model_release DAG promotes a good export and writes its report (and its
OpenLineage events name the model_releases table it wrote), and a release whose canary raises unstages its
candidate and reports the failure (as a function and as a DAG run). A private LocalTriton on a private repository
(tests/integration/releases/conftest.py), these tests in this order on it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from sensevoice_export.pipeline import run_export
from sensevoice_pipeline import releases
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.serving.client import ModelNotReadyError, SenseVoiceClient
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL, ModelRepository
from sensevoice_pipeline.ui import cli
from tests.support.fixture_model import fixture_cases
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.releases import (
    all_policies,
    broken_golden_set,
    release_rows,
    release_settings,
    serve,
    staged_gone,
    unpinned_version,
)
from tests.support.traffic import ClientTraffic as Traffic

pytestmark = pytest.mark.triton


def test_a_disagreeing_release_is_refused_and_serving_is_untouched(
    release_repo, release_triton, micro_checkpoint, tmp_path, capsys
):
    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 2)
    with Traffic(url) as traffic:  # through `svp models release`, as an operator runs it
        code = cli.main(
            [
                "models",
                "release",
                str(micro_checkpoint),
                "--repository",
                str(repo),
                "--url",
                url,
                "--lake-root",
                str(tmp_path / "lake"),
                "--precision",
                "fp32",
                "--max-latency-ratio",
                "100",
            ]
        )
        traffic.wait_for(5)
    said = capsys.readouterr()
    assert code == 1 and "refused" in said.err and "serving version 2 untouched" in said.err, said
    (row,) = release_rows(tmp_path / "lake")
    report = {"outcome": row["outcome"], "row": row, "report": said.out.rsplit("report ", 1)[1].strip()}
    candidate = int(report["row"]["candidate_version"])
    assert candidate == 3 and report["outcome"] == "refused"
    assert "transcript agreement" in report["row"]["reasons"] and report["row"]["serving_after"] == "2"
    assert report["row"]["transcript_agreement"] < 0.5 and report["row"]["golden_cases"] == len(
        fixture_cases()
    )
    assert not [a for a in traffic.answers if a.error] and {a.version for a in traffic.answers} == {"2"}
    control = releases.TritonControl(url)
    assert not control.ready_versions(releases.STAGED_MODEL)
    assert candidate not in control.ready_versions(ENCODER_MODEL) | control.ready_versions(PIPELINE_MODEL)
    state = releases.read_state(repo)
    assert (state.serving, state.staged) == (2, None)
    assert all(
        candidate not in v for m in (PIPELINE_MODEL, ENCODER_MODEL) for v in all_policies(repo, m).values()
    )
    saved = json.loads(Path(report["report"]).read_text())
    assert saved["outcome"] == "refused" and saved["canary"]["disagreements"]
    assert row["release_id"].startswith("release-") and (row["outcome"], row["candidate_version"]) == (
        "refused",
        "3",
    )
    with pytest.raises(ModelNotReadyError):

        async def staged_gone():
            async with SenseVoiceClient(url, model=releases.STAGED_MODEL, retries=0) as client:
                await client.check_ready()

        asyncio.run(staged_gone())


@pytest.mark.airflow
def test_release_dag_promotes_a_good_export_and_writes_its_report(
    release_repo, release_triton, local_airflow, tmp_path
):
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow, triton_connection_env

    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 2)
    lake = tmp_path / "lake"
    conf = {
        "checkpoint": str(FIXTURE_MODEL_DIR),
        "precision": "fp32",
        "repository": str(repo),
        "lake_root": str(lake),
        "min_transcript_agreement": 0.95,
        "min_emotion_agreement": 0.95,
        "max_latency_ratio": 100.0,
    }
    events = tmp_path / "openlineage.jsonl"  # the OpenLineage provider's file transport
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    airflow = LocalAirflow(
        home=local_airflow.home,
        extra_env={**triton_connection_env(url), "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)},
    )
    airflow.dags_test("sensevoice_model_release", "2026-11-23T00:00:00+00:00", conf=conf)

    # lineage: the report task's COMPLETE event names the model_releases table, with its schema, as its output
    (complete,) = [
        e
        for e in map(json.loads, events.read_text().splitlines())
        if e["job"]["name"] == "sensevoice_model_release.report" and e["eventType"] == "COMPLETE"
    ]
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == (
        "file",
        str(lake.resolve() / "data" / "main" / "model_releases"),
    )
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == ["date", *tables.MODEL_RELEASES.names]

    new = max(ModelRepository(repo).versions())
    state = releases.read_state(repo)
    assert (state.serving, state.previous, state.staged) == (new, 2, None) and new > 2
    assert unpinned_version(url) == str(new)
    (row,) = release_rows(lake)
    assert (row["outcome"], row["candidate_version"], row["serving_before"], row["serving_after"]) == (
        "promoted",
        str(new),
        "2",
        str(new),
    )
    assert (
        row["transcript_agreement"] >= 0.95
        and row["emotion_agreement"] >= 0.95
        and row["precision"] == "fp32"
    )
    assert row["golden_cases"] == len(fixture_cases()) and row["parity_argmax_agreement"] == 1.0
    report = json.loads(Path(row["report_path"]).read_text())
    assert report["release_id"] == row["release_id"] and report["decision"]["outcome"] == "promoted"
    assert (
        report["canary"]["expected_match_staged"] == 1.0
    )  # the fp32 export answers every golden case exactly


def test_a_release_whose_canary_raises_unstages_and_reports_the_failure(
    release_repo, release_triton, micro_checkpoint, tmp_path
):
    repo, url = release_repo, release_triton.grpc_url
    serving = releases.read_state(repo).serving
    settings = release_settings(
        repo, url, tmp_path / "lake", golden_dir=broken_golden_set(tmp_path / "golden")
    )
    with pytest.raises(releases.ReleaseError, match="not a golden case"):
        releases.release(
            str(micro_checkpoint), settings, run_export=run_export, release_id="broken-golden-set"
        )
    candidate = max(ModelRepository(repo).versions())
    staged_gone(url, candidate)
    state = releases.read_state(repo)
    assert (state.serving, state.staged) == (serving, None)
    (row,) = release_rows(tmp_path / "lake")
    assert (
        row["release_id"],
        row["outcome"],
        row["candidate_version"],
        row["serving_before"],
        row["serving_after"],
    ) == ("broken-golden-set", "failed", str(candidate), str(serving), str(serving))
    assert re.fullmatch(
        r"canary failed: ReleaseError: \S+/expected\.jsonl:1: not a golden case \(.+\)", row["reasons"]
    )
    report = json.loads(Path(row["report_path"]).read_text())
    assert (
        report["outcome"] == "failed"
        and report["canary"] is None
        and report["export"]["version"] == candidate
    )
    assert report["decision"]["failed_step"] == "canary"
    assert report["decision"]["unstaged"] == {
        "unstaged": candidate,
        "unloaded": True,
        "serving": serving,
        "server": True,
    }


@pytest.mark.airflow
def test_release_dag_whose_canary_raises_unstages_writes_its_report_and_fails(
    release_repo, release_triton, local_airflow, tmp_path
):
    from sensevoice_pipeline.demo.local_airflow import AirflowRunError, LocalAirflow, triton_connection_env

    repo, url = release_repo, release_triton.grpc_url
    serving = releases.read_state(repo).serving
    lake = tmp_path / "lake"
    conf = {
        "checkpoint": str(FIXTURE_MODEL_DIR),
        "precision": "fp32",
        "repository": str(repo),
        "lake_root": str(lake),
        "golden_dir": str(broken_golden_set(tmp_path / "golden")),
    }
    airflow = LocalAirflow(home=local_airflow.home, extra_env=triton_connection_env(url))
    with pytest.raises(AirflowRunError) as failed:  # the run ends failed ...
        airflow.dags_test("sensevoice_model_release", "2026-11-24T00:00:00+00:00", conf=conf)
    assert "ReleaseFailed" in str(failed.value) and "canary failed" in str(failed.value)

    # ... after the staged candidate was unloaded ...
    candidate = max(ModelRepository(repo).versions())
    staged_gone(url, candidate)
    state = releases.read_state(repo)
    assert (state.serving, state.staged) == (serving, None) and candidate not in state.retired
    assert all(
        candidate not in v for m in (PIPELINE_MODEL, ENCODER_MODEL) for v in all_policies(repo, m).values()
    )
    assert unpinned_version(url) == str(serving)
    # ... and its report and model_releases row were written
    (row,) = release_rows(lake)
    assert (row["outcome"], row["candidate_version"], row["serving_before"], row["serving_after"]) == (
        "failed",
        str(candidate),
        str(serving),
        str(serving),
    )
    assert re.fullmatch(
        r"canary failed: ReleaseError: \S+/expected\.jsonl:1: not a golden case \(.+\)", row["reasons"]
    )
    assert (
        row["precision"] == "fp32" and row["parity_argmax_agreement"] == 1.0 and row["golden_cases"] is None
    )
    report = json.loads(Path(row["report_path"]).read_text())
    assert (
        report["release_id"] == row["release_id"]
        and report["outcome"] == "failed"
        and report["canary"] is None
    )
    assert report["decision"]["failed_step"] == "canary"
    assert (
        report["decision"]["unstaged"]["unstaged"] == candidate and report["decision"]["unstaged"]["unloaded"]
    )
