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

A candidate that answers otherwise (for the release tests' canaries): :func:`add_angry_version` adds version N+1 to a
repository, a copy of its latest version N whose encoder is this package's ``angry_encoder.py``: every utterance sent
with the hint ``ANGRY_LANGUAGE`` ("yue") comes back with the emotion ``<|ANGRY|>`` (confidence ~1), every other
answer equals version N's. The configs and serving.json are left as they are: stage the candidate with
``releases.stage`` (it is never served while the configs pin the serving version; a fresh export's
``latest: { num_versions: 1 }`` policy does not, so pin it first: ``releases.promote(repo, N, url=None)``).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline.serving.repository import (
    ENCODER_MODEL,
    FRONTEND_FILE,
    LOCAL_CONFIG_NAME,
    META_FILE,
    PIPELINE_MODEL,
    ModelRepository,
)
from sensevoice_pipeline.speech.decoder import Tokenizer
from sensevoice_pipeline.speech.languages import language_id
from sensevoice_pipeline.speech.tags import EMOTION_TAGS

FAULTY_ENCODER = Path(__file__).with_name("faulty_encoder.py")
RAISE_LANGUAGE = "nospeech"  # the encoder raises
STALL_LANGUAGE = "ko"  # the encoder sleeps stall_s
DEFAULT_STALL_S = 3.0
DEFAULT_QUEUE_DELAY_US = 500_000

ANGRY_ENCODER = Path(__file__).with_name("angry_encoder.py")
# beside the angry encoder's model.py: the marker's language id and the emotion tags' token ids
ANGRY_CONFIG = "angry.json"
ANGRY_LANGUAGE = "yue"  # add_angry_version's default marker: these utterances come back angry


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


def add_angry_version(repository: Path, hint: str = ANGRY_LANGUAGE) -> int:
    """Add version N+1 to ``repository``: a file copy of its latest version N of both models (export_meta.json saying
    N+1) whose encoder model.py is ``angry_encoder.py``, so that utterances sent with the language ``hint`` are
    answered with the emotion ANGRY and all others exactly as version N answers them. Returns N+1. The configs'
    version_policy and serving.json are not touched: the new version is loaded only where they name it (stage it
    with ``releases.stage``)."""
    repo = ModelRepository(repository)
    latest = max(repo.versions())
    new = latest + 1
    marker = language_id(hint)  # an unknown hint raises here, not in Triton
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    pipeline = repo.version_dir(PIPELINE_MODEL, latest)
    frontend = json.loads((pipeline / FRONTEND_FILE).read_text())
    tokenizer = Tokenizer(pipeline / frontend["tokenizer"])
    emotion_ids = [tokenizer.piece_id(f"<|{name}|>") for name in EMOTION_TAGS]
    angry_id = tokenizer.piece_id("<|ANGRY|>")
    if angry_id < 0:
        raise ValueError(f"{tokenizer.model_file} has no <|ANGRY|> token")
    # the encoder first, as ModelRepository.publish does: a pipeline version never names a missing encoder
    encoder = shutil.copytree(
        repo.version_dir(ENCODER_MODEL, latest), repo.version_dir(ENCODER_MODEL, new), ignore=ignore
    )
    shutil.copy(ANGRY_ENCODER, encoder / "model.py")
    (encoder / ANGRY_CONFIG).write_text(
        json.dumps({"hint": hint, "marker_id": marker, "angry_id": angry_id, "emotion_ids": emotion_ids})
    )
    copied = shutil.copytree(pipeline, repo.version_dir(PIPELINE_MODEL, new), ignore=ignore)
    meta = copied / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": new}, indent=2))
    info = repo.version_info(new)
    assert info.complete, info.problems
    return new


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


# A day of calls for the angry candidate: three Cantonese ones (manifest hint yue), whose emotions it turns angry
# (none of them angry before), and three English ones it answers as the serving version does.
YUE_CALLS = ("yue_thanks_happy", "zh_yue_ambiguous_sad", "yue_surprised_applause")
EN_CALLS = ("en_thanks_happy_applause", "en_order_neutral_bgm", "en_paid_sad_cough")


def write_cantonese_and_english_day(raw: Path, date: str) -> None:
    """YUE_CALLS and EN_CALLS as the raw partition of ``date``, with a manifest giving their hints."""
    from tests.support.audio import write_named_clips

    write_named_clips(raw, date, [*YUE_CALLS, *EN_CALLS])
    with open(raw / f"date={date}" / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["path", "language"],
                *([f"{n}.wav", ANGRY_LANGUAGE] for n in YUE_CALLS),
                *([f"{n}.wav", "en"] for n in EN_CALLS),
            ]
        )
