"""With no Triton listening: the client and `svp transcribe` say so clearly. Nothing is started but `svp` itself."""

import asyncio
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sensevoice_pipeline.serving.client import Request, SenseVoiceClient, TritonUnavailableError
from sensevoice_pipeline.serving.server import free_port
from tests.support.audio import synthetic_clip


def run(coro):
    return asyncio.run(coro)


async def transcribe_all(url, requests, **kwargs):
    async with SenseVoiceClient(url, **kwargs) as client:
        return await client.transcribe_many(requests)


def test_server_down_gives_a_clear_error():
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(TritonUnavailableError, match=f"cannot reach Triton at {url}"):
        run(transcribe_all(url, [Request(np.zeros(1600, np.float32))], retries=1, backoff_s=0.01))


@pytest.mark.subprocess
def test_transcribe_command_without_server(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, synthetic_clip(0.5, seed=1), 16000)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "transcribe",
            str(path),
            "--url",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 69 and "cannot reach Triton" in out.stderr
