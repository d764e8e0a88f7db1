"""lake/files.py: a FIFO swapped in after planning is refused without blocking (issue 28)."""

from __future__ import annotations

import os
import threading

from sensevoice_pipeline.lake import files
from sensevoice_pipeline.lake.files import NotARegularFileError


def test_a_fifo_swapped_in_after_planning_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "call.wav")
    done = threading.Event()
    caught: list[Exception] = []

    def read():
        try:
            files.fetch(tmp_path / "call.wav", inside=tmp_path)
        except Exception as exc:  # noqa: BLE001 -- looked at below
            caught.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "fetch blocked on a FIFO"
    assert isinstance(caught[0], NotARegularFileError) and "not a regular file (a FIFO)" in str(caught[0])
