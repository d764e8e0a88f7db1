"""The shipped model configs declare exactly the tensors of the Triton contract (sensevoice_pipeline.triton_contract),
with its data types and dims: the clients, the Python models and the export read their names from there."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline import triton_contract as contract

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
CONFIGS = {
    "sensevoice": (contract.PIPELINE_INPUTS, contract.PIPELINE_OUTPUTS),
    "sensevoice_encoder": (contract.ENCODER_INPUTS, None),
}


def declared(tensors) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        t.name: (model_config_pb2.DataType.Name(t.data_type).removeprefix("TYPE_"), tuple(t.dims))
        for t in tensors
    }


def wanted(tensors) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t.name: (t.dtype, t.dims) for t in tensors}


@pytest.mark.parametrize("model", sorted(CONFIGS))
def test_every_config_of_a_model_declares_the_contracts_tensors(model):
    inputs, outputs = CONFIGS[model]
    paths = [REPOSITORY / model / "config.pbtxt", *sorted((REPOSITORY / model / "configs").glob("*.pbtxt"))]
    assert len(paths) > 1
    for path in paths:
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        assert declared(config.input) == wanted(inputs), path
        outs = declared(config.output)
        if outputs is not None:
            assert outs == wanted(outputs), path
        else:  # the encoder's configs list what the pipeline reads: a subset of what the graph offers
            offered = wanted((*contract.ENCODER_GRAPH_OUTPUTS, contract.TAG_PROBS))
            assert outs and all(offered[name][0] == dtype for name, (dtype, _) in outs.items()), path
            assert set(contract.DECODE_OUTPUTS) - {contract.TAG_PROBS.name} <= set(outs), path


def test_the_decode_outputs_are_graph_outputs():
    graph = {t.name for t in (*contract.ENCODER_GRAPH_OUTPUTS, contract.TAG_PROBS)}
    assert set(contract.DECODE_OUTPUTS) <= graph
