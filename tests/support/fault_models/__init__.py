"""A fault harness: the real exported fixture repository, with `sensevoice_encoder` swapped for a python model that
wraps the real encoder but fails or stalls on a marker (test code only; production code has no fault switch).

The fault is chosen per request by its language hint (``SenseVoiceClient.transcribe(..., language=...)``, or the
``language`` column of a day's manifest.csv), which reaches the encoder as its ``language`` id:

==============  ===========================================================================================
hint            what the encoder does
==============  ===========================================================================================
``nospeech``    raises: the whole encoder batch fails. `sensevoice` then retries each request of its dynamic
                batch alone, so only this request gets an error (gRPC INTERNAL, a ``ServingError`` in the
                client, retried and then raised); the others get their normal text.
``ko``          sleeps ``stall_s`` seconds (3 by default) then answers normally: a client whose deadline
                (``SenseVoiceClient(timeout_s=...)`` / ``Settings.request_timeout_s``) is shorter gets a
                ``TritonDeadlineError``. The stall holds up its encoder instance (the local config runs two):
                requests that land behind it on that instance wait too.
anything else   the real encoder, unchanged (texts equal those of the normal fixture server).
==============  ===========================================================================================

Everything else is the real fixture repository: the `sensevoice` model is untouched, only its local config gets a
dynamic batcher, as the production config has (the local one runs each request alone, issue 18), that waits long
(``queue_delay_us``, 0.5 s by default) so that 8 concurrent requests (the client's and the daily job's default
concurrency) reliably share one batch. The price: a request sent alone waits that long.

Use, in a test module: the session fixtures ``fault_repository`` and ``fault_triton`` (tests/integration/conftest.py)
build it with the defaults and serve it::

    def test_a_day_with_a_bad_file(fault_triton):
        settings = Settings(..., triton_url=fault_triton.grpc_url)   # manifest: one file with language=nospeech

For other stall lengths or queue delays, build another repository with :func:`build_fault_repository` and serve it
with ``tests.support.triton.serve``. :func:`model_statistics` reads Triton's counters (was a batch really formed?).
The faulty encoder is this package's ``faulty_encoder.py``, copied into each encoder version as its model.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    LOCAL_CONFIG_NAME,
    PIPELINE_MODEL,
    ModelRepository,
)

FAULTY_ENCODER = Path(__file__).with_name("faulty_encoder.py")
RAISE_LANGUAGE = "nospeech"  # the encoder raises
STALL_LANGUAGE = "ko"  # the encoder sleeps stall_s
DEFAULT_STALL_S = 3.0
DEFAULT_QUEUE_DELAY_US = 500_000


def build_fault_repository(
    source: Path, target: Path, stall_s: float = DEFAULT_STALL_S, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
) -> Path:
    """A copy of the exported repository ``source`` at ``target`` whose encoder versions run the faulty model."""
    shutil.copytree(source, target)
    repo = ModelRepository(target)
    for version in repo.versions():
        shutil.copy(FAULTY_ENCODER, repo.version_dir(ENCODER_MODEL, version) / "model.py")
    _edit_local_config(
        repo,
        ENCODER_MODEL,
        lambda c: c.parameters["stall_s"].MergeFrom(
            model_config_pb2.ModelParameter(string_value=str(stall_s))
        ),
    )
    _edit_local_config(
        repo,
        PIPELINE_MODEL,
        lambda c: setattr(c.dynamic_batching, "max_queue_delay_microseconds", queue_delay_us),
    )
    assert not repo.lint(LOCAL_CONFIG_NAME), repo.lint(LOCAL_CONFIG_NAME)
    return target


def _edit_local_config(repo: ModelRepository, model: str, edit) -> None:
    path = repo.model_dir(model) / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt"
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    edit(config)
    path.write_text(
        f"# fault harness copy (tests/support/fault_models)\n{text_format.MessageToString(config)}"
    )


def model_statistics(url: str, model: str = PIPELINE_MODEL) -> dict:
    """Triton's counters for ``model``: inference_count (requests' batch items), execution_count (model.execute
    calls) and batches {batch size: executions}."""
    client = grpcclient.InferenceServerClient(url)
    try:
        (stats,) = client.get_inference_statistics(model).model_stats
    finally:
        client.close()
    return {
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "batches": {b.batch_size: b.compute_infer.count for b in stats.batch_stats},
    }
