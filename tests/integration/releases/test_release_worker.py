"""The compose stack's split, run for real on one machine: the release worker writes a new model version into the
repository Triton serves from, and Triton loads it without writing anything there.

In docker-compose.yml the `airflow-release-worker` service mounts ./model_repository read-write at /models and
`triton` mounts the same folder read-only (tests/integration/deployment/ checks the mounts). Here the writer is a
separate process doing exactly the release worker's writes (the release DAG's export task,
`releases.export_version`, then the version policy a promotion writes, `releases.policy.set_version_policy`); the
reader is a real local Triton (`LocalTriton`) on the same folder. A read-only bind mount cannot be made as root
here, so the test shows the equivalent: every file's bytes, size, mode and mtime, and the set of paths, are the same
before and after Triton starts and after it loads the new version, i.e. Triton needs no write access to serve it.

The one write Triton attempts: the python backend imports each version's model.py, and CPython then tries to cache its
bytecode in ``__pycache__/`` beside it (seen here: without the block below, ``sensevoice/2/__pycache__/model.cpython-
311.pyc`` appears). The stub's embedded interpreter ignored PYTHONDONTWRITEBYTECODE in that test (it ignores
PYTHONPATH too, /work/shared/ENVIRONMENT.md). On a read-only mount CPython skips the cache silently (PEP 3147: a
source directory it cannot write to gets no cache) and imports from source; the test makes that write fail the same
way, as root, by putting a plain file named ``__pycache__`` where the cache folder would go, then requires the tree
to stay byte-identical while the new version loads and answers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from sensevoice_pipeline.serving.admin import grpc_admin_headers
from sensevoice_pipeline.serving.client import transcribe_sync
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.server import LocalTriton
from tests.support.audio import synthetic_clip
from tests.support.triton import TEST_ADMIN_KEY

pytestmark = pytest.mark.triton

GRPC_KEY = grpc_admin_headers(TEST_ADMIN_KEY)  # every Triton of the session takes it (tests/conftest.py)

# The release worker's writes, in a process of its own (as in its own container): export the next version, then
# the version policy that makes Triton load it (encoder: old and new, as operations._apply_policy does; pipeline:
# the new one). Prints the new version.
WRITER = """
import sys
from sensevoice_pipeline import releases
from sensevoice_export.pipeline import run_export
from sensevoice_pipeline.releases.policy import set_version_policy
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL


checkpoint, repository, serving = sys.argv[1], sys.argv[2], int(sys.argv[3])
version = releases.export_version(checkpoint, repository, "fp32", "legacy", run_export=run_export).version
set_version_policy(repository, ENCODER_MODEL, [serving, version])
set_version_policy(repository, PIPELINE_MODEL, [version])
print(version)
"""


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with what a write would change: for files the content hash, size, mode and mtime;
    for folders their mode and mtime (a file created or removed inside changes it) and for links their target."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            state[rel] = ("dir", st.st_mode, st.st_mtime_ns)
        else:
            state[rel] = (
                "file",
                hashlib.sha256(path.read_bytes()).hexdigest(),
                st.st_size,
                st.st_mode,
                st.st_mtime_ns,
            )
    return state


def differences(before: dict, after: dict) -> list[str]:
    return (
        [f"added {p}" for p in sorted(after.keys() - before.keys())]
        + [f"removed {p}" for p in sorted(before.keys() - after.keys())]
        + [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    )


def block_bytecode_caches(root: Path) -> None:
    """What a read-only mount does to CPython's bytecode cache, done as root: a plain file where each model.py's
    ``__pycache__/`` folder would go, so writing the cache fails (and CPython, as on a read-only mount, goes on)."""
    for model_py in root.rglob("model.py"):
        cache = model_py.parent / "__pycache__"
        if not cache.exists():
            cache.write_bytes(b"")


@pytest.fixture
def shared_repository(tmp_path, exported_repository) -> Path:
    """A private copy of the session's exported repository (version 1): the one folder both sides share. Bytecode
    caches are left out (the session's `triton` fixture serves the original and may have written some)."""
    repo = tmp_path / "model_repository"
    shutil.copytree(exported_repository, repo, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def test_the_release_worker_writes_a_version_that_triton_loads_without_writing(
    shared_repository, micro_checkpoint
):
    clip = synthetic_clip(2.0, seed=3)
    block_bytecode_caches(shared_repository)
    untouched = tree_state(shared_repository)
    with LocalTriton(shared_repository) as server:
        before = transcribe_sync([clip], "en", url=server.grpc_url, version=1)[0]
        assert not differences(untouched, tree_state(shared_repository)), "Triton wrote while starting"

        writer = subprocess.run(
            [sys.executable, "-c", WRITER, str(micro_checkpoint), str(shared_repository), "1"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert writer.returncode == 0, writer.stderr[-3000:]
        version = int(writer.stdout.strip().splitlines()[-1])
        assert version == 2
        block_bytecode_caches(shared_repository)
        written = tree_state(shared_repository)
        assert any(p.startswith(f"{ENCODER_MODEL}/2/") for p in written), "the writer exported no version 2"

        # Triton picks the new version up from the files alone: no config or files in the load requests.
        control = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            control.load_model(ENCODER_MODEL, headers=GRPC_KEY)  # model control takes the admin key
            control.load_model(PIPELINE_MODEL, headers=GRPC_KEY)
            assert control.is_model_ready(PIPELINE_MODEL, "2")
            assert not control.is_model_ready(PIPELINE_MODEL, "1")
            assert control.is_model_ready(ENCODER_MODEL, "2")
        finally:
            control.close()
        after = transcribe_sync([clip], "en", url=server.grpc_url)[0]

    assert after.model_version == "2" and before.model_version == "1"
    # the same checkpoint exported twice: the new version answers exactly as the old one did
    assert after.text == before.text
    changed = differences(written, tree_state(shared_repository))
    assert not changed, f"Triton wrote into the model repository while loading and serving: {changed}"
