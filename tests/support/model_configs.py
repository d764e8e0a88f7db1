"""The model repository template's configs (model_repository/) parsed as Triton parses them, and in the JSON form
Triton hands a python model (``args["model_config"]``)."""

from __future__ import annotations

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline.releases.policy import parse_config
from tests.support.paths import ROOT

TEMPLATE = ROOT / "model_repository"


def config(model: str, name: str | None = None) -> model_config_pb2.ModelConfig:
    return parse_config(TEMPLATE / model / (f"configs/{name}.pbtxt" if name else "config.pbtxt"))


def triton_json(parsed: model_config_pb2.ModelConfig) -> str:
    """The model config as Triton hands it to a python model (``args["model_config"]``: proto field names)."""
    return json_format.MessageToJson(parsed, preserving_proto_field_name=True)
