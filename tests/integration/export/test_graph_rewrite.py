"""export/rewrite.py on the micro model's encoder graph: the attention masks become additive, and every output stays
bit for bit the same. A graph without the pattern: tests/unit/export/test_rewrite_patterns.py."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sensevoice_export import rewrite

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def plain_and_rewritten(tmp_path_factory, micro_checkpoint):
    """The micro model's encoder graph as torch.onnx writes it, and the same file rewritten."""
    from sensevoice_export.checkpoint import find_checkpoint_files, load_funasr_model
    from sensevoice_export.graph import EncoderGraph, export_onnx, tag_token_ids

    files = find_checkpoint_files(micro_checkpoint)
    _, model = load_funasr_model(files)
    folder = tmp_path_factory.mktemp("rewrite")
    plain = folder / "plain.onnx"
    export_onnx(EncoderGraph(model, tag_token_ids(files.tokenizer)).eval(), plain)
    rewritten = folder / "rewritten.onnx"
    shutil.copyfile(plain, rewritten)
    counts = rewrite.rewrite_file(rewritten)
    blocks = len(model.encoder.encoders0) + len(model.encoder.encoders) + len(model.encoder.tp_encoders)
    return plain, rewritten, counts, blocks


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _feeds(lengths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "speech": rng.standard_normal((len(lengths), max(lengths), 560), dtype=np.float32),
        "speech_lengths": np.array(lengths, np.int32),
        "language": np.zeros(len(lengths), np.int32),
        "textnorm": np.full(len(lengths), 14, np.int32),
    }


def _where_nodes_over_scores(path) -> int:
    """Where nodes that read a softmax's output or feed a softmax: the full-size masking the rewrite removes."""
    graph = onnx.load(str(path)).graph
    softmax_in = {n.input[0] for n in graph.node if n.op_type == "Softmax"}
    softmax_out = {n.output[0] for n in graph.node if n.op_type == "Softmax"}
    return sum(
        1
        for n in graph.node
        if n.op_type == "Where" and (n.output[0] in softmax_in or softmax_out & set(n.input))
    )


def test_every_attention_block_is_rewritten(plain_and_rewritten):
    plain, rewritten, counts, blocks = plain_and_rewritten
    assert counts == {"additive_attention_masks": blocks}
    assert _where_nodes_over_scores(plain) == 2 * blocks
    assert _where_nodes_over_scores(rewritten) == 0
    onnx.checker.check_model(str(rewritten))


def test_every_output_is_bit_for_bit_the_same_on_a_padded_batch(plain_and_rewritten):
    plain, rewritten, _, _ = plain_and_rewritten
    feeds = _feeds([61, 40, 7])  # rows 2 and 3 padded: the masks are exercised
    before, after = _session(plain), _session(rewritten)
    names = [o.name for o in before.get_outputs()]
    for name, old, new in zip(names, before.run(names, feeds), after.run(names, feeds)):
        assert old.dtype == new.dtype and old.shape == new.shape, name
        assert np.array_equal(old, new), name


def test_padded_keys_are_still_masked(plain_and_rewritten):
    """A padded row answers what the same row answers alone: a rewrite that dropped the mask would let the padding
    frames into its attention."""
    _, rewritten, _, _ = plain_and_rewritten
    session = _session(rewritten)
    batch = _feeds([61, 20])
    alone = {k: v[1:2] for k, v in batch.items()}
    alone["speech"] = alone["speech"][:, :20]
    single, (frames,) = session.run(["ctc_logits", "encoder_out_lens"], alone)
    assert frames == single.shape[1] > 20  # the 4 prompt frames come first
    padded = session.run(["ctc_logits"], batch)[0][1, :frames]
    np.testing.assert_allclose(padded, single[0], atol=1e-4)
    batch["speech"][1, 20:] = 100.0  # garbage in the padding changes nothing
    np.testing.assert_allclose(session.run(["ctc_logits"], batch)[0][1, :frames], single[0], atol=1e-4)
