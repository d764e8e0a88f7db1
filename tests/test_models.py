"""Model versions on a running Triton (issue 6): list/show, version_policy edits, stage → promote → rollback under a
steady stream of requests, a canary that refuses a bad release, version pinning in the daily job, and the
sensevoice_model_release DAG run for real. A private LocalTriton on a private repository: these tests load and
unload versions, so they never touch the shared `fixture_triton`."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_export.pipeline import run_export
from sensevoice_pipeline import releases
from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.serving.admin import grpc_admin_headers
from sensevoice_pipeline.serving.client import ModelNotReadyError, SenseVoiceClient
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL, ModelRepository
from sensevoice_pipeline.serving.server import LocalTriton, free_port
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.audio import load_16k, resample
from sensevoice_pipeline.speech.vad import segment_for_asr
from sensevoice_pipeline.ui import cli

from .conftest import EXAMPLE_AUDIO, FIXTURE_MODEL_DIR, TEST_ADMIN_KEY, fixture_cases

GRPC_KEY = grpc_admin_headers(TEST_ADMIN_KEY)  # every Triton of the session takes it (conftest)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CLIP = FIXTURE_MODEL_DIR / "clips" / "en_refund_angry.wav"
CLIP_TEXT = "<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund."


def svp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def export(checkpoint, repo: Path, precision: str) -> int:
    from sensevoice_export.pipeline import run_export

    return run_export(str(checkpoint), repo, precision, "legacy", progress=lambda *_: None).version


def release_rows(lake: Path) -> list[dict]:
    """The ``model_releases`` rows of ``lake`` as a BI tool reads them: the warehouse's ``model_releases`` view."""
    from sensevoice_pipeline.warehouse.database import Warehouse

    warehouse = Warehouse(lake)
    warehouse.refresh()  # a release writes the lake's catalog only; the view appears when the file is (re)built
    con = warehouse.connect()
    try:
        return (
            con.sql("SELECT * FROM model_releases ORDER BY finished_at, release_id")
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        con.close()


def release_settings(repo: Path, url: str, lake: Path | str, **more) -> Settings:
    """What `svp models release` would build from its flags."""
    return Settings.from_env(model_repository=repo, triton_url=url, lake_root=lake, **more)


def all_policies(repo: Path, model: str) -> dict[str, tuple[int, ...]]:
    return {
        str(p.relative_to(repo)): tuple(sorted(releases.parse_config(p).version_policy.specific.versions))
        for p in releases.config_files(repo, model)
    }


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory) -> Path:
    """The trained fixture model exported twice (1: fp32, 2: int8); version 1 set to serve (offline, before start)."""
    repo = tmp_path_factory.mktemp("releases") / "model_repository"
    assert export(FIXTURE_MODEL_DIR, repo, "fp32") == 1
    assert export(FIXTURE_MODEL_DIR, repo, "int8") == 2
    releases.promote(repo, 1, url=None)
    return repo


@pytest.fixture(scope="module")
def release_triton(release_repo):
    with LocalTriton(release_repo) as server:
        yield server


def serve(repo: Path, url: str, version: int) -> None:
    """Make ``version`` the serving version (a precondition of a test, whatever ran before)."""
    if releases.read_state(repo).serving != version:
        releases.promote(repo, version, url)


def unpinned_version(url: str) -> str:
    async def ask():
        async with SenseVoiceClient(url, retries=0) as client:
            return (await client.transcribe(sf.read(CLIP, dtype="float32")[0], "auto", True)).model_version

    return asyncio.run(ask())


@dataclass
class Answer:
    started: float
    ended: float
    version: str | None
    text: str | None
    error: str | None


@dataclass
class Traffic:
    """Unpinned requests, one after another, from a background thread until stopped (bounded: at most
    ``max_requests`` or ``max_seconds``). No client retries: every failure counts."""

    url: str
    max_requests: int = 2000
    max_seconds: float = 120.0
    pause_s: float = 0.02
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._audio = sf.read(CLIP, dtype="float32")[0]

    async def _run(self):
        deadline = time.monotonic() + self.max_seconds
        async with SenseVoiceClient(self.url, retries=0, timeout_s=30) as client:
            while (
                not self._stop.is_set()
                and len(self.answers) < self.max_requests
                and time.monotonic() < deadline
            ):
                t = time.monotonic()
                try:
                    r = await client.transcribe(self._audio, "auto", True)
                    self.answers.append(Answer(t, time.monotonic(), r.model_version, r.text, None))
                except Exception as exc:  # noqa: BLE001 -- counted, not raised
                    self.answers.append(Answer(t, time.monotonic(), None, None, repr(exc)))
                await asyncio.sleep(self.pause_s)

    def __enter__(self) -> Traffic:
        self._thread.start()
        self.wait_for(3)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, more: int, timeout: float = 60.0) -> None:
        """Until ``more`` further answers have come back."""
        target, deadline = len(self.answers) + more, time.monotonic() + timeout
        while len(self.answers) < target:
            assert self._thread.is_alive() or len(self.answers) >= target, "traffic stopped early"
            assert time.monotonic() < deadline, "traffic stalled"
            time.sleep(0.05)

    def between(self, start: float, end: float = float("inf")) -> list[Answer]:
        return [a for a in self.answers if a.started >= start and a.ended <= end]


# -- repository only -------------------------------------------------------------------------------------------------


def test_version_policy_edits_parse_as_model_configs_and_keep_the_rest(tmp_path):
    repo = tmp_path / "model_repository"
    shutil.copytree(PROJECT_ROOT / "model_repository", repo)
    before = {
        p: p.read_text() for m in (PIPELINE_MODEL, ENCODER_MODEL) for p in releases.config_files(repo, m)
    }
    assert (
        len(before) == 5
    )  # config.pbtxt + configs/local.pbtxt for both models, + configs/tensorrt.pbtxt (encoder)

    for model in (PIPELINE_MODEL, ENCODER_MODEL):
        old = releases.set_version_policy(repo, model, [3, 2])
        assert set(old) == set(releases.config_files(repo, model))
    for path, text in before.items():
        after = path.read_text()
        new = text_format.Parse(after, model_config_pb2.ModelConfig())
        assert list(new.version_policy.specific.versions) == [2, 3], path
        old = text_format.Parse(text, model_config_pb2.ModelConfig())
        new.ClearField("version_policy")
        old.ClearField("version_policy")
        assert new == old, f"{path}: more than version_policy changed"
        # comments survive; exactly one policy line
        assert [line for line in text.splitlines() if "#" in line] == [
            line for line in after.splitlines() if "#" in line
        ]
        assert after.count("version_policy") == 1

    # a multi-line block with a nested comment is replaced as a whole; a config without one gets one appended
    text = 'name: "m"\nversion_policy {\n  latest { num_versions: 2 }  # keep two }\n}\nmax_batch_size: 4\n'
    out = releases.replace_version_policy(text, [7])
    parsed = text_format.Parse(out, model_config_pb2.ModelConfig())
    assert list(parsed.version_policy.specific.versions) == [7] and parsed.max_batch_size == 4
    out = releases.replace_version_policy('name: "m"\n', [1, 2])
    assert list(text_format.Parse(out, model_config_pb2.ModelConfig()).version_policy.specific.versions) == [
        1,
        2,
    ]
    with pytest.raises(releases.ReleaseError, match="empty version policy"):
        releases.set_version_policy(repo, PIPELINE_MODEL, [])


POLICY_TEXT = """# version_policy { latest { num_versions: 1 } }   <- a comment, not the field
name: "sensevoice"  # a comment with { braces
parameters { key: "note" value: { string_value: "version_policy: { all: {} } # a string, not a comment" } }
version_policy {
  latest { num_versions: 2 }  # keep two }
}
max_batch_size: 4  # after the policy
# the last line
"""


def test_a_version_policy_edit_keeps_every_comment_outside_the_field_and_parses_to_the_policy():
    out = releases.replace_version_policy(POLICY_TEXT, [3, 1])
    lines = POLICY_TEXT.splitlines()
    assert (
        out.splitlines() == lines[:3] + ["version_policy: { specific: { versions: [ 1, 3 ] } }"] + lines[6:]
    )
    parsed = text_format.Parse(out, model_config_pb2.ModelConfig())
    assert list(parsed.version_policy.specific.versions) == [1, 3] and parsed.max_batch_size == 4
    assert parsed.parameters["note"].string_value == "version_policy: { all: {} } # a string, not a comment"
    # an edit of an edit changes the policy line only
    again = releases.replace_version_policy(out, [5])
    assert again.splitlines() == lines[:3] + ["version_policy: { specific: { versions: [ 5 ] } }"] + lines[6:]
    with pytest.raises(releases.ReleaseError, match="no complete value"):
        releases.replace_version_policy('name: "m"\nversion_policy {\n  latest { num_versions: 2 }\n', [1])


def test_the_release_row_goes_to_the_catalog_it_is_given(tmp_path):
    lake, catalog = tmp_path / "lake", tmp_path / "elsewhere" / "catalog.sqlite"
    run = releases.ReleaseRun(
        Settings(model_repository=tmp_path / "repo"), "release-1", "2026-01-01T00:00:00+00:00"
    )
    run.failure = releases.StepFailure("export", "ExportError: no checkpoint")
    decision = run.failed_decision()
    summary = releases.write_release_report(lake, "release-1", None, None, decision, catalog=catalog)
    assert summary.table == f"SQLite catalog {catalog}" and catalog.is_file()
    assert not list(lake.glob("*.sqlite"))  # not the lake's default catalog
    (row,) = Lake(lake, catalog).read("model_releases", summary.date).to_pylist()
    assert (row["release_id"], row["outcome"], row["reasons"]) == (
        "release-1",
        "failed",
        "export failed: ExportError: no checkpoint",
    )


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
    for args, message in [
        (("show", "7"), "unknown version 7 (the repository has: 1, 2, 9)"),
        (("promote", "9", "--offline"), "version 9 is incomplete: sensevoice/9/export_meta.json is missing"),
        (("promote", "1", "--url", f"127.0.0.1:{free_port()}"), "cannot reach Triton at 127.0.0.1:"),
        (("list", "--url", f"127.0.0.1:{free_port()}"), "cannot reach Triton at 127.0.0.1:"),
        (("promote", "2", "--offline"), "version 2 is retired"),
        (("rollback", "--offline"), "no previous version to roll back to"),
        (("retire", "1", "--offline"), "version 1 is serving"),
    ]:
        out = svp("models", *args, "--repository", str(repo))
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert releases.read_state(repo).serving == 1  # nothing changed


def answered(*raw_texts: str, seconds: float = 0.010, version: str = "2") -> releases.CaseAnswer:
    """One golden recording's answer on one side: a raw text per segment."""
    return releases.CaseAnswer(raw_texts, seconds, (version,))


def test_canary_gates_on_transcripts_emotions_and_latency():
    cases = [releases.GoldenCase(CLIP, "auto", True, (CLIP_TEXT,))] * 10
    same = [answered(CLIP_TEXT, version="1")] * 10

    def judge(staged, thresholds=None):
        thresholds = thresholds or releases.CanaryThresholds()
        return releases.judge(cases, {"serving": same, "staged": staged}, thresholds, 2, 1)

    ok = judge([answered(CLIP_TEXT, seconds=0.012)] * 10)
    assert ok.passed and ok.transcript_agreement == 1.0 and ok.latency_ratio == pytest.approx(1.2)
    assert ok.segments_per_case == [1] * 10
    happy = CLIP_TEXT.replace("ANGRY", "HAPPY")  # same words, another emotion
    result = judge([answered(happy)] * 2 + [answered(CLIP_TEXT)] * 8)
    assert not result.passed and result.reasons == ["emotion agreement 0.800 < 0.95"]
    assert result.transcript_agreement == 1.0 and len(result.disagreements) == 2
    other = "<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund now."
    result = judge([answered(other, seconds=0.030)] * 10)
    assert result.reasons == ["transcript agreement 0.000 < 0.95", "latency ratio 3.00 > 1.5"]
    assert judge([answered(other)] * 10, releases.CanaryThresholds(0.0, 0.95, 1.5)).passed
    # nothing serving yet: the golden set's expected texts are the baseline, latency is not gated
    first = releases.judge(
        cases,
        {"staged": [answered(CLIP_TEXT, seconds=0.5, version="1")] * 10},
        releases.CanaryThresholds(),
        1,
        None,
    )
    assert first.passed and first.baseline == "expected texts of the golden set"
    assert first.latency_ratio is None and first.expected_match_staged == 1.0


def test_canary_judges_a_segmented_call_by_its_joined_text_and_each_segments_tags():
    call = [releases.GoldenCase(CLIP)]
    angry, happy = "<|en|><|ANGRY|><|Speech|><|withitn|>", "<|en|><|HAPPY|><|Speech|><|withitn|>"
    serving = {"serving": [answered(angry + "I want", happy + "a refund.", version="1")]}
    judge = lambda *staged: releases.judge(  # noqa: E731
        call, {**serving, "staged": [answered(*staged)]}, releases.CanaryThresholds(), 2, 1
    )
    assert judge(angry + "I want", happy + "a refund.").passed
    # the same words in one segment: the text agrees, the emotions (angry, happy) and (angry,) do not
    one_segment = judge(angry + "I want a refund.")
    assert one_segment.transcript_agreement == 1.0 and one_segment.emotion_agreement == 0.0
    assert one_segment.segments_per_case == [1]
    # every segment's emotion counts, not only the first one's
    assert judge(angry + "I want", angry + "a refund.").emotion_agreement == 0.0
    assert judge(angry + "I want", happy + "a refund!").transcript_agreement == 0.0


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


def long_call_golden_set(root: Path) -> Path:
    """A golden set whose second recording is a call longer than the longest segment: the model card's example
    clips (real speech) one after another with 2 s of silence between them, between two short fixture clips."""
    root.mkdir(parents=True)
    gap = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    parts = []
    for path in EXAMPLE_AUDIO:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        parts += [resample(audio.mean(axis=1), rate), gap]
    sf.write(root / "long_call.wav", np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    for name in ("en_refund_angry", "ja_thanks_happy"):
        shutil.copy(FIXTURE_MODEL_DIR / "clips" / f"{name}.wav", root / f"{name}.wav")
    clips = ("en_refund_angry.wav", "long_call.wav", "ja_thanks_happy.wav")
    (root / "expected.jsonl").write_text(
        "".join(json.dumps({"clip": c, "language": "auto"}) + "\n" for c in clips)
    )
    return root


def requests_answered(url: str, model: str, version: int) -> int:
    """Triton's own count of the requests ``model`` version ``version`` answered successfully."""
    control = releases.TritonControl(url)
    try:
        stats = control.client.get_inference_statistics(model, str(version), client_timeout=10)
        return sum(s.inference_stats.success.count for s in stats.model_stats)
    finally:
        control.close()


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
        after = {
            "staged": requests_answered(url, releases.STAGED_MODEL, 2),
            "serving": requests_answered(url, PIPELINE_MODEL, 1),
        }
    finally:
        releases.unstage(repo, url)
    assert result.cases == 3 and result.segments_per_case == [1, daily_segments, 1]
    assert result.answered_versions == ["1", "2"] and result.max_segment_s == 30.0
    # each side answered one request per segment, plus the untimed warm-up of the first (short) recording
    for side in ("staged", "serving"):
        assert after[side] - before[side] == 1 + daily_segments + 1 + 1, side


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
    assert out.returncode == 2 and "sensevoice version 5 is not loaded" in out.stderr


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
    airflow = LocalAirflow(home=local_airflow.home, extra_env=triton_connection_env(url))
    airflow.dags_test("sensevoice_model_release", "2026-11-23T00:00:00+00:00", conf=conf)

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


def staged_gone(url: str, candidate: int | None = None) -> None:
    """Triton's own view: no READY ``sensevoice_staged`` in its model index, and ``candidate`` loaded nowhere."""
    control = releases.TritonControl(url)
    try:
        index = control.client.get_model_repository_index(client_timeout=10, headers=GRPC_KEY).models
        assert not [m for m in index if m.name == releases.STAGED_MODEL and m.state == "READY"], index
        assert not control.ready_versions(releases.STAGED_MODEL)
        if candidate is not None:
            assert candidate not in control.ready_versions(ENCODER_MODEL) | control.ready_versions(
                PIPELINE_MODEL
            )
    finally:
        control.close()


def broken_golden_set(root: Path) -> Path:
    """A golden set the canary cannot read: the canary raises (it does not merely refuse)."""
    root.mkdir(parents=True)
    (root / "expected.jsonl").write_text("not a golden case\n")
    return root


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
    assert out.returncode == 2 and "cannot reach Triton at 127.0.0.1:" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


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


def test_a_release_refuses_an_object_store_lake_without_a_catalog_before_it_exports(tmp_path):
    with pytest.raises(releases.ReleaseError, match="s3://bucket/lake needs a catalog that every host"):
        releases.release(
            "no-such-checkpoint",
            release_settings(tmp_path / "repo", "127.0.0.1:1", "s3://bucket/lake"),
            run_export=run_export,
        )
    assert not (tmp_path / "repo").exists()


def test_the_first_release_after_a_plain_export_records_what_serves_before_adding_a_version(
    tmp_path, fixture_repository
):
    """A repository that only `svp export` wrote has no serving.json, and its configs' default policy serves the
    latest version: the release's export must pin what serves now, or the new version looks served (its stage was
    refused with "version 2 is already serving", found by tests/test_stack.py) and a restart would serve it
    uncanaried."""
    repo = Path(shutil.copytree(fixture_repository, tmp_path / "model_repository"))
    assert not releases.read_state(repo).recorded
    exported = releases.export_version(str(FIXTURE_MODEL_DIR), repo, run_export=run_export)
    state = releases.read_state(repo)
    assert (exported.version, state.serving, state.recorded) == (2, 1, True)
    assert releases.policy_versions(repo, PIPELINE_MODEL) == [1]  # a restarted Triton still serves version 1
