"""export/rewrite.py on attention blocks built here with onnx.helper in the exporter's shape: the padding mask cast
once per Where, ``Where(mask, -inf, scores) -> Softmax -> Where(mask, 0, attn)``. No model, no torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sensevoice_export import rewrite

B, H, T = 2, 2, 5
MASKED = np.array([[[[0, 0, 0, 1, 1]]], [[[0, 0, 0, 0, 0]]]], dtype=np.int64)  # row 1 padded by two frames


def attention_model(
    blocks: int = 1,
    dtype=np.float32,
    neg_fill: float = -np.inf,
    zero_fill: float = 0.0,
    second_mask: str = "mask",
    extra_softmax_reader: bool = False,
) -> onnx.ModelProto:
    """``blocks`` masked-softmax blocks one after the other over scores [B, H, T, T]; the -inf fill an initializer,
    the 0 fill a Constant node (the two ways the exporter writes them)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes, inits = [], [numpy_helper.from_array(np.array(neg_fill, dtype), "neg_inf")]
    nodes.append(
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(zero_fill, dtype)))
    )
    x = "scores"
    for i in range(blocks):
        nodes += [
            helper.make_node("Cast", ["mask"], [f"m{i}a"], to=TensorProto.BOOL),
            helper.make_node("Where", [f"m{i}a", "neg_inf", x], [f"filled{i}"], name=f"fill{i}"),
            helper.make_node("Softmax", [f"filled{i}"], [f"attn{i}"], axis=-1),
            helper.make_node("Cast", [second_mask], [f"m{i}b"], to=TensorProto.BOOL),
            helper.make_node("Where", [f"m{i}b", "zero", f"attn{i}"], [f"masked{i}"], name=f"unfill{i}"),
            helper.make_node("Mul", [f"masked{i}", "scores"], [f"out{i}"]),
        ]
        x = f"out{i}"
    outputs = [helper.make_tensor_value_info(x, elem, [B, H, T, T])]
    if extra_softmax_reader:
        nodes.append(helper.make_node("Identity", ["attn0"], ["attn_copy"]))
        outputs.append(helper.make_tensor_value_info("attn_copy", elem, [B, H, T, T]))
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("scores", elem, [B, H, T, T]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, [B, 1, 1, T]),
            helper.make_tensor_value_info("other_mask", TensorProto.INT64, [B, 1, 1, T]),
        ],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, scores: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"scores": scores, "mask": MASKED, "other_mask": MASKED})


def test_an_attention_block_becomes_an_additive_mask_with_the_same_outputs_bit_for_bit():
    model = attention_model()
    scores = np.random.default_rng(0).standard_normal((B, H, T, T)).astype(np.float32) * 8
    before = run(model, scores)
    assert rewrite.additive_attention_masks(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == [
        "Constant",
        "Cast",
        "Where",
        "Add",
        "Softmax",
        "Cast",
        "Mul",
    ]
    where, add, softmax = model.graph.node[2:5]
    assert list(where.input) == ["m0a", "neg_inf", "additive_attention_mask_zero"]  # over the small mask
    assert list(add.input) == ["scores", where.output[0]] and add.output[0] == softmax.input[0] == "filled0"
    assert model.graph.node[6].input[0] == "attn0"  # the second fill's reader reads the softmax itself
    zero = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}["additive_attention_mask_zero"]
    assert zero.shape == () and zero.dtype == np.float32 and zero == 0
    after = run(model, scores)
    assert all(np.array_equal(b, a) for b, a in zip(before, after))
    assert (after[0][0, :, :, 3:] == 0).all()  # the padded keys still get nothing


def test_every_block_is_rewritten_sharing_one_zero_of_the_fills_type():
    model = attention_model(blocks=3, dtype=np.float16)
    scores = np.random.default_rng(1).standard_normal((B, H, T, T)).astype(np.float16)
    before = run(model, scores)
    assert rewrite.additive_attention_masks(model) == 3
    zeros = [i for i in model.graph.initializer if i.name == "additive_attention_mask_zero"]
    assert len(zeros) == 1 and zeros[0].data_type == TensorProto.FLOAT16
    assert [n.op_type for n in model.graph.node].count("Where") == 3  # the three small bias Wheres
    assert all(np.array_equal(b, a) for b, a in zip(before, run(model, scores)))


def test_a_graph_that_already_has_the_zero_keeps_one():
    """A graph from an earlier rewrite (or a partial one) already holds the shared zero: no duplicate name."""
    model = attention_model()
    model.graph.initializer.append(
        numpy_helper.from_array(np.zeros((), np.float32), "additive_attention_mask_zero")
    )
    assert rewrite.additive_attention_masks(model) == 1
    assert [i.name for i in model.graph.initializer].count("additive_attention_mask_zero") == 1
    onnx.checker.check_model(model)


@pytest.mark.parametrize(
    "variant",
    [
        {"neg_fill": -1e4},  # a finite fill: the softmax does not give the masked keys exactly 0
        {"zero_fill": 1.0},  # the second fill is not a zero: it is not redundant
        {"second_mask": "other_mask"},  # two different masks
        {"extra_softmax_reader": True},  # the unmasked softmax is read elsewhere too
    ],
)
def test_a_block_that_is_not_exactly_the_pattern_is_left_alone(variant):
    model = attention_model(**variant)
    original = model.SerializeToString()
    assert rewrite.additive_attention_masks(model) == 0
    assert model.SerializeToString() == original


def test_rewrite_file_saves_only_a_graph_it_changed(tmp_path):
    plain, changed = tmp_path / "plain.onnx", tmp_path / "changed.onnx"
    onnx.save(attention_model(second_mask="other_mask"), str(plain))
    onnx.save(attention_model(blocks=2), str(changed))
    plain_stat = plain.stat()
    assert rewrite.rewrite_file(plain) == {"additive_attention_masks": 0}
    assert plain.stat().st_mtime_ns == plain_stat.st_mtime_ns  # not written again
    assert rewrite.rewrite_file(changed) == {"additive_attention_masks": 2}
    saved = onnx.load(str(changed))
    assert not any(n.name.startswith("unfill") for n in saved.graph.node)
    assert rewrite.rewrite_file(changed) == {"additive_attention_masks": 0}  # nothing left to rewrite
