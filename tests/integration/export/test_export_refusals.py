"""`svp export` refuses a broken checkpoint, a missing folder, an unknown precision and a folder that is not a model
repository: one line on stderr, exit code 64, nothing written."""

import pytest

from tests.support.paths import broken_copy, snapshot
from tests.support.svp import svp

pytestmark = [pytest.mark.export, pytest.mark.subprocess]


def test_truncated_weights(tmp_path, micro_checkpoint):
    ckpt = broken_copy(micro_checkpoint, tmp_path / "ckpt")
    data = (ckpt / "model.pt").read_bytes()
    (ckpt / "model.pt").write_bytes(data[: len(data) // 3])
    out = svp("export", "--model", str(ckpt), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 64
    assert "model.pt is corrupt" in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr  # one line
    assert not (tmp_path / "repo").exists()


def test_missing_cmvn(tmp_path, micro_checkpoint):
    ckpt = broken_copy(micro_checkpoint, tmp_path / "ckpt")
    (ckpt / "am.mvn").unlink()
    out = svp("export", "--model", str(ckpt), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 64
    assert "incomplete checkpoint dir" in out.stderr and "am.mvn" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_missing_model_dir(tmp_path):
    out = svp("export", "--model", str(tmp_path / "nope"), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 64 and "does not exist" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_unknown_precision(tmp_path, micro_checkpoint):
    out = svp(
        "export",
        "--model",
        str(micro_checkpoint),
        "--repository",
        str(tmp_path / "repo"),
        "--precision",
        "int4",
    )
    assert out.returncode == 64 and "unknown precision 'int4'" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_not_a_model_repository(tmp_path, micro_checkpoint):
    elsewhere = tmp_path / "documents"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(elsewhere))
    assert out.returncode == 64 and "is not a SenseVoice model repository" in out.stderr
    assert snapshot(elsewhere) == ["notes.txt"]
