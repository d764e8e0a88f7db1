"""The plugin's "Try a clip" check (ui/clip.py) in-process: with no Triton listening, a serving fault is never blamed
on the clip and what a viewer is shown names no server address or path (issue 28); against a real Triton, a clip
over 30 s is cut like the daily job cuts a call. The form in a real api-server: tests/integration/airflow/."""

from __future__ import annotations

import pytest

from sensevoice_pipeline.errors import ServingError
from sensevoice_pipeline.ui.page_text import for_viewer
from tests.support.airflow import free_port as _free_port
from tests.support.paths import FIXTURE_MODEL_DIR as FIXTURE_DIR


def test_clip_checks_fail_clearly_when_triton_is_down(tmp_path):
    """A serving fault is never blamed on the clip: the page answers 503 with the reason."""
    import asyncio

    from sensevoice_pipeline.errors import ServingError, http_status
    from sensevoice_pipeline.ui import clip as clip_check

    data = (FIXTURE_DIR / "clips" / "en_refund_angry.wav").read_bytes()
    url = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ServingError) as exc:
        asyncio.run(clip_check.check_clip(data, "a.wav", "en", True, url=url))
    assert http_status(exc.value) == 503
    assert clip_check.message(exc.value).startswith(
        f"the transcription service failed, not the clip: cannot reach Triton at {url}"
    )


@pytest.mark.triton
def test_a_long_clip_is_cut_like_the_daily_job(fixture_triton):
    """Over 30 s: the daily job's VAD segments (vad.segment_for_asr), each one request, decoded from FLAC bytes."""
    import asyncio
    import io

    import soundfile as sf

    from sensevoice_pipeline.demo import sample_day
    from sensevoice_pipeline.speech.vad import segment_for_asr
    from sensevoice_pipeline.ui import clip as clip_check

    speech = sample_day._long_speech(repeats=1)
    buf = io.BytesIO()
    sf.write(buf, speech, 16000, format="FLAC")
    result = asyncio.run(
        clip_check.check_clip(buf.getvalue(), "call.flac", "auto", True, url=fixture_triton.grpc_url)
    )
    assert result.duration_s > 30 and result.segmented
    _, decoded = clip_check.decode_in_memory(buf.getvalue(), "call.flac")
    bounds = [(round(s.start_s, 3), round(s.end_s, 3)) for s in segment_for_asr(decoded)]
    assert len(bounds) > 1 and [(s.start_s, s.end_s) for s in result.segments] == bounds
    assert all(s.raw.startswith("<|") and s.end_s - s.start_s <= 30 for s in result.segments)
    assert result.raw == "".join(s.raw for s in result.segments)


def test_errors_shown_to_a_viewer_name_no_server_address_or_path():
    """The clip endpoint answers a serving fault with this text, in JSON as in HTML (plugins/sensevoice_plugin.py):
    here, the real message of a Triton that cannot be reached."""
    import asyncio

    from sensevoice_pipeline.serving.server import free_port
    from sensevoice_pipeline.ui import clip as clip_check

    data = FIXTURE_DIR / "clips" / "en_refund_angry.wav"
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServingError) as exc:
        asyncio.run(clip_check.check_clip(data.read_bytes(), "a.wav", "en", True, url=url))
    message = (
        clip_check.message(exc.value) + " (warehouse /srv/lake/warehouse.duckdb; triton:8001; [::1]:8001)"
    )
    shown = for_viewer(message)
    assert (
        url not in shown
        and "127.0.0.1" not in shown
        and "/srv/lake" not in shown
        and "triton:8001" not in shown
    )
    assert shown.startswith("the transcription service failed, not the clip: cannot reach Triton at [server]")
    assert "…/warehouse.duckdb" in shown and "[::1]" not in shown
