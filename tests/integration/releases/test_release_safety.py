"""Release safety (issue "Releases"): model.pt is unpickled with weights_only=True and a checkpoint that would run code
is refused before any of it runs; export_meta.json is checked whenever a repository is read; a retired version's
broken files do not stop a server from starting. Real pieces: the micro checkpoint, `svp`, a real exported repository
and a real local Triton. (The failed-release clean-up and `svp models unstage` are in test_model_releases.py and
test_models.py, beside the other tests that load and unload versions on a running Triton.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    META_FILE,
    MODELS,
    PIPELINE_MODEL,
    ModelRepository,
)
from sensevoice_pipeline.serving.server import LocalTriton, ServerError
from tests.support.svp import svp


class WritesMarker:
    """Unpickling this runs code: it writes ``marker``. What a malicious model.pt would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran while unpickling')",)


def booby_trapped_checkpoint(src: Path, dst: Path, marker: Path) -> Path:
    """A copy of a real checkpoint whose model.pt holds the real weights plus an object that runs code on load."""
    shutil.copytree(src, dst)
    state = torch.load(src / "model.pt", map_location="cpu", weights_only=True)
    torch.save({**state, "extra": WritesMarker(marker)}, dst / "model.pt")
    return dst


# -- 1. model.pt: weights only ---------------------------------------------------------------------------------------


@pytest.mark.export
@pytest.mark.subprocess
def test_checkpoint_loads_weights_only_and_refuses_a_pickle_that_would_run_code(micro_checkpoint, tmp_path):
    from sensevoice_export.checkpoint import CheckpointError, _read_state_dict

    # a real state-dict checkpoint still loads, every tensor intact
    state = _read_state_dict(micro_checkpoint / "model.pt")
    reference = torch.load(micro_checkpoint / "model.pt", map_location="cpu", weights_only=True)
    assert state.keys() == reference.keys() and any(k.startswith("encoder.") for k in state)
    assert all(torch.equal(state[k], reference[k]) for k in state)

    # the trap is live: a full unpickle runs it
    live = tmp_path / "live-marker"
    booby_trapped_checkpoint(micro_checkpoint, tmp_path / "live", live)
    torch.load(tmp_path / "live" / "model.pt", map_location="cpu", weights_only=False)
    assert live.read_text() == "code ran while unpickling"

    # ... and the export refuses it in one line, before any of it runs, writing nothing
    marker = tmp_path / "marker"
    ckpt = booby_trapped_checkpoint(micro_checkpoint, tmp_path / "ckpt", marker)
    with pytest.raises(CheckpointError, match="needs more than tensors to load") as refused:
        _read_state_dict(ckpt / "model.pt")
    assert not marker.exists()
    assert type(refused.value).__name__ == "UnsafeCheckpointError" and "\n" not in str(refused.value)
    out = svp("export", "--model", str(ckpt), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 64, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert (
        "model.pt needs more than tensors to load" in out.stderr and "refusing to unpickle it" in out.stderr
    )
    assert "exec" in out.stderr  # names what it would have called
    assert not marker.exists() and not (tmp_path / "repo").exists()


# -- 2. export_meta.json is validated when a repository is read -------------------------------------------------------


def add_version_copy(repo: Path, source: int, version: int, meta_text: str | None = None) -> None:
    """Version ``version`` as a file copy of ``source`` (both models); its meta says ``version`` unless given."""
    for model in MODELS:
        shutil.copytree(repo / model / str(source), repo / model / str(version))
    meta_path = repo / PIPELINE_MODEL / str(version) / META_FILE
    if meta_text is None:
        meta = json.loads(meta_path.read_text())
        meta_text = json.dumps({**meta, "version": version}, indent=2)
    meta_path.write_text(meta_text)


@pytest.mark.export
@pytest.mark.subprocess
def test_export_meta_is_checked_when_a_repository_is_read(exported_repository, tmp_path):
    repo = shutil.copytree(exported_repository, tmp_path / "model_repository")
    good = json.loads((repo / PIPELINE_MODEL / "1" / META_FILE).read_text())
    bad = {k: v for k, v in good.items() if k != "precision"} | {"version": 2, "parity": "passed"}
    add_version_copy(repo, 1, 2, json.dumps(bad))
    add_version_copy(repo, 1, 3, '{"version": 3, "precision": ')
    add_version_copy(repo, 1, 4, json.dumps(good | {"exported_at": 20261123}))  # and its version says 1
    add_version_copy(repo, 1, 5)  # a faithful copy: fine

    # read by `svp models`: a wrong meta makes its version incomplete, which cannot be promoted (one-line error)
    out = svp("models", "list", "--repository", str(repo))
    assert out.returncode == 0, out.stderr
    files = {line.split()[0]: line.split()[-1] for line in out.stdout.splitlines() if line[:1].isdigit()}
    assert files == {
        "1": "complete",
        "2": "incomplete",
        "3": "incomplete",
        "4": "incomplete",
        "5": "complete",
    }
    out = svp("models", "show", "2", "--repository", str(repo))
    assert out.returncode == 0 and "required key 'precision' is missing" in out.stdout, out.stderr
    for version, message in [
        (2, "version 2 is incomplete: sensevoice/2/export_meta.json: required key 'precision' is missing"),
        (3, "version 3 is incomplete: sensevoice/3/export_meta.json is not valid JSON"),
        (4, "version 4 is incomplete: sensevoice/4/export_meta.json: 'exported_at' must be"),
    ]:
        out = svp("models", "promote", str(version), "--offline", "--repository", str(repo))
        assert out.returncode == 64 and message in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = svp("models", "promote", "5", "--offline", "--repository", str(repo))
    assert out.returncode == 0 and releases.read_state(repo).serving == 5, out.stderr

    # read by the library: every problem names the file and the key
    from sensevoice_pipeline.serving.repository import MetaError

    r = ModelRepository(repo)
    assert r.check_meta(1) == [] and r.check_meta(5) == [] and r.load_meta(5)["version"] == 5
    assert r.check_meta(2) == [
        "sensevoice/2/export_meta.json: required key 'precision' is missing",
        "sensevoice/2/export_meta.json: 'parity' must be an object, not a string (\"passed\")",
    ]
    (problem,) = r.check_meta(3)
    assert problem.startswith("sensevoice/3/export_meta.json is not valid JSON (")
    assert r.check_meta(4) == [
        "sensevoice/4/export_meta.json: 'exported_at' must be a string, not an integer (20261123)",
        "sensevoice/4/export_meta.json: 'version' is 1 but the folder is version 4",
    ]
    with pytest.raises(
        MetaError, match=r"sensevoice/2/export_meta.json: required key 'precision' is missing"
    ):
        r.load_meta(2)
    assert [v for v in r.versions() if r.version_info(v).complete] == [1, 5]
    lint = r.lint("local")
    assert all(any(p in line for line in lint) for p in r.check_meta(2) + r.check_meta(3) + r.check_meta(4))


# -- 3. retired versions do not block serving --------------------------------------------------------------------------


@pytest.mark.triton
def test_a_retired_versions_broken_files_do_not_stop_the_server(exported_repository, tmp_path):
    repo = shutil.copytree(exported_repository, tmp_path / "model_repository")
    add_version_copy(repo, 1, 2)
    releases.promote(repo, 1, url=None)
    releases.retire(repo, 2, url=None)
    # the retired version then loses files and its meta (a half-finished clean-up, a bad disk, ...)
    (repo / PIPELINE_MODEL / "2" / "model.py").unlink()
    (repo / ENCODER_MODEL / "2" / "model.onnx").unlink()
    (repo / PIPELINE_MODEL / "2" / META_FILE).write_text("{")
    r = ModelRepository(repo)
    assert r.lint("local") == [] and r.lint() == []

    with LocalTriton(repo) as server:
        control = releases.TritonControl(server.grpc_url)
        try:
            assert control.ready_versions(PIPELINE_MODEL) == {1} and control.ready_versions(
                ENCODER_MODEL
            ) == {1}
        finally:
            control.close()
    rows, state, _ = releases.list_versions(repo)
    assert [(row.version, row.role, row.complete) for row in rows] == [
        (1, "serving", True),
        (2, "retired", False),
    ]

    # the same broken files in a version that is not retired still stop the server before it starts
    serving = json.loads((repo / "serving.json").read_text())
    (repo / "serving.json").write_text(json.dumps({**serving, "retired": []}))
    assert "sensevoice/2/model.py is missing" in r.lint("local")
    with pytest.raises(ServerError, match="sensevoice/2/model.py is missing"):
        LocalTriton(repo).start()
