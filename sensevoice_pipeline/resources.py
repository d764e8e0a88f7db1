"""Where the files the package ships live: the one module that knows, for a clone and for an installed wheel alike.

The library needs some of the project's top-level folders at run time: `svp demo` runs the DAGs (``dags/``, with
``plugins/``), `svp export` starts new repositories from the model repository template (``model_repository/``), the
demo and the release canary use the trained fixture model and its clips (``export/fixture_model/``), and the demo's
long call is the model card's real speech (``tests/assets/audio/``). Those folders stay where they are (the product's
layout); ``sensevoice_pipeline/shipped/`` holds only relative symlinks to them. setuptools copies the files behind the
links into the wheel (the ``package-data`` patterns of pyproject.toml say which), and an editable install reads them
through the links, so edits show at once. Everything is found through importlib.resources, never through the
location of the clone.

A build from a tree without those folders (the Docker images copy only ``sensevoice_pipeline/``) ships none of their
files: the paths below then do not exist, and the code that needs one says so.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_file(*parts: str) -> Path:
    # A Path, not a Traversable: these go to Airflow, Triton, shutil and funasr. The package is always installed as
    # files (a wheel unpacked into site-packages, or an editable install), never imported from a zip. Resolved, so
    # that messages and recorded sources name the real folder, not the link.
    return Path(str(resources.files("sensevoice_pipeline").joinpath(*parts))).resolve()


def _shipped(name: str) -> Path:
    return _package_file("shipped", name)


VAD_MODEL = _package_file("data", "silero_vad.onnx")  # vendored, see data/README.md
DAGS_DIR = _shipped("dags")
PLUGINS_DIR = _shipped("plugins")
MODEL_REPOSITORY_TEMPLATE = _shipped("model_repository")  # configs and model.py shells, no versions
FIXTURE_MODEL_DIR = _shipped("fixture_model")  # the trained fixture checkpoint, clips/ and expected.jsonl
SPEECH_EXAMPLES_DIR = _shipped("speech_examples")  # the model card's example clips (real speech, *.mp3)
