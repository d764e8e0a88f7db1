"""export/rewrite.py leaves a graph without the attention-mask pattern alone. The rewrite of a real encoder graph:
tests/integration/export/test_graph_rewrite.py."""

from __future__ import annotations

from sensevoice_export import rewrite


def test_a_graph_without_the_pattern_is_left_alone(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g", [x], [y]))
    assert rewrite.additive_attention_masks(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Softmax"]
