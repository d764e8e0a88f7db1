"""The exported micro model run in-process, no server: LocalTranscriber's batches of similar length give the texts
in the order given, and onnxruntime's intra-op threads do not spin while idle unless SVP_ORT_SPINNING=1 (they took
the cores of the frontend, VAD and other stubs on the 2-core machine: benchmarks/, issue 8)."""

import pytest

from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL
from sensevoice_pipeline.serving.transcriber import LocalTranscriber, Utterance
from sensevoice_pipeline.speech.encoder import EncoderSession
from tests.support.audio import synthetic_clip
from tests.support.paths import EXAMPLE_AUDIO

pytestmark = pytest.mark.export


def test_batch_equals_one_by_one_in_the_given_order(exported_repository):
    from sensevoice_pipeline.speech.audio import load_mono_16k

    local = LocalTranscriber(exported_repository, threads=1)
    audios = [load_mono_16k(p) for p in EXAMPLE_AUDIO] + [
        synthetic_clip(s, seed=i) for i, s in enumerate((0.7, 2.3, 6.1, 2.4))
    ]
    utterances = [Utterance(a, ("auto", "en", "zh")[i % 3], i % 2 == 0) for i, a in enumerate(audios)]
    together = local.transcribe(utterances)
    assert together == [local.transcribe([u])[0] for u in utterances]
    assert len(set(together)) > 1


# -- onnxruntime's threads ------------------------------------------------------------------------------------------


def spinning(session: EncoderSession) -> str:
    return session.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_no_spinning_by_default_and_opt_in(exported_repository, monkeypatch):
    onnx_path = exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE
    monkeypatch.delenv("SVP_ORT_SPINNING", raising=False)
    assert spinning(EncoderSession(onnx_path, threads=2)) == "0"
    monkeypatch.setenv("SVP_ORT_SPINNING", "1")
    assert spinning(EncoderSession(onnx_path, threads=2)) == "1"
