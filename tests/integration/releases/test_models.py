"""Model versions on a running Triton (issue 6): list/show, stage → promote → rollback under a steady stream of
requests, the canary's requests for a long call, version pinning in the daily job, unstage. A private LocalTriton on
a private repository (tests/integration/releases/conftest.py), these tests in this order on it. Whole releases, by
`svp models release` and the sensevoice_model_release DAG: test_model_releases.py; the version_policy edits, the
canary's judgement and the release report alone: tests/unit/releases/."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.server import free_port
from sensevoice_pipeline.speech.audio import load_16k
from sensevoice_pipeline.speech.vad import segment_for_asr
from tests.support.paths import FIXTURE_MODEL_DIR
from tests.support.releases import (
    all_policies,
    long_call_golden_set,
    serve,
    staged_gone,
    unpinned_version,
)
from tests.support.svp import svp
from tests.support.traffic import ClientTraffic as Traffic
from tests.support.triton import counted, requests_answered

pytestmark = pytest.mark.triton

CLIP_TEXT = "<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund."


# -- repository only -------------------------------------------------------------------------------------------------


def test_list_and_show_reflect_versions_meta_and_roles(release_repo, tmp_path):
    repo = tmp_path / "model_repository"
    shutil.copytree(release_repo, repo)
    (repo / PIPELINE_MODEL / "9").mkdir()  # a version whose export never finished
    (repo / PIPELINE_MODEL / "9" / "model.py").write_text("")

    out = svp("models", "list", "--repository", str(repo))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line[:1].isdigit()}
    assert sorted(lines) == ["1", "2", "9"]
    for v, precision in (("1", "fp32"), ("2", "int8")):
        meta = json.loads((repo / PIPELINE_MODEL / v / "export_meta.json").read_text())
        cells = lines[v]
        assert precision in cells and meta["exported_at"] in cells and "complete" in cells
        assert meta["source"]["sha256"]["model.pt"][:12] in cells
        assert f"argmax {meta['parity']['argmax_agreement']:.1%}" in cells
    assert lines["1"].split()[1] == "serving" and "incomplete" in lines["9"]
    assert "from serving.json" in out.stdout

    out = svp("models", "list", "--repository", str(repo), "--json")
    data = json.loads(out.stdout)
    assert [v["version"] for v in data["versions"]] == [1, 2, 9] and data["serving"]["serving"] == 1
    assert data["versions"][1]["parity"]["precision"] == "int8" and data["versions"][1]["parity"]["passed"]

    out = svp("models", "show", "2", "--repository", str(repo))
    assert out.returncode == 0 and "precision:  int8" in out.stdout and '"exporter": "legacy"' in out.stdout

    # before serving.json, Triton served the latest version (2): promoting 1 made 2 the previous one
    assert releases.read_state(repo).previous == 2
    out = svp("models", "retire", "2", "--offline", "--repository", str(repo))
    assert out.returncode == 0 and "retired version 2" in out.stdout, out.stderr
    assert releases.read_state(repo).retired == [2] and releases.read_state(repo).previous is None

    # one-line errors: unknown version, incomplete version, server down, ...
    # (exit 64: fix the command; 69: the server is down, try again once it is up)
    for args, message, code in [
        (("show", "7"), "unknown version 7 (the repository has: 1, 2, 9)", 64),
        (
            ("promote", "9", "--offline"),
            "version 9 is incomplete: sensevoice/9/export_meta.json is missing",
            64,
        ),
        (("promote", "1", "--url", f"127.0.0.1:{free_port()}"), "cannot reach Triton at 127.0.0.1:", 69),
        (("list", "--url", f"127.0.0.1:{free_port()}"), "cannot reach Triton at 127.0.0.1:", 69),
        (("promote", "2", "--offline"), "version 2 is retired", 64),
        (("rollback", "--offline"), "no previous version to roll back to", 64),
        (("retire", "1", "--offline"), "version 1 is serving", 64),
    ]:
        out = svp("models", *args, "--repository", str(repo))
        assert out.returncode == code and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert releases.read_state(repo).serving == 1  # nothing changed


# -- a running Triton ------------------------------------------------------------------------------------------------


def test_stage_promote_rollback_under_steady_traffic(release_repo, release_triton):
    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 1)
    with Traffic(url) as traffic:
        t_stage = time.monotonic()
        staged = releases.stage(repo, 2, url)
        assert (staged.staged, staged.serving, staged.model) == (2, 1, releases.STAGED_MODEL)
        traffic.wait_for(5)
        rows, state, server = releases.list_versions(repo, url)
        assert [(r.version, r.role, r.server) for r in rows] == [
            (1, "serving", "default"),
            (2, "staged", "staged"),
        ]
        assert server["default_version"] == 1 and server["agrees"]
        assert all_policies(repo, PIPELINE_MODEL) == {
            "sensevoice/config.pbtxt": (1,),
            "sensevoice/configs/local.pbtxt": (1,),
        }
        assert set(all_policies(repo, ENCODER_MODEL).values()) == {(1, 2)}

        t_promote = time.monotonic()
        promoted = releases.promote(repo, None, url)  # the staged one
        t_promoted = time.monotonic()
        traffic.wait_for(25)
        assert (
            promoted["serving"] == 2 and promoted["previous"] == 1 and promoted["pipeline_versions"] == [1, 2]
        )
        state = releases.read_state(repo)
        assert (state.serving, state.previous, state.staged) == (2, 1, None)
        assert set(all_policies(repo, PIPELINE_MODEL).values()) == {(1, 2)}  # 1 stays loaded: warm standby

        t_rollback = time.monotonic()
        rolled = releases.rollback(repo, url)
        t_rolled = time.monotonic()
        traffic.wait_for(25)
    assert rolled["serving"] == 1 and rolled["previous"] == 2
    assert set(all_policies(repo, PIPELINE_MODEL).values()) == {(1,)}  # 2 > 1 would take unpinned traffic
    assert set(all_policies(repo, ENCODER_MODEL).values()) == {(1,)}

    answers = traffic.answers
    failures = [a.error for a in answers if a.error]
    assert not failures, f"{len(failures)} of {len(answers)} requests failed: {failures[:3]}"
    assert all(a.text == CLIP_TEXT for a in answers)
    assert {a.version for a in traffic.between(0, t_promote)} == {"1"}  # staging left serving alone
    assert len(traffic.between(t_stage, t_promote)) >= 5
    after_promote = traffic.between(t_promoted, t_rollback)
    assert len(after_promote) >= 20 and {a.version for a in after_promote} == {"2"}
    after_rollback = traffic.between(t_rolled)
    assert len(after_rollback) >= 20 and {a.version for a in after_rollback} == {"1"}
    sequence = "".join(a.version for a in sorted(answers, key=lambda a: a.started))
    assert re.fullmatch(r"1+2+1+", sequence), sequence  # one switch each way, no flapping
    print(
        f"\n{len(answers)} requests, 0 failed; promote switched in {promoted['switch_seconds']} s "
        f"({t_promoted - t_promote:.1f} s in all), rollback in {rolled['switch_seconds']} s "
        f"({t_rolled - t_rollback:.1f} s in all)"
    )
    assert unpinned_version(url) == "1"
    assert not releases.TritonControl(url).ready_versions(releases.STAGED_MODEL)


def test_the_canary_sends_a_long_call_as_vad_segments_like_the_daily_job(
    release_repo, release_triton, tmp_path
):
    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 1)
    golden = long_call_golden_set(tmp_path / "golden")
    _, (call,) = load_16k(golden / "long_call.wav", split_channels=False)
    daily_segments = len(segment_for_asr(call))  # what the daily job sends for this call
    assert call.size > 30 * SAMPLE_RATE and daily_segments > 1
    releases.stage(repo, 2, url)
    try:
        before = {
            "staged": requests_answered(url, releases.STAGED_MODEL, 2),
            "serving": requests_answered(url, PIPELINE_MODEL, 1),
        }
        result = releases.run_canary(url, 2, golden, {"max_latency_ratio": 100.0}, serving_version=1)
        expected = 1 + daily_segments + 1 + 1
        after = counted(
            lambda: {
                "staged": requests_answered(url, releases.STAGED_MODEL, 2),
                "serving": requests_answered(url, PIPELINE_MODEL, 1),
            },
            lambda now: all(now[side] - before[side] >= expected for side in now),
        )
    finally:
        releases.unstage(repo, url)
    assert result.cases == 3 and result.segments_per_case == [1, daily_segments, 1]
    assert result.answered_versions == ["1", "2"] and result.max_segment_s == 30.0
    # each side answered one request per segment, plus the untimed warm-up of the first (short) recording
    for side in ("staged", "serving"):
        assert after[side] - before[side] == expected, side


def test_daily_job_records_and_pins_the_answering_version(release_repo, release_triton, tmp_path):
    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 1)
    serve(repo, url, 2)  # 2 serves, 1 stays loaded as standby: two versions on the server
    assert releases.TritonControl(url).ready_versions(PIPELINE_MODEL) == {1, 2}
    out = svp("models", "list", "--repository", str(repo), "--url", url)
    assert out.returncode == 0, out.stderr
    roles = {line.split()[0]: line.split()[1:3] for line in out.stdout.splitlines() if line[:1].isdigit()}
    assert roles["2"] == ["serving", "default"] and roles["1"] == ["previous", "ready"]
    assert f"Triton at {url} answers unpinned requests with version 2" in out.stdout
    date = "2026-11-20"
    part = tmp_path / "raw" / f"date={date}"
    part.mkdir(parents=True)
    for name in ("en_refund_angry", "zh_thanks_happy_laughter", "ja_thanks_happy"):
        shutil.copy(FIXTURE_MODEL_DIR / "clips" / f"{name}.wav", part / f"{name}.wav")

    def versions(lake: Path) -> tuple[set, set, str]:
        from sensevoice_pipeline.lake.catalog import Lake

        utt, rec, runs = (Lake(lake).read(t, date).to_pylist() for t in ("utterances", "recordings", "runs"))
        (run,) = runs
        assert len(rec) == 3 and all(r["status"] == "ok" for r in rec) and len(utt) >= 3
        return {u["model_version"] for u in utt}, {r["model_version"] for r in rec}, run["model_versions"]

    common = ["run", "--date", date, "--raw", str(tmp_path / "raw"), "--url", url]
    out = svp(*common, "--lake", str(tmp_path / "pinned"), "--model-version", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert versions(tmp_path / "pinned") == ({"1"}, {"1"}, "1")
    out = svp(*common, "--lake", str(tmp_path / "unpinned"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert versions(tmp_path / "unpinned") == ({"2"}, {"2"}, "2")
    out = svp(*common, "--lake", str(tmp_path / "missing"), "--model-version", "5")
    assert out.returncode == 69 and "sensevoice version 5 is not loaded" in out.stderr


def test_unstage_unloads_the_staged_candidate_and_says_when_nothing_is_staged(release_repo, release_triton):
    repo, url = release_repo, release_triton.grpc_url
    serve(repo, url, 1)
    common = ("--repository", str(repo), "--url", url)
    out = svp("models", "unstage", *common)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.strip()
        == "nothing is staged (sensevoice_staged is not loaded); serving version 1 untouched"
    )

    releases.stage(repo, 2, url)
    control = releases.TritonControl(url)
    assert control.ready_versions(releases.STAGED_MODEL) == {2} and 2 in control.ready_versions(ENCODER_MODEL)
    out = svp("models", "unstage", *common)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.strip() == "unstaged version 2 (sensevoice_staged unloaded); serving version 1 untouched"
    )
    staged_gone(url, 2)
    assert control.ready_versions(ENCODER_MODEL) == control.ready_versions(PIPELINE_MODEL) == {1}
    state = releases.read_state(repo)
    assert (state.serving, state.staged) == (1, None) and state.history[-1]["action"] == "unstage"
    assert set(all_policies(repo, ENCODER_MODEL).values()) == {(1,)}
    assert unpinned_version(url) == "1"
    out = svp("models", "unstage", *common)
    assert out.returncode == 0 and out.stdout.startswith("nothing is staged"), out.stderr
    out = svp("models", "unstage", "--repository", str(repo), "--url", f"127.0.0.1:{free_port()}")
    assert out.returncode == 69 and "cannot reach Triton at 127.0.0.1:" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
