"""onnxruntime's intra-op threads do not spin while idle unless SVP_ORT_SPINNING=1 (they took the cores of the
frontend, VAD and other stubs on the 2-core machine: benchmarks/, issue 8)."""

from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL
from sensevoice_pipeline.speech.encoder import EncoderSession


def spinning(session: EncoderSession) -> str:
    return session.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_no_spinning_by_default_and_opt_in(exported_repository, monkeypatch):
    onnx_path = exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE
    monkeypatch.delenv("SVP_ORT_SPINNING", raising=False)
    assert spinning(EncoderSession(onnx_path, threads=2)) == "0"
    monkeypatch.setenv("SVP_ORT_SPINNING", "1")
    assert spinning(EncoderSession(onnx_path, threads=2)) == "1"
