"""What the release tests do around a real Triton and a real repository: export a version, read the release rows a
BI tool reads, the version policies every config of a model names, golden sets that make the canary work or fail,
and what the server says about a staged candidate or an unpinned request."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from sensevoice_pipeline import releases
from sensevoice_pipeline.constants import SAMPLE_RATE
from sensevoice_pipeline.serving.admin import grpc_admin_headers
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.audio import resample
from tests.support.paths import EXAMPLE_AUDIO, FIXTURE_MODEL_DIR
from tests.support.triton import TEST_ADMIN_KEY

GRPC_KEY = grpc_admin_headers(TEST_ADMIN_KEY)  # every Triton of the session takes it (tests/conftest.py)
CLIP = FIXTURE_MODEL_DIR / "clips" / "en_refund_angry.wav"


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


def unpinned_version(url: str) -> str:
    async def ask():
        async with SenseVoiceClient(url, retries=0) as client:
            return (await client.transcribe(sf.read(CLIP, dtype="float32")[0], "auto", True)).model_version

    return asyncio.run(ask())


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


def serve(repo: Path, url: str, version: int) -> None:
    """Make ``version`` the serving version (a precondition of a test, whatever ran before)."""
    if releases.read_state(repo).serving != version:
        releases.promote(repo, version, url)
