"""Re-scoring history (jobs/rescore.py, `svp rescore`) against a real Triton: two days published by version 1,
version 2 (the angry candidate: Cantonese calls come back angry, tests/support/fault_models) promoted, the days
re-scored with it pinned. The current lake then answers version 2's numbers; the snapshot kept before the re-score
answers version 1's (`svp query --model-version 1` / `--as-of NAME`), also after a garbage collection with no grace;
`svp query model-compare` shows both side by side over the same dates."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.jobs import daily
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.settings import Settings
from tests.support.fault_models import write_cantonese_and_english_day
from tests.support.svp import svp

pytestmark = pytest.mark.triton

DAYS = ("2026-11-19", "2026-11-20")


def query(settings: Settings, *args: str) -> list[dict]:
    out = svp("query", *args, "--lake", str(settings.lake_root), "--json", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def angry_shares(rows: list[dict]) -> list[float]:
    return [r["share"] for r in rows]


@pytest.mark.timeout(600)
def test_a_rescored_range_answers_both_versions_side_by_side(tmp_path, angry_repo, angry_triton):
    url = angry_triton.grpc_url
    settings = Settings(raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=url)
    for day in DAYS:
        write_cantonese_and_english_day(settings.raw_root, day)
        assert daily.run_date(settings, day, show_progress=False).model_versions == "1"
    assert angry_shares(query(settings, "angry-share")) == [0.0, 0.0]

    releases.promote(angry_repo, 2, url)
    out = svp(
        "rescore", "--from", DAYS[0], "--to", DAYS[1], "--model-version", "2", "--raw", str(settings.raw_root),
        "--lake", str(settings.lake_root), "--url", url, "--json", timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rescored = json.loads(out.stdout)
    assert [d["date"] for d in rescored["days"]] == list(DAYS) and rescored["failed"] == {}
    assert {d["model_versions"] for d in rescored["days"]} == {"2"} and rescored["kept_versions"] == "1"
    name = rescored["kept_name"]

    # the current lake: version 2's answers, the three Cantonese calls of six angry each day
    assert angry_shares(query(settings, "angry-share")) == [0.5, 0.5]
    # the kept snapshot: version 1's, by version or by name, also once garbage is collected with no grace
    Lake(settings.lake_root).collect_garbage(dt.timedelta(0))
    assert angry_shares(query(settings, "angry-share", "--model-version", "1")) == [0.0, 0.0]
    assert angry_shares(query(settings, "angry-share", "--as-of", name)) == [0.0, 0.0]
    assert [r["model_version"] for r in query(settings, "model-usage", "--as-of", name)] == ["1"]
    assert angry_shares(query(settings, "angry-share", "--model-version", "2")) == [0.5, 0.5]

    compared = query(settings, "model-compare")
    by_version = {(r["model_version"], r["emotion"]): r for r in compared}
    assert {v for v, _ in by_version} == {"1", "2"}
    assert by_version["2", "angry"]["share"] == 0.5 and ("1", "angry") not in by_version
    assert {r["days"] for r in compared} == {2} and {str(r["first_date"]) for r in compared} == {DAYS[0]}
    assert sum(r["utterances"] for r in compared if r["model_version"] == "1") == 12  # 6 calls x 2 days

    missing = svp(
        "query", "angry-share", "--model-version", "7", "--lake", str(settings.lake_root), timeout=60
    )
    assert (
        missing.returncode != 0 and "no rows of model version 7" in missing.stderr and name in missing.stderr
    )


@pytest.mark.airflow
@pytest.mark.timeout(900)
def test_the_daily_dag_rescores_with_the_version_pinned_and_keeps_the_lake_before_once(
    tmp_path, angry_repo, angry_triton, local_airflow
):
    """The DAG path: what `airflow backfill create --dag-id sensevoice_daily ... --dag-run-conf '{"model_version":
    "2", "keep_snapshot_as": NAME}'` runs for each date, here one `airflow dags test` per date with that conf."""
    from sensevoice_pipeline.demo.local_airflow import triton_connection_env

    url = angry_triton.grpc_url
    releases.promote(angry_repo, 2, url)  # (already, when the test above ran first)
    settings = Settings(
        raw_root=tmp_path / "raw", lake_root=tmp_path / "lake", triton_url=url, model_version="1"
    )
    for day in DAYS:
        write_cantonese_and_english_day(settings.raw_root, day)
        assert daily.run_date(settings, day, show_progress=False).model_versions == "1"  # pinned: 2 serves
    conf = {"raw_root": str(settings.raw_root), "lake_root": str(settings.lake_root), "model_version": "2",
            "keep_snapshot_as": "before-v2", "keep_snapshot_days": 30}  # fmt: skip
    for day in DAYS:
        local_airflow.dags_test(
            "sensevoice_daily",
            f"{day}T00:00:00+00:00",
            conf={**conf, "date": day},
            env=triton_connection_env(url),
        )
    (kept,) = Lake(settings.lake_root).kept_snapshots()  # the second run found the name kept: not kept again
    assert (kept["name"], kept["model_versions"], str(kept["to_date"])) == ("before-v2", "1", DAYS[1])
    assert kept["kept_until"] - kept["created_at"] == dt.timedelta(days=30)
    assert angry_shares(query(settings, "angry-share")) == [0.5, 0.5]
    assert angry_shares(query(settings, "angry-share", "--as-of", "before-v2")) == [0.0, 0.0]
    compared = query(settings, "model-compare")
    assert {r["model_version"] for r in compared} == {"1", "2"} and {r["days"] for r in compared} == {2}
