"""`svp` run as a user runs it: a subprocess of this interpreter, its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def svp(
    *args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m sensevoice_pipeline.ui.cli *args``; ``env`` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
