"""The parity gate end to end on a candidate broken on purpose against a reference known exactly: the known model
passes the int8 gate exactly, and a drifting int8 candidate is refused by `svp export` unless its floors are
lowered. The gate's arithmetic alone: tests/unit/export/test_parity.py."""

import re
from pathlib import Path

import pytest

from sensevoice_export.pipeline import run_export
from sensevoice_pipeline.serving.repository import ModelRepository
from tests.support.paths import broken_copy, snapshot
from tests.support.svp import svp

pytestmark = pytest.mark.export

# The known model: the micro checkpoint with its CTC head's weights zeroed and its bias set to KNOWN_BIAS, so every
# frame's reference is log_softmax(KNOWN_BIAS) whatever the encoder computes; int8 rounds zero weights to zero, so
# an honest int8 candidate matches it exactly on any CPU. The broken candidate adds KNOWN_DRIFT to its ctc_logits
# output: the best token moves from BEST_REF to BEST_DRIFTED in every frame (agreement exactly 0) and the centred
# cosine of every frame is the same known value (~0.80), below the int8 floor (0.95) and above 0.5.
BEST_REF, BEST_DRIFTED, PERIODS = 0, 894, 7


def known_vectors(vocab: int):
    import numpy as np

    i = np.arange(vocab)
    shape, across = (
        np.cos(2 * np.pi * PERIODS * i / vocab),
        np.sin(2 * np.pi * PERIODS * i / vocab),
    )  # orthogonal
    bias = 2.0 * shape
    bias[BEST_REF] += 6.0
    drift = 1.5 * across
    drift[BEST_REF] -= 6.0
    drift[BEST_DRIFTED] += 6.0
    return bias.astype(np.float32), drift.astype(np.float32)


def expected_parity(bias, drift) -> tuple[float, int, int]:
    """(centred cosine, best reference token, best candidate token) of every frame, computed here from scratch."""
    import numpy as np
    import torch

    ref = torch.log_softmax(torch.from_numpy(bias), dim=-1).numpy()
    got = (ref + drift).astype(np.float64)
    ref = ref.astype(np.float64)
    a, b = got - got.mean(), ref - ref.mean()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), int(ref.argmax()), int(got.argmax())


@pytest.fixture(scope="module")
def known_checkpoint(tmp_path_factory, micro_checkpoint) -> Path:
    import torch

    ckpt = broken_copy(micro_checkpoint, tmp_path_factory.mktemp("known") / "ckpt")
    state = torch.load(ckpt / "model.pt", map_location="cpu")
    bias, _ = known_vectors(state["ctc.ctc_lo.bias"].numel())
    state["ctc.ctc_lo.weight"].zero_()
    state["ctc.ctc_lo.bias"].copy_(torch.from_numpy(bias))
    torch.save(state, ckpt / "model.pt")
    return ckpt


def add_drift_to_ctc_logits(path: Path, drift) -> None:
    """Rewrite the ONNX graph at ``path`` so that its ``ctc_logits`` output is the original plus ``drift``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.input[:] = ["ctc_logits_honest" if name == "ctc_logits" else name for name in node.input]
        node.output[:] = ["ctc_logits_honest" if name == "ctc_logits" else name for name in node.output]
    graph.initializer.append(numpy_helper.from_array(drift, "ctc_logits_drift"))
    graph.node.append(helper.make_node("Add", ["ctc_logits_honest", "ctc_logits_drift"], ["ctc_logits"]))
    onnx.save(model, str(path))


@pytest.fixture
def drifting_int8(monkeypatch, known_checkpoint):
    """Every int8 candidate that `svp export` converts gets KNOWN_DRIFT added to its ctc_logits, after the real
    conversion and before the parity gate sees it."""
    import torch

    from sensevoice_export import precision

    _, drift = known_vectors(torch.load(known_checkpoint / "model.pt")["ctc.ctc_lo.bias"].numel())
    real_convert = precision.convert

    def convert(fp32_path, out_path, precision_name):
        out = real_convert(fp32_path, out_path, precision_name)
        if precision_name == "int8":
            add_drift_to_ctc_logits(out, drift)
        return out

    monkeypatch.setattr(precision, "convert", convert)
    return drift


def test_the_known_model_passes_the_int8_gate_exactly(tmp_path, known_checkpoint):
    """The control: without the drift the known model's int8 candidate is the reference, so what the broken one
    reports below is the drift's doing, not quantisation's."""
    result = run_export(str(known_checkpoint), tmp_path / "repo", "int8", progress=lambda *_: None)
    report = result.meta["parity"]
    assert report["passed"] and report["argmax_agreement"] == 1.0
    assert report["max_abs"] < 1e-5 and report["min_cosine"] > 1 - 1e-9


@pytest.mark.subprocess
def test_int8_gate_refuses_a_broken_candidate_unless_the_floors_are_lowered(
    tmp_path, known_checkpoint, drifting_int8, capsys
):
    from sensevoice_pipeline.ui.cli import main

    cosine, best_ref, best_got = expected_parity(known_vectors(drifting_int8.size)[0], drifting_int8)
    assert (best_ref, best_got) == (BEST_REF, BEST_DRIFTED) and 0.75 < cosine < 0.85  # the construction holds
    repo = tmp_path / "repo"
    export = ["export", "--model", str(known_checkpoint), "--repository", str(repo), "--precision", "int8"]

    assert main(export) == 64
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("svp export: export failed: parity check failed for int8: ")
    reported = re.search(r"worst-frame cosine ([0-9.]+) < 0\.95", error)
    assert reported and float(reported.group(1)) == pytest.approx(cosine, abs=1e-5), error
    assert "argmax agreement 0.0000 < 0.9" in error
    assert snapshot(repo) == []

    assert main([*export, "--min-cosine", "0.5", "--min-argmax-agreement", "0"]) == 0
    meta = ModelRepository(repo).read_meta(1)
    assert meta["parity"]["thresholds"] == {"max_abs": None, "min_cosine": 0.5, "min_argmax_agreement": 0.0}
    assert meta["parity"]["passed"] and meta["parity"]["argmax_agreement"] == 0.0
    assert meta["parity"]["min_cosine"] == pytest.approx(cosine, abs=1e-5)

    assert main([*export, "--min-cosine", "0.9"]) == 64  # lowering one floor is not enough
    assert "argmax agreement 0.0000 < 0.9" in capsys.readouterr().err
    assert ModelRepository(repo).versions() == [1]

    out = svp("export", "--model", str(known_checkpoint), "--repository", str(repo), "--min-cosine", "2")
    assert out.returncode == 64 and "min_cosine must be between 0 and 1" in out.stderr
