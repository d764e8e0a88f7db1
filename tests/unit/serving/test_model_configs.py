"""The model repository's configs as Triton parses them (model_repository/): what the production GPU configs and their
variants send and batch, the frame buckets the `sensevoice` model pads to, and the local CPU configs. What each
setting is for: docs/gpu.md. The GPU path itself, checked without a GPU: tests/integration/serving/test_gpu_path.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.triton_models import (
    ALIGN_WITH_LOGITS_PARAMETER,
    ENCODER_OUTPUTS,
    FRAME_BUCKETS_PARAMETER,
    bucketed_frames,
    config_flag,
    frame_buckets,
    pad_frames,
)
from tests.support.model_configs import config, triton_json

GPU, CPU = model_config_pb2.ModelInstanceGroup.KIND_GPU, model_config_pb2.ModelInstanceGroup.KIND_CPU
TRT_CACHE_VOLUME = "/trt-cache"  # docker-compose mounts a writable volume here for the TRT variant


@pytest.mark.parametrize("config", ["config.pbtxt", "configs/local.pbtxt"])
@pytest.mark.parametrize("model", ["sensevoice", "sensevoice_encoder"])
def test_configs_parse_as_model_config_protos(model, config):
    from pathlib import Path

    text = (Path("model_repository") / model / config).read_text()
    parsed = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert parsed.name == model and parsed.max_batch_size >= 16
    # The local configs have none: a merged execution ran on one single-threaded encoder instance while the other
    # idled (issue 18; tests/integration/serving/test_local_layout.py). Production batches on the GPU.
    assert parsed.HasField("dynamic_batching") is (config == "config.pbtxt")
    if config == "config.pbtxt" and model == "sensevoice_encoder":
        assert parsed.backend == "onnxruntime"
        assert parsed.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert (
            list(parsed.dynamic_batching.preferred_batch_size)
            and parsed.dynamic_batching.max_queue_delay_microseconds
        )


def test_frame_buckets_come_from_the_config_and_bad_lists_are_refused():
    assert frame_buckets(triton_json(config(PIPELINE_MODEL, "local"))) == ()  # local CPU: exact padding
    assert frame_buckets(None) == ()
    buckets = (32, 64, 96)
    assert [bucketed_frames(n, buckets) for n in (1, 32, 33, 96, 97)] == [32, 32, 64, 96, 97]
    assert bucketed_frames(50, ()) == 50
    speech = np.ones((2, 3, 4), np.float32)
    assert pad_frames(speech, 5).shape == (2, 5, 4) and not pad_frames(speech, 5)[:, 3:].any()
    for bad in ("32,abc", "64,32", "0,32", "32,32"):
        with pytest.raises(ValueError, match=FRAME_BUCKETS_PARAMETER):
            frame_buckets({"parameters": {FRAME_BUCKETS_PARAMETER: {"string_value": bad}}})


# -- the configs as Triton reads them -------------------------------------------------------------------------------


def accelerator_parameters(parsed: model_config_pb2.ModelConfig) -> dict[str, dict[str, str]]:
    return {
        a.name: dict(a.parameters)
        for a in parsed.optimization.execution_accelerators.gpu_execution_accelerator
    }


def profile(text: str) -> dict[str, tuple[int, ...]]:
    """``"speech:1x1x560,speech_lengths:1"`` -> {"speech": (1, 1, 560), "speech_lengths": (1,)}"""
    pairs = (item.split(":") for item in text.split(","))
    return {name: tuple(int(d) for d in dims.split("x")) for name, dims in pairs}


@pytest.mark.parametrize("variant", [None, "tensorrt"])
def test_gpu_encoder_configs_send_only_what_the_pipeline_reads_from_the_gpu(variant):
    parsed = config(ENCODER_MODEL, variant)
    assert parsed.name == ENCODER_MODEL and parsed.backend == "onnxruntime"
    assert {o.name for o in parsed.output} == set(ENCODER_OUTPUTS)  # no ctc_logits copied out per batch
    assert [i.name for i in parsed.input] == [i.name for i in config(ENCODER_MODEL, "local").input]
    assert [g.kind for g in parsed.instance_group] == [GPU] and parsed.instance_group[0].count >= 1
    batching = parsed.dynamic_batching
    assert batching.max_queue_delay_microseconds > 0
    assert list(batching.preferred_batch_size) and max(batching.preferred_batch_size) <= parsed.max_batch_size
    # CUDA provider options as top-level parameters (the r24.10 backend lets these override the `cuda` block)
    params = {k: v.string_value for k, v in parsed.parameters.items()}
    assert params["cudnn_conv_algo_search"] == "1" and params["arena_extend_strategy"] == "1"
    assert "cuda" not in accelerator_parameters(parsed)
    assert parsed.optimization.input_pinned_memory.enable and parsed.optimization.output_pinned_memory.enable


def test_tensorrt_variant_has_one_explicit_profile_covering_every_bucket_and_batch():
    parsed = config(ENCODER_MODEL, "tensorrt")
    trt = accelerator_parameters(parsed)["tensorrt"]
    shapes = {kind: profile(trt[f"trt_profile_{kind}_shapes"]) for kind in ("min", "opt", "max")}
    inputs = {i.name for i in parsed.input}
    for kind, by_input in shapes.items():
        assert set(by_input) == inputs, kind
        assert len({dims[0] for dims in by_input.values()}) == 1, f"{kind}: one batch size for every input"
        assert by_input["speech"][2] == 560 and all(len(d) == 1 for n, d in by_input.items() if n != "speech")
    assert shapes["min"]["speech"][:2] == (1, 1)
    assert shapes["max"]["speech"][0] == parsed.max_batch_size
    for a, b in (("min", "opt"), ("opt", "max")):
        assert all(x <= y for x, y in zip(shapes[a]["speech"], shapes[b]["speech"])), (a, b)
    # every bucket `sensevoice` pads to fits the profile, or padded calls would fail outside it
    assert max(frame_buckets(triton_json(config(PIPELINE_MODEL)))) <= shapes["max"]["speech"][1]
    # same-structure versions would share a cached engine (microsoft/onnxruntime#6455): engine cache off, the
    # weight-free timing cache on the writable volume
    assert trt["trt_engine_cache_enable"] == "0"
    assert trt["trt_timing_cache_enable"] == "1" and trt["trt_timing_cache_path"] == TRT_CACHE_VOLUME
    assert trt["precision_mode"] in {"FP32", "FP16"}


def test_pipeline_configs_batch_on_the_gpu_and_run_each_request_alone_on_the_cpu():
    production, local = config(PIPELINE_MODEL), config(PIPELINE_MODEL, "local")
    for parsed in (production, local):
        assert parsed.backend == "python" and [g.kind for g in parsed.instance_group] == [CPU]
        # TEXT, then the tag confidences (issue 18), then the word times (issue 31)
        assert [o.name for o in parsed.output] == ["TEXT", "CONFIDENCE", "EMOTION_PROBS", "WORDS"]
    # only the local encoder lists ctc_logits: only there may a forced alignment ask for them (speech/alignment.py)
    assert config_flag(triton_json(local), ALIGN_WITH_LOGITS_PARAMETER)
    assert not config_flag(triton_json(production), ALIGN_WITH_LOGITS_PARAMETER)
    assert "ctc_logits" in [o.name for o in config(ENCODER_MODEL, "local").output]
    assert "ctc_logits" not in [o.name for o in config(ENCODER_MODEL).output]
    # the GPU batches; locally each request runs alone, one utterance per encoder call (issue 18)
    assert production.HasField("dynamic_batching") and not local.HasField("dynamic_batching")
    # several instances: while one waits on its encoder call the others compute features or decode
    assert production.instance_group[0].count >= 2
    buckets = frame_buckets(triton_json(production))
    assert len(buckets) >= 4 and buckets[-1] * 0.06 >= 30.0  # 60 ms LFR frames: the longest 30 s segment fits
    # locally as many as the encoder has instances: each waits for its encoder call (issue 18)
    local_encoder = config(ENCODER_MODEL, "local")
    assert local.instance_group[0].count == local_encoder.instance_group[0].count >= 2
    assert frame_buckets(triton_json(local)) == ()
    assert json.loads(triton_json(production))["parameters"][FRAME_BUCKETS_PARAMETER]["string_value"]
