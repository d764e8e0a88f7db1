"""`svp export` for real on the micro checkpoint: parity gate, metadata, and refusals that write nothing."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export import parity
from export.pipeline import ExportError, run_export
from sensevoice_pipeline.repository import ModelRepository

from .conftest import FIXTURE_MODEL_DIR


def svp(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sensevoice_pipeline.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def snapshot(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_export_writes_both_models_with_metadata(exported_repository):
    repo = ModelRepository(exported_repository)
    assert repo.versions() == [1]
    assert repo.lint() == [] and repo.lint("local") == []
    meta = repo.read_meta(1)
    assert meta["precision"] == "fp32" and meta["exporter"] == "legacy" and meta["opset"] == 17
    assert meta["parity"]["passed"] is True
    assert meta["parity"]["max_abs"] < 1e-4 and meta["parity"]["argmax_agreement"] == 1.0
    assert set(meta["source"]["sha256"]) >= {"model.pt", "config.yaml", "am.mvn"}
    assert (exported_repository / "sensevoice_encoder" / "1" / "model.onnx").stat().st_size > 100_000


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precisions_pass_their_thresholds(tmp_path, precision):
    # The trained fixture model: its logits are peaked like a real model's. A random-weight micro model's are
    # nearly flat, so int8 rounding flips its argmax (0.58 agreement) and the gate rightly refuses it.
    result = run_export(str(FIXTURE_MODEL_DIR), tmp_path / "repo", precision, progress=lambda *_: None)
    report = result.meta["parity"]
    assert report["passed"], report["failures"]
    assert report["thresholds"] == parity.THRESHOLDS[precision].__dict__
    assert report["argmax_agreement"] >= parity.THRESHOLDS[precision].min_argmax_agreement
    assert result.meta["target_device"] == {"int8": "cpu", "fp16": "gpu"}[precision]


def test_dynamo_exporter(tmp_path, micro_checkpoint):
    result = run_export(str(micro_checkpoint), tmp_path / "repo", "fp32", "dynamo", progress=lambda *_: None)
    assert result.meta["opset"] == 18 and result.meta["parity"]["passed"]


def test_versions_increase(tmp_path, micro_checkpoint):
    repo = tmp_path / "repo"
    assert run_export(str(micro_checkpoint), repo, progress=lambda *_: None).version == 1
    assert run_export(str(FIXTURE_MODEL_DIR), repo, "int8", progress=lambda *_: None).version == 2
    assert ModelRepository(repo).versions() == [1, 2]


def test_failed_parity_leaves_repository_untouched(tmp_path, micro_checkpoint, exported_repository, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(exported_repository, repo)
    before = snapshot(repo)
    impossible = parity.Thresholds(max_abs=0.0, min_cosine=1.1, min_argmax_agreement=1.0)
    monkeypatch.setitem(parity.THRESHOLDS, "fp32", impossible)
    with pytest.raises(ExportError, match="parity check failed"):
        run_export(str(micro_checkpoint), repo, progress=lambda *_: None)
    assert snapshot(repo) == before


def broken_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_truncated_weights(tmp_path, micro_checkpoint):
    ckpt = broken_copy(micro_checkpoint, tmp_path / "ckpt")
    data = (ckpt / "model.pt").read_bytes()
    (ckpt / "model.pt").write_bytes(data[: len(data) // 3])
    out = svp("export", "--model", str(ckpt), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 2
    assert "model.pt is corrupt" in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr  # one line
    assert not (tmp_path / "repo").exists()


def test_missing_cmvn(tmp_path, micro_checkpoint):
    ckpt = broken_copy(micro_checkpoint, tmp_path / "ckpt")
    (ckpt / "am.mvn").unlink()
    out = svp("export", "--model", str(ckpt), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 2
    assert "incomplete checkpoint dir" in out.stderr and "am.mvn" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_missing_model_dir(tmp_path):
    out = svp("export", "--model", str(tmp_path / "nope"), "--repository", str(tmp_path / "repo"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_unknown_precision(tmp_path, micro_checkpoint):
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(tmp_path / "repo"), "--precision", "int4")
    assert out.returncode == 2 and "unknown precision 'int4'" in out.stderr
    assert not (tmp_path / "repo").exists()


def test_not_a_model_repository(tmp_path, micro_checkpoint):
    elsewhere = tmp_path / "documents"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(elsewhere))
    assert out.returncode == 2 and "is not a SenseVoice model repository" in out.stderr
    assert snapshot(elsewhere) == ["notes.txt"]


def test_int8_gate_refuses_a_random_model_unless_the_floors_are_lowered(tmp_path, micro_checkpoint):
    repo = tmp_path / "repo"
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(repo), "--precision", "int8")
    assert out.returncode == 2 and "parity check failed for int8" in out.stderr
    assert snapshot(repo) == []
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(repo), "--precision", "int8",
              "--min-cosine", "0.5", "--min-argmax-agreement", "0")
    assert out.returncode == 0, out.stderr
    meta = ModelRepository(repo).read_meta(1)
    assert meta["parity"]["thresholds"] == {"max_abs": None, "min_cosine": 0.5, "min_argmax_agreement": 0.0}
    assert meta["parity"]["argmax_agreement"] < parity.THRESHOLDS["int8"].min_argmax_agreement
    out = svp("export", "--model", str(micro_checkpoint), "--repository", str(repo), "--min-cosine", "2")
    assert out.returncode == 2 and "min_cosine must be between 0 and 1" in out.stderr


def test_export_meta_is_json_with_version(exported_repository):
    meta = json.loads((exported_repository / "sensevoice" / "1" / "export_meta.json").read_text())
    assert meta["version"] == 1 and meta["architecture"]["parameters"] > 100_000


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_full_size_export(tmp_path_factory, precision):
    """The real SenseVoiceSmall size (234 M parameters) with random weights: export time and parity."""
    from export.micro import EncoderSize, build_checkpoint

    ckpt = build_checkpoint(tmp_path_factory.mktemp("full") / "ckpt", size=EncoderSize.full(), seed=0)
    lines = []
    # Random weights give nearly flat logits: int8 rounding flips their argmax (0.46 agreement, worst cosine 0.938
    # measured), which the default gate rightly refuses. Here the gate is loosened and the figures are reported.
    thresholds = parity.thresholds_for(precision, 0.9, 0.0) if precision == "int8" else None
    result = run_export(str(ckpt), tmp_path_factory.mktemp("full-repo"), precision,
                        progress=lambda step, msg: lines.append(f"{step}: {msg}"), thresholds=thresholds)
    print("\n".join(lines))
    assert result.meta["architecture"]["parameters"] > 230_000_000
    assert result.meta["parity"]["passed"]
    assert result.meta["parity"]["thresholds"] == (thresholds or parity.THRESHOLDS[precision]).__dict__
