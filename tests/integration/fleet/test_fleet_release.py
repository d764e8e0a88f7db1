"""Fleet releases (issue 16, items 2-3): three real local Tritons on one shared model repository (a folder every
server is started with), driven as one through a comma-separated ``--url``: stage and canary on the first server,
promote everywhere under steady traffic, roll back everywhere, `svp models list` per server with drift flagged; a
server that cannot load the candidate stops the promotion and every server serves the previous version again.
And the s3:// repository: a version published to moto's S3 server, loaded by Triton from there."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, META_FILE, MODELS, PIPELINE_MODEL
from sensevoice_pipeline.serving.server import LocalTriton
from tests.support.s3 import create_buckets, moto_s3_server
from tests.support.svp import svp
from tests.support.traffic import Traffic
from tests.support.triton import repository_with_two_versions, settled_versions

pytestmark = pytest.mark.triton


def refusing_repository(shared: Path, dst: Path) -> Path:
    """A server's view of ``shared`` in which the candidate (version 2 of `sensevoice`) is a corrupt copy: its
    model.py raises when Triton initialises it. Everything else is the shared files themselves (symlinks), so the
    configs the release writes are the ones this server loads."""
    (dst / PIPELINE_MODEL).mkdir(parents=True)
    (dst / ENCODER_MODEL).symlink_to(shared / ENCODER_MODEL, target_is_directory=True)
    for entry in (shared / PIPELINE_MODEL).iterdir():
        if entry.name != "2":
            (dst / PIPELINE_MODEL / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    broken = shutil.copytree(shared / PIPELINE_MODEL / "2", dst / PIPELINE_MODEL / "2")
    (broken / "model.py").write_text(
        "class TritonPythonModel:\n    def initialize(self, args):\n"
        "        raise RuntimeError('corrupt copy of the candidate')\n"
    )
    return dst


@pytest.fixture(scope="module")
def fleet_repo(exported_repository, tmp_path_factory) -> Path:
    return repository_with_two_versions(
        exported_repository, tmp_path_factory.mktemp("fleet") / "model_repository"
    )


@pytest.fixture(scope="module")
def fleet(fleet_repo):
    """Three servers started on the one shared folder."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(LocalTriton(fleet_repo)) for _ in range(3)]


def defaults(urls: list[str]) -> list[int]:
    return [max(settled_versions(url, PIPELINE_MODEL)) for url in urls]


def test_a_fleet_is_staged_on_one_server_promoted_everywhere_and_rolled_back_without_failed_requests(
    fleet_repo, fleet
):
    repo, urls = fleet_repo, [server.grpc_url for server in fleet]
    every = ",".join(urls)
    with Traffic(urls, streams=1) as traffic:
        staged = releases.stage(repo, 2, every)
        assert staged.staged == 2
        control = releases.TritonControl(urls[0])
        assert control.ready_versions(releases.STAGED_MODEL) == {2}  # the canary server only
        control.close()
        rows, _, server = releases.list_versions(repo, every)
        assert [r.server for r in rows] == ["default/default/default", "staged/-/-"] and not server["drift"]

        releases.promote(repo, None, every)
        t_promoted = time.monotonic()
        traffic.wait_for_each(t_promoted)
        assert defaults(urls) == [2, 2, 2]
        releases.rollback(repo, every)
        t_rolled = time.monotonic()
        traffic.wait_for_each(t_rolled)
    assert defaults(urls) == [1, 1, 1] and all(settled_versions(u, ENCODER_MODEL) == {1} for u in urls)
    failures = traffic.failures()
    assert not failures, f"{len(failures)} of {len(traffic.answers)} requests failed: {failures[:3]}"
    for url in urls:  # every server answered, and moved with the release
        assert traffic.versions_since(t_promoted, url) >= {"2"} and traffic.versions_since(t_rolled, url) == {
            "1"
        }

    # drift: one server promoted alone is flagged by `svp models list` (the next test's fleet promote mends it)
    releases.promote(repo, 2, urls[1])
    out = svp("models", "list", "--repository", str(repo), "--url", every)
    assert out.returncode == 0, out.stderr
    assert "# DRIFT: the 3 servers" in out.stdout and "differs from serving.json" in out.stdout, out.stdout
    print(f"\n{len(traffic.answers)} requests over 3 servers, 0 failed")


def test_a_server_that_cannot_load_the_candidate_returns_the_whole_fleet_to_the_previous_version(
    fleet_repo, fleet, tmp_path
):
    repo = fleet_repo
    every = ",".join(s.grpc_url for s in fleet)
    if (
        releases.read_state(repo).serving != 1
    ):  # after the drift the test above leaves, a fleet promote mends it
        releases.promote(repo, 1, every)
    assert not releases.list_versions(repo, every)[2]["drift"]
    view = refusing_repository(repo, tmp_path / "refusing")
    with LocalTriton(view) as refusing:
        urls = [fleet[0].grpc_url, fleet[1].grpc_url, refusing.grpc_url]  # the refusing server switches last
        with Traffic(urls, streams=1) as traffic:
            with pytest.raises(
                releases.ReleaseError,
                match=f"Triton at {refusing.grpc_url} could not load "
                f"sensevoice.*corrupt copy of the candidate",
            ):
                releases.promote(repo, 2, ",".join(urls))
            t_failed = time.monotonic()
            traffic.wait_for(6)
        assert defaults(urls) == [1, 1, 1]
        assert all(
            settled_versions(u, PIPELINE_MODEL) == {1} and settled_versions(u, ENCODER_MODEL) == {1}
            for u in urls
        )
    state = releases.read_state(repo)
    assert (
        state.serving,
        releases.policy_versions(repo, PIPELINE_MODEL),
        releases.policy_versions(repo, ENCODER_MODEL),
    ) == (1, [1], [1])
    failures = traffic.failures()
    assert not failures, f"{len(failures)} of {len(traffic.answers)} requests failed: {failures[:3]}"
    assert traffic.versions_since(t_failed) == {"1"}
    assert {a.version for a in traffic.answers if a.url != refusing.grpc_url} >= {"2"}  # they had switched


# -- the s3:// repository ----------------------------------------------------------------------------------------------


@pytest.fixture()
def s3_store(monkeypatch):
    """moto's S3 server, a bucket, and the AWS_* variables Triton and pyarrow read."""
    from sensevoice_pipeline.lake.storage import ObjectPath, S3Options

    with moto_s3_server() as url:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "svp-key",
            "AWS_SECRET_ACCESS_KEY": "svp-secret",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url,
        }.items():
            monkeypatch.setenv(name, value)
        create_buckets(url, "svp-key", "svp-secret", "svp-models")
        yield ObjectPath.parse("s3://svp-models/fleet/model_repository", S3Options.from_env())


@pytest.mark.s3
def test_triton_serves_a_mirrored_repository_from_s3_and_a_release_is_published_before_each_load(
    exported_repository, s3_store, tmp_path
):
    """`svp models mirror` publishes the repository; Triton reads only the bucket; the stage and promote that
    follow edit the local folder and publish each change before asking the server to load it."""
    repo = tmp_path / "model_repository"
    shutil.copytree(exported_repository, repo)
    out = svp("models", "mirror", str(s3_store), "--repository", str(repo))
    assert out.returncode == 0, out.stderr
    published = releases.set_mirror(repo, str(s3_store))  # again: idempotent, same answer
    assert published["versions"] == [1]
    assert (
        published["triton_uri"]
        == f"s3://http://{s3_store.options.endpoint()[0]}/svp-models/fleet/model_repository"
    )
    assert published["triton_uri"] in out.stdout
    assert {f"{m}/1/model.py" for m in MODELS} | {f"{m}/configs/local.pbtxt" for m in MODELS} <= keys(
        s3_store
    )
    assert f"{ENCODER_MODEL}/1/model.onnx" in keys(s3_store)

    # a new version lands in the local folder only (the export's copy; `svp export` would publish it at once)
    for model in MODELS:
        shutil.copytree(repo / model / "1", repo / model / "2")
    meta = repo / PIPELINE_MODEL / "2" / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 2}))
    assert not any(k.startswith(f"{PIPELINE_MODEL}/2/") for k in keys(s3_store))
    with LocalTriton(published["triton_uri"]) as server:
        assert settled_versions(server.grpc_url, PIPELINE_MODEL) == {1}
        with Traffic([server.grpc_url], streams=1) as traffic:
            releases.stage(
                repo, 2, server.grpc_url
            )  # publishes version 2, then the encoder policy, then loads
            releases.promote(repo, None, server.grpc_url)
            traffic.wait_for(2)
        assert max(settled_versions(server.grpc_url, PIPELINE_MODEL)) == 2
    assert {f"{m}/2/model.py" for m in MODELS} <= keys(s3_store)
    assert not traffic.failures() and "2" in {a.version for a in traffic.answers}


def keys(root) -> set[str]:
    import pyarrow.fs as pafs

    listing = root.filesystem.get_file_info(pafs.FileSelector(root.fs_path, recursive=True))
    return {info.path.removeprefix(root.fs_path + "/") for info in listing if info.type == pafs.FileType.File}
