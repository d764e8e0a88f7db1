"""Rewrites of the exported encoder graph that keep every output bit for bit and make it cheaper to run.

funasr's SANM attention masks padded keys twice (``sense_voice/model.py``, ``forward_attention``)::

    scores = scores.masked_fill(mask, -inf)
    attn = torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)

Both become a ``Where`` over the whole ``[batch, heads, T, T]`` score tensor, 141 of them in SenseVoiceSmall: 14%
of the int8 encoder on a 30 s segment (onnxruntime profile, 2-core AVX-512 machine, benchmarks/README.md).

- The second fill is redundant: ``exp(-inf)`` is exactly 0, so the softmax already gives 0 to every masked key of
  a row that has at least one unmasked key, and every row does (a segment has at least one frame). It is removed.
- The first becomes ``Add(scores, bias)`` with ``bias = Where(mask, -inf, 0)`` over the mask's own small
  ``[batch, 1, 1, T]`` shape: ``x + 0 == x`` and ``x + -inf == -inf`` for every finite score, and onnxruntime's
  broadcasting Add costs about a third of its Where over the same tensor.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


class _Graph:
    """Who produces and who reads each tensor, and the value of constant tensors."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.readers[name].append(node)
        self.initializers = {init.name: init for init in graph.initializer}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if (
            node is not None
            and node.op_type == "Constant"
            and node.attribute
            and node.attribute[0].name == "value"
        ):
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def mask_source(self, name: str) -> str:
        """The tensor a mask was cast from: the exporter casts the same mask once per Where."""
        node = self.producer.get(name)
        return node.input[0] if node is not None and node.op_type == "Cast" else name


def _is_fill(values: np.ndarray | None, predicate) -> bool:
    return values is not None and values.size == 1 and bool(predicate(values))


def _masked_softmaxes(g: _Graph):
    """(fill before, softmax, fill after) for every softmax between two fills of the same padding mask."""
    for softmax in g.graph.node:
        if softmax.op_type != "Softmax":
            continue
        before = g.producer.get(softmax.input[0])
        readers = g.readers[softmax.output[0]]
        if before is None or before.op_type != "Where" or len(readers) != 1 or readers[0].op_type != "Where":
            continue
        after = readers[0]
        if (
            _is_fill(g.constant(before.input[1]), np.isneginf)
            and _is_fill(g.constant(after.input[1]), lambda v: v == 0)
            and after.input[2] == softmax.output[0]
            and g.mask_source(before.input[0]) == g.mask_source(after.input[0])
        ):
            yield before, softmax, after


def additive_attention_masks(model: onnx.ModelProto) -> int:
    """Rewrite ``model`` in place (see the module docstring); returns how many attention blocks were rewritten."""
    g = _Graph(model.graph)
    blocks = list(_masked_softmaxes(g))
    nodes = model.graph.node
    zero = _zero_like_fill(model, g, blocks)
    for before, softmax, after in blocks:
        for reader in g.readers[after.output[0]]:
            reader.input[:] = [
                softmax.output[0] if name == after.output[0] else name for name in reader.input
            ]
        nodes.remove(after)
        bias = f"{before.name}_mask_bias"
        mask, neg_inf, scores = before.input
        replacement = [
            helper.make_node("Where", [mask, neg_inf, zero], [bias], name=bias),
            helper.make_node("Add", [scores, bias], [before.output[0]], name=f"{before.name}_add_mask"),
        ]
        position = list(nodes).index(before)
        nodes.remove(before)
        for offset, node in enumerate(replacement):
            nodes.insert(position + offset, node)
    return len(blocks)


def _zero_like_fill(model: onnx.ModelProto, g: _Graph, blocks) -> str:
    """One initializer 0 of the fills' type (an initializer, so every rewritten node may read it wherever it is)."""
    name = "additive_attention_mask_zero"
    if blocks and name not in g.initializers:
        dtype = g.constant(blocks[0][0].input[1]).dtype
        model.graph.initializer.append(numpy_helper.from_array(np.zeros((), dtype=dtype), name))
    return name


def rewrite_file(path: Path) -> dict[str, int]:
    """Apply every rewrite to the ONNX file at ``path``; returns what each rewrote (for the export's metadata)."""
    model = onnx.load(str(path))
    counts = {"additive_attention_masks": additive_attention_masks(model)}
    if any(counts.values()):
        onnx.save(model, str(path))
    return counts
