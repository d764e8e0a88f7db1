"""The export step: SenseVoiceSmall checkpoint -> verified ONNX -> a new version in the Triton model repository.

Installed as ``sensevoice_export`` (the folder is ``export/``, as the design card names it; a top-level package
called ``export`` would collide with other distributions). It may import the library; the library never imports
it: ``svp export``, ``svp models release``, the demo and the release DAG's export task are the shells that call
both (``releases.release`` takes the export as an injected callable). The only code here that needs torch and
funasr, the ``[export]`` extra: importing this package without them fails with one line saying so.

  checkpoint.py  find, check and load a checkpoint dir (or hub id) with funasr's own classes
  graph.py       the encoder graph that is exported (queries + encoder + CTC head + argmax)
  precision.py   fp32 -> int8 (CPU) / fp16 (GPU) conversions
  parity.py      onnxruntime vs PyTorch on a padded batch of mixed lengths
  pipeline.py    the whole step behind `svp export`
  micro.py       a micro SenseVoiceSmall checkpoint for tests and the demo
  errors.py      ExportError and its kinds, under the project's SvpError
"""

from __future__ import annotations

import importlib.util

from .errors import ExportExtraMissing

EXTRA_MODULES = ("torch", "funasr")


def missing_extra_modules() -> list[str]:
    """The modules of the ``[export]`` extra that cannot be imported here (looked up, not imported: importing
    funasr takes seconds)."""
    return [name for name in EXTRA_MODULES if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (
        ImportError,
        ValueError,
    ):  # ValueError: sys.modules holds None for it (an import blocked on purpose)
        return False


def check_export_extra() -> None:
    missing = missing_extra_modules()
    if missing:
        raise ExportExtraMissing(
            f"the export step needs {' and '.join(missing)} (the [export] extra): "
            "pip install 'sensevoice-pipeline[export]' on the machine that exports"
        )


check_export_extra()
