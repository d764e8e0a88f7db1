"""releases/state.py: serving.json (or what the configs serve before it exists), the release lock and the checks
every operation makes on a version, on a repository made from the project's templates."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest

from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.policy import set_version_policy
from sensevoice_pipeline.releases.state import (
    HISTORY_LIMIT,
    ServingState,
    check_version,
    locked,
    open_repository,
    read_state,
    write_state,
)
from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    PIPELINE_MODEL,
    REQUIRED_VERSION_FILES,
    ModelRepository,
)


def complete_version(repo: ModelRepository, version: int) -> None:
    """Every file a complete version holds (contents only as far as the checks read them)."""
    for model, names in REQUIRED_VERSION_FILES.items():
        folder = repo.version_dir(model, version)
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text("")
    meta = {
        "version": version,
        "precision": "fp32",
        "exporter": "legacy",
        "exported_at": "2026-03-14T10:00:00+00:00",
        "source": {"model": "iic/SenseVoiceSmall"},
        "parity": {"max_abs": 0.001},
    }
    repo.meta_path(version).write_text(json.dumps(meta))


@pytest.fixture
def repo(tmp_path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "model_repository")
    repository.copy_template()
    for version in (1, 2, 3):
        complete_version(repository, version)
    return repository


def test_before_serving_json_the_state_is_what_the_configs_serve(repo, tmp_path):
    state = read_state(repo.path)
    assert (state.serving, state.previous, state.staged, state.recorded) == (3, None, None, False)
    set_version_policy(repo.path, PIPELINE_MODEL, [1, 3])
    state = read_state(repo.path)
    assert (state.serving, state.previous, state.retired) == (3, 1, [])
    empty = ModelRepository(tmp_path / "empty")
    empty.copy_template()
    assert (read_state(empty.path).serving, read_state(empty.path).previous) == (None, None)


def test_a_written_state_reads_back_and_marks_itself_recorded(repo):
    state = ServingState(serving=3, previous=2, staged=4, retired=[1], mirror="s3://b/repo")
    state.note("promote", version=3, by="test")
    path = write_state(repo.path, state)
    assert path == repo.path / "serving.json" and state.recorded
    on_disk = json.loads(path.read_text())
    assert "recorded" not in on_disk and path.read_text().endswith("}\n")
    again = read_state(repo.path)
    assert again == state and again.recorded
    assert again.history == [{"at": state.updated_at, "action": "promote", "version": 3, "by": "test"}]


def test_a_recorded_state_takes_what_it_knows_and_defaults_the_rest(repo):
    (repo.path / "serving.json").write_text(json.dumps({"serving": 2, "retired": None, "from_the_future": 1}))
    state = read_state(repo.path)
    assert (state.serving, state.previous, state.retired, state.history, state.recorded) == (
        2,
        None,
        [],
        [],
        True,
    )
    assert read_state(repo.path).serving == 2  # not the configs' 3: the record wins once it exists


def test_an_unreadable_serving_json_is_a_release_error_saying_what_to_do(repo):
    (repo.path / "serving.json").write_text('{"serving": 2,')
    with pytest.raises(ReleaseError, match=r"serving.json is unreadable \(.*\); fix or remove it"):
        read_state(repo.path)


def test_the_history_keeps_the_newest_entries_with_utc_times():
    state = ServingState()
    for i in range(HISTORY_LIMIT + 5):
        state.note("stage", version=i)
    assert len(state.history) == HISTORY_LIMIT
    assert [h["version"] for h in state.history] == list(range(5, HISTORY_LIMIT + 5))
    stamp = dt.datetime.fromisoformat(state.updated_at)
    assert stamp.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.UTC) - stamp).total_seconds() < 60


def test_one_release_operation_at_a_time_and_the_lock_is_freed_even_on_failure(repo, tmp_path):
    with pytest.raises(ReleaseError, match="is not a model repository"):
        with locked(tmp_path / "missing"):
            pass
    with locked(repo.path):
        started = time.monotonic()
        with pytest.raises(ReleaseError, match=r"another release operation holds .*\.serving\.lock"):
            with locked(repo.path, timeout_s=0.3):
                pass
        assert time.monotonic() - started >= 0.3  # it waited before giving up
    with pytest.raises(RuntimeError):
        with locked(repo.path):
            raise RuntimeError("the operation failed")
    with locked(repo.path, timeout_s=0):
        pass  # free again


def test_a_waiting_operation_gets_the_lock_when_the_holder_leaves(repo):
    order: list[str] = []
    holding = threading.Event()

    def holder():
        with locked(repo.path):
            holding.set()
            time.sleep(0.3)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    with locked(repo.path, timeout_s=20):
        order.append("waiter in")
    thread.join()
    assert order == ["holder done", "waiter in"]


def test_versions_are_checked_for_existence_completeness_and_retirement(repo):
    check_version(repo, 2)
    with pytest.raises(ReleaseError, match=r"unknown version 7 \(the repository has: 1, 2, 3\)"):
        check_version(repo, 7)
    (repo.version_dir(ENCODER_MODEL, 3) / "model.onnx").unlink()
    repo.meta_path(3).write_text(json.dumps({"version": 4}))
    with pytest.raises(
        ReleaseError, match="version 3 is incomplete: sensevoice_encoder/3/model.onnx is missing; "
    ) as bad:
        check_version(repo, 3)
    assert "'version' is 4 but the folder is version 3" in str(bad.value)
    retired = ServingState(serving=2, retired=[1])
    with pytest.raises(ReleaseError, match="version 1 is retired"):
        check_version(repo, 1, retired)
    check_version(repo, 1, retired, allow_retired=True)
    check_version(repo, 1)  # no state given: retirement is not checked


def test_only_an_exported_repository_is_opened(repo, tmp_path):
    assert open_repository(repo.path).path == repo.path
    (tmp_path / "plain").mkdir()
    with pytest.raises(
        ReleaseError, match=r"plain is not a SenseVoice model repository \(run `svp export` first\)"
    ):
        open_repository(Path(tmp_path / "plain"))
